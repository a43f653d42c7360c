"""Generation with a chat model: batched replies for files, one streamed reply for the terminal.

The prompt is rendered by the model's chat format (`chowa.formats`), sampling defaults come from the format's
model card (rinna-ja: repetition_penalty 1.1; rinna bilingual: temperature 1.0, top_p 0.85; weblab: temperature
0.7, top_p 0.95) and any option the user sets wins. Generation stops at EOS or at a stop string (the next
speaker tag), and replies are cleaned as the format says (`<NL>` -> newline, cut at the tag).

Run as:
    chowa generate --model runs/demo/sft --prompt "3たす4は?"
    chowa generate --model runs/demo/sft --input prompts.jsonl --out replies.jsonl --batch-size 16
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.generation.streamers import BaseStreamer

from chowa.data.prompts import read_prompts
from chowa.formats import ChatFormat, clean_reply, detect_format, encode_prompt, get_format
from chowa.models.load import load_causal_lm
from chowa.padding import pad_rows
from chowa.tokenizer import load_tokenizer

Message = dict[str, str]


@dataclass
class Sampling:
    """Sampling options; None means "the chat format's default" (see `resolve`)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None
    do_sample: bool | None = None
    stop: list[str] = field(default_factory=list)
    seed: int = 0

    def resolve(self, fmt: ChatFormat) -> dict:
        """`model.generate` keyword arguments: the format's card defaults overridden by what is set here."""
        options = {"do_sample": True, "max_new_tokens": 128} | dict(fmt.generation)
        for key in ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "do_sample"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        if not options["do_sample"]:
            for key in ("temperature", "top_p", "top_k"):
                options.pop(key, None)
        options["stop_strings"] = list(dict.fromkeys([*fmt.stop, *self.stop])) or None
        return options


@dataclass
class ChatModel:
    model: torch.nn.Module
    tokenizer: object
    format: ChatFormat


def load_chat_model(path: str | os.PathLike, format_name: str | None = None, device: str | None = None) -> ChatModel:
    """Model, tokenizer (SentencePiece-exact for rinna folders) and chat format of a model folder."""
    tokenizer = load_tokenizer(path)
    fmt = get_format(format_name) if format_name else detect_format(path)
    model = load_causal_lm(path).eval()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return ChatModel(model.to(device), tokenizer, fmt)


def generate_replies(chat: ChatModel, conversations: list[list[Message]], sampling: Sampling,
                     batch_size: int = 8, progress: Callable[[int], None] | None = None) -> list[str]:
    """Cleaned replies, one per conversation (each ends with a user message), generated in left-padded batches."""
    options = sampling.resolve(chat.format)
    replies: list[str] = []
    torch.manual_seed(sampling.seed)
    for start in range(0, len(conversations), batch_size):
        prompts = [encode_prompt(c, chat.format, chat.tokenizer) for c in conversations[start:start + batch_size]]
        input_ids, attention_mask = pad_rows(prompts, _pad_id(chat.tokenizer), "left", chat.model.device)
        with torch.no_grad():
            output = chat.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         tokenizer=chat.tokenizer, pad_token_id=_pad_id(chat.tokenizer), **options)
        for row in output[:, input_ids.shape[1]:]:
            text = chat.tokenizer.decode(row.tolist(), skip_special_tokens=False)
            replies.append(clean_reply(text, chat.format, chat.tokenizer.eos_token or ""))
        if progress is not None:
            progress(len(prompts))
    return replies


def stream_reply(chat: ChatModel, messages: list[Message], sampling: Sampling, on_text: Callable[[str], None]) -> str:
    """Generate the reply to `messages`, passing each new stretch of cleaned text to `on_text` as it is decoded
    (text that may start a stop tag is held back); returns the whole cleaned reply."""
    streamer = _CleanStreamer(chat, on_text)
    ids = torch.tensor([encode_prompt(messages, chat.format, chat.tokenizer)], device=chat.model.device)
    torch.manual_seed(sampling.seed)
    with torch.no_grad():
        chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), tokenizer=chat.tokenizer,
                            pad_token_id=_pad_id(chat.tokenizer), streamer=streamer, **sampling.resolve(chat.format))
    return streamer.shown


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


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def read_prompt_file(path: str | os.PathLike) -> list[tuple[dict, list[Message]]]:
    """(record, conversation to answer) for each record of a prompt file (see `chowa.data.prompts`)."""
    return [(prompt.record, prompt.messages) for prompt in read_prompts([str(path)])]


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> Path:
    from chowa.config import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return Path(path)
