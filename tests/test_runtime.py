"""The runtime layer: CPU device, seeding, rank-0 metrics."""

from __future__ import annotations

import json

import torch

from chowa.runtime import Runtime, RuntimeConfig, resolve_mixed_precision


def test_cpu_runtime_seeds_and_logs(tmp_path):
    runtime = Runtime(RuntimeConfig(seed=3, cpu=True), out_dir=tmp_path)
    first = torch.rand(4)
    Runtime(RuntimeConfig(seed=3, cpu=True), out_dir=tmp_path)
    assert torch.equal(first, torch.rand(4))
    assert runtime.device.type == "cpu" and runtime.is_main and runtime.num_processes == 1
    runtime.log({"step": 1, "loss": 2.5})
    runtime.log({"step": 2, "loss": 2.0})
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]


def test_mixed_precision_auto_is_off_on_cpu(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_mixed_precision("auto") == "no"
    assert resolve_mixed_precision("bf16") == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    assert resolve_mixed_precision("auto") is None


def test_metrics_reach_tensorboard_when_asked(tmp_path, tiny_model_dir):
    """runtime.report_to: [tensorboard] writes event files beside metrics.jsonl, with the same numbers (tensorboard
    is the `track` extra, which `make test` installs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from chowa.cli import main as cli_main
    from chowa.training.plots import read_metrics

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"{n}たす1は?", "output": f"{n + 1}です。"},
                                       ensure_ascii=False) + "\n" for n in range(12)), encoding="utf-8")
    out = tmp_path / "sft"
    assert cli_main(["sft", f"out={out}", f"model={tiny_model_dir}", "format=rinna", f"data.train=[{data}]",
                     f"data.heldout=[{data}]", "train.steps=3", "train.batch_size=4", "train.eval_every=0",
                     "optim.warmup_steps=1", "runtime.report_to=[tensorboard]"]) == 0
    events = EventAccumulator(str(out / "chowa-sft"))
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("train_loss")}
    expected = {r["step"]: r["train_loss"] for r in read_metrics(out / "metrics.jsonl") if "train_loss" in r}
    assert logged.keys() == expected.keys() == {1, 2, 3}
    assert all(abs(logged[step] - expected[step]) < 1e-5 for step in expected)
    assert {event.step for event in events.Scalars("val_loss")} == {0, 3}
