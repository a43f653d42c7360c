"""Token id lists as one padded batch: the one helper every stage uses to batch sequences of unequal length.

Prompts for `generate` are padded on the left (each row continues at the last column); training rows, rewards
and PPO responses on the right. The byte-group model pads with a whole PAD group (several ids) instead of one id.

Run as (from Python):
    input_ids, attention_mask = pad_rows([[5, 6, 7], [8]], pad_id=0, side="left")   # (2, 3) each
    input_ids, attention_mask = pad_rows(byte_rows, tokenizer.pad_group, side="left")  # whole PAD groups
"""

from __future__ import annotations

import torch


def pad_rows(rows: list[list[int]], pad_id: int | list[int], side: str = "right",
             device: torch.device | str | None = None, min_width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask: (B, T) long tensors, T the longest row (at least `min_width`), padding on
    `side` ("left" or "right"). `pad_id` may be a group of ids (the byte-group PAD group): rows of whole groups are
    then padded with whole groups."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    width = max(min_width, *(len(row) for row in rows)) if rows else min_width
    group = [pad_id] if isinstance(pad_id, int) else list(pad_id)
    if any(len(row) % len(group) for row in rows) or width % len(group):
        raise ValueError(f"rows padded with a group of {len(group)} ids must be whole groups")
    # every row and the width are whole groups, so the group tiled from column 0 fills either side's padding
    input_ids = torch.tensor(group * (width // len(group)), dtype=torch.long).repeat(len(rows), 1)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, span] = 1
    return input_ids.to(device), attention_mask.to(device)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token, as `generate` does, so left padding does not shift
    rotary positions (between sampling and scoring, or between a row alone and in a batch). (B, T) -> (B, T) long.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
