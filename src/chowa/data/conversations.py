"""Reading SFT data into conversations (`chowa.formats` messages), mixing sources, and `chowa data inspect`.

Data formats, detected per file from its first record or named:

    alpaca     {"instruction", "input" (optional), "output"}           (a .json list, or JSONL)
    openai     {"messages": [{"role", "content"}, ...]}
    sharegpt   {"conversations": [{"from": human|gpt|system, "value"}, ...]}
    rinna      [{"speaker": ユーザー|システム, "text"}, ...]               (one conversation per record)
    hh-rlhf    {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}   (the chosen side)

A `.json` file holds one JSON array of records; any other file (`.jsonl`, `.ndjson`, ...) one record per line;
`.gz` is opened transparently. A malformed record raises `ChowaError` naming file, line and field, or with
`skip_bad_records=True` is skipped and listed in `bad_records` as "file:line: reason".

Mixtures: `DataSource(path, weight, format)`; weight 2.0 repeats every record of the source exactly twice, a
fractional part adds that share of its records drawn without replacement (weight 0.5 = a random half), then the
whole mixture is shuffled; the same seed gives the same list.

Run as:
    chowa data inspect data/alpaca_ja.json data/hh.jsonl.gz --kind sft --format rinna-nl
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chowa.data.text import expand_inputs, read_file_text
from chowa.errors import ChowaError
from chowa.formats import (
    DEFAULT_FORMAT,
    ROLES,
    Message,
    conversation_problem,
    get_format,
    render_segments,
    render_training,
)

DATA_FORMATS = ("alpaca", "openai", "sharegpt", "rinna", "hh-rlhf")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "system": "system"}
_RINNA_ROLES = {"ユーザー": "user", "システム": "assistant"}
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"


@dataclass(frozen=True)
class ConversationRecord:
    source: str
    """Where the record came from, "file:line"."""
    messages: list[Message]


@dataclass
class LoadedData:
    conversations: list[ConversationRecord]
    bad_records: list[str]
    """"file:line: reason" for each record skipped with `skip_bad_records=True`."""
    formats: dict[str, str]
    """Each file's data format."""


@dataclass
class DataSource:
    path: str
    """A file or glob."""
    weight: float = 1.0
    """2.0 = every record twice; 0.5 = a random half of the records."""
    format: str = "auto"
    """One of DATA_FORMATS, or `auto` to detect it from the first record."""


class BadRecord(Exception):
    """A record's problem, turned into "file:line: field: reason" by the reader."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)


def _string(record: dict, key: str, optional: bool = False) -> str:
    value = record.get(key, "" if optional else None)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise BadRecord(key, "missing" if key not in record else f"expected a string, got {type(value).__name__}")
    return value


def _turns(items: Any, field: str, role_key: str, text_key: str, roles: dict[str, str]) -> list[Message]:
    """Messages from a list of `{role_key, text_key}` objects, the roles renamed by `roles`."""
    if not isinstance(items, list):
        raise BadRecord(field, "expected a list of messages")
    messages = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise BadRecord(where, "expected an object")
        if item.get(role_key) not in roles:
            raise BadRecord(f"{where}.{role_key}", f"{item.get(role_key)!r} is not one of: {', '.join(roles)}")
        if not isinstance(item.get(text_key), str):
            raise BadRecord(f"{where}.{text_key}", "expected a string")
        messages.append({"role": roles[item[role_key]], "content": item[text_key]})
    _check_turns(messages, lambda index: f"{field}[{index}]")
    return messages


def _check_turns(messages: list[Message], where: Callable[[int], str]) -> None:
    problem = conversation_problem(messages, ends_with="assistant")
    if problem:
        raise BadRecord(where(problem[0]), problem[1])


def _alpaca(record: Any) -> list[Message]:
    _need_object(record)
    user = {"role": "user", "content": _string(record, "instruction")}
    if _string(record, "input", optional=True):
        user["input"] = record["input"]
    return [user, {"role": "assistant", "content": _string(record, "output")}]


def _openai(record: Any) -> list[Message]:
    _need_object(record)
    return _turns(record.get("messages"), "messages", "role", "content", {role: role for role in ROLES})


def _sharegpt(record: Any) -> list[Message]:
    _need_object(record)
    return _turns(record.get("conversations"), "conversations", "from", "value", _SHAREGPT_ROLES)


def _rinna(record: Any) -> list[Message]:
    return _turns(record, "", "speaker", "text", _RINNA_ROLES)


def _hh_rlhf(record: Any, side: str = "chosen") -> list[Message]:
    _need_object(record)
    return hh_messages(_string(record, side), side)


def hh_messages(transcript: str, field: str = "chosen") -> list[Message]:
    """An Anthropic hh-rlhf transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages."""
    parts = _HH_TURN.split(transcript)
    if parts[0].strip():
        raise BadRecord(field, "text before the first '\\n\\nHuman: ' turn")
    roles = {"Human": "user", "Assistant": "assistant"}
    messages = [{"role": roles[speaker], "content": text} for speaker, text in zip(parts[1::2], parts[2::2])]
    _check_turns(messages, lambda index: f"{field} (turn {index + 1})")
    return messages


def _need_object(record: Any) -> None:
    if not isinstance(record, dict):
        raise BadRecord("", f"expected a JSON object, got {type(record).__name__}")


PARSERS: dict[str, Callable[[Any], list[Message]]] = {
    "alpaca": _alpaca, "openai": _openai, "sharegpt": _sharegpt, "rinna": _rinna, "hh-rlhf": _hh_rlhf,
}


def detect_data_format(record: Any) -> str | None:
    """The data format a record looks like, or None."""
    if isinstance(record, list):
        return "rinna" if record and isinstance(record[0], dict) and "speaker" in record[0] else None
    if not isinstance(record, dict):
        return None
    for key, name in (("messages", "openai"), ("conversations", "sharegpt"), ("chosen", "hh-rlhf"),
                      ("instruction", "alpaca")):
        if key in record:
            return name
    return None


class _InvalidJson:
    def __init__(self, reason: str):
        self.reason = reason


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """`(line, record)` for each record; a JSONL line that is not JSON gives an `_InvalidJson`."""
    text = read_file_text(path).replace("\r\n", "\n")
    if path.name.removesuffix(".gz").endswith(".json"):
        yield from _json_array(path, text)
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, _InvalidJson(f"not valid JSON ({exc.msg} at column {exc.colno})")


def _json_array(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """The elements of a JSON array file with the line each starts on (json.loads keeps no positions)."""
    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")
    position = space.match(text).end()
    if text[position:position + 1] != "[":
        raise ChowaError(f"{path}:1: a .json data file must hold one JSON array of records")
    position = space.match(text, position + 1).end()
    line, counted = 1, 0
    while text[position:position + 1] != "]":
        line += text.count("\n", counted, position)
        counted = position
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        yield line, record
        position = space.match(text, position).end()
        if text[position:position + 1] == ",":
            position = space.match(text, position + 1).end()
        elif text[position:position + 1] != "]":
            at = line + text.count("\n", counted, position)
            raise ChowaError(f"{path}:{at}: expected ',' or ']' after a record")


def read_conversations(path: str | os.PathLike, data_format: str = "auto", skip_bad_records: bool = False,
                       parsers: dict[str, Callable[[Any], Any]] = PARSERS) -> LoadedData:
    """Every record of one file as a conversation; `parsers` lets other kinds (preference, prompts) reuse this."""
    path = Path(path)
    if data_format != "auto" and data_format not in parsers:
        raise ChowaError(f"--data-format {data_format!r} is not one of: auto, {', '.join(parsers)}")
    name = None if data_format == "auto" else data_format
    loaded = LoadedData([], [], {})
    for line, record in _records(path):
        try:
            if isinstance(record, _InvalidJson):
                raise BadRecord("", record.reason)
            if name is None:
                name = detect_data_format(record)
                if name is None or name not in parsers:
                    keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                    raise ChowaError(f"{path}:{line}: cannot tell the data format from the first record ({keys}); "
                                     f"name it, one of: {', '.join(parsers)}")
            loaded.conversations.append(ConversationRecord(f"{path}:{line}", parsers[name](record)))
        except BadRecord as bad:
            message = f"{path}:{line}: {bad}"
            if not skip_bad_records:
                raise ChowaError(message) from None
            loaded.bad_records.append(message)
    if name is None and not loaded.bad_records:
        raise ChowaError(f"{path}: no records")
    loaded.formats[str(path)] = name or "unknown"
    return loaded


def mix_sources(sources: list[DataSource], seed: int = 0, skip_bad_records: bool = False) -> LoadedData:
    """All sources' records repeated or subsampled by weight, shuffled with `seed` (see the module docstring)."""
    rng = random.Random(seed)
    mixed = LoadedData([], [], {})
    for source in sources:
        if not source.weight > 0:
            raise ChowaError(f"data source {source.path}: weight must be positive, got {source.weight}")
        records: list[ConversationRecord] = []
        for path in expand_inputs([source.path]):
            loaded = read_conversations(path, source.format, skip_bad_records)
            records += loaded.conversations
            mixed.bad_records += loaded.bad_records
            mixed.formats.update(loaded.formats)
        repeats, fraction = divmod(source.weight, 1)
        mixed.conversations += records * int(repeats)
        mixed.conversations += rng.sample(records, round(fraction * len(records)))
    rng.shuffle(mixed.conversations)
    return mixed


def mark_trained(messages: list[Message], fmt: str, tokenizer=None, eos_token: str = "</s>") -> str:
    """The rendered conversation with its trained part in ⟦ ⟧: from the tokens' loss mask if a tokenizer is given
    (showing exactly what the model learns), else from the text segments."""
    if tokenizer is None:
        return "".join(TRAINED_OPEN + s.text + (eos_token if s.eos else "") + TRAINED_CLOSE if s.trained else s.text
                       for s in render_segments(messages, fmt))
    ids, mask = render_training(messages, fmt, tokenizer)
    out, start = [], 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or mask[end] != mask[start]:
            text = tokenizer.decode(ids[start:end], skip_special_tokens=False)
            out.append(TRAINED_OPEN + text + TRAINED_CLOSE if mask[start] else text)
            start = end
    return "".join(out)


def _inspect_sft(files: list[Path], fmt: str, tokenizer, data_format: str) -> dict:
    loaded = [read_conversations(path, data_format, skip_bad_records=True) for path in files]
    conversations = [c for part in loaded for c in part.conversations]
    bad = [b for part in loaded for b in part.bad_records]
    report: dict[str, Any] = {
        "kind": "sft", "format": fmt, "data_formats": {k: v for part in loaded for k, v in part.formats.items()},
        "records": len(conversations), "bad_record_count": len(bad), "bad_records": bad[:50],
        "turns": sum(m["role"] == "assistant" for c in conversations for m in c.messages),
        "with_system": sum(c.messages[0]["role"] == "system" for c in conversations),
    }
    if conversations:
        first = conversations[0]
        report["example"] = {"source": first.source, "messages": first.messages}
        try:
            report["example"]["rendered"] = mark_trained(first.messages, fmt, tokenizer)
        except ChowaError as exc:  # e.g. a system message in a rinna format: report it, keep the counts
            report["example"]["render_error"] = str(exc)
        if tokenizer is not None and "rendered" in report["example"]:
            ids, mask = render_training(first.messages, fmt, tokenizer)
            report["example"]["tokens"], report["example"]["trained_tokens"] = len(ids), sum(mask)
    return report


INSPECTORS: dict[str, Callable[[list[Path], str, Any, str], dict]] = {"sft": _inspect_sft}


def inspect_data(paths: list[str], kind: str = "sft", format_name: str | None = None, tokenizer=None,
                 data_format: str = "auto") -> dict:
    """A summary of data files for `chowa data inspect`: detected formats, record and bad-record counts, and the
    first example rendered in chat format `format_name` with its trained part marked."""
    if kind not in INSPECTORS:
        raise ChowaError(f"--kind {kind!r} is not one of: {', '.join(INSPECTORS)}")
    fmt = get_format(format_name or DEFAULT_FORMAT).name
    return INSPECTORS[kind](expand_inputs(paths), fmt, tokenizer, data_format)


def format_inspection(report: dict) -> str:
    """`chowa data inspect` as text: the summary lines, bad records, then the first example."""
    lines = [f"kind: {report['kind']}    chat format: {report['format']}"]
    lines += [f"  {source}: {data_format}" for source, data_format in report.get("data_formats", {}).items()]
    lines.append(f"records: {report['records']}    bad records: {report['bad_record_count']}")
    lines += [f"  {bad}" for bad in report["bad_records"]]
    lines += [f"{key}: {value}" for key, value in report.items()
              if key not in ("kind", "format", "data_formats", "records", "bad_record_count", "bad_records",
                             "example")]
    example = report.get("example")
    if example:
        trained = ", trained part in ⟦ ⟧" if "rendered" in example else ""
        lines.append(f"first example ({example['source']}){trained}:")
        for key, value in example.items():
            if key in ("source", "messages", "context"):
                continue
            lines.append(value if key == "rendered" else f"{key}: {value}")
    return "\n".join(lines)
