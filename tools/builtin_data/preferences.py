"""The built-in preference pairs for the `reward` stage, made from the SFT records (`tools.builtin_data.sft`).

Three kinds, each judged by a rule, so a reward model's held-out accuracy measures something checkable:

- `correct`: the right answer against a wrong one in the same form ("答えは56です。" vs "答えは57です。"); wrong
  answers are near misses (±1-3, ±10, a day off), another item of the same list (list_item) or another question's
  answer of the same family, and `check_answer` accepts the chosen reply and rejects the rejected one.
- `polite`: a Japanese question answered politely (です/ます) against curtly (plain form: だ, だよ, a bare word); both
  carry the right answer.
- `language`: the right answer in the asker's language against the same answer in the other language.

In correct and language pairs the chosen reply is the canonical form (`answers.format_output`), whichever style
the SFT record's own `output` was drawn in; polite pairs draw their wording from a few templates, and cover text
answers too ("「ねこ」です。" over "ねこ。"). `chowa.answers:preferred_reply` is these preferences as a rule, for
the right answer and for the style of number, weekday and date answers (it ignores the wording of text answers).

Records are `{"messages": [user message], "chosen", "rejected", "kind", "family", "lang", "answer"}`, plus
`distractors` for list_item (the conversation form of `chowa.data.preferences`; the checker fields let
`check_answer` verify either reply).
Pairs built from SFT held-out records are held out, so no held-out pair asks about a fact any training record does.

Run as (from Python):
    from tools.builtin_data.preferences import build_preferences
    files = build_preferences()   # {"preference/train.jsonl": text, "preference/heldout.jsonl": text}
"""

from __future__ import annotations

import datetime
import json
import random

from chowa.answers import TEXT_FAMILIES, VALUE_FAMILIES, WEEKDAYS_EN, WEEKDAYS_JA, check_answer, is_checkable
from tools.builtin_data.answers import CURT_VALUE, POLITE_VALUE, answer_in, format_output
from tools.builtin_data.sft import build_records

POLITE_TEXT = ("「{}」です。", "{}です。", "「{}」になります。")
CURT_TEXT = ("「{}」だ。", "{}だよ。", "{}。", "「{}」。")


def messages_of(record: dict) -> list[dict]:
    """An SFT record's question as a one-message conversation (its `input` kept as the message's input)."""
    message = {"role": "user", "content": record["instruction"]}
    if record["input"]:
        message["input"] = record["input"]
    return [message]


def _pair(record: dict, kind: str, chosen: str, rejected: str) -> dict:
    return {"messages": messages_of(record), "chosen": chosen, "rejected": rejected, "kind": kind,
            **checker_fields(record)}


def checker_fields(record: dict) -> dict:
    """What `check_answer` reads from a record: family, answer, lang, and distractors where the family has them."""
    fields = {"family": record["family"], "answer": record["answer"], "lang": record["lang"]}
    if "distractors" in record:
        fields["distractors"] = record["distractors"]
    return fields


def _wrong_answer(record: dict, group_answers: list[str], rng: random.Random) -> str | None:
    """A wrong answer of the same type, or None when the draw happens to check as right."""
    answer, family = record["answer"], record["family"]
    if family == "date":
        wrong = datetime.date.fromisoformat(answer) + datetime.timedelta(days=rng.choice([-2, -1, 1, 2, 7]))
        wrong = wrong.isoformat()
    elif family == "weekday":
        names = WEEKDAYS_EN if record["lang"] == "en" else WEEKDAYS_JA
        wrong = names[(names.index(answer) + rng.randint(1, 6)) % 7]
    elif family == "list_item":  # another item of the same list: only its position makes it wrong
        wrong = rng.choice(record["distractors"])
    elif answer.lstrip("-").isdigit() and rng.random() < 0.7:
        delta = rng.choice([1, 2, 3, 10]) * rng.choice([-1, 1])
        wrong = str(int(answer) + delta if int(answer) + delta >= 0 else int(answer) + abs(delta))
    else:
        wrong = rng.choice(group_answers)
    return None if check_answer(record, format_output(family, wrong, record["lang"])) else wrong


def _correct_pairs(records: list[dict], rng: random.Random) -> list[dict]:
    groups: dict[tuple[str, str], list[str]] = {}
    for record in records:
        groups.setdefault((record["family"], record["lang"]), []).append(record["answer"])
    pairs = []
    for record in records:
        for _ in range(10):  # a few redraws when the wrong answer happens to be right ("3" for 3)
            wrong = _wrong_answer(record, groups[(record["family"], record["lang"])], rng)
            if wrong is not None:
                rejected = format_output(record["family"], wrong, record["lang"])
                pairs.append(_pair(record, "correct", _preferred(record), rejected))
                break
    return pairs


def _polite_pairs(records: list[dict], rng: random.Random) -> list[dict]:
    pairs = []
    for record in (r for r in records if r["lang"] == "ja"):
        text = record["family"] in TEXT_FAMILIES
        polite, curt = (POLITE_TEXT, CURT_TEXT) if text else (POLITE_VALUE, CURT_VALUE)
        chosen, rejected = rng.choice(polite).format(record["answer"]), rng.choice(curt).format(record["answer"])
        if check_answer(record, chosen) and check_answer(record, rejected):
            pairs.append(_pair(record, "polite", chosen, rejected))
    return pairs


def _language_pairs(records: list[dict]) -> list[dict]:
    pairs = []
    for record in (r for r in records if r["family"] in VALUE_FAMILIES):
        other = "ja" if record["lang"] == "en" else "en"
        rejected = format_output(record["family"], answer_in(record, other), other)
        pairs.append(_pair(record, "language", _preferred(record), rejected))
    return pairs


def _preferred(record: dict) -> str:
    """The reply the preferences favour: the SFT data's canonical form, whatever style its `output` was drawn in."""
    return format_output(record["family"], record["answer"], record["lang"])


def build_pairs() -> tuple[list[dict], list[dict]]:
    """(train, heldout) preference records, in a fixed order."""
    splits = []
    for name, records in zip(("train", "heldout"), build_records(), strict=True):
        checkable = [r for r in records if is_checkable(r)]
        rng = random.Random(f"preference-{name}")
        pairs = _correct_pairs(checkable, rng) + _polite_pairs(checkable, rng) + _language_pairs(checkable)
        random.Random(f"preference-order-{name}").shuffle(pairs)
        splits.append(pairs)
    return splits[0], splits[1]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def build_preferences() -> dict[str, str]:
    """The preference files' paths relative to the builtin folder, and their exact text."""
    train, heldout = build_pairs()
    return {"preference/train.jsonl": _jsonl(train), "preference/heldout.jsonl": _jsonl(heldout)}
