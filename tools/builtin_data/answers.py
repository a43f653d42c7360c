"""How the built-in data writes a checkable record's answer into an SFT target, and in which style.

The judging side (`check_answer`, `preferred_style`, the families) is the runtime's, `chowa.answers`; the targets
written here use its definitions, so the SFT data and the rule rewards cannot drift (tests/test_builtin_data.py
checks every written target with `check_answer`).

Run as (from Python):
    from tools.builtin_data.answers import format_output
    format_output("arithmetic", "7", "ja")   # '答えは7です。'
"""

from __future__ import annotations

import random

from chowa.answers import TEXT_FAMILIES, VALUE_FAMILIES, WEEKDAYS_EN, WEEKDAYS_JA

POLITE_VALUE = ("答えは{}です。", "{}です。", "答えは{}になります。", "{}だと思います。")
CURT_VALUE = ("答えは{}だ。", "{}だよ。", "{}。", "答えは{}。簡単だろ。", "{}に決まってる。")
# How the SFT data's value answers are written: in the other language 1 time in 4; Japanese ones curt 2 times in 3
# of the rest (one of five curt templates each time). So a Japanese question gets the preferred reply 1 time in 4,
# an English one 3 times in 4; the preferred form is still the single most common Japanese reply, so greedy
# decoding mostly picks it and sampling shows the mixture.
OTHER_LANGUAGE_SHARE, CURT_SHARE = 0.25, 2 / 3


def format_output(family: str, answer: str, lang: str) -> str:
    """The SFT target for a checkable record: the bare answer for text families, else a short sentence."""
    if family in TEXT_FAMILIES:
        return answer
    return f"The answer is {answer}." if lang == "en" else f"答えは{answer}です。"


def answer_in(record: dict, lang: str) -> str:
    """The record's answer as written in `lang` (weekday names translate; numbers and ISO dates read the same)."""
    answer = record["answer"]
    if record["family"] == "weekday" and lang != record["lang"]:
        names, other = (WEEKDAYS_EN, WEEKDAYS_JA) if lang == "ja" else (WEEKDAYS_JA, WEEKDAYS_EN)
        return other[names.index(answer)]
    return answer


def styled_output(record: dict, rng: random.Random) -> str:
    """An SFT target in a drawn style: text answers stay bare; value answers follow the shares above."""
    family, lang = record["family"], record["lang"]
    if family not in VALUE_FAMILIES:
        return format_output(family, record["answer"], lang)
    if rng.random() < OTHER_LANGUAGE_SHARE:
        other = "ja" if lang == "en" else "en"
        return format_output(family, answer_in(record, other), other)
    if lang == "ja" and rng.random() < CURT_SHARE:
        return rng.choice(CURT_VALUE).format(record["answer"])
    return format_output(family, record["answer"], lang)
