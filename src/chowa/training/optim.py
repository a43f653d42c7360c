"""AdamW with decoupled weight decay on matrices only, and a cosine schedule with linear warmup to a floor.

The byGPT-JP card's recipe is `OptimConfig(lr=5e-4, min_lr=1e-5, warmup_steps=2000, betas=[0.9, 0.999],
eps=1e-8, weight_decay=0.01, grad_clip=1.0)`.

Run as (from Python):
    optimizer = build_optimizer(model, cfg); scheduler = build_scheduler(optimizer, cfg, total_steps=1000)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from chowa.config.training import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups (the empty one left out): weight matrices decay; norms, biases and embedding tables do not.

    Embedding rows are updated only for the tokens seen, so decaying them every step shrinks rare tokens towards
    zero (the GPT-NeoX and Llama recipes exclude them too).
    """
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        shape = getattr(param, "ds_shape", param.shape)  # ZeRO-3 builds models partitioned: flat, empty tensors
        (no_decay if len(shape) < 2 or id(param) in embedding_ids else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # DeepSpeed drops an empty group, which would leave the LR schedule (built on these groups) one group short
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    # The fused kernel updates every tensor in one call; the default per-tensor loop costs ~0.2 s a step on a busy
    # 2-core CPU for the tiny model (transformers.Trainer defaults to fused AdamW for the same reason).
    devices = {p.device.type for p in model.parameters()}
    fused = devices <= {"cpu", "cuda"} and all(p.dtype.is_floating_point for p in model.parameters())
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             fused=fused or None)


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps - 1))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """A LambdaLR following `lr_at` (its state_dict carries the step, so a resumed run continues exactly)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, cfg, total_steps) / cfg.lr)
