"""Pairwise preference data for the `reward` stage: a shared context and two final replies, chosen and rejected.

Record formats, detected per record from its keys or named:

    hh-rlhf       {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: A", "rejected": "\\n\\nHuman: ...\\n\\nAssistant: B"}
                  (Anthropic hh-rlhf: two full transcripts; the context is the text up to and including the last
                  "\\n\\nAssistant:", the replies are the rest, and both transcripts must share that context)
    prompt        {"prompt": str | [messages], "chosen": str, "rejected": str}
                  (a plain-text prompt is one user message; an hh-style prompt "\\n\\nHuman: ...\\n\\nAssistant:"
                  as in Dahoas/rm-static is split into turns)
    conversation  {"messages": [... ending with a user message], "chosen": str | message, "rejected": ...}

Optional fields on any record: `kind` (a label for per-kind accuracy, e.g. "correct", "polite", "language") and
`margin` (a number the chosen score should beat the rejected one by). Files are `.jsonl`, `.json` (an array)
or either gzipped; a malformed record raises `ChowaError` naming file, line and field.

Run as (from Python):
    pairs = read_preferences(["builtin:preference/train.jsonl"]).pairs
    chowa data inspect data/hh/train.jsonl.gz --kind preference    # once the CLI registers `inspect_preferences`
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chowa.data.conversations import BadRecord, _need_object, _string, hh_messages, read_conversations
from chowa.data.text import expand_inputs
from chowa.errors import ChowaError
from chowa.formats import Message, conversation_problem, render_prompt, render_training

PREFERENCE_FORMATS = ("hh-rlhf", "prompt", "conversation")
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
    return "hh-rlhf"


def _hh_rlhf(record: Any) -> PreferencePair:
    _need_object(record)
    chosen = hh_messages(_string(record, "chosen"), "chosen")
    rejected = hh_messages(_string(record, "rejected"), "rejected")
    if chosen[:-1] != rejected[:-1]:
        raise BadRecord("rejected", "its context (the text before the last '\\n\\nAssistant:') differs from chosen's")
    return _pair(record, chosen[:-1], chosen[-1]["content"], rejected[-1]["content"])


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
    allowed = {"role", "content", "input"}
    return [{k: v for k, v in message.items() if k in allowed} for message in messages]


def _reply(record: dict, field: str) -> str:
    value = record.get(field)
    if isinstance(value, dict):
        if value.get("role", "assistant") != "assistant" or not isinstance(value.get("content"), str):
            raise BadRecord(field, "expected a string or an assistant message {role, content}")
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
    "hh-rlhf": _hh_rlhf, "prompt": _prompt, "conversation": _conversation,
}


def read_preference_file(path: str | os.PathLike, data_format: str = "auto",
                         skip_bad_records: bool = False) -> LoadedPreferences:
    """Every record of one file as a `PreferencePair`; `auto` detects the format of each record from its keys."""
    if data_format != "auto" and data_format not in PARSERS:
        raise ChowaError(f"data_format {data_format!r} is not one of: auto, {', '.join(PARSERS)}")
    parser = _any if data_format == "auto" else lambda record: replace(PARSERS[data_format](record),
                                                                        format=data_format)
    # read_conversations only detects SFT formats, so every record goes through our one dispatching parser.
    loaded = read_conversations(path, "pair", skip_bad_records, parsers={"pair": parser})
    pairs = [replace(record.messages, source=record.source) for record in loaded.conversations]
    return LoadedPreferences(pairs, loaded.bad_records)


def read_preferences(patterns: list[str], data_format: str = "auto",
                     skip_bad_records: bool = False) -> LoadedPreferences:
    """The pairs of every file matched by `patterns` (paths, globs or `builtin:` names), in order."""
    total = LoadedPreferences([], [])
    for path in expand_inputs(patterns):
        loaded = read_preference_file(path, data_format, skip_bad_records)
        total.pairs += loaded.pairs
        total.bad_records += loaded.bad_records
    return total


def inspect_preferences(files: list[Path], fmt: str, tokenizer, data_format: str) -> dict:
    """`chowa data inspect --kind preference`: counts by format and kind, and the first pair rendered."""
    loaded = [read_preference_file(path, data_format, skip_bad_records=True) for path in files]
    pairs = [pair for part in loaded for pair in part.pairs]
    bad = [b for part in loaded for b in part.bad_records]
    report: dict[str, Any] = {
        "kind": "preference", "format": fmt, "records": len(pairs), "bad_record_count": len(bad),
        "bad_records": bad[:50], "data_formats": dict(Counter(p.format for p in pairs)),
        "kinds": dict(Counter(p.kind for p in pairs if p.kind)),
        "identical_replies": sum(p.chosen == p.rejected for p in pairs),
    }
    if pairs:
        first = pairs[0]
        report["example"] = {"source": first.source, "context": first.context, "chosen": first.chosen,
                             "rejected": first.rejected}
        try:
            report["example"]["prompt"] = render_prompt(first.context, fmt)
            if tokenizer is not None:
                sides = first.conversations()
                report["example"]["tokens"] = [len(render_training(side, fmt, tokenizer)[0]) for side in sides]
        except ChowaError as exc:
            report["example"]["render_error"] = str(exc)
    return report

