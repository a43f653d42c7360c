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
