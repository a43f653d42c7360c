"""Prompt files: what `generate`, `ppo`, `compare` and the held-out evaluation answer.

JSONL (or a .json array, .gz allowed) of OpenAI `{"messages": [...]}` records whose last message is the user's (a
final assistant message is kept as the reference reply), Alpaca `{"instruction", "input", "output"}` records, or
`{"prompt": text}`; every other field (`family`, `answer`, `lang`, ids) stays with the record, for rule-based
rewards, answer checks and output files. A malformed record raises ChowaError naming file and line.

Run as (from Python):
    prompts = read_prompts(["builtin:prompts/heldout.jsonl"]); prompts[0].messages, prompts[0].record
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from chowa.data.text import expand_inputs, read_file_text
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


def read_prompts(patterns: list[str]) -> list[PromptRecord]:
    """Every record of the files or globs; a malformed one raises ChowaError naming file and line."""
    prompts = []
    for path in expand_inputs(patterns):
        text = read_file_text(path).replace("\r\n", "\n")
        if path.name.removesuffix(".gz").endswith(".json"):
            try:
                rows = list(enumerate(json.loads(text), start=1))
            except json.JSONDecodeError as exc:
                raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        else:
            rows = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
        for line, row in rows:
            prompts.append(_prompt_record(row, f"{path}:{line}"))
    if not prompts:
        raise ChowaError(f"prompts: no records in {', '.join(patterns)}")
    return prompts


def _prompt_record(row: str | dict, source: str) -> PromptRecord:
    try:
        record = json.loads(row) if isinstance(row, str) else row
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{source}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ChowaError(f"{source}: expected a JSON object with `messages`, `instruction` or `prompt`")
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
        raise ChowaError(f"{source}: expected a field 'messages', 'instruction' or 'prompt'")
    problem = conversation_problem(messages, ends_with="user")
    if problem:
        raise ChowaError(f"{source}: messages[{problem[0]}]: {problem[1]}")
    return PromptRecord(source, messages, reference, record)
