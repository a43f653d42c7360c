"""The OpenAI wire format of `chowa serve`: request bodies checked field by field, and errors in OpenAI's shape.

A field of the wrong type or range is a 400 naming it (`param`), as vLLM and OpenAI answer; fields chowa does not
use are logged and ignored. Sampling fields left out take the chat format's model-card defaults (`Sampling`), as
`chowa generate` does; `temperature: 0` is greedy.

Run as (from Python):
    params = read_chat(json.loads(body), max_tokens_cap=4096, max_n=16)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from chowa.config.generate import Sampling

log = logging.getLogger("chowa.serve")

_ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 413: "RequestTooLarge",
                429: "RateLimitError", 500: "InternalServerError", 503: "ServiceUnavailableError"}


class APIError(Exception):
    """An error answered as `{"error": {"message", "type", "param", "code"}}` with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": _ERROR_TYPES.get(self.status, "APIError"),
                          "param": self.param, "code": self.code or self.status}}


@dataclass
class Generation:
    """What a chat or completions request asks for, checked."""

    model: str | None
    sampling: Sampling
    max_tokens: int | None
    """As asked (None: the format's default, capped by the context)."""
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None
    """None: none; k: the chosen token's log-probability and the k most likely."""
    min_tokens: int = 0
    max_tokens_param: str = "max_tokens"
    """The field `max_tokens` came from (`max_completion_tokens` is the newer name), for errors."""
    messages: list[dict] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


_SHARED = {"model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
           "stream_options", "user", "top_k", "repetition_penalty", "min_tokens", "logprobs"}
_CHAT = _SHARED | {"messages", "top_logprobs"}
_COMPLETIONS = _SHARED | {"prompt"}


# Fields that change what a reply is, which chowa does not implement: refused unless left at their neutral value,
# so a client never gets a different reply than it asked for without knowing.
_UNSUPPORTED = {"echo": (False,), "suffix": (None, ""), "best_of": (None, 1), "logit_bias": (None, {}),
                "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0),
                "response_format": (None, {"type": "text"}), "tools": (None, []), "tool_choice": (None, "none"),
                "functions": (None, []), "function_call": (None, "none")}


def parse_body(raw: bytes) -> dict:
    def no_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    try:
        body = json.loads(raw, parse_constant=no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, not {type(body).__name__}")
    return body


def read_chat(body: dict, max_tokens_cap: int, max_n: int) -> Generation:
    _check_fields(body, _CHAT, "chat/completions")
    generation = _read_shared(body, max_tokens_cap, max_n)
    generation.messages = _messages(body)
    if _get(body, "logprobs", bool, False):
        generation.logprobs = _get(body, "top_logprobs", int, 0, low=0, high=20)
    elif body.get("top_logprobs") is not None:
        raise APIError(400, "top_logprobs needs logprobs: true", "top_logprobs")
    return generation


def read_completions(body: dict, max_tokens_cap: int, max_n: int) -> Generation:
    _check_fields(body, _COMPLETIONS, "completions")
    generation = _read_shared(body, max_tokens_cap, max_n)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        generation.prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        generation.prompts = prompt
    else:
        raise APIError(400, "prompt must be a string or a non-empty list of strings", "prompt")
    generation.logprobs = _get(body, "logprobs", int, None, low=0, high=20)
    return generation


def _read_shared(body: dict, max_tokens_cap: int, max_n: int) -> Generation:
    model = _get(body, "model", str, None)
    max_tokens = _get(body, "max_completion_tokens", int, None, low=1)
    param = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, param = _get(body, "max_tokens", int, None, low=1), "max_tokens"
    if max_tokens is not None and max_tokens > max_tokens_cap:
        raise APIError(400, f"{param} is {max_tokens}, above this server's cap of {max_tokens_cap} "
                            "(chowa serve --max-tokens-cap)", param)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > 16:
        raise APIError(400, "stop must be a non-empty string or a list of at most 16 of them", "stop")
    temperature = _get(body, "temperature", float, None, low=0, high=2)
    sampling = Sampling(temperature=temperature, top_p=_get(body, "top_p", float, None, low=0, high=1, open_low=True),
                        top_k=_top_k(body), repetition_penalty=_get(body, "repetition_penalty", float, None, low=0,
                                                                    open_low=True),
                        greedy=temperature == 0, stop=stops, seed=_get(body, "seed", int, None))
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise APIError(400, "stream_options must be an object", "stream_options")
    return Generation(model=model, sampling=sampling, max_tokens=max_tokens, max_tokens_param=param,
                      n=_get(body, "n", int, 1, low=1, high=max_n),
                      stream=_get(body, "stream", bool, False),
                      include_usage=bool(options and _get(options, "include_usage", bool, False,
                                                          "stream_options.include_usage")),
                      min_tokens=_get(body, "min_tokens", int, 0, low=0))


def _top_k(body: dict) -> int | None:
    top_k = _get(body, "top_k", int, None, low=-1)
    return 0 if top_k == -1 else top_k  # vLLM's -1 (and 0) mean all tokens


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list", "messages")
    checked = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object with role and content", where)
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise APIError(400, f"{where}.role must be system, user or assistant, not {role!r}", f"{where}.role")
        if isinstance(content, list):  # OpenAI's content parts: only text is served
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise APIError(400, f"{where}.content: only text parts are supported", f"{where}.content")
            content = "".join(part["text"] for part in content)
        if not isinstance(content, str):
            raise APIError(400, f"{where}.content must be a string", f"{where}.content")
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] != "user":
        raise APIError(400, "the last message must be the user's (chowa generates the assistant's reply to it)",
                       "messages")
    return checked


def _get(body: dict, key: str, kind: type, default, param: str | None = None, low: float | None = None,
         high: float | None = None, open_low: bool = False):
    """body[key] checked: JSON null or absent is `default`; ints are accepted where floats are asked."""
    value = body.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    param = param or key
    if not ok:
        raise APIError(400, f"{param} must be {_KIND_NAMES[kind]}, not {json.dumps(value)}", param)
    if (low is not None and (value <= low if open_low else value < low)) or (high is not None and value > high):
        bounds = f"{'above' if open_low else 'at least'} {low}" if high is None else \
            f"in {'(' if open_low else '['}{low}, {high}]"
        raise APIError(400, f"{param} must be {bounds}, not {value}", param)
    return value


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_fields(body: dict, known: set[str], route: str) -> None:
    """Refuse fields that would change the reply unnoticed; log and ignore the rest of the unknown ones."""
    for name, neutral in _UNSUPPORTED.items():
        if name in body and body[name] not in neutral:
            raise APIError(400, f"{name} is not supported by chowa serve; leave it out", name)
    unknown = sorted(set(body) - known - set(_UNSUPPORTED))
    if unknown:
        log.info("%s: ignoring fields chowa does not use: %s", route, ", ".join(unknown))
