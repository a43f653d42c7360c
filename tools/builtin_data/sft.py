"""The built-in instruction data (Alpaca JSONL) for SFT, with a held-out split for accuracy and PPO prompts.

Families with checkable answers: arithmetic (digits), arithmetic_words (operands in words), number_words (digits to
words and back), counting, weekday, date, romaji, kana, unit, translate, repeat (say a word back) and list_item (the
first or last item of a list; its record also names the other items as `distractors`, which a right reply must not
give); plus hand-written `open` ones. Repeat and list_item need reading, not knowledge (a model that can copy
from its context answers them; the tiny preset, trained for minutes, does not yet), so their held-out questions
measure that ability apart from memorised facts. Records are
`{"instruction", "input", "output", "family", "answer", "lang"}` (open ones have no `answer`); `lang` is the
language of the question. Outputs follow `answers.format_output` ("The answer is 7." / "答えは7です。" for numbers,
weekdays and ISO dates, YYYY-MM-DD in both languages; the bare answer for text families), except that value answers
are drawn in mixed styles (`answers.styled_output`): a quarter in the other language, two thirds of the remaining
Japanese ones curt (答えは7だ。). Every output still gives the right answer; which style is preferred is the preference
data's business.

Held-out records ask about facts (a sum, a date, a word) that no training record asks about in any phrasing.

Run as (from Python):
    from tools.builtin_data.sft import build_records
    train, heldout = build_records()
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
from collections.abc import Callable, Iterator

from tools.builtin_data.answers import format_output, styled_output
from tools.builtin_data.corpus import EN_OPS, JA_OPS, arithmetic_fact, random_date, translation_pairs
from tools.builtin_data.glossary import GLOSSARY, SENTENCE_NOUNS
from tools.builtin_data.open_ended import OPEN_ENDED
from tools.builtin_data.world import KANA_TABLE, UNITS, date_text, en_number, en_quantity, ja_number, romaji, weekday

TRAIN_PER_GROUP, HELDOUT_PER_GROUP = 50, 10  # per (family, lang)
# Reading families need many varied examples, or a tiny model memorises answers instead of learning to copy.
TRAIN_PER_FAMILY = {"repeat": 100, "list_item": 100}
OPEN_HELDOUT_PER_LANG = 5
Keyed = Iterator[tuple[object, dict]]


def _record(family: str, lang: str, instruction: str, answer: object, input_: str = "") -> dict:
    answer = str(answer)
    return {
        "instruction": instruction, "input": input_, "output": format_output(family, answer, lang),
        "family": family, "answer": answer, "lang": lang,
    }


def _arithmetic(rng: random.Random, lang: str) -> Keyed:
    while True:
        a, op, b, result = fact = arithmetic_fact(rng)
        sym, style = op.replace("×", "*").replace("÷", "/"), rng.randrange(3)
        if lang == "en":
            instruction, input_ = [
                (f"What is {a} {EN_OPS[op]} {b}?", ""), ("Calculate.", f"{a} {sym} {b}"),
                (f"Compute {a} {sym} {b}.", ""),
            ][style]
        else:
            instruction, input_ = [
                (f"{a}{JA_OPS[op]}{b}はいくつですか。", ""), ("次の計算をしてください。", f"{a} {op} {b}"),
                (f"{a} {op} {b} を計算して。", ""),
            ][style]
        yield fact, _record("arithmetic", lang, instruction, result, input_)


def _arithmetic_words(rng: random.Random, lang: str) -> Keyed:
    while True:
        a, op, b, result = fact = arithmetic_fact(rng)
        if lang == "en":
            instruction = f"What is {en_number(a)} {EN_OPS[op]} {en_number(b)}? Answer in digits."
        else:
            instruction = f"{ja_number(a)}{JA_OPS[op]}{ja_number(b)}はいくつですか。数字で答えてください。"
        yield fact, _record("arithmetic_words", lang, instruction, result)


def _number_words(rng: random.Random, lang: str) -> Keyed:
    while True:
        n = rng.randrange(1000) if rng.random() < 0.8 else rng.randrange(1000, 100_000)
        to_words = rng.random() < 0.6
        words = en_number(n) if lang == "en" else ja_number(n)
        if to_words:
            instruction = f"Write {n} in English words." if lang == "en" else f"{n}を漢数字で書いてください。"
            yield (n, to_words), _record("number_words", lang, instruction, words)
        else:
            instruction = f'Write "{words}" in digits.' if lang == "en" else f"「{words}」を数字で書いてください。"
            yield (n, to_words), _record("number_words", lang, instruction, n)


def _counting(rng: random.Random, lang: str) -> Keyed:
    while True:
        kind = rng.randrange(3)
        if kind == 0:
            word = rng.choice(GLOSSARY)
            text = word.en if lang == "en" else word.reading
            if " " in text:
                continue
            instruction = f'How many letters are in the word "{text}"?' if lang == "en" else f"「{text}」は何文字?"
            yield text, _record("counting", lang, instruction, len(text))
            continue
        items = tuple(rng.choice(SENTENCE_NOUNS) for _ in range(rng.randint(2, 8)))
        listed = (", " if lang == "en" else "、").join(w.en if lang == "en" else w.ja for w in items)
        if kind == 1:
            instruction = "How many items are in this list?" if lang == "en" else "リストの項目はいくつですか。"
            yield listed, _record("counting", lang, instruction, len(items), listed)
        else:
            target = rng.choice(items)
            name = target.en if lang == "en" else target.ja
            instruction = f'How many times does "{name}" appear in this list?' if lang == "en" else (
                f"このリストに「{name}」は何回出てきますか。"
            )
            yield (listed, name), _record("counting", lang, instruction, items.count(target), listed)


def _weekday(rng: random.Random, lang: str) -> Keyed:
    while True:
        day = random_date(rng)
        written = day.isoformat() if rng.random() < 0.5 else date_text(day, lang)
        instruction = f"What day of the week is {written}?" if lang == "en" else f"{written}は何曜日ですか。"
        yield day, _record("weekday", lang, instruction, weekday(day, lang))


def _date(rng: random.Random, lang: str) -> Keyed:
    while True:
        day, gap = random_date(rng), rng.randint(1, 40)
        later = (day + datetime.timedelta(days=gap)).isoformat()
        if lang == "en":
            instruction = f"What date is {gap} days after {day.isoformat()}? Answer as YYYY-MM-DD."
        else:
            instruction = f"{date_text(day, 'ja')}の{gap}日後は何日ですか。YYYY-MM-DDの形で答えてください。"
        yield (day, gap), _record("date", lang, instruction, later)


def _kana_items() -> list[tuple[str, str]]:
    """(kana as shown, hiragana) for single syllables and glossary readings; katakana words are shown in katakana."""
    items = [(kana, kana) for kana, _ in KANA_TABLE]
    for word in GLOSSARY:
        is_katakana = all("ァ" <= c <= "ヶ" or c == "ー" for c in word.ja)
        items.append((word.ja if is_katakana else word.reading, word.reading))
    return items


def _romaji(rng: random.Random, lang: str) -> Keyed:
    items = _kana_items()
    while True:
        shown, reading = rng.choice(items)
        instruction = f'Write "{shown}" in romaji.' if lang == "en" else f"「{shown}」をローマ字で書いてください。"
        yield shown, _record("romaji", lang, instruction, romaji(reading))


def _kana(rng: random.Random, lang: str) -> Keyed:
    # Hepburn spells ぢ/じ, づ/ず and を/お alike; only romaji with one hiragana spelling make fair questions.
    spellings: dict[str, set[str]] = {}
    for _, reading in _kana_items():
        spellings.setdefault(romaji(reading), set()).add(reading)
    unique = sorted((spelled, kana.pop()) for spelled, kana in spellings.items() if len(kana) == 1)
    while True:
        spelled, kana = rng.choice(unique)
        instruction = f'Write "{spelled}" in hiragana.' if lang == "en" else f"「{spelled}」をひらがなで書いて。"
        yield spelled, _record("kana", lang, instruction, kana)


def _unit(rng: random.Random, lang: str) -> Keyed:
    while True:
        big, small, factor = rng.choice(UNITS)
        n = rng.randint(1, 30)
        if lang == "en":
            instruction = rng.choice([f"How many {small[1]} are in {en_quantity(n, big)}?",
                                      f"Convert {en_quantity(n, big)} to {small[1]}."])
        else:
            instruction = rng.choice([f"{n}{big[2]}は何{small[2]}ですか。", f"{n}{big[2]}を{small[2]}にして。"])
        yield (big, n), _record("unit", lang, instruction, n * factor)


def _translate(rng: random.Random, lang: str) -> Keyed:
    pairs = translation_pairs(random.Random("pairs-en")) + translation_pairs(random.Random("pairs-ja"))
    while True:
        if rng.random() < 0.5:
            word = rng.choice(GLOSSARY)
            to_ja = rng.random() < 0.5
            if lang == "en":
                instruction = f'Translate "{word.en}" into Japanese.' if to_ja else (
                    f'What does "{word.ja}" mean in English?'
                )
            else:
                instruction = f"「{word.en}」を日本語にして。" if to_ja else f"「{word.ja}」を英語に訳してください。"
            yield (word.en, to_ja), _record("translate", lang, instruction, word.ja if to_ja else word.en)
            continue
        en, ja = rng.choice(pairs)
        if lang == "en":
            yield (en, ja), _record("translate", lang, "Translate into Japanese.", ja, en)
        else:
            yield (en, ja), _record("translate", lang, "次の文を英語に訳してください。", en, ja)


def _repeat(rng: random.Random, lang: str) -> Keyed:
    # Mostly made-up words (2-4 random syllables), so the only way to answer is to copy: a glossary word could be
    # answered from memory.
    syllables = [kana for kana, _ in KANA_TABLE if len(kana) == 1]
    while True:
        if rng.random() < 0.25:
            word = rng.choice(GLOSSARY)
            text = word.en if lang == "en" else word.ja
        else:
            kana = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
            text = romaji(kana) if lang == "en" else kana
        style = rng.randrange(2)
        if lang == "en":
            instruction = [f'Repeat this word: "{text}"', f'Say "{text}" back to me.'][style]
        else:
            instruction = [f"「{text}」と繰り返してください。", f"「{text}」をそのまま書いて。"][style]
        yield text, _record("repeat", lang, instruction, text)


def _list_item(rng: random.Random, lang: str) -> Keyed:
    while True:
        names = [w.en if lang == "en" else w.ja for w in rng.sample(SENTENCE_NOUNS, rng.randint(3, 6))]
        if any(a in b for a, b in itertools.permutations(names, 2)):  # distinct, none inside another (鳥, 鳥かご)
            continue
        first = rng.random() < 0.5
        if lang == "en":
            instruction = f"What is the {'first' if first else 'last'} item in this list?"
        else:
            instruction = f"このリストの{'最初' if first else '最後'}の項目は何ですか。"
        answer = names[0] if first else names[-1]
        record = _record("list_item", lang, instruction, answer, (", " if lang == "en" else "、").join(names))
        record["distractors"] = [name for name in names if name != answer]
        yield (tuple(names), first), record


FAMILIES: dict[str, Callable[[random.Random, str], Keyed]] = {
    "arithmetic": _arithmetic, "arithmetic_words": _arithmetic_words, "number_words": _number_words,
    "counting": _counting, "weekday": _weekday, "date": _date, "romaji": _romaji, "kana": _kana, "unit": _unit,
    "translate": _translate, "repeat": _repeat, "list_item": _list_item,
}


def _group(family: str, lang: str, seen_prompts: set[tuple[str, str]]) -> list[dict]:
    """HELDOUT + TRAIN records of one family and language, each about a different fact and prompt."""
    rng, seen_keys, records = random.Random(f"sft-{family}-{lang}"), set(), []
    style_rng = random.Random(f"sft-style-{family}-{lang}")
    for key, record in FAMILIES[family](rng, lang):
        prompt = (record["instruction"], record["input"])
        if key in seen_keys or prompt in seen_prompts:
            continue
        seen_keys.add(key)
        seen_prompts.add(prompt)
        record["output"] = styled_output(record, style_rng)
        records.append(record)
        if len(records) == HELDOUT_PER_GROUP + TRAIN_PER_FAMILY.get(family, TRAIN_PER_GROUP):
            return records
    raise AssertionError("unreachable: the generators are endless")


def build_records() -> tuple[list[dict], list[dict]]:
    """(train, heldout) lists of records, in a fixed order."""
    train, heldout, seen_prompts = [], [], set()
    for family in FAMILIES:
        for lang in ("en", "ja"):
            records = _group(family, lang, seen_prompts)
            heldout += records[:HELDOUT_PER_GROUP]
            train += records[HELDOUT_PER_GROUP:]
    for lang in ("en", "ja"):
        opens = [
            {"instruction": instruction, "input": input_, "output": output, "family": "open", "lang": lang}
            for record_lang, instruction, input_, output in OPEN_ENDED
            if record_lang == lang
        ]
        heldout += opens[:OPEN_HELDOUT_PER_LANG]
        train += opens[OPEN_HELDOUT_PER_LANG:]
    random.Random("sft-order").shuffle(train)
    return train, heldout


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def build_sft() -> dict[str, str]:
    """The SFT files' paths relative to the builtin folder, and their exact text."""
    train, heldout = build_records()
    return {"sft/train.jsonl": _jsonl(train), "sft/heldout.jsonl": _jsonl(heldout)}
