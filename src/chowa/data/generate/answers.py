"""The answer format of chowa's checkable tasks: how an answer is written into an output, and how a reply is judged.

One module owns both sides so the SFT targets and the rule-based reward (PPO, held-out accuracy) cannot drift:

- value answers (numbers, weekdays, dates): English "The answer is 7." and Japanese "答えは7です。";
- text answers (translations, romaji, kana, number words, ...): the answer alone, e.g. "neko" or "犬".

Value answers also have a style, which the preference data and the `preferred_reply` PPO reward judge: the
preferred reply is in the asker's language, and polite (です/ます) when that is Japanese (`preferred_style`). The SFT
data mixes styles, as crowd-written instruction data does (`styled_output`), so alignment has something to fix.

`check_answer` is forgiving about form (full-width digits, spaces, case, quotes, trailing punctuation) and strict
about content: the *first* number, weekday or date in a reply must be the answer, so listing every candidate
earns nothing, and a text answer must appear in a reply that is not much longer than it and names none of the
record's `distractors` (the other items of a list question).

Run as (from Python):
    from chowa.data.generate.answers import check_answer
    check_answer({"family": "arithmetic", "answer": "7", "lang": "ja"}, "答えは７です。")   # True
"""

from __future__ import annotations

import datetime
import random
import re
import unicodedata

from chowa.data.generate.world import MONTHS_EN, WEEKDAYS_EN, WEEKDAYS_JA
from chowa.data.text import JAPANESE
from chowa.errors import ChowaError

TEXT_FAMILIES = frozenset({"translate", "romaji", "kana", "number_words", "repeat", "list_item"})
# Answers that read the same in both languages (digits, ISO dates) or map one to one (weekdays): their replies
# have a style, judged by `preferred_style`.
VALUE_FAMILIES = frozenset({"arithmetic", "arithmetic_words", "counting", "weekday", "date", "unit"})
POLITE_VALUE = ("答えは{}です。", "{}です。", "答えは{}になります。", "{}だと思います。")
CURT_VALUE = ("答えは{}だ。", "{}だよ。", "{}。", "答えは{}。簡単だろ。", "{}に決まってる。")
# How the SFT data's value answers are written: in the other language 1 time in 4; Japanese ones curt 2 times in 3
# of the rest (one of five curt templates each time). So a Japanese question gets the preferred reply 1 time in 4,
# an English one 3 times in 4; the preferred form is still the single most common Japanese reply, so greedy
# decoding mostly picks it and sampling shows the mixture.
OTHER_LANGUAGE_SHARE, CURT_SHARE = 0.25, 2 / 3
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
