"""FSDP and DeepSpeed where accelerate leaves them unfinished: CPU processes, and gathering a model whole.

accelerate 1.15 runs neither FSDP nor DeepSpeed on CPU processes, though torch's FSDP2 and DeepSpeed's CPU
accelerator both run there: `check_launch` finishes the launch accelerate began (or refuses one it would run as
something else), and the test suite runs every stage under both on two CPU processes. `whole_fsdp` and
`whole_zero3` gather a prepared model's parameters once for code that runs its parts outside its forward (PPO's
sampling). Runtime (`chowa.runtime`) is the only caller.

Run as (from Python; `Runtime` does this):
    check_launch(accelerator)
    with whole_fsdp(model): policy.generate(...)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from accelerate import Accelerator
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, get_int_from_env

from chowa.errors import ChowaError

_ASKED = (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"))


def check_launch(accelerator: Accelerator) -> None:
    """Run FSDP and DeepSpeed on CPU processes, and refuse the launches accelerate would run as something else.

    accelerate 1.x turns `--use_fsdp` into FSDP only on accelerators (`AcceleratorState.__init__` in
    accelerate/state.py switches to DistributedType.FSDP from MULTI_GPU, XPU, NPU, HPU, ... and never from
    MULTI_CPU), and miscounts DeepSpeed's CPU processes; `fsdp_on_cpu` and `deepspeed_on_cpu` finish what it leaves.
    A launch that would still train as something else than it asks (DDP, or each process alone writing the same
    folder) is refused with what to change."""
    world = get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1)
    launched = world > 1 or "LOCAL_RANK" in os.environ  # torchrun (accelerate launch) sets both
    asked = [name for name, key in _ASKED if os.environ.get(key, "false").lower() == "true"]
    kind = accelerator.distributed_type
    on_cpu = accelerator.device.type == "cpu"
    if asked and not launched:
        raise ChowaError(f"runtime: the environment asks for {asked[0]} (ACCELERATE_USE_{asked[0].upper()}=true), "
                         "but this process was not started by a distributed launch (accelerate launch or torchrun); "
                         "launch it, or unset the variable")
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
    if world > 1 and accelerator.num_processes == 1:
        raise ChowaError(f"runtime: {world} processes were launched but each would train alone, all writing the same "
                         "folder; on CPUs launch with --multi_gpu and runtime.cpu=true")


def fsdp_on_cpu(accelerator: Accelerator) -> None:
    """Make a CPU launch that asks for FSDP an FSDP run, the way accelerate makes a GPU one.

    torch's FSDP2 (`fully_shard`) shards, trains and checkpoints (torch.distributed.checkpoint) on CPU processes over
    gloo; only accelerate's device list keeps it off them. So this makes the assignments accelerate's GPU branch
    makes: the state's distributed type and plugin (read from the launch's FSDP_* variables), and PartialState's
    type, which every later `AcceleratorState()` copies (accelerate/state.py). FSDP1 needs a CUDA-like device."""
    if torch.accelerator.is_available():  # fully_shard would place the shards there, beside a gloo group
        raise ChowaError(f"runtime: FSDP on CPU processes of a machine with a {torch.accelerator.current_accelerator()}"
                         " would place its shards on it; launch without runtime.cpu=true, or hide the device "
                         "(CUDA_VISIBLE_DEVICES=)")
    plugin = FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise ChowaError("runtime: FSDP on CPU processes runs only as FSDP2; launch with --fsdp_version 2 "
                         "(fsdp_version: 2 in the accelerate config)")
    if accelerator.mixed_precision == "fp16":  # accelerate makes no gradient scaler on a CPU device
        raise ChowaError("runtime.mixed_precision=fp16: FSDP on CPU processes has no gradient scaler for fp16; "
                         "use bf16 or no")
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def deepspeed_on_cpu(accelerator: Accelerator) -> None:
    """Give a DeepSpeed run on CPU processes its real process count and ranks.

    DeepSpeed runs on CPUs through its own CPU accelerator and starts torch.distributed itself, but accelerate picks
    a backend for CPU processes only with `cpu=True` (`PartialState._prepare_backend` in accelerate/state.py), which
    also turns DeepSpeed off; without it accelerate counts one process, so every process would be rank 0 of 1. The
    counts come from torch.distributed, into PartialState (which every later state copies) and the live state."""
    import torch.distributed as dist

    if not dist.is_initialized():
        raise ChowaError("runtime: DeepSpeed did not start torch.distributed on these CPU processes; launch with "
                         "accelerate launch --use_deepspeed")
    if dist.get_world_size() == accelerator.num_processes:
        return
    counts = {"num_processes": dist.get_world_size(), "process_index": dist.get_rank(),
              "local_process_index": int(os.environ.get("LOCAL_RANK", 0)), "backend": dist.get_backend()}
    PartialState._shared_state.update(counts)
    vars(accelerator.state).update(counts)


@contextlib.contextmanager
def whole_fsdp(model: torch.nn.Module) -> Iterator[None]:
    """Every FSDP2 unit of `model` unsharded, and kept so across forwards, until the block ends; then each unit is
    sharded again and gets back its own reshard-after-forward setting (accelerate gives the root and the unit of the
    final norm and head another setting than the blocks)."""
    from torch.distributed.fsdp import FSDPModule

    units = [module for module in model.modules() if isinstance(module, FSDPModule)]
    # The root's one-time setup runs in its first forward; a nested unit called before it would take the root's
    # place, so it is done here (as torch's root pre-forward does) when nothing has run yet.
    model._get_fsdp_state()._lazy_init()
    # What set_reshard_after_forward changes, read back from torch's private state so that it can be restored.
    saved = [(state, state._auto_reshard_after_forward, [g.post_forward_mesh_info for g in state._fsdp_param_groups])
             for state in (unit._get_fsdp_state() for unit in units)]
    try:
        for unit in units:
            unit.set_reshard_after_forward(False, recurse=False)
            unit.unshard()
        yield
    finally:
        for unit in units:
            unit.reshard()
        for state, auto, mesh_infos in saved:
            state._auto_reshard_after_forward = auto
            for group, mesh_info in zip(state._fsdp_param_groups, mesh_infos, strict=True):
                group.post_forward_mesh_info = mesh_info


@contextlib.contextmanager
def whole_zero3(engine: torch.nn.Module) -> Iterator[None]:
    """Every parameter of a DeepSpeed ZeRO-3 engine gathered once, and its per-module hooks (which would gather and
    release each module around every forward) lifted, until the block ends: DeepSpeed's own context for this."""
    from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

    with unwrap_model_for_generation(engine):
        yield
