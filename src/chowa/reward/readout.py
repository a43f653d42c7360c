"""Where a sequence's scalar score is read: the last non-pad token (TRL, OpenRLHF, DeepSpeed-Chat) or, to
reproduce the Dahoas reward models behind trlx's hh example, the first EOS.

Run as (from Python):
    scores = read_scores(values, last_token_index(attention_mask))
"""

from __future__ import annotations

import torch


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row; works for left and right padding. mask: (B, T) -> (B,) long."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, -1).amax(dim=1)


def first_eos_index(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Index of the first EOS in each row (Dahoas `argmax(ids == eos)`, pad = eos); 0 when a row has none,
    as argmax gives. An EOS inside the text moves the read point, which is why it is not our default.

    input_ids: (B, T) -> (B,) long.
    """
    return (input_ids == eos_token_id).int().argmax(dim=1)


def read_scores(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick one value per row. values: (B, T), index: (B,) -> (B,)."""
    return values.gather(1, index.unsqueeze(1)).squeeze(1)
