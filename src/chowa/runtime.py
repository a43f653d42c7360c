"""The one place that knows where and how a stage runs: device, precision, seeding, ranks, metrics.

A thin layer on `accelerate.Accelerator`, so the same stage runs on a CPU, one GPU, or under
`accelerate launch --num_processes N` with DDP, FSDP or DeepSpeed chosen by the accelerate config file.

Run as (from Python):
    runtime = Runtime(RuntimeConfig(seed=0), out_dir="runs/x")
    runtime.print("only rank 0 prints this"); runtime.log({"step": 1, "loss": 2.3})
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from chowa.config.training import RuntimeConfig


def resolve_mixed_precision(requested: str) -> str | None:
    """The precision to pass to Accelerator; None lets an `accelerate launch` setting decide."""
    if requested != "auto":
        return requested
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


class Runtime:
    """Accelerator + seeding + rank-0 printing + a metrics JSONL in the output folder."""

    def __init__(self, cfg: RuntimeConfig, out_dir: str | os.PathLike | None = None):
        self.cfg = cfg
        self.accelerator = Accelerator(
            mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            cpu=cfg.cpu,
        )
        set_seed(cfg.seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metrics_path = self.out_dir / "metrics.jsonl" if self.out_dir is not None else None
        if self.out_dir is not None and self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    @property
    def mixed_precision(self) -> str:
        return self.accelerator.mixed_precision

    def print(self, *args: Any) -> None:
        """Print on rank 0 only."""
        self.accelerator.print(*args)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to `metrics.jsonl` (rank 0 only; flushed, so a crash loses no written step)."""
        if not self.is_main or self.metrics_path is None:
            return
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def wait(self) -> None:
        """Barrier across processes."""
        self.accelerator.wait_for_everyone()
