"""Checkable tasks at run time: how a reply is judged against a record's answer, the style the built-in preferences
prefer, the rule rewards built on both, and the held-out grading that PPO and `chowa eval heldout` share.

A checkable record (a prompt or SFT record of the built-in data, or any user record with the same fields) has a
`family`, an `answer` and a `lang`:

- value answers (numbers, weekdays, dates; `VALUE_FAMILIES`) are written "The answer is 7." / "答えは7です。";
- text answers (translations, romaji, kana, number words, ...; `TEXT_FAMILIES`) are the answer alone, e.g. "neko".

`check_answer` is forgiving about form (full-width digits, spaces, case, quotes, trailing punctuation) and strict
about content: the *first* number, weekday or date in a reply must be the answer, so listing every candidate
earns nothing, and a text answer must appear in a reply that is not much longer than it and names none of the
record's `distractors` (the other items of a list question). Value answers also have a style, which the preference
data and the `preferred_reply` reward judge: the preferred reply is in the asker's language, and polite (です/ます)
when that is Japanese (`preferred_style`).

The generator of the built-in data (`tools/builtin_data`, a build tool) writes its SFT targets with these
definitions; nothing here imports it.

Run as (from Python):
    from chowa.answers import check_answer
    check_answer({"family": "arithmetic", "answer": "7", "lang": "ja"}, "答えは７です。")   # True
    # PPO: reward.function: chowa.answers:preferred_reply
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from chowa.data.text import JAPANESE
from chowa.errors import ChowaError
from chowa.tables import wilson_interval

WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS_JA = ("月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日")
MONTHS_EN = (
    "January February March April May June July August September October November December"
).split()

TEXT_FAMILIES = frozenset({"translate", "romaji", "kana", "number_words", "repeat", "list_item"})
# Answers that read the same in both languages (digits, ISO dates) or map one to one (weekdays): their replies
# have a style, judged by `preferred_style`.
VALUE_FAMILIES = frozenset({"arithmetic", "arithmetic_words", "counting", "weekday", "date", "unit"})
# A text answer may sit in a short sentence ("犬です。", 'It is "neko".') but not in an essay that lists guesses.
TEXT_SLACK = 24

_NUMBER = re.compile(r"(?<![0-9A-Za-z-])-?\d+|\d+")
_WEEKDAY = re.compile("|".join([*WEEKDAYS_EN, *(day.removesuffix("日") for day in WEEKDAYS_JA)]), re.IGNORECASE)
_DATE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})|(\d{4})年(\d{1,2})月(\d{1,2})日|(" + "|".join(MONTHS_EN) + r") (\d{1,2}), (\d{4})",
    re.IGNORECASE,
)
_KANJI_DIGITS_CLASS = "〇一二三四五六七八九十百千万"
_KANJI_DIGITS = frozenset(_KANJI_DIGITS_CLASS)
_EDGE_PUNCT = " \t\n.。、,!?!?「」『』\"'“”‘’()()"


_POLITE_END = re.compile(r"(です|ます|ました|でした|ません|ください|でしょう)(ね|よね|よ)?[。.!！?？\s]*$")


def is_polite(reply: str) -> bool:
    """Whether a Japanese reply ends in the です/ます form (a closing ね or よ allowed)."""
    return _POLITE_END.search(reply.strip()) is not None


def preferred_style(record: dict, reply: str) -> bool | None:
    """For value answers (`VALUE_FAMILIES`, `lang` en or ja): does the reply give a value of the answer's type
    (a number, weekday or date, right or wrong) in the asker's language, politely if Japanese? None for other
    records, whose form the task fixes (romaji is Latin whoever asks)."""
    if record.get("family") not in VALUE_FAMILIES or record.get("lang") not in ("en", "ja"):
        return None
    if _first_value(record["family"], normalize(reply)) is None:
        return False
    japanese = JAPANESE.search(reply) is not None
    if record["lang"] == "en":
        return not japanese
    return japanese and is_polite(reply)


def normalize(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII), digit-group commas dropped, whitespace collapsed, casefolded."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    return " ".join(text.split()).casefold()


def is_checkable(record: dict) -> bool:
    """Whether the record has a canonical answer (open-ended ones do not)."""
    return record.get("family") != "open" and isinstance(record.get("answer"), str)


def check_answer(record: dict, reply: str) -> bool:
    """Whether `reply` gives `record["answer"]`; raises ChowaError for a record without a canonical answer."""
    if not is_checkable(record):
        raise ChowaError(f"check_answer: record has no canonical 'answer' (family {record.get('family')!r})")
    answer, reply = normalize(record["answer"]), normalize(reply)
    family = record.get("family")
    if family in ("weekday", "date") or re.fullmatch(r"-?\d+", answer):
        expected = _first_value(family, answer)
        return expected is not None and _first_value(family, reply) == expected
    if any(_mentions(reply, normalize(d)) for d in record.get("distractors", ())):
        return False
    return _has_text(reply, answer)


def _first_value(family: str, text: str) -> int | datetime.date | None:
    """The first value of the family's type in normalized `text`: a weekday (its index), a date, or else a whole
    number; None when there is none."""
    if family == "weekday":
        return _first_weekday(text)
    if family == "date":
        return _first_date(text)
    found = _NUMBER.search(text)
    return None if found is None else int(found.group())


def _first_weekday(text: str) -> int | None:
    found = _WEEKDAY.search(text)
    if found is None:
        return None
    names = [day.casefold() for day in WEEKDAYS_EN] + [day.removesuffix("日") for day in WEEKDAYS_JA]
    return names.index(found.group().casefold()) % 7


def _first_date(text: str) -> datetime.date | None:
    found = _DATE.search(text)
    if found is None:
        return None
    groups = found.groups()
    try:
        if groups[0]:
            return datetime.date(int(groups[0]), int(groups[1]), int(groups[2]))
        if groups[3]:
            return datetime.date(int(groups[3]), int(groups[4]), int(groups[5]))
        month = [m.casefold() for m in MONTHS_EN].index(groups[6].casefold()) + 1
        return datetime.date(int(groups[8]), month, int(groups[7]))
    except ValueError:  # "2024-02-30" names no day
        return None


def _has_text(reply: str, answer: str) -> bool:
    answer, stripped = answer.strip(_EDGE_PUNCT), reply.strip(_EDGE_PUNCT)
    if not answer or len(stripped) > len(answer) + TEXT_SLACK:
        return False
    if len(answer) == 1 and "ぁ" <= answer <= "ヺ":  # one kana is inside most Japanese replies (は in 答えは7です)
        return stripped == answer or f"「{answer}」" in reply or f'"{answer}"' in reply
    return stripped == answer or _mentions(stripped, answer)


def _mentions(reply: str, answer: str) -> bool:
    """Whether `answer` stands in `reply` as a whole word (Latin), whole number (kanji digits) or substring."""
    if answer.isascii():
        # Latin answers must stand as whole words: "neko" is not inside "nekomata", nor "forty" in "forty-two".
        return re.search(rf"(?<![a-z'-]){re.escape(answer)}(?![a-z'-])", reply) is not None
    if set(answer) <= _KANJI_DIGITS:
        # Likewise 四十 must not be found inside 四十二.
        return re.search(rf"(?<![{_KANJI_DIGITS_CLASS}]){answer}(?![{_KANJI_DIGITS_CLASS}])", reply) is not None
    return answer in reply


# --- rule rewards (PPO's `reward.function`, compare's `rule:` judge) ---------------------------------------------

def checked_answer(samples: list[str], prompts: list[str], records: list[dict], **meta) -> list[float]:
    """1.0 when the reply gives the record's `answer` (`check_answer`), else 0.0.

    Open-ended records (no canonical answer) score 0.0 for every reply, so they add no signal; no length or
    format shaping is added, so the reward cannot be gamed by anything but the answer.
    """
    return [float(is_checkable(r) and check_answer(r, s)) for s, r in zip(samples, records, strict=True)]


def preferred_reply(samples: list[str], prompts: list[str], records: list[dict], **meta) -> list[float]:
    """The rule form of the built-in preference data: `checked_answer` (1.0 for the right answer) plus 1.0 when a
    reply to a number, weekday or date question gives such a value in the asker's language and, if that is
    Japanese, politely (`preferred_style`). Open-ended records score 0.0.
    """
    return [correct + float(bool(preferred_style(r, s)))
            for correct, s, r in zip(checked_answer(samples, prompts, records), samples, records, strict=True)]


# --- held-out grading ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grade:
    """How one reply did: None where the record has no canonical answer, or no style to judge."""

    family: str | None
    correct: bool | None
    preferred_style: bool | None


def grade(record: dict, reply: str) -> Grade:
    """The reply's grade against a prompt record (checkable or not)."""
    if not is_checkable(record):
        return Grade(record.get("family"), None, None)
    family = record.get("family") or ""  # a user's own checkable prompt may name no family
    return Grade(family, check_answer(record, reply), preferred_style(record, reply))


def summarize_grades(grades: list[Grade]) -> dict:
    """{"accuracy", "preferred_style", "by_family"}: shares over the graded replies (None where there are none)."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for g in grades:
        if g.correct is not None:
            hits[g.family].append(g.correct)
    every = [hit for family in hits.values() for hit in family]
    styles = [g.preferred_style for g in grades if g.preferred_style is not None]
    return {"accuracy": share(every), "accuracy_ci": wilson_interval(sum(every), len(every)), "checked": len(every),
            "preferred_style": share(styles), "preferred_style_ci": wilson_interval(sum(styles), len(styles)),
            "styled": len(styles), "by_family": {family: share(h) for family, h in sorted(hits.items())}}


def share(flags: list[bool]) -> float | None:
    """The share of True, to four places; None for no flags."""
    return round(sum(flags) / len(flags), 4) if flags else None
