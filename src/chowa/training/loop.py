"""The optimisation loop shared by `pretrain` and `sft`: accumulate, clip, step, log, evaluate, checkpoint.

The loop owns nothing stage-specific: a stage hands it `next_batch(step, micro)` (this process's micro-batch
for that optimizer step, a pure function of its arguments, which is what makes resume exact) and
`loss_fn(model, batch) -> (mean loss, target tokens)`, and optionally `evaluate(model) -> metrics`.

Run as (from Python):
    model = fit(runtime, model, tokenizer, cfg, out, next_batch, loss_fn, evaluate, "pretrain")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from chowa.config import save_config
from chowa.errors import TrainingInterrupted
from chowa.files import atomic_write_text
from chowa.runtime import Runtime, configure_model
from chowa.training.checkpoint import (
    StopSignal,
    flat_config,
    latest_checkpoint,
    load_checkpoint,
    resume_from,
    save_checkpoint,
    save_model_folder,
)
from chowa.training.optim import build_optimizer, build_scheduler
from chowa.training.plots import read_metrics

Batch = dict[str, torch.Tensor]


def fit(runtime: Runtime, model: torch.nn.Module, tokenizer, cfg: Any, out: Path,
        next_batch: Callable[[int, int], Batch], loss_fn: Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, int]],
        evaluate: Callable[[torch.nn.Module], dict] | None, stage: str,
        terms: Callable[[Batch], int] | None = None) -> torch.nn.Module:
    """Train `model` for `cfg.train.steps` optimizer steps (`cfg` is the stage's config, with `train` and `optim`);
    writes config.yaml, metrics, checkpoints and the final HF folder, and prints a summary.

    `terms(batch)`: how many terms `loss_fn`'s mean averages when batches hold different numbers (SFT: reply
    tokens). Each micro-batch's loss is then weighted by its share of the step's terms on every process, so the
    step minimises the mean over all of them, as one process with the whole batch would, and not a mean of
    per-batch means (which would change with the process count and the accumulation steps)."""
    train, optim, accelerator = cfg.train, cfg.optim, runtime.accelerator
    configure_model(model, runtime.cfg)
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, train.steps)
    model, optimizer = runtime.prepare(model, optimizer, micro_batch=train.batch_size, grad_clip=optim.grad_clip)
    accelerator.register_for_checkpointing(scheduler)
    start_step, _ = begin_run(runtime, cfg, out, stage)
    if start_step == 0 and evaluate is not None:  # where the held-out curve starts
        model.eval()
        runtime.log(report_eval(runtime, stage, 0, evaluate(model)))
    accumulation = runtime.cfg.gradient_accumulation_steps
    progress = tqdm(total=train.steps, initial=start_step, desc=stage, disable=not runtime.is_main, unit="step")
    with StopSignal() as stop:
        for step in range(start_step, train.steps):
            started = time.perf_counter()
            model.train()
            losses, tokens, grad_norm = [], 0, None
            batches = [next_batch(step, micro) for micro in range(accumulation)]
            weights = step_weights(runtime, [terms(b) for b in batches]) if terms else [1.0] * accumulation
            for batch, weight in zip(batches, weights, strict=True):
                batch = {k: v.to(runtime.device) for k, v in batch.items()}
                with accelerator.accumulate(model):
                    loss, count = loss_fn(model, batch)
                    loss = loss * weight
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and optim.grad_clip > 0:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), optim.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                losses.append(loss.detach())
                tokens += count
            lr = scheduler.get_last_lr()[0]  # the rate this step used, before the schedule advances
            scheduler.step()
            loss_value = accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()
            tokens = int(accelerator.reduce(torch.tensor(tokens, device=runtime.device), reduction="sum").item())
            seconds = time.perf_counter() - started
            record = {"step": step + 1, "train_loss": loss_value, "lr": lr, "tokens": tokens,
                      "tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 4),
                      "max_memory_mb": runtime.max_memory_mb()}
            if grad_norm is not None:
                record["grad_norm"] = float(grad_norm)
            done = step + 1 == train.steps
            if evaluate is not None and (done or (train.eval_every and (step + 1) % train.eval_every == 0)):
                model.eval()
                record.update(report_eval(runtime, stage, step + 1, evaluate(model)))
            runtime.log(record)
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{tokens / seconds:.0f}")
            interrupted = stop.any_rank(runtime)
            if done or interrupted or (train.save_every and (step + 1) % train.save_every == 0):
                save_checkpoint(runtime, out, step + 1, model, tokenizer, {"stage": stage},
                                keep=train.keep_checkpoints, config=cfg)
            if interrupted:
                progress.close()
                raise TrainingInterrupted(f"{stage}: stopped by {stop.requested or 'a signal'} after step {step + 1}; "
                                          f"checkpoint saved in {latest_checkpoint(out)}. Run the same command again "
                                          f"(resume=auto) to continue.")
    progress.close()
    save_model_folder(runtime, model, tokenizer, out)
    runtime.finish()
    runtime.print(run_summary(runtime.metrics_path, stage, out))
    return accelerator.unwrap_model(model)


def step_weights(runtime: Runtime, terms: list[int]) -> list[float]:
    """`loss_weights` of this process's micro-batches, the step's terms summed over every process."""
    total = runtime.accelerator.reduce(torch.tensor(float(sum(terms)), device=runtime.device), reduction="sum").item()
    return loss_weights(terms, total, runtime.num_processes)


def loss_weights(terms: list[int], total: float, processes: int) -> list[float]:
    """Weights for micro-batch mean losses that make a step minimise the mean over all its `total` terms.

    terms: how many terms each of this process's micro-batches averages. A micro-batch's weight is its share of the
    step's terms times the micro-batches and processes that the backward pass divides by again (accelerate's
    `backward` and DeepSpeed's engine divide by the accumulation steps; DDP, FSDP and ZeRO average over processes).
    Equal counts everywhere give 1.0 each; terms [3, 1] on one of two processes with 8 in all give [1.5, 0.5].
    """
    scale = len(terms) * processes / max(total, 1.0)
    return [count * scale for count in terms]


def begin_run(runtime: Runtime, cfg: Any, out: Path, stage: str) -> tuple[int, dict | None]:
    """The step the run starts at and the checkpoint's trainer state: 0 and None, or a checkpoint's after restoring
    it (`resume_from` refuses one of another config). Only now, when the run starts for real, is config.yaml
    written."""
    state, checkpoint = None, resume_from(cfg, out, stage)
    if checkpoint is not None:
        state = load_checkpoint(runtime, checkpoint)
        done = " (the run is finished; nothing to train)" if state["step"] >= cfg.train.steps else ""
        runtime.print(f"{stage}: resuming from {checkpoint} (step {state['step']}){done}")
    start_step = state["step"] if state else 0
    trim_metrics(runtime, start_step)
    if runtime.is_main:
        save_config(cfg, out)
    runtime.track(stage, flat_config(cfg))
    return start_step, state


def report_eval(runtime: Runtime, stage: str, step: int, metrics: dict) -> dict:
    """Print held-out metrics as they come (they are in metrics.jsonl too); returns them with the step."""
    shown = ", ".join(f"{key} {value:.4g}" for key, value in metrics.items() if isinstance(value, int | float))
    runtime.print(f"{stage}: step {step}: {shown}")
    return {"step": step} | metrics


# How the summary names the metrics it quotes.
_LABELS = {"train_loss": "training loss", "val_loss": "held-out loss", "val_accuracy": "held-out accuracy",
           "score_mean": "training score", "kl_k1": "KL (k1)", "heldout_score": "held-out score",
           "heldout_score_sampled": "held-out score (sampled)", "heldout_accuracy": "held-out accuracy"}


def run_summary(metrics_path: Path | None, stage: str, out: Path, step_key: str = "train_loss",
                heldout_keys: tuple[str, ...] = ("val_loss", "val_accuracy"), end_keys: tuple[str, ...] = ()) -> str:
    """One paragraph on a finished run: steps and time, `step_key` (logged every step) first to last and `end_keys`
    at the last step, and each held-out figure first to last."""
    records = read_metrics(metrics_path) if metrics_path is not None and metrics_path.exists() else []
    steps = [r for r in records if step_key in r]
    parts = [f"{stage}: finished, {len(steps)} steps in {sum(r.get('seconds', 0) for r in steps):.0f} s"]
    if steps:
        parts.append(f"{_LABELS[step_key]} {steps[0][step_key]:.3f} → {steps[-1][step_key]:.3f}")
        parts += [f"{_LABELS[key]} at the end {steps[-1][key]:.3f}" for key in end_keys if key in steps[-1]]
    for key in heldout_keys:
        values = [r[key] for r in records if key in r]
        if values:
            parts.append(f"{_LABELS[key]} {values[0]:.4g} → {values[-1]:.4g}")
    return "; ".join(parts) + f". Wrote {out}."


def trim_metrics(runtime: Runtime, start_step: int, path: Path | None = None) -> None:
    """Drop the records of a JSONL log (default: metrics.jsonl) past the checkpoint we resume from (a killed run
    logged steps it will now redo); a torn last line is dropped too, and the rewrite is atomic."""
    path = path or runtime.metrics_path
    if not runtime.is_main or path is None or not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= start_step] if start_step else []
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
