"""The reward stage: Bradley–Terry training lifts held-out accuracy, the folder reloads in plain transformers with
identical scores for right- and left-padded batches, and `reward score` adds scores to records."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from chowa.config import load_config
from chowa.formats import FORMATS, render_prompt, save_format
from chowa.models.build import build_model
from chowa.padding import pad_rows
from chowa.reward.score import load_reward_model, score_file
from chowa.reward.train import RewardConfig
from chowa.reward.train import main as train_reward
from chowa.tokenizer import load_tokenizer
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer
from chowa.training.plots import read_metrics
from conftest import launch_two_processes

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
QUESTIONS = {"en": ["What did you do today?", "Tell me about the weather.", "What do you like?",
                    "Where is the station?", "How was school?", "What is in the box?"],
             "ja": ["今日は何をしましたか。", "天気を教えて。", "好きなものは何?", "駅はどこですか。",
                    "学校はどうだった?", "箱の中は何?"]}
REPLIES = {"en": ["It has been raining since this morning.", "The meeting starts at 3 p.m. tomorrow.",
                  "The train was late, so I was late for school.", "In winter the mountains turn white with snow.",
                  "She said thank you with a smile.", "Learning Python on a new laptop is fun!",
                  "Reading a book with a cup of tea is my favourite thing.", "Tokyo has 23 special wards."],
           "ja": ["今日は朝から雨が降っている。", "明日の会議は午後3時に始まります。", "冬になると山は雪で白くなる。",
                  "この店のラーメンはとても美味しい。", "駅まで歩いて十分かかります。",
                  "お茶を飲みながら本を読むのが好きだ。", "電車が遅れたので、学校に遅刻した。",
                  "母は毎朝6時に起きて弁当を作る。"]}


def _language_pairs(questions: slice, replies: slice) -> list[dict]:
    """Answer in the asker's language (chosen) or the other one (rejected)."""
    pairs = []
    for lang, other in (("en", "ja"), ("ja", "en")):
        for question in QUESTIONS[lang][questions]:
            for same, different in itertools.product(REPLIES[lang][replies], REPLIES[other][replies]):
                pairs.append({"prompt": question, "chosen": same, "rejected": different, "kind": f"to-{lang}"})
    return pairs


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, project_corpus) -> Path:
    """A tiny random causal LM folder with its tokenizer and chat format, as an SFT output would be."""
    tokenizer_dir = train_tokenizer(load_config(TokenizerTrainConfig, overrides=[
        f"out={tmp_path_factory.mktemp('tok')}", "vocab_size=420"], flags={"input": [str(p) for p in project_corpus]}))
    tokenizer = load_tokenizer(tokenizer_dir)
    folder = tmp_path_factory.mktemp("base")
    build_model("tiny", tokenizer=tokenizer, seed=0, **TINY).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    save_format(folder, "rinna")
    return folder


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory, base_dir) -> Path:
    data = tmp_path_factory.mktemp("pairs")
    train = _write(data / "train.jsonl", _language_pairs(slice(0, 4), slice(0, 6)))
    heldout = _write(data / "heldout.jsonl", _language_pairs(slice(4, 6), slice(6, 8)))
    out = tmp_path_factory.mktemp("reward")
    cfg = load_config(RewardConfig, overrides=[
        f"out={out}", f"model={base_dir}", f"data.train=[{train}]", f"data.heldout=[{heldout}]",
        "train.steps=40", "train.batch_size=8", "train.eval_every=20", "train.save_every=20", "optim.lr=3e-3",
        "optim.min_lr=3e-4", "optim.warmup_steps=4", "loss.centering_coef=0.01", "runtime.cpu=true"])
    return train_reward(cfg)


def test_training_lifts_heldout_accuracy_and_writes_a_reward_folder(reward_dir):
    records = [r for r in read_metrics(reward_dir / "metrics.jsonl") if "val_accuracy" in r]
    assert [r["step"] for r in records] == [0, 20, 40]
    first, last = records[0], records[-1]
    assert last["val_accuracy"] >= 0.85 and last["val_loss"] < first["val_loss"] - 0.1, (first, last)
    assert last["val_margin"] > 0 and last["val_score_std"] > 0
    assert {"val_accuracy_to-en", "val_accuracy_to-ja"} <= set(last)
    config = json.loads((reward_dir / "config.json").read_text())
    assert config["architectures"][0].endswith("ForSequenceClassification") and len(config["id2label"]) == 1
    assert json.loads((reward_dir / "chat_format.json").read_text()) == {"format": "rinna"}
    assert (reward_dir / "checkpoints").is_dir() and (reward_dir / "loss.png").is_file()


@pytest.mark.dist
@pytest.mark.parametrize("sharding", ["ddp", "fsdp", "zero2", "zero3"])
def test_two_process_reward_training_matches_one(tmp_path, base_dir, sharding):
    """Under DDP, FSDP2 (full shard), ZeRO-2 and ZeRO-3, two processes with the same global batch give one process's
    training losses; the held-out pairs are split between them and their metrics gathered (9 pairs in batches of 4:
    5 on one process, 4 on the other, which runs a surplus batch and drops it)."""
    train = _write(tmp_path / "train.jsonl", _language_pairs(slice(0, 4), slice(0, 6)))
    heldout = _write(tmp_path / "heldout.jsonl", _language_pairs(slice(4, 6), slice(6, 8))[:9])
    overrides = [f"model={base_dir}", f"data.train=[{train}]", f"data.heldout=[{heldout}]", "train.steps=4",
                 "train.eval_every=2", "runtime.cpu=true"]
    single = train_reward(load_config(RewardConfig, overrides=[f"out={tmp_path / 'single'}", *overrides,
                                                               "train.batch_size=8"]))
    out = tmp_path / "dist"
    result = launch_two_processes("reward", [f"out={out}", *overrides, "train.batch_size=4"], sharding=sharding)
    assert result.stdout.count(f"wrote {out}") == 2
    records, baseline = read_metrics(out / "metrics.jsonl"), read_metrics(single / "metrics.jsonl")
    assert [r["step"] for r in records if "val_accuracy" in r] == [0, 2, 4]
    for mine, theirs in zip(records, baseline, strict=True):
        for key in ("train_loss", "val_accuracy", "val_loss", "val_margin", "val_score_std"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=1e-4), (mine["step"], key)
    assert AutoModelForSequenceClassification.from_pretrained(str(out)).config.num_labels == 1


def test_plain_transformers_gives_identical_scores(reward_dir):
    reward_model = load_reward_model(reward_dir, device="cpu")
    exchanges = [("天気を教えて。", "今日は朝から雨が降っている。"), ("Hi", "Tokyo has 23 special wards."),
                 ("駅はどこ?", "はい")]
    conversations = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in exchanges]
    expected = torch.tensor(reward_model.score_conversations(conversations, batch_size=2))
    model = AutoModelForSequenceClassification.from_pretrained(str(reward_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(reward_dir))
    assert model.config.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id
    rows = [reward_model.encode(messages) for messages in conversations]
    with torch.no_grad():
        for side in ("right", "left"):
            input_ids, attention_mask = pad_rows(rows, tokenizer.pad_token_id, side)
            plain = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
            assert torch.allclose(plain, expected, atol=1e-5 if side == "left" else 1e-6), (side, plain, expected)
        # Ids padded with EOS and described only by the mask (as a policy's rollouts are) score the same.
        input_ids, attention_mask = pad_rows(rows, tokenizer.eos_token_id, "left")
        assert torch.allclose(reward_model.score_ids(input_ids, attention_mask), expected, atol=1e-5)
        # The documented recipe: chat template for the prompt, reply tokenized on its own, then EOS.
        messages = conversations[0]
        prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
        assert prompt == render_prompt(messages[:1], FORMATS["rinna"])
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        ids += tokenizer(messages[1]["content"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        assert ids == rows[0]
        assert model(input_ids=torch.tensor([ids])).logits[0, 0].item() == pytest.approx(expected[0].item(), abs=1e-6)


def test_reward_score_adds_a_score_to_each_record(reward_dir, tmp_path):
    records = [
        {"messages": [{"role": "user", "content": "天気を教えて。"}, {"role": "assistant", "content": "雨です。"}]},
        {"instruction": "What do you like?", "input": "", "output": "Tea."},
        {"prompt": "What do you like?", "chosen": "Tea.", "rejected": "お茶。", "id": 7},
    ]
    out = tmp_path / "scored.jsonl"
    score_file(reward_dir, _write(tmp_path / "in.jsonl", records), out)
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(scored) == 3 and isinstance(scored[0]["score"], float) and isinstance(scored[1]["score"], float)
    assert scored[2]["id"] == 7 and {"chosen_score", "rejected_score"} <= set(scored[2])
    reward_model = load_reward_model(reward_dir, device="cpu")
    assert scored[0]["score"] == pytest.approx(reward_model.score_conversations([records[0]["messages"]])[0],
                                               abs=1e-5)


def test_an_eos_padded_base_gets_its_own_pad_token(tmp_path, base_dir):
    """A base whose pad is EOS would have transformers read before the final EOS; the stage adds [PAD]."""
    base = tmp_path / "base"
    tokenizer = load_tokenizer(base_dir)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(str(base))
    build_model("tiny", tokenizer=tokenizer, seed=0, **TINY).save_pretrained(str(base))
    save_format(base, "rinna")
    pairs = _write(tmp_path / "p.jsonl", _language_pairs(slice(0, 1), slice(0, 2)))
    out = train_reward(load_config(RewardConfig, overrides=[
        f"out={tmp_path / 'rm'}", f"model={base}", f"data.train=[{pairs}]", "train.steps=1", "train.batch_size=2",
        "runtime.cpu=true"]))
    reloaded = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert reloaded.pad_token == "[PAD]" and model.config.pad_token_id == reloaded.pad_token_id
    assert model.get_input_embeddings().num_embeddings >= len(reloaded)


def test_missing_model_and_bad_data_are_named(tmp_path, base_dir):
    from chowa.errors import ChowaError

    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q"}])
    cfg = load_config(RewardConfig, overrides=[f"out={tmp_path / 'rm'}", f"model={base_dir}", f"data.train=[{bad}]",
                                               "runtime.cpu=true"])
    with pytest.raises(ChowaError, match=r"bad.jsonl:2: not a preference record"):
        train_reward(cfg)
    with pytest.raises(ChowaError, match="holds no model weights"):
        load_reward_model(tmp_path)


def test_resume_from_a_checkpoint_repeats_the_same_losses(tmp_path, base_dir, capsys):
    pairs = _write(tmp_path / "p.jsonl", _language_pairs(slice(0, 4), slice(0, 6)))
    out = tmp_path / "rm"
    cfg = load_config(RewardConfig, overrides=[
        f"out={out}", f"model={base_dir}", f"data.train=[{pairs}]", "train.steps=12", "train.batch_size=4",
        "train.save_every=6", "train.keep_checkpoints=0", "optim.lr=3e-3", "runtime.cpu=true"])
    train_reward(cfg)
    straight = {r["step"]: r["train_loss"] for r in read_metrics(out / "metrics.jsonl")}
    shutil.rmtree(out / "checkpoints" / "step-00000012")  # as if the run had been killed after step 6's checkpoint
    capsys.readouterr()
    train_reward(cfg)
    printed = capsys.readouterr().out
    assert "reward: resuming from" in printed and "(step 6)" in printed
    resumed = {r["step"]: r["train_loss"] for r in read_metrics(out / "metrics.jsonl")}
    assert sorted(resumed) == list(range(1, 13))
    for step in range(7, 13):
        assert resumed[step] == pytest.approx(straight[step], abs=1e-5), step
