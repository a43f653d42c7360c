"""Generation with a chat model: batched replies for files, one streamed reply for the terminal.

The prompt is rendered by the model's chat format (`chowa.formats`), sampling defaults come from the format's
model card (rinna-ja: repetition_penalty 1.1; rinna bilingual: temperature 1.0, top_p 0.85; weblab: temperature
0.7, top_p 0.95) and any option the user sets wins. Generation stops at EOS or at a stop string (the next
speaker tag), and replies are cleaned as the format says (`<NL>` -> newline, cut at the tag).

Sampled replies draw from one random stream per prompt, seeded by the sampling seed and the prompt's position, so
a reply does not depend on which prompts share its batch (`--batch-size` changes speed, not results). A reply gets
`max_new_tokens`, or what its prompt leaves of the model's context if that is less; a prompt that fills the context
is refused by `generate` (the record is named), while `chat` drops the oldest turns instead, as chat clients do.

Run as:
    chowa generate --model runs/demo/sft --prompt "3たす4は?"
    chowa generate --model runs/demo/sft --input prompts.jsonl --out replies.jsonl --batch-size 16
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from chowa.bytegroup import is_byte_model
from chowa.bytegroup.hf.codec_bytegroup import CodecError
from chowa.config.generate import GenerateConfig, Sampling
from chowa.data.prompts import read_prompts
from chowa.data.records import ReadOptions
from chowa.errors import ChowaError
from chowa.files import check_folder, check_writable, json_line, write_jsonl
from chowa.folders import context_length
from chowa.formats import ChatFormat, clean_reply, detect_format, encode_prompt, get_format
from chowa.models.load import default_device, load_causal_lm, load_model_tokenizer
from chowa.padding import pad_rows

Message = dict[str, str]


@dataclass
class ChatModel:
    model: torch.nn.Module
    tokenizer: object
    format: ChatFormat


def load_chat_model(path: str | os.PathLike, format_name: str | None = None, device: str | None = None) -> ChatModel:
    """Model, tokenizer (SentencePiece-exact for rinna folders) and chat format of a model folder."""
    check_folder(path, "model")  # before the tokenizer, so a wrong --model is named as such
    tokenizer = load_model_tokenizer(path)
    fmt = get_format(format_name) if format_name else detect_format(path)
    model = load_causal_lm(path, device=device or default_device()).eval()
    return ChatModel(model, tokenizer, fmt)


def main(cfg: GenerateConfig) -> None:
    """`chowa generate`: the reply to --prompt on stdout, or every --input record with its `reply` (JSONL)."""
    if cfg.out:
        check_writable(cfg.out, "--out")
    chat = load_chat_model(cfg.model, cfg.format or None)
    if cfg.prompt is not None:
        print(generate_replies(chat, [[{"role": "user", "content": cfg.prompt}]], cfg.sampling())[0])
        return
    items = read_prompts([str(cfg.input)], ReadOptions.of(cfg))
    with tqdm(total=len(items), desc="generate", unit="prompt", file=sys.stderr) as bar:
        replies = generate_replies(chat, [item.messages for item in items], cfg.sampling(), cfg.batch_size,
                                   progress=bar.update, names=[item.source for item in items])
    records = [item.record | {"reply": reply} for item, reply in zip(items, replies, strict=True)]
    if cfg.out:
        print(f"wrote {write_jsonl(cfg.out, records)}", file=sys.stderr)
    else:
        for record in records:
            print(json_line(record), end="")


def generate_replies(chat: ChatModel, conversations: list[list[Message]], sampling: Sampling,
                     batch_size: int = 8, progress: Callable[[int], None] | None = None,
                     names: list[str] | None = None) -> list[str]:
    """Cleaned replies, one per conversation (each ends with a user message), generated in left-padded batches.

    Every prompt is checked before anything is generated: one that fills the model's context is refused, named by
    `names` (e.g. "file:line") or its position. A reply gets `max_new_tokens`, or what is left of the context when
    that is less, whatever prompts share its batch."""
    options = sampling.resolve(chat.format)
    context = context_length(chat.model.config)
    prompts = []
    for index, conversation in enumerate(conversations):
        try:
            prompts.append(encode_prompt(conversation, chat.format, chat.tokenizer))
        except CodecError as exc:  # text the byte-group tokenizer cannot encode
            raise ChowaError(f"{names[index] if names else f'prompt {index + 1}'}: {exc}") from None
    for index, ids in enumerate(prompts):
        if context and len(ids) >= context:
            name = names[index] if names else f"prompt {index + 1}"
            raise ChowaError(f"{name}: {len(ids)} tokens fill the model's context of {context} positions and leave "
                             "no room for a reply; shorten it")
    rooms = [reply_room(len(ids), options["max_new_tokens"], context) for ids in prompts]
    if _is_byte_group(chat, sampling):
        from chowa.bytegroup.generation import group_reply_ids

        seeds = [prompt_seed(sampling.seed, index) for index in range(len(prompts))]
        return [_decoded_reply(chat, ids) for ids in
                group_reply_ids(chat.model, chat.tokenizer, prompts, options | {"valid_groups": sampling.valid_groups},
                                rooms, seeds, batch_size, progress)]
    replies: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch, room = prompts[start:start + batch_size], rooms[start:start + batch_size]
        input_ids, attention_mask = pad_rows(batch, _pad_id(chat.tokenizer), "left", chat.model.device)
        seeds = [prompt_seed(sampling.seed, start + row) for row in range(len(batch))]
        limits = {"max_new_tokens": max(room)}
        if min(room) < max(room):
            limits["stopping_criteria"] = StoppingCriteriaList([_RowBudget(room, input_ids.shape[1])])
        with torch.no_grad():
            output = chat.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         tokenizer=chat.tokenizer, pad_token_id=_pad_id(chat.tokenizer),
                                         **per_prompt_sampling(chat.model, options, seeds) | limits)
        for row, limit in zip(output[:, input_ids.shape[1]:], room, strict=True):  # (padding after a row's stop)
            replies.append(_decoded_reply(chat, row[:limit].tolist()))
        if progress is not None:
            progress(len(batch))
    return replies


def stream_reply(chat: ChatModel, messages: list[Message], sampling: Sampling, on_text: Callable[[str], None]) -> str:
    """Generate the reply to `messages`, passing each new stretch of cleaned text to `on_text` as it is decoded
    (text that may start a stop tag is held back); returns the whole cleaned reply. The oldest turns that do not fit
    the model's context are left out of the prompt (and `messages` is shortened to match)."""
    options = sampling.resolve(chat.format)
    ids, room = fit_conversation(chat, messages, options["max_new_tokens"])
    streamer = _CleanStreamer(chat, on_text)
    if _is_byte_group(chat, sampling):  # 4 bytes a step through group_generate, shown as they come
        from chowa.bytegroup.generation import group_reply_ids

        options |= {"valid_groups": sampling.valid_groups}
        group_reply_ids(chat.model, chat.tokenizer, [ids], options, [room], [prompt_seed(sampling.seed, 0)],
                        streamer=streamer)
        return streamer.shown
    ids = torch.tensor([ids], device=chat.model.device)
    with torch.no_grad():
        chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), tokenizer=chat.tokenizer,
                            pad_token_id=_pad_id(chat.tokenizer), streamer=streamer,
                            **per_prompt_sampling(chat.model, options, [prompt_seed(sampling.seed, 0)])
                            | {"max_new_tokens": room})
    return streamer.shown


def fit_conversation(chat: ChatModel, messages: list[Message], max_new_tokens: int) -> tuple[list[int], int]:
    """The prompt ids of `messages` and the room left for the reply, after dropping the oldest user/assistant pairs
    (the system message stays) until the prompt leaves `max_new_tokens`, or half the context if that is less, for
    the reply; `messages` is shortened in place. ChowaError, with `messages` untouched, when the last user message
    alone fills the context."""
    context = context_length(chat.model.config)
    first = 1 if messages and messages[0]["role"] == "system" else 0
    kept = list(messages)
    ids = encode_prompt(kept, chat.format, chat.tokenizer)
    while context and len(ids) + min(max_new_tokens, context // 2) > context and len(kept) - first >= 3:
        del kept[first:first + 2]
        ids = encode_prompt(kept, chat.format, chat.tokenizer)
    if context and len(ids) >= context:
        raise ChowaError(f"the message is {len(ids)} tokens and fills the model's context of {context} positions")
    if len(kept) < len(messages):
        dropped = (len(messages) - len(kept)) // 2
        print(f"(the oldest {'exchange' if dropped == 1 else f'{dropped} exchanges'} no longer fit the model's "
              f"context of {context} tokens and {'was' if dropped == 1 else 'were'} dropped)", file=sys.stderr)
        messages[:] = kept
    return ids, reply_room(len(ids), max_new_tokens, context)


def reply_room(prompt_tokens: int, max_new_tokens: int, context: int | None) -> int:
    """How many tokens a reply may have: `max_new_tokens`, or what the prompt leaves of the context if less."""
    return min(max_new_tokens, context - prompt_tokens) if context else max_new_tokens


def prompt_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th prompt's random stream (a 63-bit mix of the two, so neighbours differ)."""
    return (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 1) % (1 << 63)


def per_prompt_sampling(model: torch.nn.Module, options: dict, seeds: list[int]) -> dict:
    """`generate` options that sample each row from its own seeded stream: the sampling filters (the card's or the
    model's settings, as `generate` would pick them, in its order) and the draw itself run as logits processors,
    and the built-in ones are switched off. Greedy options pass through."""
    if not options.get("do_sample"):
        return options
    options = dict(options)

    def setting(key: str, fallback: float | None) -> float | None:  # what is set, else the model's, else HF's
        value = options.pop(key, None)
        value = getattr(model.generation_config, key, None) if value is None else value
        return fallback if value is None else value

    if setting("top_h", None) is not None:
        raise ChowaError("the model's generation config sets top_h, which chowa's per-prompt sampling does not apply; "
                         "remove it from generation_config.json")
    temperature, top_k, top_p = setting("temperature", 1.0), setting("top_k", 50), setting("top_p", 1.0)
    min_p, typical_p = setting("min_p", None), setting("typical_p", 1.0)
    epsilon, eta = setting("epsilon_cutoff", 0.0), setting("eta_cutoff", 0.0)
    processors = [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
    processors += [TopKLogitsWarper(top_k)] if top_k else []
    processors += [TopPLogitsWarper(top_p)] if top_p < 1.0 else []
    processors += [MinPLogitsWarper(min_p)] if min_p is not None else []
    processors += [TypicalLogitsWarper(typical_p)] if typical_p < 1.0 else []
    processors += [EpsilonLogitsWarper(epsilon)] if 0.0 < epsilon < 1.0 else []
    processors += [EtaLogitsWarper(eta, device=model.device)] if 0.0 < eta < 1.0 else []
    return options | {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": None, "typical_p": 1.0,
                      "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
                      "logits_processor": LogitsProcessorList([*processors, _RowSampler(seeds)])}


class _RowSampler(LogitsProcessor):
    """Draws each row's next token from its own random stream and leaves only that token possible, so the sampling
    step of `generate` (a multinomial over one certain token) takes it whatever its own random state.

    Row i's k-th draw is the k-th uniform number of a generator seeded with `seeds[i]` (drawn 64 at a time), turned
    into a token by inverse-CDF search over the row's probabilities: one vectorised search a step."""

    CHUNK = 64

    def __init__(self, seeds: list[int]):
        self.seeds, self.generators, self.uniforms, self.step = seeds, None, None, 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.step % self.CHUNK == 0:
            if self.generators is None:
                self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
            self.uniforms = torch.stack([torch.rand(self.CHUNK, generator=g, device=scores.device)
                                         for g in self.generators])
        uniform = self.uniforms[:, self.step % self.CHUNK]
        self.step += 1
        cdf = torch.softmax(scores.float(), dim=-1).cumsum(dim=-1)
        chosen = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).clamp_(max=scores.shape[1] - 1)
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


class _RowBudget(StoppingCriteria):
    """Stops each row of a left-padded batch once it has its own number of new tokens (`generate` pads it after)."""

    def __init__(self, rooms: list[int], prompt_length: int):
        self.rooms, self.prompt_length = torch.tensor(rooms), prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return (input_ids.shape[1] - self.prompt_length >= self.rooms).to(input_ids.device)


class _CleanStreamer(BaseStreamer):
    """Calls `on_text` with each new stretch of the cleaned reply; holds back text that may start a stop tag."""

    def __init__(self, chat: ChatModel, on_text: Callable[[str], None]):
        self.chat, self.on_text = chat, on_text
        self.ids: list[int] = []
        self.shown = ""
        self.prompt_seen = False
        self.hold = max((len(s) for s in chat.format.stop), default=0) + len(chat.tokenizer.eos_token or "")

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt itself
            self.prompt_seen = True
            return
        self.ids += value.flatten().tolist()
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        text = self.chat.tokenizer.decode(self.ids, skip_special_tokens=False)
        if not final and text.endswith("\ufffd"):  # half of a multi-byte character (byte-fallback pieces)
            return
        cleaned = clean_reply(text, self.chat.format, self.chat.tokenizer.eos_token or "")
        visible = cleaned if final else cleaned[:max(0, len(cleaned) - self.hold)]
        if visible.startswith(self.shown) and len(visible) > len(self.shown):
            self.on_text(visible[len(self.shown):])
            self.shown = visible


def _is_byte_group(chat: ChatModel, sampling: Sampling) -> bool:
    byte_group = is_byte_model(chat.model)
    if sampling.valid_groups and not byte_group:
        raise ChowaError("--valid-groups is for byte-group models (codec f4-utf8); this model reads tokens")
    return byte_group


def _decoded_reply(chat: ChatModel, ids: list[int]) -> str:
    text = chat.tokenizer.decode(ids, skip_special_tokens=False)
    return clean_reply(text, chat.format, chat.tokenizer.eos_token or "")


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
