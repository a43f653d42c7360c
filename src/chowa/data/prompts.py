"""Prompt files: what `generate`, `ppo`, `compare` and the held-out evaluation answer.

Any data source of `chowa.data.records` (JSONL, a .json array, .gz, Parquet, datasets, hf:...) of OpenAI
`{"messages": [...]}` records whose last message is the user's (a final assistant message is kept as the reference
reply), Alpaca `{"instruction", "input", "output"}` records, or `{"prompt": text}`; every other field (`family`,
`answer`, `lang`, ids) stays with the record, for rule-based rewards, answer checks and output files. A malformed
record raises ChowaError naming file and line (or row).

Run as (from Python):
    prompts = read_prompts(["builtin:prompts/heldout.jsonl"]); prompts[0].messages, prompts[0].record
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from chowa.data.records import BadRecord, ReadOptions, expand_sources, parse_records
from chowa.errors import ChowaError
from chowa.formats import Message, conversation_problem


@dataclass(frozen=True)
class PromptRecord:
    source: str
    """"file:line"."""
    messages: list[Message]
    """The conversation so far, ending with the user's message."""
    reference: str | None
    """A reference reply (Alpaca `output`, or a final assistant message), for reward shaping."""
    record: dict = field(default_factory=dict)
    """The raw record (`family`, `answer`, `lang`, ...), for rule-based rewards."""


def read_prompts(patterns: list[str], options: ReadOptions | None = None) -> list[PromptRecord]:
    """Every record of the sources (files, globs, datasets; see `chowa.data.records`); a malformed one raises
    ChowaError naming where it is."""
    prompts = []
    for source in expand_sources(patterns):
        parsed, _ = parse_records(source, _prompt_record, options=options)
        prompts += [replace(prompt, source=where) for where, prompt in parsed]
    if not prompts:
        raise ChowaError(f"prompts: no records in {', '.join(patterns)}")
    return prompts


def _prompt_record(record: Any) -> PromptRecord:
    if not isinstance(record, dict):
        raise BadRecord("", "expected a JSON object with `messages`, `instruction` or `prompt`")
    if "messages" in record:
        messages, reference = list(record["messages"]), None
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            reference = messages.pop()["content"]
    elif isinstance(record.get("prompt"), str):
        messages, reference = [{"role": "user", "content": record["prompt"]}], None
    elif isinstance(record.get("instruction"), str):
        messages = [{"role": "user", "content": record["instruction"]}]
        if record.get("input"):
            messages[0]["input"] = str(record["input"])
        reference = record.get("output") if isinstance(record.get("output"), str) else None
    else:
        raise BadRecord("", "expected a field 'messages', 'instruction' or 'prompt'")
    problem = conversation_problem(messages, ends_with="user")
    if problem:
        raise BadRecord(f"messages[{problem[0]}]", problem[1])
    return PromptRecord("", messages, reference, record)
