"""Reading SFT data into conversations (`chowa.formats` messages) and mixing sources.

Data formats, detected per file from its first record or named:

    alpaca     {"instruction", "input" (optional), "output"}           (a .json list, or JSONL)
    openai     {"messages": [{"role", "content"}, ...]}
    sharegpt   {"conversations": [{"from": human|gpt|system, "value"}, ...]}
    rinna      [{"speaker": ユーザー|システム, "text"}, ...]               (one conversation per record)
    hh-rlhf    {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}   (the chosen side)

Sources are JSON / JSONL files, Parquet / Arrow files, `datasets` folders or `hf:` datasets (`chowa.data.records`,
which also maps differently named columns). A malformed record raises `ChowaError` naming file, line (or row) and
field, or with `skip_bad_records=True` is skipped and listed in `bad_records` as "file:line: reason".

hh-rlhf as published has consecutive turns by the same speaker (9 of the 2,312 harmless-base test records have
two `Assistant:` turns in a row). No chat format can render two replies in a row, so such runs are merged into one
turn, their texts joined by a blank line ("\n\n", the transcript's own turn separator); `merged_turns` counts the
turns merged away, and `chowa data inspect` reports them.

Mixtures: `DataSource(path, weight, format)`; weight 2.0 repeats every record of the source exactly twice, a
fractional part adds that share of its records drawn without replacement (weight 0.5 = a random half), then the
whole mixture is shuffled; the same seed gives the same list.

Run as (from Python):
    loaded = mix_sources([DataSource("data/alpaca_ja.json", 2.0), DataSource("data/hh.jsonl.gz")], seed=0)
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chowa.data.records import BadRecord, ReadOptions, UnreadableSource, expand_sources, parse_records
from chowa.errors import ChowaError
from chowa.formats import (
    ROLES,
    Message,
    conversation_problem,
)

DATA_FORMATS = ("alpaca", "openai", "sharegpt", "rinna", "hh-rlhf")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "system": "system"}
_RINNA_ROLES = {"ユーザー": "user", "システム": "assistant"}
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
HH_MERGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class ConversationRecord:
    source: str
    """Where the record came from, "file:line"."""
    messages: list[Message]
    merged_turns: int = 0
    """Same-speaker turns of an hh-rlhf transcript merged into the turn before them."""


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
    """An Anthropic hh-rlhf transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages, consecutive turns of
    one speaker merged (see the module docstring)."""
    parts = _HH_TURN.split(transcript)
    if parts[0].strip():
        raise BadRecord(field, "text before the first '\\n\\nHuman: ' turn")
    roles = {"Human": "user", "Assistant": "assistant"}
    messages: list[Message] = []
    for speaker, text in zip(parts[1::2], parts[2::2], strict=True):
        if messages and messages[-1]["role"] == roles[speaker]:
            messages[-1]["content"] += HH_MERGE_SEPARATOR + text
        else:
            messages.append({"role": roles[speaker], "content": text})
    _check_turns(messages, lambda index: f"{field} (turn {index + 1})")
    return messages


def hh_merged_turns(transcript: str) -> int:
    """How many turns of the transcript `hh_messages` merges into the turn before them."""
    speakers = _HH_TURN.findall(transcript)
    return sum(a == b for a, b in zip(speakers, speakers[1:]))


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


def read_conversations(path: str | os.PathLike, data_format: str = "auto", skip_bad_records: bool = False,
                       options: ReadOptions | None = None) -> LoadedData:
    """Every record of one source (file, dataset folder or `hf:` spec) as a conversation."""
    source = str(path)
    if data_format != "auto" and data_format not in PARSERS:
        raise ChowaError(f"--data-format {data_format!r} is not one of: auto, {', '.join(PARSERS)}")
    detected: list[str] = [] if data_format == "auto" else [data_format]

    def parse(record: Any) -> tuple[list[Message], int]:
        if not detected:  # the first record names the format of the whole source
            name = detect_data_format(record)
            if name is None:
                keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                raise UnreadableSource(f"cannot tell the data format from the first record ({keys}); name it, one "
                                       f"of: {', '.join(PARSERS)}")
            detected.append(name)
        messages = PARSERS[detected[0]](record)
        merged = hh_merged_turns(record["chosen"]) if detected[0] == "hh-rlhf" else 0
        return messages, merged

    parsed, bad = parse_records(source, parse, skip_bad_records, options)
    if not detected and not bad:
        raise ChowaError(f"{source}: no records")
    return LoadedData([ConversationRecord(where, messages, merged) for where, (messages, merged) in parsed], bad,
                      {source: detected[0] if detected else "unknown"})


def mix_sources(sources: list[DataSource], seed: int = 0, skip_bad_records: bool = False,
                options: ReadOptions | None = None) -> LoadedData:
    """All sources' records repeated or subsampled by weight, shuffled with `seed` (see the module docstring)."""
    rng = random.Random(seed)
    mixed = LoadedData([], [], {})
    for source in sources:
        if not source.weight > 0:
            raise ChowaError(f"data source {source.path}: weight must be positive, got {source.weight}")
        records: list[ConversationRecord] = []
        for path in expand_sources([source.path]):
            loaded = read_conversations(path, source.format, skip_bad_records, options)
            records += loaded.conversations
            mixed.bad_records += loaded.bad_records
            mixed.formats.update(loaded.formats)
        repeats, fraction = divmod(source.weight, 1)
        mixed.conversations += records * int(repeats)
        mixed.conversations += rng.sample(records, round(fraction * len(records)))
    rng.shuffle(mixed.conversations)
    return mixed
