"""Modules PPO adds to a Hugging Face decoder: a scalar value head, and a copy of the top decoder blocks that runs
on the hidden state captured at the input of the first copied block (the hydra reference and value branches).

The copied blocks are the model's own modules, called with the very arguments the trunk passed to the original
block (causal mask, rotary cos/sin, BLOOM's alibi), so no architecture's forward pass is re-implemented here.

Run as (from Python):
    with capture_block_input(blocks[-k]) as captured:
        policy(input_ids, attention_mask=attention_mask)
    ref_logits = reference_top(captured)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


class ValueHead(nn.Module):
    """`Linear(d → 2d) → ReLU → Linear(2d → 1)` in fp32, as trlx's hydra value head."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden_size, 2 * hidden_size), nn.ReLU(), nn.Linear(2 * hidden_size, 1))
        self.float()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states: (B, T, D) -> values (B, T), fp32."""
        return self.mlp(hidden_states.float()).squeeze(-1)


@dataclass
class BlockInput:
    """What a decoder block was called with: the hidden state (B, T, D) and every other argument."""

    hidden_states: torch.Tensor | None = None
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@contextmanager
def capture_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record what `module` returns inside the `with` (the last call wins), in a one-item list."""
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        captured[:] = [output]

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@contextmanager
def capture_block_input(block: nn.Module) -> Iterator[BlockInput]:
    """Record the arguments of `block`'s calls inside the `with` (the last call wins)."""
    captured = BlockInput()

    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        if args:
            captured.hidden_states, captured.args = args[0], args[1:]
            captured.kwargs = dict(kwargs)
        else:  # hidden_states passed by keyword
            captured.kwargs = dict(kwargs)
            captured.hidden_states = captured.kwargs.pop("hidden_states")
            captured.args = ()

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()


class TopBlocks(nn.Module):
    """A deep copy of the top k decoder blocks, the final norm and (optionally) the LM head.

    `forward(block_input)` runs the copied blocks on a captured block input with the trunk's own mask and
    position arguments, then the norm, then the head: (B, T, D) -> logits (B, T, V), or the normed hidden state
    (B, T, D) without a head. Frozen copies stay in eval mode and outside autograd.
    """

    def __init__(self, blocks: list[nn.Module], final_norm: nn.Module, lm_head: nn.Module | None, trainable: bool):
        super().__init__()
        self.blocks = copy.deepcopy(nn.ModuleList(blocks))
        self.final_norm = copy.deepcopy(final_norm)
        self.lm_head = copy.deepcopy(lm_head) if lm_head is not None else None
        self.trainable = trainable
        self.requires_grad_(trainable)
        if not trainable:
            self.eval()

    def train(self, mode: bool = True) -> TopBlocks:
        return super().train(mode and self.trainable)

    def forward(self, block_input: BlockInput, logits_to_keep: int = 0) -> torch.Tensor:
        """`logits_to_keep` > 0: the output at the last this-many positions only (the blocks still see them all)."""
        hidden_states = block_input.hidden_states.detach()
        for block in self.blocks:
            output = block(hidden_states, *block_input.args, **block_input.kwargs)
            # Llama and GPT-NeoX blocks return a tensor, BLOOM's a tuple led by the hidden state.
            hidden_states = output[0] if isinstance(output, tuple | list) else output
        hidden_states = self.final_norm(hidden_states[:, -logits_to_keep:])
        return self.lm_head(hidden_states) if self.lm_head is not None else hidden_states
