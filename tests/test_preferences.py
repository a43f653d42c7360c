"""Preference data: hh-rlhf transcripts split at the last Assistant turn, the other two formats, errors that name
the line and field, and the built-in pairs that a rule can check."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from chowa.answers import check_answer
from chowa.data.preferences import read_preference_file, read_preferences
from chowa.errors import ChowaError
from chowa.inspection import inspect_data

HH = [
    {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.",
     "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: It is 5."},
    {"chosen": "\n\nHuman: こんにちは\n\nAssistant: こんにちは!\n\nHuman: 元気?\n\nAssistant: はい、元気です。",
     "rejected": "\n\nHuman: こんにちは\n\nAssistant: こんにちは!\n\nHuman: 元気?\n\nAssistant: 元気だよ。"},
    {"chosen": "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the cat sit on the computer?\n\nHuman: Why?"
               "\n\nAssistant: To keep an eye on the mouse.",
     "rejected": "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the cat sit on the computer?\n\nHuman: Why?"
                 "\n\nAssistant: No."},
]


def _write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_hh_rlhf_gz_splits_the_shared_context_at_the_last_assistant_turn(tmp_path):
    path = _write_jsonl(tmp_path / "train.jsonl.gz", HH, gz=True)
    pairs = read_preferences([str(path)]).pairs
    assert len(pairs) == 3 and {p.format for p in pairs} == {"hh-rlhf"}
    assert pairs[0].context == [{"role": "user", "content": "What is 2+2?"}]
    assert (pairs[0].chosen, pairs[0].rejected) == ("It is 4.", "It is 5.")
    assert [m["role"] for m in pairs[1].context] == ["user", "assistant", "user"]
    assert pairs[1].context[-1]["content"] == "元気?" and pairs[1].chosen == "はい、元気です。"
    assert pairs[2].context[1]["content"] == "Why did the cat sit on the computer?"
    assert (pairs[2].chosen, pairs[2].rejected) == ("To keep an eye on the mouse.", "No.")
    # The spec's split rule: prompt = text through the last "\n\nAssistant:", reply = the rest (after its space).
    for record, pair in zip(HH, pairs, strict=True):
        cut = record["chosen"].rindex("\n\nAssistant:") + len("\n\nAssistant:")
        assert record["chosen"][cut:] == " " + pair.chosen
    assert pairs[1].source == f"{path}:2"


def test_prompt_and_conversation_records(tmp_path):
    records = [
        {"prompt": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant:", "chosen": " Goodbye!",
         "rejected": " Whatever.", "response": " Goodbye!"},  # Dahoas rm-static
        {"prompt": "猫を英語で?", "chosen": "cat", "rejected": "dog", "kind": "correct", "margin": 1.5},
        {"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?", "input": "x"}],
         "chosen": {"role": "assistant", "content": "5"}, "rejected": "6", "kind": "correct"},
    ]
    pairs = read_preference_file(_write_jsonl(tmp_path / "p.jsonl", records)).pairs
    assert [p.format for p in pairs] == ["prompt", "prompt", "prompt", "conversation"]
    assert [m["content"] for m in pairs[0].context] == ["Hi", "Hello.", "Bye"]
    assert (pairs[0].chosen, pairs[0].rejected) == ("Goodbye!", "Whatever.")
    assert pairs[1].context == [{"role": "user", "content": "猫を英語で?"}] and pairs[1].margin == 1.5
    assert pairs[1].kind == "correct" and pairs[0].margin is None
    assert pairs[3].context[1] == {"role": "user", "content": "2+3?", "input": "x"} and pairs[3].chosen == "5"
    chosen, rejected = pairs[3].conversations()
    assert chosen[-1] == {"role": "assistant", "content": "5"} and rejected[:-1] == pairs[3].context


@pytest.mark.parametrize(("record", "message"), [
    ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: OTHER\n\nAssistant: c"},
     r":2: rejected: its context .* differs"),
    ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": 7}, r":2: rejected: expected a string"),
    ({"chosen": "preamble\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"},
     r":2: chosen: text before the first"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "x",
      "rejected": "y"}, r":2: messages\[1\]: the conversation must end with a user message"),
    ({"prompt": "q", "chosen": "x", "rejected": "y", "margin": "big"}, r":2: margin: expected a number"),
    ({"prompt": "q", "chosen": "x"}, r":2: not a preference record"),
])
def test_malformed_records_name_file_line_and_field(tmp_path, record, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", [HH[0], record])
    with pytest.raises(ChowaError, match=message) as caught:
        read_preferences([str(path)])
    assert str(path) in str(caught.value)
    skipped = read_preferences([str(path)], skip_bad_records=True)
    assert len(skipped.pairs) == 1 and skipped.bad_records[0].startswith(f"{path}:2:")


def test_named_format_and_inspect(tmp_path):
    path = _write_jsonl(tmp_path / "hh.jsonl", HH)
    with pytest.raises(ChowaError, match=":1: prompt: missing"):
        read_preference_file(path, "prompt")
    report = inspect_data([str(path)], kind="preference", format_name="rinna")
    assert report["records"] == 3 and report["data_formats"] == {"hh-rlhf": 3}
    assert report["example"]["prompt"] == "ユーザー: What is 2+2?\nシステム: "


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_builtin_pairs_are_checkable(split):
    pairs = read_preferences([f"builtin:preference/{split}.jsonl"]).pairs
    kinds = Counter(p.kind for p in pairs)
    assert set(kinds) == {"correct", "polite", "language"}
    assert len(pairs) >= (600 if split == "train" else 150) and min(kinds.values()) >= 50
    records = [json.loads(line) for line in
               Path(__file__).parents[1].joinpath(f"src/chowa/data/builtin/preference/{split}.jsonl").open()]
    for record in records:
        assert record["chosen"] != record["rejected"]
        assert check_answer(record, record["chosen"]), record
        assert check_answer(record, record["rejected"]) is (record["kind"] != "correct"), record
        if record["kind"] == "polite":
            assert "です" in record["chosen"] or "ます" in record["chosen"]
            assert "です" not in record["rejected"] and "ます" not in record["rejected"]


def test_builtin_prompts_carry_a_verifier_and_heldout_is_disjoint():
    root = Path(__file__).parents[1] / "src/chowa/data/builtin/prompts"
    train, heldout = ([json.loads(line) for line in (root / f"{name}.jsonl").open()] for name in ("train", "heldout"))
    assert len(train) >= 500 and len(heldout) >= 100
    for record in train + heldout:
        assert record["messages"][-1]["role"] == "user" and record["answer"] and record["lang"] in ("en", "ja")
        assert not check_answer(record, "?")
    questions = Counter(json.dumps(r["messages"], ensure_ascii=False) for r in train + heldout)
    assert questions.most_common(1)[0][1] == 1
