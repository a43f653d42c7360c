"""SFT: reply-only loss falls on held-out data, the saved folder carries its chat format, LoRA merges on save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from chowa.config import load_config
from chowa.errors import ChowaError
from chowa.formats import render_prompt
from chowa.sft import IGNORE, SFTConfig, collate, pack_examples
from chowa.sft import main as sft
from chowa.training.plots import read_metrics
from conftest import launch_two_processes

_WORDS = ["猫", "犬", "鳥", "魚", "山", "川", "rain", "snow", "tea", "book"]


def _alpaca(path: Path, numbers: range) -> Path:
    records = [{"instruction": f"{_WORDS[n % 10]}を{n % 7 + 1}回書いてください。" if n % 2 else
                f"Write '{_WORDS[n % 10]}' {n % 7 + 1} times.", "input": "",
                "output": " ".join([_WORDS[n % 10]] * (n % 7 + 1))} for n in numbers]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def _overrides(out: Path, model: Path, train: Path, heldout: Path, *extra: str) -> list[str]:
    return [f"out={out}", f"model={model}", "format=rinna", f"data.train=[{train}]", f"data.heldout=[{heldout}]",
            "data.max_length=64", "train.batch_size=8", "optim.lr=3e-3", "optim.min_lr=3e-4", "optim.warmup_steps=5",
            "runtime.cpu=true", *extra]


def test_sft_lowers_heldout_reply_loss_and_saves_its_format(tmp_path, tiny_model_dir, capsys):
    train = _alpaca(tmp_path / "train.jsonl", range(0, 120))
    heldout = _alpaca(tmp_path / "heldout.jsonl", range(1000, 1020))
    out = tmp_path / "sft"
    sft(load_config(SFTConfig, overrides=_overrides(out, tiny_model_dir, train, heldout, "train.steps=80",
                                                    "train.eval_every=40", "train.save_every=40")))
    evaluated = [r for r in read_metrics(out / "metrics.jsonl") if "val_loss" in r]
    assert [r["step"] for r in evaluated] == [0, 40, 80]
    printed = capsys.readouterr().out  # each evaluation is printed as it comes, and a summary at the end
    assert all(f"sft: step {r['step']}: val_loss {r['val_loss']:.4g}" in printed for r in evaluated)
    assert "sft: finished, 80 steps" in printed and f"held-out loss {evaluated[0]['val_loss']:.4g} → " in printed
    assert evaluated[-1]["val_loss"] < 0.6 * evaluated[0]["val_loss"], evaluated
    assert json.loads((out / "chat_format.json").read_text())["format"] == "rinna"
    plain = AutoTokenizer.from_pretrained(str(out))
    messages = [{"role": "user", "content": "猫を2回書いてください。"}]
    assert plain.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == \
        render_prompt(messages, "rinna") == "ユーザー: 猫を2回書いてください。\nシステム: "
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert (out / "loss.png").is_file() and model.config.vocab_size == len(plain)


def test_lora_trains_adapters_and_saves_merged_plain_weights(tmp_path, tiny_model_dir):
    pytest.importorskip("peft")
    train = _alpaca(tmp_path / "train.jsonl", range(0, 40))
    heldout = _alpaca(tmp_path / "heldout.jsonl", range(1000, 1008))
    out = tmp_path / "lora"
    sft(load_config(SFTConfig, overrides=_overrides(out, tiny_model_dir, train, heldout, "train.steps=6",
                                                    "lora.enabled=true", "lora.r=4",
                                                    "lora.target_modules=[query_key_value,dense_h_to_4h]")))
    assert not (out / "adapter_config.json").exists()
    assert not (out / "README.md").exists()  # peft's empty model-card template would say nothing true (#13)
    config = json.loads((out / "config.json").read_text())
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == \
        config["max_position_embeddings"]  # the model's context, not the 2048 the tokenizer was trained with
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tuned = AutoModelForCausalLM.from_pretrained(str(out))
    name = "gpt_neox.layers.0.attention.query_key_value.weight"
    changed = not torch.equal(base.state_dict()[name], tuned.state_dict()[name])
    embedding = "gpt_neox.embed_in.weight"
    untouched = torch.equal(base.state_dict()[embedding], tuned.state_dict()[embedding])
    assert changed and untouched


def test_bad_records_are_named_or_skipped(tmp_path, tiny_model_dir):
    train = _alpaca(tmp_path / "train.jsonl", range(0, 20))
    with train.open("a", encoding="utf-8") as handle:
        handle.write('{"instruction": "x", "output": 5}\n')
    heldout = _alpaca(tmp_path / "heldout.jsonl", range(1000, 1004))
    with pytest.raises(ChowaError, match=rf"{train}:21: output"):
        sft(load_config(SFTConfig, overrides=_overrides(tmp_path / "a", tiny_model_dir, train, heldout)))
    out = tmp_path / "b"
    sft(load_config(SFTConfig, overrides=_overrides(out, tiny_model_dir, train, heldout, "train.steps=2",
                                                    "data.skip_bad_records=true")))
    assert (out / "model.safetensors").is_file()


def test_collate_and_packing_keep_labels_on_replies_only():
    from chowa.sft import Example

    rows = [Example([5, 6, 7], [IGNORE, 6, 7]), Example([8, 9], [IGNORE, 9]), Example([1, 2, 3, 4], [IGNORE] * 3 + [4])]
    packed = pack_examples(rows, max_length=5)
    assert [r.input_ids for r in packed] == [[5, 6, 7, 8, 9], [1, 2, 3, 4]]
    batch = collate(packed, pad=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [1, 2, 3, 4, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7, IGNORE, 9], [IGNORE, IGNORE, IGNORE, 4, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 1, 1, 0]]


@pytest.mark.dist
@pytest.mark.parametrize("sharding", ["ddp", "fsdp", "zero2", "zero3"])
def test_two_process_sft_matches_one(tmp_path, tiny_model_dir, sharding):
    """Under DDP, FSDP2 (full shard), ZeRO-2 and ZeRO-3, two processes with the same global batch give one process's
    training and held-out reply losses (5 held-out examples in batches of 2: 3 on one process, 2 on the other, which
    runs a surplus batch and drops it)."""
    train = _alpaca(tmp_path / "train.jsonl", range(0, 40))
    heldout = _alpaca(tmp_path / "heldout.jsonl", range(1000, 1005))
    steps = ["train.steps=4", "train.eval_every=2"]
    single = sft(load_config(SFTConfig, overrides=_overrides(tmp_path / "single", tiny_model_dir, train, heldout,
                                                             *steps, "train.batch_size=4")))
    out = tmp_path / "dist"
    result = launch_two_processes("sft", _overrides(out, tiny_model_dir, train, heldout, *steps, "train.batch_size=2"),
                                  sharding=sharding)
    assert result.stdout.count(f"wrote {out}") == 2
    records, baseline = read_metrics(out / "metrics.jsonl"), read_metrics(single / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4] and records[-1]["tokens"] > 0
    for mine, theirs in zip(records, baseline, strict=True):
        for key in ("train_loss", "val_loss"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=1e-4), (mine["step"], key)
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None


def test_accumulation_trains_as_the_whole_batch(tmp_path, tiny_model_dir):
    """Batches of 2 with 2 accumulation steps give the losses and weights of batches of 4: the step's loss is the
    mean over all its reply tokens, not the mean of the two micro-batches' means (replies differ in length here)."""
    train = _alpaca(tmp_path / "train.jsonl", range(0, 40))
    runs = {}
    for name, extra in (("whole", ["train.batch_size=4"]),
                        ("accumulated", ["train.batch_size=2", "runtime.gradient_accumulation_steps=2"])):
        out = sft(load_config(SFTConfig, overrides=_overrides(tmp_path / name, tiny_model_dir, train, train,
                                                              "train.steps=3", "train.eval_every=0", *extra)))
        runs[name] = out
    whole, accumulated = ([r["train_loss"] for r in read_metrics(runs[k] / "metrics.jsonl") if "train_loss" in r]
                          for k in ("whole", "accumulated"))
    assert len(whole) == 3 and whole == pytest.approx(accumulated, abs=1e-5)
    first, second = (AutoModelForCausalLM.from_pretrained(str(runs[k])).state_dict() for k in ("whole", "accumulated"))
    assert all(torch.allclose(first[name], second[name], atol=1e-5) for name in first)


def test_lora_is_refused_under_parameter_sharding(tmp_path, tiny_model_dir, monkeypatch):
    """LoRA's merge runs on one process, which cannot hold a sharded model: refused at start, not at the end."""
    from chowa.runtime import Runtime

    monkeypatch.setattr(Runtime, "shards_parameters", property(lambda self: True))
    train = _alpaca(tmp_path / "train.jsonl", range(0, 8))
    with pytest.raises(ChowaError, match="lora.enabled: LoRA runs under DDP, not under FSDP or ZeRO-3"):
        sft(load_config(SFTConfig, overrides=_overrides(tmp_path / "out", tiny_model_dir, train, train,
                                                        "lora.enabled=true")))
    assert not (tmp_path / "out" / "config.yaml").exists()
