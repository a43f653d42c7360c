"""The built-in prompts for the `ppo` stage: questions with a verifier, so a rule-based reward can score replies.

Records are `{"messages": [user message], "family", "answer", "lang"}` (plus `distractors` for list_item):
`check_answer(record, reply)` judges a reply. Training prompts are the checkable SFT training questions; held-out
prompts are the checkable SFT held-out questions, whose facts no training record asks about, so a policy's held-out
accuracy measures generalisation.

Run as (from Python):
    from tools.builtin_data.prompts import build_prompts
    files = build_prompts()   # {"prompts/train.jsonl": text, "prompts/heldout.jsonl": text}
"""

from __future__ import annotations

import json

from chowa.answers import is_checkable
from tools.builtin_data.preferences import checker_fields, messages_of
from tools.builtin_data.sft import build_records


def prompt_record(record: dict) -> dict:
    """An SFT record as a PPO prompt: the question and what `check_answer` needs, without the reference output."""
    return {"messages": messages_of(record), **checker_fields(record)}


def build_prompts() -> dict[str, str]:
    """The prompt files' paths relative to the builtin folder, and their exact text."""
    files = {}
    for name, records in zip(("train", "heldout"), build_records(), strict=True):
        lines = [json.dumps(prompt_record(r), ensure_ascii=False) + "\n" for r in records if is_checkable(r)]
        files[f"prompts/{name}.jsonl"] = "".join(lines)
    return files
