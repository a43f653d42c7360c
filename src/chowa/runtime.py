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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, get_int_from_env, set_seed

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
    """Run FSDP and DeepSpeed on CPU processes, and refuse the launches accelerate would run as something else.

    accelerate 1.x turns `--use_fsdp` into FSDP only on accelerators (`AcceleratorState.__init__` in
    accelerate/state.py switches to DistributedType.FSDP from MULTI_GPU, XPU, NPU, HPU, ... and never from
    MULTI_CPU), and miscounts DeepSpeed's CPU processes; `fsdp_on_cpu` and `deepspeed_on_cpu` finish what it leaves.
    A launch that would still train as something else than it asks (DDP, or each process alone writing the same
    folder) is refused with what to change."""
    world = get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1)
    asked = [name for name, key in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"))
             if os.environ.get(key, "false").lower() == "true"]
    kind = accelerator.distributed_type
    on_cpu = accelerator.device.type == "cpu"
    if asked == ["FSDP"] and on_cpu and kind == DistributedType.MULTI_CPU:
        fsdp_on_cpu(accelerator)
    elif asked == ["DeepSpeed"] and on_cpu and kind == DistributedType.DEEPSPEED:
        deepspeed_on_cpu(accelerator)
    elif asked and on_cpu:
        instead = {DistributedType.MULTI_CPU: "DDP over gloo", DistributedType.NO: "each process training alone"}
        fix = {"FSDP": "add runtime.cpu=true, with which chowa runs FSDP2 over gloo",
               "DeepSpeed": "leave runtime.cpu=false, with which DeepSpeed runs on its CPU accelerator"}[asked[0]]
        raise ChowaError(f"runtime: the launch asks for {asked[0]}, but accelerate would run these CPU processes as "
                         f"{instead.get(kind, kind.value)}: {fix}")
    elif asked and kind not in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise ChowaError(f"runtime: the environment asks for {asked[0]} (ACCELERATE_USE_{asked[0].upper()}=true), "
                         "but this process was not started by a distributed launch (accelerate launch or torchrun); "
                         "launch it, or unset the variable")
    if world > 1 and accelerator.num_processes == 1:
        raise ChowaError(f"runtime: {world} processes were launched but each would train alone, all writing the same "
                         "folder; on CPUs launch with --multi_gpu and runtime.cpu=true")


def deepspeed_on_cpu(accelerator: Accelerator) -> None:
    """Give a DeepSpeed run on CPU processes its real process count and ranks.

    DeepSpeed runs on CPUs through its own CPU accelerator and starts torch.distributed itself, but accelerate picks
    a backend for CPU processes only with `cpu=True` (`PartialState._prepare_backend` in accelerate/state.py), which
    also turns DeepSpeed off; without it accelerate counts one process, so every process would be rank 0 of 1. The
    counts come from torch.distributed, into PartialState (which every later state copies) and the live state."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == accelerator.num_processes:
        return
    counts = {"num_processes": dist.get_world_size(), "process_index": dist.get_rank(),
              "local_process_index": int(os.environ.get("LOCAL_RANK", 0)), "backend": dist.get_backend()}
    PartialState._shared_state.update(counts)
    vars(accelerator.state).update(counts)


def fsdp_on_cpu(accelerator: Accelerator) -> None:
    """Make a CPU launch that asks for FSDP an FSDP run, the way accelerate makes a GPU one.

    torch's FSDP2 (`fully_shard`) shards, trains and checkpoints (torch.distributed.checkpoint) on CPU processes over
    gloo; only accelerate's device list keeps it off them. So this makes the assignments accelerate's GPU branch
    makes: the state's distributed type and plugin (read from the launch's FSDP_* variables), and PartialState's
    type, which every later `AcceleratorState()` copies (accelerate/state.py). FSDP1 needs a CUDA-like device."""
    plugin = FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise ChowaError("runtime: FSDP on CPU processes runs only as FSDP2; launch with --fsdp_version 2 "
                         "(fsdp_version: 2 in the accelerate config)")
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


@contextlib.contextmanager
def _whole_fsdp(model: torch.nn.Module, reshard: bool | int) -> Iterator[None]:
    """Every FSDP2 unit of `model` unsharded, and kept so across forwards, until the block ends."""
    from torch.distributed.fsdp import FSDPModule

    units = [module for module in model.modules() if isinstance(module, FSDPModule)]
    # The root's one-time setup runs in its first forward; a nested unit called before it would take the root's
    # place, so it is done here (as torch's root pre-forward does) when nothing has run yet.
    model._get_fsdp_state()._lazy_init()
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(reshard, recurse=False)


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
    def shards_parameters(self) -> bool:
        """FSDP or DeepSpeed ZeRO-3: each forward gathers parameters from every process, so every one must run it."""
        kind, state = self.accelerator.distributed_type, self.accelerator.state
        return kind == DistributedType.FSDP or (kind == DistributedType.DEEPSPEED
                                                and state.deepspeed_plugin.zero_stage == 3)

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
        shard parameters again after it; otherwise nothing changes."""
        if self.accelerator.distributed_type == DistributedType.FSDP:
            with _whole_fsdp(model, self.accelerator.state.fsdp_plugin.reshard_after_forward):
                yield
        elif self.shards_parameters:  # ZeRO-3: DeepSpeed's own context gathers once and lifts its per-module hooks
            from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

            with unwrap_model_for_generation(model):
                yield
        else:
            yield

    @contextlib.contextmanager
    def built_whole(self) -> Iterator[None]:
        """Models loaded or built in the block are whole, not partitioned as they are made: for models copied or run
        before `prepare`, or never prepared (PPO's policy, its copies and the reward model). With ZeRO-3 accelerate
        registers its DeepSpeed config with transformers, whatever `zero3_init_flag` says, and transformers then
        makes every model under deepspeed.zero.Init; the registration is lifted for the block."""
        if not (self.shards_parameters and self.accelerator.distributed_type == DistributedType.DEEPSPEED):
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
        if within is None or not (self.shards_parameters and self.accelerator.distributed_type
                                  == DistributedType.DEEPSPEED):
            return self.accelerator.get_state_dict(model)
        with self.whole_parameters(within):
            if not self.is_main:
                return None
            return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}

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
