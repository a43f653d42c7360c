"""The small consistent "world" both the corpus and the instruction data describe.

Numbers in words (English, British "and") and kanji numerals, weekdays, Hepburn romaji for kana, and unit
conversions. Everything here is pure and deterministic so the corpus states exactly the facts the SFT answers use.

Run as (from Python):
    from tools.builtin_data.world import en_number, ja_number, romaji
    en_number(105), ja_number(3021), romaji("きって")   # 'one hundred and five', '三千二十一', 'kitte'
"""

from __future__ import annotations

import datetime
import re

from chowa.answers import MONTHS_EN, WEEKDAYS_EN, WEEKDAYS_JA

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_JA_DIGITS = "〇一二三四五六七八九"


def en_number(n: int) -> str:
    """English words for 0 <= n < 1,000,000, British style: 105 -> 'one hundred and five'."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"en_number supports 0..999999, got {n}")
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_EN_ONES[hundreds]} hundred" + (f" and {en_number(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    head = f"{en_number(thousands)} thousand"
    if not rest:
        return head
    return head + (" and " if rest < 100 else " ") + en_number(rest)


def _ja_below_10000(n: int) -> str:
    words = []
    for value, mark in ((1000, "千"), (100, "百"), (10, "十")):
        digit, n = divmod(n, value)
        # Japanese drops the 一 before 千, 百 and 十 (千, not 一千), but keeps it before 万.
        if digit:
            words.append(("" if digit == 1 else _JA_DIGITS[digit]) + mark)
    if n:
        words.append(_JA_DIGITS[n])
    return "".join(words)


def ja_number(n: int) -> str:
    """Kanji numerals for 0 <= n < 100,000,000: 3021 -> '三千二十一', 10000 -> '一万'."""
    if not 0 <= n < 100_000_000:
        raise ValueError(f"ja_number supports 0..99999999, got {n}")
    if n == 0:
        return "〇"
    man, rest = divmod(n, 10_000)
    return (f"{_ja_below_10000(man) or ''}万" if man else "") + _ja_below_10000(rest)


def weekday(day: datetime.date, lang: str) -> str:
    """The weekday name of `day` in 'en' or 'ja'."""
    return (WEEKDAYS_EN if lang == "en" else WEEKDAYS_JA)[day.weekday()]


def date_text(day: datetime.date, lang: str) -> str:
    """'May 3, 2024' or '2024年5月3日': the one way each language writes a date in this data."""
    if lang == "en":
        return f"{MONTHS_EN[day.month - 1]} {day.day}, {day.year}"
    return f"{day.year}年{day.month}月{day.day}日"


# Hepburn (revised) for the basic syllables; を is "o" as in Hepburn, not the wapuro "wo".
_KANA_ROWS = """
あa いi うu えe おo かka きki くku けke こko さsa しshi すsu せse そso たta ちchi つtsu てte とto
なna にni ぬnu ねne のno はha ひhi ふfu へhe ほho まma みmi むmu めme もmo やya ゆyu よyo
らra りri るru れre ろro わwa をo んn がga ぎgi ぐgu げge ごgo ざza じji ずzu ぜze ぞzo
だda ぢji づzu でde どdo ばba びbi ぶbu べbe ぼbo ぱpa ぴpi ぷpu ぺpe ぽpo
きゃkya きゅkyu きょkyo しゃsha しゅshu しょsho ちゃcha ちゅchu ちょcho にゃnya にゅnyu にょnyo
ひゃhya ひゅhyu ひょhyo みゃmya みゅmyu みょmyo りゃrya りゅryu りょryo ぎゃgya ぎゅgyu ぎょgyo
じゃja じゅju じょjo びゃbya びゅbyu びょbyo ぴゃpya ぴゅpyu ぴょpyo
"""
KANA_TABLE: tuple[tuple[str, str], ...] = tuple(re.findall(r"([ぁ-ゖ]+)([a-z]+)", _KANA_ROWS))
_ROMAJI = dict(KANA_TABLE)


def to_hiragana(text: str) -> str:
    """Katakana folded to hiragana (the long-vowel mark ー is kept)."""
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


def to_katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text)


def romaji(kana: str) -> str:
    """Hepburn romaji without macrons: long vowels are spelled as the kana spell them (とうきょう -> toukyou),
    ー repeats the vowel before it, っ doubles the next consonant (っち -> tchi), ん before a vowel or y is n'."""
    kana, out, i = to_hiragana(kana), [], 0
    while i < len(kana):
        if kana[i] == "っ":
            nxt = romaji(kana[i + 1 : i + 3]) or "t"
            out.append("t" if nxt.startswith("ch") else nxt[0])
            i += 1
            continue
        if kana[i] == "ー":
            out.append(next((c for c in reversed("".join(out)) if c in "aeiou"), ""))
            i += 1
            continue
        pair = kana[i : i + 2]
        syllable = _ROMAJI.get(pair) if len(pair) == 2 else None
        if syllable is None:
            syllable = _ROMAJI.get(kana[i])
            if syllable is None:
                raise ValueError(f"romaji: no Hepburn spelling for {kana[i]!r} in {kana!r}")
            i += 1
        else:
            i += 2
        if syllable == "n" and i < len(kana) and (_ROMAJI.get(kana[i], "x")[0] in "aeiouy"):
            syllable = "n'"
        out.append(syllable)
    return "".join(out)


# (English singular, English plural, Japanese, size of one big unit in small units) pairs of (big, small) units.
UNITS: tuple[tuple[tuple[str, str, str], tuple[str, str, str], int], ...] = (
    (("metre", "metres", "メートル"), ("centimetre", "centimetres", "センチメートル"), 100),
    (("kilometre", "kilometres", "キロメートル"), ("metre", "metres", "メートル"), 1000),
    (("centimetre", "centimetres", "センチメートル"), ("millimetre", "millimetres", "ミリメートル"), 10),
    (("kilogram", "kilograms", "キログラム"), ("gram", "grams", "グラム"), 1000),
    (("litre", "litres", "リットル"), ("millilitre", "millilitres", "ミリリットル"), 1000),
    (("hour", "hours", "時間"), ("minute", "minutes", "分"), 60),
    (("minute", "minutes", "分"), ("second", "seconds", "秒"), 60),
    (("day", "days", "日"), ("hour", "hours", "時間"), 24),
    (("week", "weeks", "週間"), ("day", "days", "日"), 7),
    (("year", "years", "年"), ("month", "months", "か月"), 12),
)


def en_quantity(n: int, unit: tuple[str, str, str]) -> str:
    """'1 metre', '3 metres'."""
    return f"{n} {unit[0] if n == 1 else unit[1]}"
