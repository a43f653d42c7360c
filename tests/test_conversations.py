"""SFT data: every data format parses, detection, malformed records named by file:line:field, mixtures, inspect."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from chowa.data.conversations import DataSource, mix_sources, read_conversations
from chowa.errors import ChowaError
from chowa.inspection import inspect_data

QA = [{"role": "user", "content": "猫は何を食べますか。"}, {"role": "assistant", "content": "魚や肉を食べます。"}]
HH = "\n\nHuman: What is VR?\n\nAssistant: Virtual reality.\n\nHuman: Thanks!\n\nAssistant: You're welcome."


def _jsonl(path: Path, records: list) -> Path:
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def data_files(tmp_path) -> dict[str, Path]:
    alpaca = [{"instruction": "猫は何を食べますか。", "input": "", "output": "魚や肉を食べます。"},
              {"instruction": "英訳して", "input": "雨です。", "output": "It is raining."}]
    (tmp_path / "alpaca.json").write_text(json.dumps(alpaca, ensure_ascii=False, indent=2), encoding="utf-8")
    return {
        "alpaca": tmp_path / "alpaca.json",
        "alpaca-jsonl": _jsonl(tmp_path / "alpaca.jsonl", alpaca),
        "openai": _jsonl(tmp_path / "openai.jsonl", [{"messages": [{"role": "system", "content": "親切に。"}, *QA]}]),
        "sharegpt": _jsonl(tmp_path / "sharegpt.jsonl", [{"conversations": [
            {"from": "human", "value": QA[0]["content"]}, {"from": "gpt", "value": QA[1]["content"]}]}]),
        "rinna": _jsonl(tmp_path / "rinna.jsonl", [[{"speaker": "ユーザー", "text": QA[0]["content"]},
                                                    {"speaker": "システム", "text": QA[1]["content"]}]]),
        "hh-rlhf": _jsonl(tmp_path / "hh.jsonl.gz", [{"chosen": HH, "rejected": HH.replace("welcome", "wrong")}]),
    }


def test_every_data_format_parses_and_is_detected(data_files):
    for name, path in data_files.items():
        loaded = read_conversations(path)
        assert loaded.formats == {str(path): name.removesuffix("-jsonl")}
        if name in ("openai",):
            assert loaded.conversations[0].messages == [{"role": "system", "content": "親切に。"}, *QA]
        elif name == "hh-rlhf":
            assert loaded.conversations[0].messages == [
                {"role": "user", "content": "What is VR?"}, {"role": "assistant", "content": "Virtual reality."},
                {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "You're welcome."}]
        else:
            assert loaded.conversations[0].messages == QA
    alpaca = read_conversations(data_files["alpaca"]).conversations
    assert alpaca[1].messages[0] == {"role": "user", "content": "英訳して", "input": "雨です。"}
    assert [c.source.rsplit(":", 1)[1] for c in alpaca] == ["2", "7"]  # the line each array element starts on


def test_named_format_overrides_detection(data_files):
    with pytest.raises(ChowaError, match=r"openai.jsonl:1: instruction: missing"):
        read_conversations(data_files["openai"], data_format="alpaca")
    with pytest.raises(ChowaError, match="--data-format 'csv' is not one of"):
        read_conversations(data_files["openai"], data_format="csv")


def test_unknown_first_record_is_an_error(tmp_path):
    path = _jsonl(tmp_path / "odd.jsonl", [{"prompt": "x", "completion": "y"}])
    with pytest.raises(ChowaError, match=r"odd.jsonl:1: cannot tell the data format .*prompt, completion"):
        read_conversations(path)


@pytest.mark.parametrize(("records", "where"), [
    ([{"messages": QA}, {"messages": [{"role": "bot", "content": "x"}]}], r":2: messages\[0\].role: 'bot'"),
    ([{"messages": QA}, {"messages": [QA[0], {"role": "assistant", "content": 3}]}], r":2: messages\[1\].content"),
    ([{"messages": QA}, {"messages": [QA[0], QA[0]]}], r":2: messages\[1\]: expected an assistant"),
    ([{"conversations": [{"from": "human", "value": "q"}]}], r":1: conversations\[0\]: the conversation must end"),
    # two Human turns in a row are merged (#12), so this transcript is one user turn with no reply
    ([{"chosen": HH}, {"chosen": "\n\nHuman: a\n\nHuman: b"}], r":2: chosen \(turn 1\): the conversation must end"),
    ([[{"speaker": "ユーザー", "text": "q"}, {"speaker": "AI", "text": "a"}]], r":1: \[1\].speaker: 'AI'"),
])
def test_malformed_record_names_file_line_and_field(tmp_path, records, where):
    path = _jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(ChowaError, match="bad.jsonl" + where):
        read_conversations(path)


def test_malformed_record_in_json_array_names_its_line(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c",\n   "output": null}\n]\n')
    with pytest.raises(ChowaError, match=r"alpaca.json:3: output: expected a string"):
        read_conversations(path)
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": }\n]')
    with pytest.raises(ChowaError, match=r"alpaca.json:3: not valid JSON"):
        read_conversations(path)


def test_skip_bad_records_counts_them(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([json.dumps({"messages": QA}), "{not json", json.dumps({"messages": QA[:1]}),
                               json.dumps({"messages": QA})]) + "\n")
    with pytest.raises(ChowaError, match="mixed.jsonl:2: not valid JSON"):
        read_conversations(path)
    loaded = read_conversations(path, skip_bad_records=True)
    assert [c.source for c in loaded.conversations] == [f"{path}:1", f"{path}:4"]
    assert [b.split(": ", 1)[0] for b in loaded.bad_records] == [f"{path}:2", f"{path}:3"]


def test_mixture_weights_are_exact_repeats_plus_a_seeded_share(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", [{"instruction": f"a{i}", "output": "x"} for i in range(10)])
    b = _jsonl(tmp_path / "b.jsonl", [{"instruction": f"b{i}", "output": "y"} for i in range(10)])
    sources = [DataSource(str(a), weight=2.0), DataSource(str(b), weight=0.5)]
    mixed = mix_sources(sources, seed=1).conversations
    counts = Counter(c.source for c in mixed)
    assert len(mixed) == 25 and all(counts[f"{a}:{i}"] == 2 for i in range(1, 11))
    assert sum(source.startswith(str(b)) for source in counts) == 5 and max(counts.values()) == 2
    assert [c.source for c in mix_sources(sources, seed=1).conversations] == [c.source for c in mixed]
    assert [c.source for c in mix_sources(sources, seed=2).conversations] != [c.source for c in mixed]
    with pytest.raises(ChowaError, match="weight must be positive"):
        mix_sources([DataSource(str(a), weight=0)])


def test_inspect_marks_the_trained_text(data_files, tmp_path):
    bad = _jsonl(tmp_path / "bad.jsonl", [{"messages": QA}, {"messages": [QA[0]]}])
    report = inspect_data([str(data_files["alpaca"]), str(bad)], kind="sft", format_name="rinna-nl")
    assert report["format"] == "rinna-nl" and report["records"] == 3
    assert report["data_formats"] == {str(data_files["alpaca"]): "alpaca", str(bad): "openai"}
    assert report["bad_records"] == [f"{bad}:2: messages[0]: the conversation must end with an assistant message"]
    assert report["example"]["rendered"] == "ユーザー: 猫は何を食べますか。<NL>システム: ⟦魚や肉を食べます。</s>⟧"
    hh = inspect_data([str(data_files["hh-rlhf"])], format_name="vicuna-v1.1")
    assert hh["example"]["rendered"].endswith("ASSISTANT:⟦ Virtual reality.</s>⟧USER: Thanks!\nASSISTANT:"
                                              "⟦ You're welcome.</s>⟧")
    system = inspect_data([str(data_files["openai"])], format_name="rinna")
    assert "no place for a system message" in system["example"]["render_error"] and system["with_system"] == 1
    with pytest.raises(ChowaError, match="--kind 'pairs' is not one of: sft"):
        inspect_data([str(bad)], kind="pairs")
