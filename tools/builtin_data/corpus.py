"""The built-in pretraining corpus: hand-written prose plus generated facts about chowa's small world.

`ja.txt` and `en.txt` hold one document per line; `docs.jsonl` holds multi-line documents (tables with tabs,
recipes, letters) as `{"text": ...}` records. The generated facts (number words, sums, weekdays, kana and romaji,
unit conversions, glossary sentence pairs) are the same facts the SFT tasks ask about, stated in the same
phrasings, so a tiny model pretrained on this for minutes has something SFT and PPO can sharpen measurably.

Run as (from Python):
    from tools.builtin_data.corpus import build_corpus
    files = build_corpus()   # {"corpus/en.txt": "...", ...}
"""

from __future__ import annotations

import datetime
import json
import random

from tools.builtin_data.glossary import CATEGORIES_JA, COLOURS, GLOSSARY, SENTENCE_NOUNS
from tools.builtin_data.prose import DOCS, EN_PROSE, JA_PROSE
from tools.builtin_data.world import (
    KANA_TABLE,
    UNITS,
    WEEKDAYS_EN,
    WEEKDAYS_JA,
    date_text,
    en_number,
    en_quantity,
    ja_number,
    romaji,
    to_katakana,
    weekday,
)

NAMES = (("Ken", "健"), ("Yuki", "由紀"), ("Hana", "花"), ("Taro", "太郎"), ("Mia", "ミア"), ("Sam", "サム"))
FIRST_DAY, LAST_DAY = datetime.date(2020, 1, 1), datetime.date(2030, 12, 31)


def random_date(rng: random.Random) -> datetime.date:
    return FIRST_DAY + datetime.timedelta(days=rng.randrange((LAST_DAY - FIRST_DAY).days + 1))


def arithmetic_fact(rng: random.Random) -> tuple[int, str, int, int]:
    """(a, op, b, result) with op in + - × ÷ and small whole-number results."""
    op = rng.choice("+-×÷")
    if op == "×":
        a, b = rng.randint(0, 12), rng.randint(0, 12)
        return a, op, b, a * b
    if op == "÷":
        b, result = rng.randint(1, 12), rng.randint(0, 12)
        return b * result, op, b, result
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b, a + b if op == "+" else a - b


EN_OPS = {"+": "plus", "-": "minus", "×": "times", "÷": "divided by"}
JA_OPS = {"+": "たす", "-": "ひく", "×": "かける", "÷": "わる"}


def en_arithmetic(a: int, op: str, b: int, result: int, style: int) -> str:
    if style == 0:
        return f"{a} {EN_OPS[op]} {b} is {result}."
    if style == 1:
        return f"{en_number(a).capitalize()} {EN_OPS[op]} {en_number(b)} is {en_number(result)}."
    if style == 2:
        return f"{a} {op.replace('×', '*').replace('÷', '/')} {b} = {result}."
    return f"Q: What is {a} {EN_OPS[op]} {b}? A: {result}."


def ja_arithmetic(a: int, op: str, b: int, result: int, style: int) -> str:
    if style == 0:
        return f"{a}{JA_OPS[op]}{b}は{result}です。"
    if style == 1:
        return f"{ja_number(a)}{JA_OPS[op]}{ja_number(b)}は{ja_number(result)}。"
    if style == 2:
        return f"{a} {op} {b} = {result}。"
    return f"問:{a}{JA_OPS[op]}{b}はいくつですか。答:{result}です。"


def _number_lines(lang: str) -> list[str]:
    lines = []
    for start in range(0, 1000, 10):
        if lang == "en":
            parts = [f"{n} is {en_number(n)}" for n in range(start, start + 10)]
            lines.append(f"Numbers from {start} to {start + 9}: " + "; ".join(parts) + ".")
        else:
            parts = [f"{n}は{ja_number(n)}" for n in range(start, start + 10)]
            lines.append(f"{start}から{start + 9}までの数を漢数字で書きます。" + "、".join(parts) + "です。")
    rng = random.Random(f"big-numbers-{lang}")
    for _ in range(60):
        numbers = [rng.randrange(1000, 1_000_000) for _ in range(4)]
        if lang == "en":
            lines.append(" ".join(f"The number {n} is written {en_number(n)}." for n in numbers))
        else:
            lines.append("".join(f"{n}を漢数字で書くと{ja_number(n)}になる。" for n in numbers))
    return lines


def _arithmetic_lines(lang: str, count: int) -> list[str]:
    rng = random.Random(f"arithmetic-{lang}")
    render, sep = (en_arithmetic, " ") if lang == "en" else (ja_arithmetic, "")
    return [sep.join(render(*arithmetic_fact(rng), rng.randrange(4)) for _ in range(8)) for _ in range(count)]


def _date_lines(lang: str, count: int) -> list[str]:
    rng = random.Random(f"dates-{lang}")
    lines = []
    for _ in range(count):
        day = random_date(rng)
        later = day + datetime.timedelta(days=rng.randint(1, 30))
        gap = (later - day).days
        if lang == "en":
            lines.append(
                f"{date_text(day, 'en')} is a {weekday(day, 'en')}. The next day is a "
                f"{weekday(day + datetime.timedelta(days=1), 'en')}. {gap} days after {date_text(day, 'en')} is "
                f"{date_text(later, 'en')}, a {weekday(later, 'en')}. In digits it is {later.isoformat()}."
            )
        else:
            lines.append(
                f"{date_text(day, 'ja')}は{weekday(day, 'ja')}です。次の日は"
                f"{weekday(day + datetime.timedelta(days=1), 'ja')}です。{date_text(day, 'ja')}の{gap}日後は"
                f"{date_text(later, 'ja')}で、{weekday(later, 'ja')}だ。数字で書くと{later.isoformat()}。"
            )
    days_en = ", ".join(WEEKDAYS_EN)
    lines.append(f"The seven days of the week are {days_en}. After Sunday comes Monday again.")
    lines.append(f"一週間は{'、'.join(WEEKDAYS_JA)}の七日です。日曜日の次はまた月曜日です。")
    for i in range(7):
        after, before = (i + 1) % 7, (i - 1) % 7
        lines.append(
            f"The day after {WEEKDAYS_EN[i]} is {WEEKDAYS_EN[after]}, and the day before it is {WEEKDAYS_EN[before]}."
            if lang == "en"
            else f"{WEEKDAYS_JA[i]}の次の日は{WEEKDAYS_JA[after]}で、前の日は{WEEKDAYS_JA[before]}です。"
        )
    return lines


def _counting_lines(lang: str) -> list[str]:
    rng = random.Random(f"counting-{lang}")
    lines = []
    for word in GLOSSARY:
        if lang == "en":
            letters = "-".join(word.en.replace(" ", ""))
            lines.append(f'The word "{word.en}" has {len(word.en.replace(" ", ""))} letters: {letters}.')
        else:
            lines.append(f"「{word.reading}」は{len(word.reading)}文字です。「{word.ja}」は{len(word.ja)}文字だ。")
    for _ in range(120):
        items = [rng.choice(SENTENCE_NOUNS) for _ in range(rng.randint(2, 9))]
        target = rng.choice(items)
        hits = sum(item is target for item in items)
        if lang == "en":
            listed = ", ".join(item.en for item in items)
            times = "once" if hits == 1 else f"{hits} times"
            lines.append(f"List: {listed}. There are {len(items)} items, and {target.en} appears {times}.")
        else:
            listed = "、".join(item.ja for item in items)
            lines.append(f"リスト:{listed}。全部で{len(items)}個あり、{target.ja}は{hits}回出てきます。")
    return lines


def _kana_lines(lang: str) -> list[str]:
    lines = []
    for i in range(0, len(KANA_TABLE), 5):
        row = KANA_TABLE[i : i + 5]
        if lang == "en":
            facts = [f"The hiragana {k} (katakana {to_katakana(k)}) is written {r} in romaji." for k, r in row]
            lines.append(" ".join(facts))
        else:
            facts = [f"ひらがなの「{k}」はカタカナで「{to_katakana(k)}」、ローマ字で{r}と書きます。" for k, r in row]
            lines.append("".join(facts))
    for word in GLOSSARY:
        if lang == "en":
            spelled = romaji(word.reading)
            lines.append(f"The Japanese word {word.ja} is read {word.reading}, which is {spelled} in romaji.")
        else:
            lines.append(f"「{word.ja}」の読み方は「{word.reading}」で、ローマ字では{romaji(word.reading)}と書く。")
    return lines


def _unit_lines(lang: str) -> list[str]:
    lines = []
    for big, small, factor in UNITS:
        if lang == "en":
            facts = [f"{en_quantity(n, big)} is {en_quantity(n * factor, small)}." for n in range(1, 13)]
        else:
            facts = [f"{n}{big[2]}は{n * factor}{small[2]}です。" for n in range(1, 13)]
        lines.append(" ".join(facts) if lang == "en" else "".join(facts))
    return lines


def translation_pairs(rng: random.Random) -> list[tuple[str, str]]:
    """(English, Japanese) sentence pairs built from the glossary; the SFT translation tasks use the same builders."""
    pairs = []
    for noun in SENTENCE_NOUNS:
        colour = rng.choice(COLOURS)
        pairs.append((f"This is {noun.en_with_article}.", f"これは{noun.ja}です。"))
        pairs.append((f"The {noun.en} is {colour.en}.", f"その{noun.ja}は{colour.ja_predicate}です。"))
        pairs.append((f"Where is the {noun.en}?", f"{noun.ja}はどこですか。"))
    return pairs


def _glossary_lines(lang: str) -> list[str]:
    lines = []
    for word in GLOSSARY:
        if lang == "en":
            lines.append(f'In Japanese, "{word.en}" is {word.ja} ({word.reading}, {romaji(word.reading)}).')
        else:
            lines.append(f"「{word.ja}」は英語で{word.en}と言います。{CATEGORIES_JA[word.category]}の言葉だ。")
    pairs = translation_pairs(random.Random(f"pairs-{lang}"))
    for i in range(0, len(pairs), 4):
        if lang == "en":
            lines.append(" ".join(f"{en} In Japanese: {ja}" for en, ja in pairs[i : i + 4]))
        else:
            lines.append("".join(f"{ja}英語では「{en}」。" for en, ja in pairs[i : i + 4]))
    return lines


def _story_lines(lang: str, count: int) -> list[str]:
    rng = random.Random(f"stories-{lang}")
    # Places where one could plausibly buy food.
    places = [w for w in GLOSSARY if w.en in ("shop", "station", "restaurant", "town", "airport", "beach", "park")]
    foods = [w for w in SENTENCE_NOUNS if w.category == "food"]
    lines = []
    for _ in range(count):
        (en_name, ja_name), place, food = rng.choice(NAMES), rng.choice(places), rng.choice(foods)
        day, bought, eaten = rng.randrange(7), rng.randint(2, 9), rng.randint(1, 2)
        if lang == "en":
            lines.append(
                f"On {WEEKDAYS_EN[day]}, {en_name} went to the {place.en} and bought {en_number(bought)} "
                f"{plural(food.en)}. {en_name} ate {en_number(eaten)}, so {bought - eaten} were left."
            )
        elif rng.random() < 0.5:
            lines.append(
                f"{WEEKDAYS_JA[day]}に、{ja_name}は{place.ja}へ行って{food.ja}を{bought}つ買いました。"
                f"{eaten}つ食べたので、残りは{bought - eaten}つです。"
            )
        else:
            lines.append(
                f"{WEEKDAYS_JA[day]}、{ja_name}は{place.ja}に行き、{food.ja}を{ja_number(bought)}つ買った。"
                f"{ja_number(eaten)}つ食べたから、残りは{ja_number(bought - eaten)}つだ。"
            )
    return lines


def plural(noun: str) -> str:
    """English plural of the glossary's countable food and object nouns (no irregular ones among them)."""
    if noun.endswith("y"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("o", "ch", "x", "s")) else "s")


def _lines(lang: str) -> list[str]:
    prose = EN_PROSE if lang == "en" else JA_PROSE
    sections = [
        _number_lines(lang), _arithmetic_lines(lang, 260), _date_lines(lang, 260), _counting_lines(lang),
        _kana_lines(lang), _unit_lines(lang), _glossary_lines(lang), _story_lines(lang, 200),
    ]
    lines = [line for section in sections for line in section]
    # Interleave facts with prose (prose repeated) so no stretch of the file is one template only.
    random.Random(f"order-{lang}").shuffle(lines)
    step = max(1, len(lines) // (3 * len(prose)))
    for i, paragraph in enumerate(prose * 3):
        lines.insert(min(len(lines), i * (step + 1)), paragraph)
    return lines


def _table_docs() -> list[str]:
    docs = []
    for a in range(1, 10):
        rows = [f"{a} × {b}\t= {a * b}\t{ja_number(a)}{ja_number(b)}が{ja_number(a * b)}" for b in range(1, 10)]
        docs.append(f"{a}の段(九九)\n" + "\n".join(rows))
        rows = [f"  {a} times {b}\tis {a * b}" for b in range(1, 13)]
        docs.append(f"Times table for {a}\n" + "\n".join(rows))
    for first in range(0, len(KANA_TABLE), 15):
        rows = [f"{k}\t{to_katakana(k)}\t{r}" for k, r in KANA_TABLE[first : first + 15]]
        docs.append("hiragana\tkatakana\tromaji\n" + "\n".join(rows))
    for category, name_ja in CATEGORIES_JA.items():
        rows = [f"\t{w.en}\t{w.ja}\t{w.reading}\t{romaji(w.reading)}" for w in GLOSSARY if w.category == category]
        docs.append(f"Glossary: {category} / 単語帳:{name_ja}\n" + "\n".join(rows))
    for year, month in ((2024, 5), (2025, 1), (2025, 9), (2026, 2), (2026, 11)):
        docs.append(_calendar(year, month))
    return docs


def _calendar(year: int, month: int) -> str:
    first = datetime.date(year, month, 1)
    lines = [f"{year}年{month}月 / {first.strftime('%B')} {year}", "月\t火\t水\t木\t金\t土\t日"]
    cells = [""] * first.weekday()
    day = first
    while day.month == month:
        cells.append(str(day.day))
        day += datetime.timedelta(days=1)
    lines += ["\t".join(cells[i : i + 7]) for i in range(0, len(cells), 7)]
    return "\n".join(lines)


def _dialogue_docs(count: int) -> list[str]:
    rng = random.Random("dialogues")
    docs = []
    for _ in range(count):
        lines = []
        for _ in range(4):
            fact = arithmetic_fact(rng)
            a, op, b, result = fact
            if rng.random() < 0.5:
                lines += [f"A: What is {a} {EN_OPS[op]} {b}?", f"B: {result}."]
            else:
                lines += [f"A: {a}{JA_OPS[op]}{b}はいくつですか。", f"B: {result}です。"]
        docs.append("\n".join(lines))
    return docs


def build_corpus() -> dict[str, str]:
    """Every corpus file's relative path (under the builtin folder) and its exact text."""
    docs = list(DOCS) + _table_docs() + _dialogue_docs(120)
    return {
        "corpus/en.txt": "\n".join(_lines("en")) + "\n",
        "corpus/ja.txt": "\n".join(_lines("ja")) + "\n",
        "corpus/docs.jsonl": "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs),
    }
