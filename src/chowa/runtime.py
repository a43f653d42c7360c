"""The one place that knows where and how a stage runs: device, precision, seeding, ranks, metrics, trackers.

A thin layer on `accelerate.Accelerator`, so the same stage runs on a CPU, one GPU, or under
`accelerate launch --num_processes N` with DDP, FSDP or DeepSpeed chosen by the accelerate config file.

Run as (from Python):
    runtime = Runtime(RuntimeConfig(seed=0), out_dir="runs/x")
    runtime.print("only rank 0 prints this"); runtime.log({"step": 1, "loss": 2.3})
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, get_int_from_env, set_seed

from chowa.config.training import RuntimeConfig
from chowa.errors import ChowaError
from chowa.files import check_writable


def resolve_mixed_precision(requested: str) -> str | None:
    """The precision to pass to Accelerator; None lets an `accelerate launch` setting decide."""
    if requested != "auto":
        return requested
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def configure_model(model: torch.nn.Module, cfg: RuntimeConfig) -> None:
    """Apply `runtime.attention` and `runtime.gradient_checkpointing` to a model about to be trained."""
    config = getattr(model, "config", None)
    if cfg.attention != "auto" and getattr(config, "_attn_implementation", None) != cfg.attention:
        if not (hasattr(model, "_can_set_attn_implementation") and model._can_set_attn_implementation()):
            raise ChowaError(f"runtime.attention={cfg.attention}: {type(model).__name__} has only its own attention "
                             f"({getattr(config, '_attn_implementation', None)}); use runtime.attention=auto")
        try:
            model.set_attn_implementation(cfg.attention)
        except (ValueError, ImportError) as exc:
            raise ChowaError(f"runtime.attention={cfg.attention}: {str(exc).splitlines()[0]}") from None
    if cfg.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ChowaError(f"runtime.gradient_checkpointing: {type(model).__name__} does not support it")
        # Non-reentrant checkpointing gives the same gradients and needs no input that requires grad, so the hook
        # transformers adds to make the embeddings' output require it comes off again: with it, PPO's frozen bottom
        # layers (and a LoRA model's frozen trunk below its first adapter) would be back-propagated through.
        # transformers 5.2x renamed it activation checkpointing; older releases have only the first name.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "disable_input_require_grads"):
            model.disable_input_require_grads()


def check_launch(accelerator: Accelerator) -> None:
    """Refuse the launches accelerate would run as something else, silently.

    accelerate 1.x turns `--use_fsdp` / `--use_deepspeed` into FSDP or DeepSpeed only on accelerators
    (`AcceleratorState.__init__` in accelerate/state.py switches to DistributedType.FSDP only from MULTI_GPU, XPU,
    NPU, HPU, ... and never from MULTI_CPU). On CPU processes such a launch trains with DDP (`runtime.cpu=true`), or
    each process alone (without it), all writing the same folder."""
    world = get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1)
    asked = [name for name, key in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"))
             if os.environ.get(key, "false").lower() == "true"]
    kind = accelerator.distributed_type
    instead = {DistributedType.MULTI_CPU: "DDP over gloo", DistributedType.NO: "each process training alone"}
    on_cpu = accelerator.device.type == "cpu"
    if asked and on_cpu:
        raise ChowaError(f"runtime: the launch asks for {asked[0]}, which accelerate runs only on GPUs and other "
                         f"accelerators; on CPU processes this run would be {instead.get(kind, kind.value)}. Launch "
                         "CPU processes with --multi_gpu and runtime.cpu=true (DDP over gloo), or run on GPUs")
    if asked and kind not in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise ChowaError(f"runtime: the environment asks for {asked[0]} (ACCELERATE_USE_{asked[0].upper()}=true), "
                         "but this process was not started by a distributed launch (accelerate launch or torchrun); "
                         "launch it, or unset the variable")
    if world > 1 and accelerator.num_processes == 1:
        raise ChowaError(f"runtime: {world} processes were launched but each would train alone, all writing the same "
                         "folder; on CPUs launch with --multi_gpu and runtime.cpu=true")


class Runtime:
    """Accelerator + seeding + rank-0 printing + a metrics JSONL in the output folder."""

    def __init__(self, cfg: RuntimeConfig, out_dir: str | os.PathLike | None = None):
        self.cfg = cfg
        try:
            self.accelerator = Accelerator(
                mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
                gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                cpu=cfg.cpu,
                log_with=list(cfg.report_to) or None,
                project_dir=str(out_dir) if out_dir is not None else None,
            )
        except (ValueError, ImportError) as exc:  # an unknown or uninstalled tracker, or DeepSpeed not installed
            where = f"runtime.report_to {list(cfg.report_to)}" if cfg.report_to else "runtime"
            raise ChowaError(f"{where}: {str(exc).splitlines()[0]}") from None
        check_launch(self.accelerator)
        if self.accelerator.gradient_accumulation_steps != cfg.gradient_accumulation_steps:
            raise ChowaError(f"runtime.gradient_accumulation_steps={cfg.gradient_accumulation_steps}, but the launch "
                             f"says {self.accelerator.gradient_accumulation_steps} (the DeepSpeed config or "
                             "ACCELERATE_GRADIENT_ACCUMULATION_STEPS); make them equal, since chowa's loop counts "
                             "micro-batches by its own")
        self.tracking = False
        set_seed(cfg.seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metrics_path = self.out_dir / "metrics.jsonl" if self.out_dir is not None else None
        if self.out_dir is not None and self.is_main:
            check_writable(self.out_dir, "out", folder=True)

    def prepare(self, *objects, micro_batch: int, grad_clip: float | None = None):
        """`accelerator.prepare`, telling DeepSpeed the micro-batch it would otherwise read from a DataLoader (chowa
        builds its batches itself, so none is prepared) and checking that its clipping is chowa's."""
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            config = self.accelerator.state.deepspeed_plugin.deepspeed_config
            config["train_micro_batch_size_per_gpu"] = micro_batch
            clipping = config.get("gradient_clipping")
            if grad_clip is not None and clipping not in (None, "auto") and float(clipping) != float(grad_clip):
                raise ChowaError(f"optim.grad_clip={grad_clip}, but the DeepSpeed config clips at {clipping}; make "
                                 "them equal (DeepSpeed applies its own)")
        return self.accelerator.prepare(*objects)

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
        """Append one JSON line to `metrics.jsonl` (rank 0 only; flushed, so a crash loses no written step), and
        send its numbers to the trackers of `runtime.report_to`."""
        if self.tracking:
            numbers = {k: v for k, v in record.items() if isinstance(v, int | float) and k != "step"}
            self.accelerator.log(numbers, step=record.get("step"))
        if not self.is_main or self.metrics_path is None:
            return
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def track(self, name: str, settings: dict[str, Any]) -> None:
        """Start the trackers of `runtime.report_to` (a run named `chowa-NAME`, its logs in OUT/chowa-NAME/ for
        TensorBoard) with the run's settings as hyperparameters."""
        if not self.cfg.report_to:
            return
        simple = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in settings.items()}
        self.accelerator.init_trackers(f"chowa-{name}", config=simple)
        self.tracking = True
        atexit.register(self.finish)  # a run stopped by Ctrl-C or an error still flushes and closes its trackers

    def finish(self) -> None:
        """Flush and close the trackers."""
        if self.tracking:
            self.accelerator.end_training()
            self.tracking = False

    def wait(self) -> None:
        """Barrier across processes."""
        self.accelerator.wait_for_everyone()
