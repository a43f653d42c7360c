"""Longer contexts for RoPE models: position interpolation, dynamic NTK and YaRN, as transformers 5 names them.

`extend_context(config, 8192, "linear")` rewrites a model config's `rope_parameters` so the weights trained at the
original length read 4x as many positions:

    linear   position interpolation (Chen et al. 2023, rinna's bilingual-gpt-neox-4b-8k): every position is divided
             by the factor, so position 4p rotates as p did; `max_position_embeddings` becomes the new length.
    dynamic  NTK-aware scaling recomputed from each forward's sequence length: unchanged up to the original length,
             a larger base beyond it (at the full new length transformers' formula raises the base by
             (f^2 - f + 1)^(d/(d-2)) for factor f). transformers reads `max_position_embeddings` as the original
             length here, so it stays; chowa counts the context as original x factor, while tools that read
             `max_position_embeddings` alone (lm-eval) see the original. Since the frequencies follow the batch's
             length, training at the full length fits one scale; linear or yarn is the choice for continued training.
    yarn     YaRN (Peng et al. 2023): interpolates the low frequencies, keeps the high ones, scales attention.
             `original_max_position_embeddings` is written explicitly: without it transformers takes the new length
             for the original, and the frequency correction range is computed on the wrong length, silently.

The original length comes from the config itself (a model extended before keeps its first length), so extending twice
gives factor = new / original, not new / previous. For the byte-group model, lengths are in bytes as its
`data.seq_len` and context are, and are converted to positions (groups). A model without RoPE (BLOOM's ALiBi biases)
is refused.

Run as (from Python):
    config = extend_context(AutoConfig.from_pretrained(folder), 8192, "yarn")
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from chowa.bytegroup import is_byte_model
from chowa.config.pretrain import METHODS
from chowa.errors import ChowaError

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def has_rope(config: PretrainedConfig | dict) -> bool:
    """Whether the config (or its dict) has rotary position embeddings."""
    rope = config.get("rope_parameters") if isinstance(config, dict) else getattr(config, "rope_parameters", None)
    return isinstance(rope, dict) and "rope_theta" in rope


def original_context(config: PretrainedConfig) -> int:
    """The length the model's positions were trained at, before any scaling."""
    rope = config.rope_parameters
    kind = rope.get("rope_type", "default")
    if kind == "yarn":
        return int(rope["original_max_position_embeddings"])
    if kind == "linear":
        return round(config.max_position_embeddings / rope["factor"])
    if kind in ("default", "dynamic"):
        return int(config.max_position_embeddings)
    raise ChowaError(f"context.extend_to: the model's RoPE type {kind!r} is not one chowa extends from "
                     f"({', '.join(METHODS)}, or plain RoPE)")


def extend_context(config: PretrainedConfig, extend_to: int, method: str) -> PretrainedConfig:
    """A copy of `config` whose RoPE reads `extend_to` positions by `method` (see the module docstring)."""
    if method not in METHODS:
        raise ChowaError(f"context.method={method!r}: choose one of {', '.join(METHODS)}")
    if not has_rope(config):
        raise ChowaError(f"context.extend_to: the {config.model_type} model has no rotary position embeddings to "
                         "interpolate (BLOOM adds ALiBi distance biases to attention instead, with no position table "
                         "or trained length to stretch); extending its context is not position interpolation")
    unit = config.bytes_per_group if is_byte_model(config) else 1  # the byte-group model: bytes per position
    if extend_to % unit:
        raise ChowaError(f"context.extend_to={extend_to}: the byte-group model reads whole groups of {unit} bytes")
    original = original_context(config)
    if extend_to <= original * unit:
        raise ChowaError(f"context.extend_to={extend_to} is not longer than the model's trained context "
                         f"({original * unit})")
    positions = extend_to // unit
    factor = positions / original
    extended = copy.deepcopy(config)
    rope = {k: v for k, v in config.rope_parameters.items()
            if k in ("rope_theta", "partial_rotary_factor")}  # drop an earlier scaling's own keys
    rope |= {"rope_type": method, "factor": factor}
    if method == "yarn":
        rope["original_max_position_embeddings"] = original
    extended.rope_parameters = rope
    extended.max_position_embeddings = original if method == "dynamic" else positions
    return extended

