"""The data users really have: Parquet files, `datasets` folders, `hf:` datasets, other column names, and Anthropic
hh-rlhf as published (same-speaker runs). Every file is written by the test; nothing reaches the Hub."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chowa.config import load_config
from chowa.config.reward import RewardConfig
from chowa.config.sft import SFTConfig
from chowa.data.conversations import read_conversations
from chowa.data.preferences import read_preferences
from chowa.data.prompts import read_prompts
from chowa.data.records import ReadOptions, count_documents, iter_records, read_documents
from chowa.data.shards import build_token_cache
from chowa.errors import ChowaError
from chowa.inspection import inspect_data
from chowa.tokenizer import load_tokenizer

ALPACA = [{"instruction": f"{a}たす{b}は?", "input": "", "output": f"答えは{a + b}です。"}
          for a in range(5) for b in range(4)]
CHAT = [{"messages": [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "こんにちは!"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
PAIRS = [{"prompt": f"What is {a}+{a}?", "chosen": f"It is {2 * a}.", "rejected": f"It is {2 * a + 1}."}
         for a in range(12)]


def _parquet(path: Path, records: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _messages(loaded) -> list:
    return [record.messages for record in loaded.conversations]


def test_parquet_arrow_and_datasets_folders_read_as_jsonl(tmp_path):
    reference = _messages(read_conversations(_jsonl(tmp_path / "a.jsonl", ALPACA)))
    parquet = _parquet(tmp_path / "a.parquet", ALPACA)
    datasets.Dataset.from_list(ALPACA).save_to_disk(str(tmp_path / "dataset"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ALPACA[:3]),
                          "test": datasets.Dataset.from_list(ALPACA)}).save_to_disk(str(tmp_path / "dict"))
    for source in (str(parquet), str(tmp_path / "dataset"), f"{tmp_path / 'dict'}@test"):
        loaded = read_conversations(source)
        assert _messages(loaded) == reference and loaded.formats == {source: "alpaca"}
        assert loaded.conversations[3].source == f"{source}:row 4"
    arrow = next((tmp_path / "dataset").glob("*.arrow"))
    assert _messages(read_conversations(str(arrow))) == reference
    assert len(read_conversations(str(tmp_path / "dict")).conversations) == 3  # no split named: train
    with pytest.raises(ChowaError, match="no split 'dev'; it has train, test"):
        read_conversations(f"{tmp_path / 'dict'}@dev")


def test_table_rows_lose_arrow_nulls_but_keep_their_data(tmp_path):
    """Arrow gives every message struct every key of the schema (input: null); a null is not a message's input."""
    records = [{"messages": [{"role": "user", "content": "Summarise.", "input": "A long text."}], "chosen": "Short.",
                "rejected": "No."},
               {"messages": [{"role": "user", "content": "Hi"}], "chosen": "Hello", "rejected": "Go away"}]
    pairs = read_preferences([str(_parquet(tmp_path / "pairs.parquet", records))]).pairs
    assert [p.context for p in pairs] == [records[0]["messages"], records[1]["messages"]]


def test_bad_rows_are_named_by_file_and_row(tmp_path):
    path = _parquet(tmp_path / "bad.parquet", [{"messages": m["messages"]} for m in CHAT] + [
        {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "again"}]}])
    with pytest.raises(ChowaError, match=r"bad.parquet:row 3: messages\[1\]: expected an assistant"):
        read_conversations(str(path))
    skipped = read_conversations(str(path), skip_bad_records=True)
    assert len(skipped.conversations) == 2 and skipped.bad_records[0].startswith(f"{path}:row 3:")
    report = inspect_data([str(path)], format_name="rinna")
    assert report["records"] == 2 and report["bad_record_count"] == 1
    assert report["data_formats"] == {str(path): "openai"}


def test_column_mapping_reads_other_names(tmp_path):
    renamed = [{"prompt": r["instruction"], "response": r["output"], "id": i} for i, r in enumerate(ALPACA)]
    path = _parquet(tmp_path / "renamed.parquet", renamed)
    columns = {"instruction": "prompt", "output": "response"}
    assert _messages(read_conversations(str(path), options=ReadOptions(columns=columns))) == _messages(
        read_conversations(_jsonl(tmp_path / "a.jsonl", ALPACA)))
    with pytest.raises(ChowaError, match=r"renamed.parquet:row 1: no column answer \(for output\)"):
        read_conversations(str(path), options=ReadOptions(columns={"instruction": "prompt", "output": "answer"}))
    prompts = read_prompts([str(path)], ReadOptions(columns={"instruction": "prompt"}))
    assert prompts[0].messages == [{"role": "user", "content": "0たす0は?"}] and prompts[0].record["id"] == 0


def test_preference_message_lists_and_mapped_columns(tmp_path):
    lists = [{"chosen": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["chosen"]}],
              "rejected": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["rejected"]}]}
             for p in PAIRS]
    explicit = [{"question": p["prompt"], "good": [{"role": "assistant", "content": p["chosen"]}],
                 "bad": [{"role": "assistant", "content": p["rejected"]}]} for p in PAIRS]
    reference = read_preferences([str(_jsonl(tmp_path / "p.jsonl", PAIRS))]).pairs
    implicit = read_preferences([str(_parquet(tmp_path / "lists.parquet", lists))]).pairs
    mapped = read_preferences([str(_parquet(tmp_path / "explicit.parquet", explicit))],
                              options=ReadOptions(columns={"prompt": "question", "chosen": "good",
                                                           "rejected": "bad"})).pairs
    key = [(p.context, p.chosen, p.rejected) for p in reference]
    assert [(p.context, p.chosen, p.rejected) for p in implicit] == key
    assert [(p.context, p.chosen, p.rejected) for p in mapped] == key
    assert {p.format for p in implicit} == {"message-lists"}


HH_RUNS = [
    # As in the published harmless-base test split: two Assistant turns in a row, in the shared context ...
    {"chosen": "\n\nHuman: Can you help me?\n\nAssistant: Sure.\n\nAssistant: What do you need?\n\nHuman: A recipe."
               "\n\nAssistant: Try miso soup.",
     "rejected": "\n\nHuman: Can you help me?\n\nAssistant: Sure.\n\nAssistant: What do you need?\n\nHuman: A recipe."
                 "\n\nAssistant: No."},
    # ... and in the final reply of one side only.
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nAssistant: How are you?",
     "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."},
    {"chosen": "\n\nHuman: Tell me a joke.\n\nHuman: A short one.\n\nAssistant: Knock knock.",
     "rejected": "\n\nHuman: Tell me a joke.\n\nHuman: A short one.\n\nAssistant: No."},
]


def test_hh_rlhf_as_published_reads_every_record(tmp_path):
    path = _jsonl(tmp_path / "harmless-base-test.jsonl", HH_RUNS)
    loaded = read_preferences([str(path)])
    assert loaded.bad_records == [] and len(loaded.pairs) == 3
    first, second, third = loaded.pairs
    assert first.context == [{"role": "user", "content": "Can you help me?"},
                             {"role": "assistant", "content": "Sure.\n\nWhat do you need?"},
                             {"role": "user", "content": "A recipe."}]
    assert (first.chosen, first.rejected) == ("Try miso soup.", "No.")  # the final replies split as before
    assert (second.chosen, second.rejected) == ("Hello!\n\nHow are you?", "Go away.")
    assert third.context == [{"role": "user", "content": "Tell me a joke.\n\nA short one."}]
    assert [p.merged_turns for p in loaded.pairs] == [2, 1, 2]
    report = inspect_data([str(path)], kind="preference")
    assert report["records"] == 3 and report["bad_record_count"] == 0
    assert report["merged_same_speaker_turns"] == 5 and report["records_with_merged_turns"] == 3
    sft = read_conversations(path)
    assert [c.merged_turns for c in sft.conversations] == [1, 1, 1]  # the chosen side


def test_hf_datasets_load_local_folders_and_fail_offline_in_one_line(tmp_path, monkeypatch):
    folder = tmp_path / "my_data"
    folder.mkdir()
    _parquet(folder / "train.parquet", ALPACA)
    assert _messages(read_conversations(f"hf:{folder}")) == _messages(
        read_conversations(_jsonl(tmp_path / "a.jsonl", ALPACA)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ChowaError) as error:
        read_conversations("hf:chowa-tests/no-such-dataset@train")
    message = str(error.value)
    assert message.startswith("hf:chowa-tests/no-such-dataset@train: cannot load the dataset (offline") and (
        "\n" not in message)


def test_pretraining_text_streams_from_a_parquet_column(tmp_path, tokenizer_dir, project_corpus):
    tokenizer = load_tokenizer(tokenizer_dir)
    documents = [doc for _, _, doc in read_documents([str(project_corpus[1])])]
    parquet = _parquet(tmp_path / "docs.parquet", [{"body": doc, "n": i} for i, doc in enumerate(documents)])
    assert count_documents([str(parquet)], field="body") == len(documents) == count_documents([str(project_corpus[1])])
    from_jsonl = build_token_cache([str(project_corpus[1])], tokenizer, tmp_path / "a", 0.1, show_progress=False)
    from_parquet = build_token_cache([str(parquet)], tokenizer, tmp_path / "b", 0.1, show_progress=False,
                                     field="body")
    for split in ("train", "val"):
        assert (from_jsonl.folder / f"{split}.bin").read_bytes() == (from_parquet.folder / f"{split}.bin").read_bytes()
    assert from_parquet.meta["documents"] == len(documents) and from_parquet.meta["val_documents"] > 0
    with pytest.raises(ChowaError, match=r"docs.parquet:row 1: expected a record with a string field 'text'"):
        list(read_documents([str(parquet)]))


def test_sft_and_reward_train_from_parquet_datasets_and_mapped_columns(tmp_path, tiny_model_dir):
    from chowa.reward.train import main as train_reward
    from chowa.sft import main as sft
    from chowa.training.plots import read_metrics

    renamed = [{"q": r["instruction"], "a": r["output"]} for r in ALPACA]
    datasets.Dataset.from_list(renamed).save_to_disk(str(tmp_path / "sft_dataset"))
    _parquet(tmp_path / "pairs.parquet", PAIRS)
    common = ["train.steps=2", "train.batch_size=4", "train.eval_every=0", "train.save_every=0", "optim.warmup_steps=1",
              "format=rinna"]
    sft_out = sft(load_config(SFTConfig, overrides=[
        f"out={tmp_path / 'sft'}", f"model={tiny_model_dir}", f"data.train=[{tmp_path / 'sft_dataset'}]",
        "data.columns.instruction=q", "data.columns.output=a", *common]))
    reward_out = train_reward(load_config(RewardConfig, overrides=[
        f"out={tmp_path / 'rm'}", f"model={sft_out}", f"data.train=[{tmp_path / 'pairs.parquet'}]", *common]))
    for out in (sft_out, reward_out):
        losses = [r["train_loss"] for r in read_metrics(out / "metrics.jsonl") if "train_loss" in r]
        assert len(losses) == 2 and all(loss == loss for loss in losses)  # two real steps, no NaN
        assert (out / "model.safetensors").is_file()


def test_iter_records_keeps_jsonl_line_numbers(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\nnot json\n', encoding="utf-8")
    rows = list(iter_records(str(path)))
    assert [where.rsplit(":", 1)[1] for where, _ in rows] == ["1", "3", "4"]
    assert rows[2][1].reason.startswith("not valid JSON")



def test_a_null_mapped_column_is_absent_not_missing(tmp_path):
    """Dolly-style data: `context` is empty (null) in most rows; mapped to Alpaca's optional `input`."""
    rows = [{"question": "Summarise.", "context": "A long text.", "answer": "Short."},
            {"question": "Hi", "context": None, "answer": "Hello"}]
    columns = {"instruction": "question", "input": "context", "output": "answer"}
    loaded = read_conversations(str(_parquet(tmp_path / "dolly.parquet", rows)), options=ReadOptions(columns=columns))
    first, second = _messages(loaded)
    assert first[0] == {"role": "user", "content": "Summarise.", "input": "A long text."}
    assert second == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_arrow_ipc_files_and_json_arrays_of_documents(tmp_path):
    table = pa.Table.from_pylist(ALPACA)
    with pa.OSFile(str(tmp_path / "file.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)  # the IPC file format (Feather 2), not the stream datasets writes
    reference = _messages(read_conversations(_jsonl(tmp_path / "a.jsonl", ALPACA)))
    assert _messages(read_conversations(str(tmp_path / "file.arrow"))) == reference
    array = tmp_path / "docs.json"
    array.write_text(json.dumps([{"text": "一つ目の文書。\r\nsecond line"}, {"text": "two"}], ensure_ascii=False))
    assert [(n, doc) for _, n, doc in read_documents([str(array)])] == [(1, "一つ目の文書。\nsecond line"), (1, "two")]
    array.write_text(json.dumps([{"body": "x"}]))
    with pytest.raises(ChowaError, match=r"docs.json:1: expected a record with a string field 'text'"):
        list(read_documents([str(array)]))


def test_tokenizer_and_pretrain_read_the_mapped_text_column(tmp_path, project_corpus):
    from chowa.config.tokenizer import TokenizerStatsConfig, TokenizerTrainConfig
    from chowa.tokenizer.stats import tokenizer_stats
    from chowa.tokenizer.train import main as train_tokenizer

    documents = [doc for _, _, doc in read_documents([str(p) for p in project_corpus])]
    parquet = _parquet(tmp_path / "corpus.parquet", [{"body": doc} for doc in documents])
    out = train_tokenizer(load_config(TokenizerTrainConfig, overrides=[
        f"input=[{parquet}]", f"out={tmp_path / 'tok'}", "vocab_size=420", "columns.text=body"]))
    assert json.loads((out / "metrics.jsonl").read_text())["documents"] >= len(documents)
    report = tokenizer_stats(str(out), [str(parquet)], field="body")
    assert report["lines"] == len(documents) and report["round_trip_all"]
    with pytest.raises(ChowaError, match="columns.prompt: text is read from one column"):
        load_config(TokenizerStatsConfig, overrides=["tokenizer=t", "input=[x]", "columns.prompt=q"])


def test_generate_writes_replies_beside_the_users_own_columns(tmp_path, tiny_model_dir, capsys):
    from chowa.cli import main

    rows = [{"q": "3たす4は?", "id": 7, "when": __import__("datetime").datetime(2026, 11, 30, 9, 0)}]
    path = _parquet(tmp_path / "prompts.parquet", rows)
    out = tmp_path / "replies.jsonl"
    assert main(["generate", "--model", str(tiny_model_dir), "--format", "rinna", "--input", str(path),
                 "--columns", "prompt=q", "--greedy", "--max-new-tokens", "3", "--out", str(out)]) == 0
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["q"] == "3たす4は?" and record["id"] == 7 and record["when"] == "2026-11-30 09:00:00"
    assert isinstance(record["reply"], str)
