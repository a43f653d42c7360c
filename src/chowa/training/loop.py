"""The optimisation loop shared by `pretrain` and `sft`: accumulate, clip, step, log, evaluate, checkpoint.

The loop owns nothing stage-specific: a stage hands it `next_batch(step, micro)` (this process's micro-batch
for that optimizer step, a pure function of its arguments, which is what makes resume exact) and
`loss_fn(model, batch) -> (mean loss, target tokens)`, and optionally `evaluate(model) -> metrics`.

Run as (from Python):
    model = fit(runtime, model, tokenizer, cfg.train, cfg.optim, out, next_batch, loss_fn, evaluate, "pretrain")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from chowa.config.training import OptimConfig, TrainConfig
from chowa.errors import TrainingInterrupted
from chowa.files import atomic_write_text
from chowa.runtime import Runtime
from chowa.training.checkpoint import (
    StopSignal,
    latest_checkpoint,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
    save_model_folder,
)
from chowa.training.optim import build_optimizer, build_scheduler
from chowa.training.plots import read_metrics

Batch = dict[str, torch.Tensor]


def fit(runtime: Runtime, model: torch.nn.Module, tokenizer, train: TrainConfig, optim: OptimConfig, out: Path,
        next_batch: Callable[[int, int], Batch], loss_fn: Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, int]],
        evaluate: Callable[[torch.nn.Module], dict] | None, stage: str) -> torch.nn.Module:
    """Train `model` for `train.steps` optimizer steps; writes metrics, checkpoints and the final HF folder."""
    accelerator = runtime.accelerator
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, train.steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    start_step, checkpoint = 0, resolve_resume(train.resume, out)
    if checkpoint is not None:
        start_step = load_checkpoint(runtime, checkpoint)["step"]
        runtime.print(f"{stage}: resuming from {checkpoint} (step {start_step})")
    trim_metrics(runtime, start_step)
    if checkpoint is None and evaluate is not None:  # where the held-out curve starts
        model.eval()
        runtime.log({"step": 0} | evaluate(model))
    accumulation = runtime.cfg.gradient_accumulation_steps
    progress = tqdm(total=train.steps, initial=start_step, desc=stage, disable=not runtime.is_main, unit="step")
    with StopSignal() as stop:
        for step in range(start_step, train.steps):
            started = time.perf_counter()
            model.train()
            losses, tokens, grad_norm = [], 0, None
            for micro in range(accumulation):
                batch = {k: v.to(runtime.device) for k, v in next_batch(step, micro).items()}
                with accelerator.accumulate(model):
                    loss, count = loss_fn(model, batch)
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
            record = {"step": step + 1, "train_loss": loss_value, "lr": lr,
                      "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 4)}
            if grad_norm is not None:
                record["grad_norm"] = float(grad_norm)
            done = step + 1 == train.steps
            if evaluate is not None and (done or (train.eval_every and (step + 1) % train.eval_every == 0)):
                model.eval()
                record.update(evaluate(model))
            runtime.log(record)
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{tokens / seconds:.0f}")
            interrupted = stop.any_rank(runtime)
            if done or interrupted or (train.save_every and (step + 1) % train.save_every == 0):
                save_checkpoint(runtime, out, step + 1, model, tokenizer, {"stage": stage},
                                keep=train.keep_checkpoints)
            if interrupted:
                progress.close()
                raise TrainingInterrupted(f"{stage}: stopped by {stop.requested or 'a signal'} after step {step + 1}; "
                                          f"checkpoint saved in {latest_checkpoint(out)}. Run the same command again "
                                          f"(resume=auto) to continue.")
    progress.close()
    save_model_folder(runtime, model, tokenizer, out)
    return accelerator.unwrap_model(model)


def trim_metrics(runtime: Runtime, start_step: int, path: Path | None = None) -> None:
    """Drop the records of a JSONL log (default: metrics.jsonl) past the checkpoint we resume from (a killed run
    logged steps it will now redo); a torn last line is dropped too, and the rewrite is atomic."""
    path = path or runtime.metrics_path
    if not runtime.is_main or path is None or not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= start_step] if start_step else []
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
