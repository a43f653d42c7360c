"""The one place that knows where and how a stage runs: device, precision, seeding, ranks, metrics, trackers.

A thin layer on `accelerate.Accelerator`, so the same stage runs on a CPU, one GPU, or under
`accelerate launch --num_processes N` with DDP, FSDP or DeepSpeed chosen by the accelerate config file.

Run as (from Python):
    runtime = Runtime(RuntimeConfig(seed=0), out_dir="runs/x")
    runtime.print("only rank 0 prints this"); runtime.log({"step": 1, "loss": 2.3})
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed

from chowa.config.training import RuntimeConfig
from chowa.errors import ChowaError
from chowa.files import check_writable
from chowa.sharding import check_launch, whole_fsdp, whole_zero3


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
        builds its batches itself, so none is prepared) and chowa's clipping (DeepSpeed applies its own; accelerate
        would fill an unset one with 1.0)."""
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            config = self.accelerator.state.deepspeed_plugin.deepspeed_config
            config["train_micro_batch_size_per_gpu"] = micro_batch
            clipping = config.get("gradient_clipping")
            if grad_clip is not None and clipping in (None, "auto"):
                config["gradient_clipping"] = float(grad_clip)  # 0 turns it off, as optim.grad_clip=0 does
            elif grad_clip is not None and float(clipping) != float(grad_clip):
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

    @property
    def zero3(self) -> bool:
        """DeepSpeed ZeRO-3: parameters partitioned across the processes."""
        accelerator = self.accelerator
        return (accelerator.distributed_type == DistributedType.DEEPSPEED
                and accelerator.state.deepspeed_plugin.zero_stage == 3)

    @property
    def shards_parameters(self) -> bool:
        """FSDP or DeepSpeed ZeRO-3: each forward gathers parameters from every process, so every one must run it."""
        return self.accelerator.distributed_type == DistributedType.FSDP or self.zero3

    def share(self, items: list, batch_size: int) -> Iterator[tuple[list, bool]]:
        """This process's share of `items` (every num_processes-th) in batches of `batch_size`, as many batches on
        every process: a process that ran out first would leave the others waiting in a parameter gather. A surplus
        batch is the first item again, with False: run it, drop its result."""
        mine = items[self.process_index::self.num_processes]
        largest = -(-len(items) // self.num_processes)
        for start in range(0, largest, batch_size):
            rows = mine[start:start + batch_size]
            yield (rows, True) if rows else (items[:1], False)

    @contextlib.contextmanager
    def whole_parameters(self, model: torch.nn.Module) -> Iterator[None]:
        """Within the block every parameter of the prepared `model` is whole on this process, gathered once: code
        that runs its submodules outside the root's forward (`generate` on PPO's policy) then runs as on one process,
        with no collective per forward, so processes may run different numbers of them. FSDP2 and DeepSpeed ZeRO-3
        shard parameters again after it; otherwise nothing changes. Every process must enter it."""
        if self.accelerator.distributed_type == DistributedType.FSDP:
            if not self.accelerator.is_fsdp2:
                raise ChowaError("runtime: gathering a model whole runs under FSDP2 only; launch with --fsdp_version 2")
            with whole_fsdp(model):
                yield
        elif self.zero3:
            with whole_zero3(model):
                yield
        else:
            yield

    @contextlib.contextmanager
    def accumulating(self, last: bool) -> Iterator[None]:
        """A backward in the block that is not the `last` of its optimizer step only accumulates. Outside
        `accelerator.accumulate` (PPO's micro-batches) accelerate's DeepSpeed wrapper would step the engine after
        every backward; there the block marks it as no gradient-accumulation boundary. DDP and FSDP accumulate
        anyway."""
        if last or self.accelerator.distributed_type != DistributedType.DEEPSPEED:
            yield
            return
        state = self.accelerator.gradient_state
        state._set_sync_gradients(False)  # what `accumulate` does between boundaries
        try:
            yield
        finally:
            state._set_sync_gradients(True)

    @contextlib.contextmanager
    def built_whole(self) -> Iterator[None]:
        """Models loaded or built in the block are whole, not partitioned as they are made: for models copied or run
        before `prepare`, or never prepared (PPO's policy, its copies and the reward model). With ZeRO-3 accelerate
        registers its DeepSpeed config with transformers, whatever `zero3_init_flag` says, and transformers then
        makes every model under deepspeed.zero.Init; the registration is lifted for the block."""
        if not self.zero3:
            yield
            return
        from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
        try:
            yield
        finally:
            set_hf_deepspeed_config(self.accelerator.state.deepspeed_plugin.dschf)

    def full_state_dict(self, model: torch.nn.Module, within: torch.nn.Module | None = None) -> dict | None:
        """`model`'s whole state dict on the main process (every process must call this). `within`: the prepared
        model that `model` is a part of (PPO's policy in its PPOModel); accelerate gathers only a whole DeepSpeed
        ZeRO-3 engine, so there the part is copied out of its gathered parameters."""
        if within is None or not self.zero3:
            return self.accelerator.get_state_dict(model)
        with self.whole_parameters(within):
            if not self.is_main:
                return None
            return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}

    def max_memory_mb(self) -> float:
        """This process's memory high-water mark so far, in MiB: the peak CUDA allocation on a GPU, the peak resident
        set on a CPU (what sharding shrinks: each process's weights, gradients and optimizer state)."""
        if self.device.type == "cuda":
            return round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kibibytes on Linux, bytes on macOS
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)

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
