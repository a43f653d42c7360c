"""Reward-model loss: Bradley–Terry on (chosen, rejected) score pairs, with an optional margin and centering term.

Run as (from Python):
    loss, accuracy = bradley_terry_loss(chosen_scores, rejected_scores, margin=0.0, centering_coef=0.01)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: float | torch.Tensor = 0.0,
    centering_coef: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`−mean log σ(r_c − r_r − margin) + c·mean((r_c + r_r)²)` and the accuracy `mean(r_c > r_r)`.

    chosen, rejected: (B,); margin: a float or (B,). The centering term (TRL suggests c = 0.01) keeps the
    scores near zero, since the Bradley–Terry loss only sees their difference.
    Returns (loss, accuracy), both scalars.
    """
    loss = -F.logsigmoid(chosen - rejected - margin).mean()
    if centering_coef:
        loss = loss + centering_coef * ((chosen + rejected) ** 2).mean()
    accuracy = (chosen > rejected).float().mean()
    return loss, accuracy
