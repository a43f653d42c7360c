"""The models `chowa serve` holds: each causal LM with its chat format and engine, loaded safely, and the turning
of a checked request (`protocol.Generation`) into engine requests.

A served folder must hold safetensors weights (a pickle can run code when it is loaded) and never runs code it
ships unless `--trust-remote-code`; chowa's own byte-group folders load through chowa's copy of their code.

Run as (from Python):
    served = load_served("sft", "runs/demo/sft", ServeConfig(model=["runs/demo/sft"]))
    jobs, prompt_tokens = served.chat_jobs(generation)
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from chowa.bytegroup import MODEL_TYPE
from chowa.bytegroup.hf.codec_bytegroup import CodecError
from chowa.config.serve import ServeConfig
from chowa.engine import Engine, Request
from chowa.errors import ChowaError
from chowa.files import check_folder
from chowa.folders import context_length
from chowa.formats import FORMAT_FILE, bos_ids, clean_reply, detect_format, encode_prompt, get_format
from chowa.generate import ChatModel, ReplyText, prompt_seed, reply_request, reply_room, reply_watch
from chowa.models.load import default_device, load_causal_lm, load_model_tokenizer
from chowa.serve.protocol import APIError, Generation

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


@dataclass
class Job:
    """One choice of a request: the engine's request and the text shown of it so far."""

    request: Request
    text: ReplyText
    index: int


@dataclass
class ServedModel:
    name: str
    chat: ChatModel
    engine: Engine
    created: int
    max_tokens_cap: int
    """The longest reply a request gets, whatever the format's default (`--max-tokens-cap`)."""

    @property
    def context(self) -> int | None:
        return context_length(self.chat.model.config)

    def chat_jobs(self, generation: Generation) -> tuple[list[Job], int]:
        """The jobs of a chat request (one per choice) and its prompt's length."""
        if self.chat.format is None:
            raise APIError(400, f"the model {self.name!r} has no chat format (no chat_format.json in its folder): "
                                "use /v1/completions, or serve it with --format", "messages")
        try:
            ids = encode_prompt(generation.messages, self.chat.format, self.chat.tokenizer)
        except (ChowaError, CodecError) as exc:
            raise APIError(400, f"messages: {exc}", "messages") from None
        eos = self.chat.tokenizer.eos_token or ""
        stops = generation.sampling.stop

        def clean(text: str) -> str:
            return clean_reply(_cut(text, stops), self.chat.format, eos)

        watch = reply_watch(self.chat.format, self.chat.tokenizer, stops)
        return self._jobs(generation, [ids], clean, watch, "messages"), len(ids)

    def completion_jobs(self, generation: Generation) -> tuple[list[Job], int]:
        """The jobs of a completions request (prompt by prompt, `n` choices each) and the prompts' total length:
        the raw text continued, cut at the request's stop strings only."""
        prompts = []
        for index, prompt in enumerate(generation.prompts):
            try:
                prompts.append(bos_ids(self.chat.tokenizer) + self.chat.tokenizer.encode(prompt,
                                                                                       add_special_tokens=False))
            except CodecError as exc:
                raise APIError(400, f"prompt[{index}]: {exc}", "prompt") from None
        stops = generation.sampling.stop
        jobs = self._jobs(generation, prompts, lambda text: _cut(text, stops), tuple(stops), "prompt")
        return jobs, sum(len(ids) for ids in prompts)

    def _jobs(self, generation: Generation, prompts: list[list[int]], clean, watch: tuple[str, ...],
              prompt_param: str) -> list[Job]:
        """One job per prompt and choice. Chat prompts (`prompt_param` "messages") stop at the format's turn tags
        too and are cleaned as the format says; completions continue the raw text."""
        chat = prompt_param == "messages"
        if generation.min_tokens and self.engine.byte_group:
            raise APIError(400, "min_tokens is not available for byte-group models", "min_tokens")
        if generation.logprobs and self.engine.byte_group:
            raise APIError(400, "a byte-group model reports the log-probability of each 4-byte group it chose, "
                                "not the most likely others: ask top_logprobs 0", "top_logprobs")
        options = generation.sampling.resolve(self.chat.format)
        if not chat:
            options["stop_strings"] = list(generation.sampling.stop) or None
        options["max_new_tokens"] = min(options["max_new_tokens"], self.max_tokens_cap)
        seed = generation.sampling.seed if generation.sampling.seed is not None else random.getrandbits(62)
        jobs = []
        for prompt in prompts:
            room = self._room(len(prompt), generation, options["max_new_tokens"], prompt_param)
            for _ in range(generation.n):
                try:  # choice i of a request draws from the stream of (seed, i)
                    request = reply_request(self.chat, prompt, options, room, prompt_seed(seed, len(jobs)))
                except ChowaError as exc:
                    raise APIError(400, str(exc), "stop") from None
                request.logprobs, request.min_new_tokens = generation.logprobs, generation.min_tokens
                text = ReplyText(self.chat.tokenizer, clean, watch, skip_special_tokens=not chat)
                jobs.append(Job(request, text, len(jobs)))
        return jobs

    def _room(self, prompt_tokens: int, generation: Generation, default: int, prompt_param: str) -> int:
        """What a reply may have; a prompt that leaves too little is a 400 saying the numbers, as vLLM's is."""
        context, asked = self.context, generation.max_tokens
        unit = "bytes" if self.engine.byte_group else "tokens"
        if context and (prompt_tokens >= context or (asked and prompt_tokens + asked > context)):
            wanted = (f"{prompt_tokens + asked} {unit} ({prompt_tokens} in the prompt, {asked} for the completion)"
                      if asked else f"{prompt_tokens} {unit} in the prompt")
            raise APIError(400, f"this model's maximum context length is {context} {unit}, but you requested "
                                f"{wanted}; shorten the prompt or ask fewer {generation.max_tokens_param}",
                           generation.max_tokens_param if asked else prompt_param)
        return reply_room(prompt_tokens, asked or default, context)


def _cut(text: str, stops: list[str]) -> str:
    for stop in stops:
        text = text.split(stop, 1)[0]
    return text


def load_served(name: str, folder: str, cfg: ServeConfig) -> ServedModel:
    """A served causal LM: weights checked first (safetensors, no remote code unless allowed)."""
    check_safe_folder(folder, cfg.trust_remote_code, "--model")
    tokenizer = load_model_tokenizer(folder)
    model = load_causal_lm(folder, device=cfg.device or default_device(), dtype=cfg.dtype, use_safetensors=True,
                           trust_remote_code=cfg.trust_remote_code).eval()
    fmt = get_format(cfg.format) if cfg.format else _folder_format(folder)
    engine = Engine(model, tokenizer, max_batch=cfg.max_batch, max_queue=cfg.max_queue)
    engine.check_batching()
    return ServedModel(name, ChatModel(model, tokenizer, fmt), engine, int(time.time()), cfg.max_tokens_cap)


def _folder_format(folder: str):
    """The folder's chat format, or None for a base model that has none (it serves completions only)."""
    if (Path(folder) / FORMAT_FILE).is_file():
        return detect_format(folder)  # a broken chat_format.json is an error, not "no format"
    try:
        return detect_format(folder)
    except ChowaError:
        return None


def check_safe_folder(folder: str, trust_remote_code: bool, flag: str) -> None:
    """Refuse pickled weights, and code shipped in the folder unless trusted."""
    check_folder(folder, flag.lstrip("-").replace("-", "_"))
    path = Path(folder)
    if not any((path / name).is_file() for name in SAFE_WEIGHTS):
        raise ChowaError(f"{flag} {folder}: chowa serve loads only safetensors weights ({' or '.join(SAFE_WEIGHTS)}); "
                         "this folder has none (pickled pytorch_model.bin can run code when loaded). Convert it: "
                         "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR)")
    config_file = path / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    if config.get("auto_map") and config.get("model_type") != MODEL_TYPE and not trust_remote_code:
        raise ChowaError(f"{flag} {folder}: config.json asks for code shipped in the folder (auto_map: "
                         f"{', '.join(config['auto_map'])}), which chowa serve runs only with --trust-remote-code")
