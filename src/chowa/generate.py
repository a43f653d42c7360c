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

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers.generation.streamers import BaseStreamer

from chowa.config.generate import GenerateConfig, Sampling
from chowa.data.prompts import read_prompts
from chowa.files import check_folder, json_line, write_jsonl
from chowa.formats import ChatFormat, clean_reply, detect_format, encode_prompt, get_format
from chowa.models.load import default_device, load_causal_lm
from chowa.padding import pad_rows
from chowa.tokenizer import load_tokenizer

Message = dict[str, str]


@dataclass
class ChatModel:
    model: torch.nn.Module
    tokenizer: object
    format: ChatFormat


def load_chat_model(path: str | os.PathLike, format_name: str | None = None, device: str | None = None) -> ChatModel:
    """Model, tokenizer (SentencePiece-exact for rinna folders) and chat format of a model folder."""
    check_folder(path, "model")  # before the tokenizer, so a wrong --model is named as such
    tokenizer = load_tokenizer(path)
    fmt = get_format(format_name) if format_name else detect_format(path)
    model = load_causal_lm(path, device=device or default_device()).eval()
    return ChatModel(model, tokenizer, fmt)


def main(cfg: GenerateConfig) -> None:
    """`chowa generate`: the reply to --prompt on stdout, or every --input record with its `reply` (JSONL)."""
    chat = load_chat_model(cfg.model, cfg.format or None)
    if cfg.prompt is not None:
        print(generate_replies(chat, [[{"role": "user", "content": cfg.prompt}]], cfg.sampling())[0])
        return
    items = read_prompt_file(cfg.input, cfg.columns)
    with tqdm(total=len(items), desc="generate", unit="prompt", file=sys.stderr) as bar:
        replies = generate_replies(chat, [messages for _, messages in items], cfg.sampling(), cfg.batch_size,
                                   progress=bar.update)
    records = [record | {"reply": reply} for (record, _), reply in zip(items, replies, strict=True)]
    if cfg.out:
        print(f"wrote {write_jsonl(cfg.out, records)}", file=sys.stderr)
    else:
        for record in records:
            print(json_line(record), end="")


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


def read_prompt_file(path: str | os.PathLike,
                     columns: dict[str, str] | None = None) -> list[tuple[dict, list[Message]]]:
    """(record, conversation to answer) for each record of a prompt source (see `chowa.data.prompts`)."""
    return [(prompt.record, prompt.messages) for prompt in read_prompts([str(path)], columns)]
