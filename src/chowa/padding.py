"""Token id lists as one padded batch: the one helper every stage uses to batch sequences of unequal length.

Prompts for `generate` are padded on the left (each row continues at the last column); training rows, rewards
and PPO responses on the right.

Run as (from Python):
    input_ids, attention_mask = pad_rows([[5, 6, 7], [8]], pad_id=0, side="left")   # (2, 3) each
"""

from __future__ import annotations

import torch


def pad_rows(rows: list[list[int]], pad_id: int, side: str = "right", device: torch.device | str | None = None,
             min_width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask: (B, T) long tensors, T the longest row (at least `min_width`), padding on
    `side` ("left" or "right")."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    width = max(min_width, *(len(row) for row in rows)) if rows else min_width
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, span] = 1
    return input_ids.to(device), attention_mask.to(device)
