"""Checkpoints that survive crashes: Hugging Face folders plus the full training state, written atomically.

Layout of a stage's output folder:

    out/checkpoints/step-00000200/   model.safetensors, config.json, tokenizer files  (plain HF folder)
                                     trainer_state.json  (step and what the loop needs to continue)
                                     state/  (accelerate: optimizer, scheduler, RNG of every process, scaler)

A checkpoint is written into a hidden `.tmp-…` folder and renamed into place only when every process has
finished, so a crash or `kill -9` mid-write leaves the previous checkpoint as the latest complete one. Each
checkpoint keeps the run's `config.yaml`: resuming with a config that would compute something else (another
learning rate, other data, LoRA on a full fine-tune) is refused with the differing keys named (`resume_from`).
`StopSignal` turns SIGINT/SIGTERM into a flag the loop checks after each optimizer step, so an interrupted run
saves a checkpoint before it exits.

Run as (from Python):
    path = save_checkpoint(runtime, out, step, model, tokenizer, {"step": step})
    state = load_checkpoint(runtime, latest_checkpoint(out))
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import torch

from chowa.bytegroup import is_byte_model
from chowa.config import load_config, save_config
from chowa.errors import ChowaError
from chowa.files import atomic_write_text
from chowa.folders import finish_folder
from chowa.runtime import Runtime

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
CONFIG_FILE = "config.yaml"
# Keys that do not change what a run computes: where it writes (its token cache too), how often it evaluates, saves
# and logs, where else the metrics go, what it evaluates on (held-out sets and their sampling use their own RNG
# streams), how many sequences the PPO reward model scores at once, and resuming itself.
NEUTRAL_KEYS = ("out", "data.cache_dir", "train.eval_every", "train.eval_batches", "train.save_every",
                "train.keep_checkpoints", "train.resume", "train.resume_changes", "train.log_samples",
                "runtime.report_to", "runtime.gradient_checkpointing", "runtime.attention", "data.heldout",
                "data.heldout_size", "generation.eval_greedy", "generation.eval_samples", "reward.batch_size")
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dirs(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted writes are ignored)."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / TRAINER_STATE).is_file()]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    found = checkpoint_dirs(out_dir)
    return found[-1] if found else None


def resolve_resume(resume: str, out_dir: str | os.PathLike) -> Path | None:
    """`auto`: the latest complete checkpoint in `out_dir`, if any; `never`: None; else the named folder."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_checkpoint(out_dir)
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise ChowaError(f"resume: {path} is not a complete chowa checkpoint (no {TRAINER_STATE})")
    return path


def resume_from(cfg: Any, out: str | os.PathLike, stage: str) -> Path | None:
    """The checkpoint `cfg.train.resume` names, or None; refused (ChowaError) when the run it belongs to had a config
    that differs from `cfg` in a key that changes the result, unless `cfg.train.resume_changes` accepts the key."""
    now = flat_config(cfg)
    unknown = [key for key in cfg.train.resume_changes if not any(k == key or k.startswith(f"{key}.") for k in now)]
    if unknown:
        raise ChowaError(f"config: train.resume_changes names {unknown[0]!r}, which is not a key of {stage}'s config")
    checkpoint = resolve_resume(cfg.train.resume, out)
    if checkpoint is None:
        return None
    recorded = checkpoint / CONFIG_FILE if (checkpoint / CONFIG_FILE).is_file() else Path(out) / CONFIG_FILE
    if not recorded.is_file():
        return checkpoint  # a checkpoint of a version that kept no config: nothing to compare with
    try:
        before = flat_config(load_config(type(cfg), recorded))
    except ChowaError as exc:
        raise ChowaError(f"{stage}: cannot compare with the config of the run in {out}, {recorded} ({exc}); start "
                         "over with train.resume=never or choose a new out") from None
    accepted = set(NEUTRAL_KEYS) | set(cfg.train.resume_changes)
    changed = [key for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)
               and not any(key == a or key.startswith(f"{a}.") for a in accepted)]
    if changed:
        shown = "; ".join(f"{key}: {before.get(key)!r} → {now.get(key)!r}" for key in changed[:8])
        raise ChowaError(
            f"{stage}: {out} holds a run made with another config, so continuing it would not give what this config "
            f"asks for ({shown}{'; …' if len(changed) > 8 else ''}). Start over with train.resume=never, or choose a "
            f"new out=...; to continue that run anyway, accept the keys with train.resume_changes=[{changed[0]}]")
    return checkpoint


def flat_config(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a config as {dotted key: value}; lists and mappings (model_config, columns) compare whole."""
    flat = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            flat |= flat_config(value, f"{prefix}{field.name}.")
        else:
            flat[f"{prefix}{field.name}"] = value
    return flat


def save_model_folder(runtime: Runtime, model: torch.nn.Module, tokenizer, folder: str | os.PathLike,
                      within: torch.nn.Module | None = None) -> None:
    """Write `model` (unwrapped from DDP/FSDP/DeepSpeed) and `tokenizer` as a plain Hugging Face folder.

    Every process must call this (FSDP and ZeRO-3 gather the parameters collectively); rank 0 writes. `within`: the
    prepared model that `model` is a part of (PPO's policy in its PPOModel).
    """
    state_dict = runtime.full_state_dict(model, within)
    if runtime.is_main:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model = runtime.accelerator.unwrap_model(model)
        model.save_pretrained(str(folder), state_dict=state_dict, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))
        if is_byte_model(model):
            from chowa.bytegroup.model import write_custom_generate  # the byte-group model decodes with its own

            write_custom_generate(folder)
        finish_folder(folder)
    runtime.wait()


def save_checkpoint(runtime: Runtime, out_dir: str | os.PathLike, step: int, model: torch.nn.Module, tokenizer,
                    trainer_state: dict[str, Any], keep: int = 2, config: Any = None,
                    within: torch.nn.Module | None = None) -> Path:
    """Save a resumable checkpoint for optimizer step `step` (with the run's `config`) and keep the newest `keep`
    (0 keeps all); `within` as for `save_model_folder`."""
    root = Path(out_dir) / CHECKPOINTS
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if runtime.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    runtime.wait()
    runtime.accelerator.save_state(str(tmp / "state"))
    save_model_folder(runtime, model, tokenizer, tmp, within)
    if runtime.is_main:
        atomic_write_text(tmp / TRAINER_STATE, json.dumps({**trainer_state, "step": step}, indent=2) + "\n")
        if config is not None:
            save_config(config, tmp, CONFIG_FILE)
        if final.exists():  # a rerun of the same step: replace the old copy
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_dirs(out_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    runtime.wait()
    return final


def load_checkpoint(runtime: Runtime, path: Path) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states from `path`; returns its trainer state."""
    try:
        runtime.accelerator.load_state(str(path / "state"))
    except ValueError as exc:  # torch's optimizer refuses state of other parameter groups
        raise ChowaError(f"resume: {path} holds training state this run cannot take ({str(exc).splitlines()[0]}); it "
                         "was written by another version or another layout. Start over with train.resume=never, or "
                         "choose a new out") from None
    return json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))


class StopSignal:
    """Context manager: SIGINT/SIGTERM set `requested` instead of killing the process mid-step.

    A second Ctrl-C raises KeyboardInterrupt at once, for a user who does not want to wait for the save.
    """

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. inside a server): leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def any_rank(self, runtime: Runtime) -> bool:
        """True on every process when any process was signalled (launchers signal ranks at different times)."""
        if runtime.num_processes == 1:
            return self.requested is not None
        flag = torch.tensor([1.0 if self.requested else 0.0], device=runtime.device)
        return bool(runtime.accelerator.reduce(flag, reduction="sum").item() > 0)
