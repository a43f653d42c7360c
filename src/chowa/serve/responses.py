"""OpenAI's response objects for chat and completions, whole or streamed as server-sent events, built from the
engine's jobs as they progress.

A job's text grows through `ReplyText`, so the streamed pieces join into exactly the whole reply, and text that may
start a stop string waits until it is clear. Log-probabilities are the model's own (before penalties and filters,
vLLM's default); a streamed chunk carries those of the tokens that arrived with it.

Run as (from Python):
    body = whole_response(kind, served, jobs, prompt_tokens)
    async for event in stream_events(kind, served, jobs, prompt_tokens, include_usage, wait): ...
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from chowa.serve.models import Job, ServedModel
from chowa.serve.protocol import APIError

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _ids_of(served: ServedModel, job: Job) -> list[list[int]]:
    """The job's generated tokens as the units a client sees: tokens, or 4-byte groups."""
    unit = served.engine.unit
    output = job.request.output
    return [output[i:i + unit] for i in range(0, len(output), unit)]


def _token_text(served: ServedModel, ids: list[int]) -> tuple[str, list[int]]:
    """A token's text and bytes (a byte-fallback piece `<0xE3>` is its one byte, not U+FFFD)."""
    tokenizer = served.chat.tokenizer
    if len(ids) == 1:
        piece = tokenizer.convert_ids_to_tokens(ids[0])
        if isinstance(piece, str) and (match := _BYTE_PIECE.match(piece)):
            return piece, [int(match.group(1), 16)]
    text = tokenizer.decode(ids, skip_special_tokens=False)
    return text, list(text.encode("utf-8"))


def _chat_logprobs(served: ServedModel, job: Job, start: int, end: int) -> dict:
    entries = []
    for ids, (logprob, top) in zip(_ids_of(served, job)[start:end], job.request.step_logprobs[start:end],
                                   strict=True):
        text, raw = _token_text(served, ids)
        alternatives = []
        for token_id, value in top:
            alt_text, alt_raw = _token_text(served, [token_id])
            alternatives.append({"token": alt_text, "logprob": value, "bytes": alt_raw})
        entries.append({"token": text, "logprob": logprob, "bytes": raw, "top_logprobs": alternatives})
    return {"content": entries}


def _completion_logprobs(served: ServedModel, job: Job, start: int, end: int) -> dict:
    """The legacy `logprobs` object of tokens start..end; offsets count characters of the decoded text (a
    byte-fallback token's piece `<0xE3>` is one byte of a character, not six characters)."""
    units = _ids_of(served, job)
    tokens, values, tops, offsets = [], [], [], []
    for index, (ids, (logprob, top)) in enumerate(zip(units[start:end], job.request.step_logprobs[start:end],
                                                      strict=True), start):
        tokens.append(_token_text(served, ids)[0])
        values.append(logprob)
        tops.append({_token_text(served, [token_id])[0]: value for token_id, value in top} if top else None)
        before = [i for unit in units[:index] for i in unit]
        offsets.append(len(served.chat.tokenizer.decode(before, skip_special_tokens=True)))
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def _usage(jobs: list[Job], prompt_tokens: int) -> dict:
    completion = sum(len(job.request.output) for job in jobs)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _finish_reason(job: Job) -> str:
    """OpenAI's name for how a finished choice ended ("stop" covers stop tokens and strings)."""
    return "length" if job.request.finish_reason == "length" else "stop"


def _failure(job: Job) -> APIError:
    return APIError(500, job.request.error, code="generation_failed")


def whole_response(kind: str, served: ServedModel, jobs: list[Job], prompt_tokens: int) -> dict:
    """The `chat.completion` or `text_completion` of finished jobs."""
    choices = []
    for job in jobs:
        if job.request.error:
            raise _failure(job)
        text = job.text.shown + job.text.update(job.request.output, True)
        reason, steps = _finish_reason(job), len(job.request.step_logprobs)
        wants = job.request.logprobs is not None
        if kind == "chat":
            logprobs = _chat_logprobs(served, job, 0, steps) if wants else None
            choices.append({"index": job.index, "message": {"role": "assistant", "content": text},
                            "logprobs": logprobs, "finish_reason": reason})
        else:
            logprobs = _completion_logprobs(served, job, 0, steps) if wants else None
            choices.append({"index": job.index, "text": text, "logprobs": logprobs, "finish_reason": reason})
    return _envelope(kind, served, False) | {"choices": choices, "usage": _usage(jobs, prompt_tokens)}


def _envelope(kind: str, served: ServedModel, chunk: bool) -> dict:
    obj = ("chat.completion.chunk" if chunk else "chat.completion") if kind == "chat" else "text_completion"
    prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
    return {"id": prefix + uuid.uuid4().hex, "object": obj, "created": int(time.time()), "model": served.name}


def _event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def stream_events(kind: str, served: ServedModel, jobs: list[Job], prompt_tokens: int, include_usage: bool,
                        wait: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
    """Server-sent events of the jobs until all finish: text deltas, a finishing chunk per choice, the usage chunk
    when asked, then `data: [DONE]`. `wait()` returns when some job has progressed."""
    head = _envelope(kind, served, True)
    if kind == "chat":  # OpenAI opens each choice with the role
        for job in jobs:
            yield _event(head | {"choices": [{"index": job.index, "delta": {"role": "assistant", "content": ""},
                                              "logprobs": None, "finish_reason": None}]})
    sent = [0] * len(jobs)  # steps whose log-probabilities went out, per choice
    open_jobs = list(jobs)
    while open_jobs:
        await wait()
        for job in list(open_jobs):
            done = job.request.done  # read before the output: a finished request's output is complete
            if done and job.request.error:
                yield _event({"error": _failure(job).body()["error"]})
                open_jobs.remove(job)
                continue
            delta = job.text.update(list(job.request.output), done)
            if delta or done:
                steps = len(job.request.step_logprobs) if done else min(len(job.request.step_logprobs),
                                                                         len(job.request.output) // served.engine.unit)
                logprobs = None
                if job.request.logprobs is not None and steps > sent[job.index]:
                    logprobs = (_chat_logprobs if kind == "chat" else _completion_logprobs)(
                        served, job, sent[job.index], steps)
                    sent[job.index] = steps
                choice = {"delta": {"content": delta} if delta else {}} if kind == "chat" else {"text": delta}
                yield _event(head | {"choices": [{"index": job.index, **choice, "logprobs": logprobs,
                                                  "finish_reason": _finish_reason(job) if done else None}]})
            if done:
                open_jobs.remove(job)
    if include_usage:
        yield _event(head | {"choices": [], "usage": _usage(jobs, prompt_tokens)})
    yield "data: [DONE]\n\n"
