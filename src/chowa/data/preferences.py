"""Pairwise preference data for the `reward` stage: a shared context and two final replies, chosen and rejected.

Record formats, detected per record from its keys or named:

    hh-rlhf        {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: A", "rejected": "\\n\\nHuman: ...\\n\\nAssistant: B"}
                   (Anthropic hh-rlhf: two full transcripts; the context is the text up to and including the last
                   "\\n\\nAssistant:", the replies are the rest, and both transcripts must share that context;
                   consecutive turns of one speaker are merged, see `chowa.data.conversations`)
    prompt         {"prompt": str | [messages], "chosen": str | message | [message], "rejected": ...}
                   (a plain-text prompt is one user message; an hh-style prompt "\\n\\nHuman: ...\\n\\nAssistant:"
                   as in Dahoas/rm-static is split into turns; TRL's explicit-prompt conversational form)
    conversation   {"messages": [... ending with a user message], "chosen": str | message, "rejected": ...}
    message-lists  {"chosen": [messages ending with the reply], "rejected": [...]}
                   (TRL's implicit-prompt conversational form: both share every message but the last)

Optional fields on any record: `kind` (a label for per-kind accuracy, e.g. "correct", "polite", "language") and
`margin` (a number the chosen score should beat the rejected one by). Sources are any of `chowa.data.records`
(JSON / JSONL, Parquet, Arrow, datasets folders, `hf:` datasets; column mapping); a malformed record raises
`ChowaError` naming file, line (or row) and field.

Run as (from Python):
    pairs = read_preferences(["builtin:preference/train.jsonl"]).pairs
    pairs = read_preferences(["hf:Anthropic/hh-rlhf@test"]).pairs    # where the Hub (or its cache) is reachable
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chowa.data.conversations import _need_object, _string, hh_merged_turns, hh_messages
from chowa.data.records import BadRecord, ReadOptions, expand_sources, parse_records
from chowa.errors import ChowaError
from chowa.formats import Message, conversation_problem

PREFERENCE_FORMATS = ("hh-rlhf", "prompt", "conversation", "message-lists")
_HH_HUMAN = "\n\nHuman:"


@dataclass(frozen=True)
class PreferencePair:
    context: list[Message]
    """The conversation before the compared replies; it ends with a user message."""
    chosen: str
    rejected: str
    kind: str = ""
    margin: float | None = None
    source: str = ""
    """Where the record came from, "file:line"."""
    format: str = ""
    merged_turns: int = 0
    """Same-speaker turns of the hh-rlhf transcripts merged into the turn before them (both sides together)."""

    def conversations(self) -> tuple[list[Message], list[Message]]:
        """The context followed by the chosen reply, and by the rejected one."""
        return ([*self.context, {"role": "assistant", "content": self.chosen}],
                [*self.context, {"role": "assistant", "content": self.rejected}])


@dataclass
class LoadedPreferences:
    pairs: list[PreferencePair]
    bad_records: list[str]
    """"file:line: reason" for each record skipped with `skip_bad_records=True`."""


def preference_format(record: Any) -> str | None:
    """The preference format a record looks like, or None."""
    if not isinstance(record, dict) or "chosen" not in record or "rejected" not in record:
        return None
    if "prompt" in record:
        return "prompt"
    if "messages" in record:
        return "conversation"
    return "message-lists" if isinstance(record["chosen"], list) else "hh-rlhf"


def _hh_rlhf(record: Any) -> PreferencePair:
    _need_object(record)
    chosen = hh_messages(_string(record, "chosen"), "chosen")
    rejected = hh_messages(_string(record, "rejected"), "rejected")
    if chosen[:-1] != rejected[:-1]:
        raise BadRecord("rejected", "its context (the text before the last '\\n\\nAssistant:') differs from chosen's")
    merged = hh_merged_turns(record["chosen"]) + hh_merged_turns(record["rejected"])
    return replace(_pair(record, chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]), merged_turns=merged)


def _message_lists(record: Any) -> PreferencePair:
    _need_object(record)
    chosen, rejected = (_transcript(record.get(side), side) for side in ("chosen", "rejected"))
    if chosen[:-1] != rejected[:-1]:
        raise BadRecord("rejected", "its context (every message before the last) differs from chosen's")
    return _pair(record, chosen[:-1], chosen[-1]["content"], rejected[-1]["content"])


def _transcript(messages: Any, field: str) -> list[Message]:
    problem = conversation_problem(messages, ends_with="assistant")
    if problem:
        raise BadRecord(f"{field}[{problem[0]}]", problem[1])
    return _kept_keys(messages)


def _prompt(record: Any) -> PreferencePair:
    _need_object(record)
    prompt = record.get("prompt")
    if isinstance(prompt, list):
        return _pair(record, _context(prompt, "prompt"), _reply(record, "chosen"), _reply(record, "rejected"))
    prompt = _string(record, "prompt")
    chosen, rejected = _reply(record, "chosen"), _reply(record, "rejected")
    if not prompt.startswith(_HH_HUMAN):
        return _pair(record, [{"role": "user", "content": prompt}], chosen, rejected)
    # Dahoas-style: the prompt ends with "\n\nAssistant:" and each reply is the rest of a full transcript.
    messages = hh_messages(prompt + chosen, "prompt")
    return _pair(record, messages[:-1], messages[-1]["content"], rejected.removeprefix(" "))


def _conversation(record: Any) -> PreferencePair:
    _need_object(record)
    context = _context(record.get("messages"), "messages")
    return _pair(record, context, _reply(record, "chosen"), _reply(record, "rejected"))


def _context(messages: Any, field: str) -> list[Message]:
    problem = conversation_problem(messages, ends_with="user")
    if problem:
        raise BadRecord(f"{field}[{problem[0]}]", problem[1])
    return _kept_keys(messages)


def _kept_keys(messages: list[Message]) -> list[Message]:
    allowed = {"role", "content", "input"}
    return [{k: v for k, v in message.items() if k in allowed} for message in messages]


def _reply(record: dict, field: str) -> str:
    value = record.get(field)
    if isinstance(value, list) and len(value) == 1:  # TRL's explicit-prompt form: [{"role": "assistant", ...}]
        value = value[0]
    if isinstance(value, dict):
        if value.get("role", "assistant") != "assistant" or not isinstance(value.get("content"), str):
            raise BadRecord(field, "expected a string or an assistant message {role, content} (or a list of one)")
        return value["content"]
    return _string(record, field)


def _pair(record: dict, context: list[Message], chosen: str, rejected: str) -> PreferencePair:
    kind, margin = record.get("kind", ""), record.get("margin")
    if not isinstance(kind, str):
        raise BadRecord("kind", "expected a string")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float)):
        raise BadRecord("margin", "expected a number")
    return PreferencePair(context, chosen, rejected, kind, None if margin is None else float(margin))


def _any(record: Any) -> PreferencePair:
    name = preference_format(record)
    if name is None:
        keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
        raise BadRecord("", f"not a preference record (keys: {keys}); expected chosen and rejected, with prompt or "
                            f"messages for the context, or hh-rlhf transcripts")
    return replace(PARSERS[name](record), format=name)


PARSERS: dict[str, Callable[[Any], PreferencePair]] = {
    "hh-rlhf": _hh_rlhf, "prompt": _prompt, "conversation": _conversation, "message-lists": _message_lists,
}


def read_preference_file(path: str | os.PathLike, data_format: str = "auto", skip_bad_records: bool = False,
                         options: ReadOptions | None = None) -> LoadedPreferences:
    """Every record of one source as a `PreferencePair`; `auto` detects the format of each record from its keys."""
    if data_format != "auto" and data_format not in PARSERS:
        raise ChowaError(f"data_format {data_format!r} is not one of: auto, {', '.join(PARSERS)}")
    parser = _any if data_format == "auto" else lambda record: replace(PARSERS[data_format](record),
                                                                        format=data_format)
    parsed, bad = parse_records(str(path), parser, skip_bad_records, options)
    return LoadedPreferences([replace(pair, source=where) for where, pair in parsed], bad)


def read_preferences(patterns: list[str], data_format: str = "auto", skip_bad_records: bool = False,
                     options: ReadOptions | None = None) -> LoadedPreferences:
    """The pairs of every source matched by `patterns` (paths, globs, `builtin:` names, datasets), in order."""
    total = LoadedPreferences([], [])
    for source in expand_sources(patterns):
        loaded = read_preference_file(source, data_format, skip_bad_records, options)
        total.pairs += loaded.pairs
        total.bad_records += loaded.bad_records
    return total
