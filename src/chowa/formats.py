"""The one owner of the chat format: training examples with their loss mask, generation prompts, the saved HF
`chat_template`, reply clean-up and generation defaults all come from the `ChatFormat` fields below.

A conversation is a list of messages `{"role": "system" | "user" | "assistant", "content": str}`: an optional
system message first, then user and assistant alternating, starting with the user. A user message may carry an
`input` (Alpaca's context); `alpaca-ja` writes it as its `### 入力:` block, the other formats append it to the
message after a blank line.

Formats (strings as on the model cards):

    rinna-nl     (japanese-gpt-neox-3.6b-instruction-*)
                 ユーザー: Q<NL>システム: A</s><NL>ユーザー: Q2<NL>システム:␣
    rinna        (bilingual-gpt-neox-4b-instruction-*) the same with "\\n" for <NL>
    alpaca-ja    (weblab-10b-instruction-sft)
                 PREAMBLE\\n\\n### 指示:\\nQ\\n\\n### 応答:\\nA</s>\\n\\n### 指示:\\nQ2\\n\\n### 応答:
    vicuna-v1.1  (bloomz-rlhf; FastChat's vicuna_v1.1 with bloomz-rlhf's "\\n" before ASSISTANT:)
                 PREAMBLE USER: Q\\nASSISTANT: A</s>USER: Q2\\nASSISTANT:

Decisions:
- A prompt ends with the assistant cue. The text the model must produce after it (`reply_prefix` + reply + EOS)
  is the trained part: for alpaca-ja the reply follows `### 応答:` after a "\\n" (the Alpaca convention; the card's
  prompt stops at the colon), for vicuna after a " " (FastChat's `ASSISTANT: ` + reply). Keeping the separator
  on the trained side leaves the prompt's ids identical between training and generation.
- Multi-turn: every reply is followed by EOS in a training example. In prompts, vicuna-v1.1 and alpaca-ja keep
  that EOS after earlier replies (FastChat's sep2, so a prompt is a prefix of the training text); the rinna
  formats drop it, as the 3.6b card's multi-turn prompt shows. alpaca-ja's later turns repeat
  `### 指示:` after a blank line; vicuna's follow the EOS directly with `USER: ` (FastChat v1.1).
- A system message replaces the preamble (vicuna-v1.1, alpaca-ja: both preamble variants); the rinna formats
  have no place for one and reject it (the chat_template raises too). alpaca-ja uses its with-input preamble
  when any user message has an `input`.
- Tokenization: each trained segment and each stretch of prompt text between replies is tokenized on its own
  (no BOS, `add_special_tokens=False` as on the cards) and EOS is appended as an id. The prompt of a single-turn
  example is therefore exactly `tokenizer(render_prompt(...))`; in multi-turn history a tokenizer piece spanning
  a cue and a reply (e.g. "▁Sure" after "システム: ") is split, which `encode_prompt` reproduces at generation.
- A model folder names its format in `chat_format.json` (`{"format": "rinna-nl"}`, written by `save_format`).

Run as:
    chowa template render --format rinna-nl --input conversation.json
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from chowa.bytegroup import is_byte_tokenizer
from chowa.errors import ChowaError

Message = dict[str, str]
NL = "<NL>"  # the newline piece of rinna's 3.6b tokenizer (chowa.tokenizer.train's `newline: nl-token`)
FORMAT_FILE = "chat_format.json"
DEFAULT_FORMAT = "rinna-nl"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatFormat:
    """How one model family writes a conversation; every renderer in this module reads only these fields."""

    name: str
    user_prefix: str
    cue: str
    """Opens an assistant turn; a generation prompt ends with it."""
    reply_prefix: str
    """Text the model writes before the reply proper; trained, removed by `clean_reply`."""
    turn_sep: str
    """Between a reply (and its EOS) and the next user turn."""
    newline: str
    """How a newline inside a message is written."""
    input_prefix: str
    """Joins a user message's `input` to its content."""
    preamble: str | None
    """Text before the first turn, replaced by a system message; None: system messages are an error."""
    preamble_with_input: str | None
    preamble_sep: str
    eos_in_history: bool
    """Whether earlier replies keep their EOS in a generation prompt."""
    generation: dict = field(default_factory=dict)
    """`model.generate` defaults from the model card."""
    stop: tuple[str, ...] = ()
    """Text that starts another turn: generation stops there and `clean_reply` cuts there."""


_ALPACA = "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。"
_ALPACA_INPUT = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"
_VICUNA = ("A chat between a curious human and an artificial intelligence assistant. "
           "The assistant gives helpful, detailed, and polite answers to the human's questions.")


def _rinna(name: str, newline: str, generation: dict) -> ChatFormat:
    return ChatFormat(name=name, user_prefix="ユーザー: ", cue=f"{newline}システム: ", reply_prefix="",
                      turn_sep=newline, newline=newline, input_prefix="\n\n", preamble=None,
                      preamble_with_input=None, preamble_sep="", eos_in_history=False, generation=generation,
                      stop=("ユーザー:", "システム:"))


FORMATS: dict[str, ChatFormat] = {
    # japanese-gpt-neox-3.6b-instruction-ppo card: do_sample, max_new_tokens=128, temperature=0.7, rep. penalty 1.1
    "rinna-nl": _rinna("rinna-nl", NL, {"do_sample": True, "max_new_tokens": 128, "temperature": 0.7,
                                        "repetition_penalty": 1.1}),
    # bilingual-gpt-neox-4b-instruction-ppo card: do_sample, max_new_tokens=512, temperature=1.0, top_p=0.85
    "rinna": _rinna("rinna", "\n", {"do_sample": True, "max_new_tokens": 512, "temperature": 1.0, "top_p": 0.85}),
    # weblab-10b-instruction-sft card: do_sample, max_new_tokens=100, temperature=0.7, top_p=0.95
    "alpaca-ja": ChatFormat(
        name="alpaca-ja", user_prefix="### 指示:\n", cue="\n\n### 応答:", reply_prefix="\n", turn_sep="\n\n",
        newline="\n", input_prefix="\n\n### 入力:\n", preamble=_ALPACA, preamble_with_input=_ALPACA_INPUT,
        preamble_sep="\n\n", eos_in_history=True,
        generation={"do_sample": True, "max_new_tokens": 100, "temperature": 0.7, "top_p": 0.95},
        stop=("### 指示", "### 入力", "### 応答")),
    # bloomz-rlhf's card gives no sampling settings; FastChat's defaults for vicuna (temperature 0.7, top_p 1.0)
    "vicuna-v1.1": ChatFormat(
        name="vicuna-v1.1", user_prefix="USER: ", cue="\nASSISTANT:", reply_prefix=" ", turn_sep="", newline="\n",
        input_prefix="\n\n", preamble=_VICUNA, preamble_with_input=_VICUNA, preamble_sep=" ", eos_in_history=True,
        generation={"do_sample": True, "max_new_tokens": 512, "temperature": 0.7, "top_p": 1.0},
        stop=("USER:", "ASSISTANT:")),
}


def get_format(name: str | ChatFormat) -> ChatFormat:
    """The format of that name; an unknown name is an error listing the known ones."""
    if isinstance(name, ChatFormat):
        return name
    if name not in FORMATS:
        raise ChowaError(f"--format {name!r} is not one of: {', '.join(FORMATS)}")
    return FORMATS[name]


@dataclass(frozen=True)
class Segment:
    """A stretch of rendered text: prompt text, or a reply (`trained`), optionally followed by EOS."""

    text: str
    trained: bool
    eos: bool = False


def conversation_problem(messages: list, ends_with: str | None = None) -> tuple[int, str] | None:
    """`(message index, reason)` for the first structural problem, or None for a well-formed conversation."""
    if not isinstance(messages, list) or not messages:
        return 0, "expected a non-empty list of messages"
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return index, "expected an object with `role` and `content`"
        if message.get("role") not in ROLES:
            return index, f"role {message.get('role')!r} is not one of: {', '.join(ROLES)}"
        if not isinstance(message.get("content"), str):
            return index, "content must be a string"
        if not isinstance(message.get("input", ""), str):
            return index, "input must be a string"
    start = 1 if messages[0]["role"] == "system" else 0
    for index, message in enumerate(messages[start:], start):
        expected = ("user", "assistant")[(index - start) % 2]
        if message["role"] != expected:
            return index, f"expected {_a(expected)} message here, got {message['role']}"
    if ends_with and messages[-1]["role"] != ends_with:
        return len(messages) - 1, f"the conversation must end with {_a(ends_with)} message"
    return None


def _a(role: str) -> str:
    return f"an {role}" if role == "assistant" else f"a {role}"


def render_segments(messages: list[Message], fmt: str | ChatFormat, prompt: bool = False) -> list[Segment]:
    """The conversation as segments; `prompt=True` renders a generation prompt (ends with the assistant cue)."""
    fmt = get_format(fmt)
    problem = conversation_problem(messages, ends_with="user" if prompt else "assistant")
    if problem:
        raise ChowaError(f"conversation: message {problem[0]}: {problem[1]}")
    segments = [Segment(_preamble(messages, fmt), trained=False)]
    turns = [m for m in messages if m["role"] != "system"]
    for index, message in enumerate(turns):
        if message["role"] == "user":
            sep = fmt.turn_sep if index else ""
            segments.append(Segment(sep + fmt.user_prefix + _user_text(message, fmt), trained=False))
        else:
            segments.append(Segment(fmt.cue, trained=False))
            eos = not prompt or fmt.eos_in_history
            segments.append(Segment(fmt.reply_prefix + _text(message["content"], fmt), trained=True, eos=eos))
    if prompt:
        segments.append(Segment(fmt.cue, trained=False))
    return _merge_prompt_text(segments)


def _preamble(messages: list[Message], fmt: ChatFormat) -> str:
    if messages[0]["role"] == "system":
        if fmt.preamble is None:
            raise ChowaError(f"conversation: format {fmt.name} has no place for a system message; drop it or use "
                             f"alpaca-ja or vicuna-v1.1")
        return _text(messages[0]["content"], fmt) + fmt.preamble_sep
    if fmt.preamble is None:
        return ""
    has_input = any(m.get("input") for m in messages)
    return (fmt.preamble_with_input if has_input else fmt.preamble) + fmt.preamble_sep


def _user_text(message: Message, fmt: ChatFormat) -> str:
    extra = fmt.input_prefix + message["input"] if message.get("input") else ""
    return _text(message["content"] + extra, fmt)


def _text(text: str, fmt: ChatFormat) -> str:
    return text.replace("\n", fmt.newline)


def _merge_prompt_text(segments: list[Segment]) -> list[Segment]:
    """Join neighbouring prompt segments so they are tokenized as one string, as a generation prompt is."""
    merged: list[Segment] = []
    for segment in segments:
        if merged and not segment.trained and not merged[-1].trained:
            merged[-1] = Segment(merged[-1].text + segment.text, trained=False)
        elif segment.text or segment.eos:
            merged.append(segment)
    return merged


def render_text(messages: list[Message], fmt: str | ChatFormat, eos_token: str = "</s>") -> str:
    """The full training text of a conversation ending with an assistant reply (EOS written as `eos_token`)."""
    return "".join(s.text + (eos_token if s.eos else "") for s in render_segments(messages, fmt))


def render_prompt(messages: list[Message], fmt: str | ChatFormat, eos_token: str = "</s>") -> str:
    """The generation prompt for a conversation ending with a user message; it ends with the assistant cue."""
    return "".join(s.text + (eos_token if s.eos else "") for s in render_segments(messages, fmt, prompt=True))


def render_training(messages: list[Message], fmt: str | ChatFormat, tokenizer) -> tuple[list[int], list[int]]:
    """`(input_ids, loss_mask)`: the mask is 1 on every reply's tokens and the EOS after it, 0 elsewhere."""
    return _encode(render_segments(messages, fmt), tokenizer)


def encode_prompt(messages: list[Message], fmt: str | ChatFormat, tokenizer) -> list[int]:
    """Prompt ids cut at the same boundaries as `render_training`, so history is tokenized as it was trained."""
    return _encode(render_segments(messages, fmt, prompt=True), tokenizer)[0]


def eos_ids(tokenizer) -> list[int]:
    """The ids of one EOS: the EOS token, or the byte-group tokenizer's EOS group (4 bytes)."""
    if is_byte_tokenizer(tokenizer):
        return list(tokenizer.eos_token_ids)
    if tokenizer.eos_token_id is None:
        raise ChowaError("tokenizer: it has no EOS token, which every reply must end with")
    return [tokenizer.eos_token_id]


def bos_ids(tokenizer) -> list[int]:
    """What a text starts with: the byte-group model reads `BOS text` (its card's prompt), so its BOS group;
    SentencePiece models here start without BOS."""
    return list(tokenizer.bos_group) if is_byte_tokenizer(tokenizer) else []


def _encode(segments: list[Segment], tokenizer) -> tuple[list[int], list[int]]:
    eos = eos_ids(tokenizer)
    ids: list[int] = bos_ids(tokenizer)
    mask: list[int] = [0] * len(ids)
    for segment in segments:
        piece = tokenizer.encode(segment.text, add_special_tokens=False) if segment.text else []
        if segment.eos:
            piece += eos
        ids += piece
        mask += [int(segment.trained)] * len(piece)
    return ids, mask


def clean_reply(text: str, fmt: str | ChatFormat, eos_token: str = "</s>") -> str:
    """A generated reply as a user should see it: cut at EOS or another turn's tag, `<NL>` as newline, stripped."""
    fmt = get_format(fmt)
    for stop in (eos_token, *fmt.stop):
        if stop:
            text = text.split(stop, 1)[0]
    return text.replace(NL, "\n").strip() if fmt.newline == NL else text.strip()


def chat_template(fmt: str | ChatFormat, bos: bool = False) -> str:
    """A Jinja `chat_template` that renders exactly as `render_prompt` / `render_text` (EOS from `eos_token`);
    `bos`: starting with `bos_token`, as the byte-group model's conversations do (`_encode`)."""
    fmt = get_format(fmt)

    def q(text: str | None) -> str:  # a Jinja string literal (Jinja reads Python's escapes)
        return json.dumps(text or "", ensure_ascii=False)

    nl = f"|replace('\\n', {q(fmt.newline)})" if fmt.newline != "\n" else ""
    if fmt.preamble is None:
        system = "{{- raise_exception('format " + fmt.name + " has no place for a system message') -}}"
        default = ""
    else:
        system = "{{- (messages[0]['content']" + nl + ") + " + q(fmt.preamble_sep) + " -}}"
        default = ("{{- (" + q(fmt.preamble_with_input) + " if ns.has_input else " + q(fmt.preamble) + ") + "
                   + q(fmt.preamble_sep) + " -}}")
    eos_if = "true" if fmt.eos_in_history else "not add_generation_prompt"
    return "".join([
        "{{- bos_token -}}" if bos else "",
        "{%- set ns = namespace(has_input=false) -%}",
        "{%- for m in messages if m.get('input') -%}{%- set ns.has_input = true -%}{%- endfor -%}",
        "{%- if messages and messages[0]['role'] == 'system' -%}", system, "{%- else -%}", default, "{%- endif -%}",
        "{%- for m in messages if m['role'] != 'system' -%}",
        "{%- if m['role'] == 'user' -%}",
        "{{- (" + q(fmt.turn_sep) + " if not loop.first else '') + " + q(fmt.user_prefix)
        + " + ((m['content'] + (" + q(fmt.input_prefix) + " + m['input'] if m.get('input') else ''))" + nl + ") -}}",
        "{%- else -%}",
        "{{- " + q(fmt.cue + fmt.reply_prefix) + " + (m['content']" + nl + ") -}}",
        "{%- if " + eos_if + " -%}{{- eos_token -}}{%- endif -%}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}{{- " + q(fmt.cue) + " -}}{%- endif -%}",
    ])


def render_conversation_file(path: str | os.PathLike, fmt: str | ChatFormat, eos_token: str = "</s>") -> str:
    """`chowa template render`: a JSON file holding a message list (or `{"messages": [...]}`), rendered as a
    generation prompt if it ends with a user message, else as training text."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChowaError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChowaError(f"{path}: not valid UTF-8 JSON ({exc})") from None
    messages = data.get("messages") if isinstance(data, dict) else data
    problem = conversation_problem(messages)
    if problem:
        raise ChowaError(f"{path}: messages[{problem[0]}]: {problem[1]}")
    try:
        if messages[-1]["role"] == "user":
            return render_prompt(messages, fmt, eos_token)
        return render_text(messages, fmt, eos_token)
    except ChowaError as exc:
        raise ChowaError(f"{path}: {exc}") from None


def save_format(folder: str | os.PathLike, fmt: str | ChatFormat) -> Path:
    """Record the format next to a checkpoint (`chat_format.json`), where `detect_format` looks first."""
    path = Path(folder) / FORMAT_FILE
    path.write_text(json.dumps({"format": get_format(fmt).name}) + "\n", encoding="utf-8")
    return path


def resolve_format(name: str, model_dir: str | os.PathLike) -> ChatFormat:
    """A stage's chat format: the one its config names, else the model folder's own (`detect_format`)."""
    return get_format(name) if name else detect_format(model_dir)


def detect_format(model_dir: str | os.PathLike) -> ChatFormat:
    """The chat format of a model folder: its `chat_format.json`, else a chowa chat_template it carries, else
    rinna's layout (spiece.model + T5Tokenizer: `rinna-nl` if the vocabulary holds `<NL>`, else `rinna`)."""
    folder = Path(model_dir)
    saved = folder / FORMAT_FILE
    if saved.is_file():
        name = _read_json(saved).get("format")
        if name not in FORMATS:
            raise ChowaError(f"{saved}: field 'format' is {name!r}, not one of: {', '.join(FORMATS)}")
        return FORMATS[name]
    config = _read_json(folder / "tokenizer_config.json")
    template_file = folder / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.is_file() else config.get("chat_template")
    for fmt in FORMATS.values():
        if template in (chat_template(fmt), chat_template(fmt, bos=True)):
            return fmt
    if (folder / "spiece.model").is_file() and config.get("tokenizer_class") == "T5Tokenizer":
        import sentencepiece as spm  # only here: the rest of this module needs no tokenizer library

        processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
        return FORMATS["rinna-nl" if processor.piece_to_id(NL) != processor.unk_id() else "rinna"]
    raise ChowaError(f"{folder}: cannot tell which chat format this model uses (no {FORMAT_FILE}, no chowa "
                     f"chat_template, not a rinna tokenizer folder); pass --format, one of: {', '.join(FORMATS)}")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return data if isinstance(data, dict) else {}
