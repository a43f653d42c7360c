"""Saved folders that every tool reads as the same model: transformers 5.x, and the 4.3x releases that
lm-evaluation-harness forks, older vLLM / TGI images and llama.cpp's GGUF converter still run on.

transformers 5 writes RoPE settings only as `rope_parameters`, which 4.x ignores: a GPT-NeoX folder then loads in
4.x with `rotary_pct` 0.25 (its default) instead of the model's 1.0, a different model with no error. And it names
the tokenizer class `TokenizersBackend`, which 4.x does not know. After every save chowa adds the legacy keys beside
the new ones; 5.x reads the new ones (and pops the legacy ones on load), 4.x the legacy ones:

    config.json            rotary_pct + rotary_emb_base (GPT-NeoX) or rope_theta (+ partial_rotary_factor)
                           (Llama and others), rope_scaling (null for plain RoPE), torch_dtype
    tokenizer_config.json  tokenizer_class PreTrainedTokenizerFast (both releases' name for a tokenizer.json
                           tokenizer), chat_template (4.x reads it there; 5.x prefers chat_template.jinja)

tests/test_compat.py loads a saved folder in throwaway environments with transformers 4.34 and the last 4.x and
checks the token ids and logits against chowa's. The tokenizer's `model_max_length` is set to the model's context
(a tokenizer trained alone says 2048 whatever model it later serves).

Run as (from Python):
    model.save_pretrained(folder); tokenizer.save_pretrained(folder); finish_folder(folder)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from chowa.bytegroup import is_byte_model
from chowa.files import atomic_write_text

TOKENIZER_CLASS = "PreTrainedTokenizerFast"
_FAST_NAMES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def finish_folder(folder: str | os.PathLike) -> None:
    """Add the transformers 4.x keys to the folder's config.json and tokenizer_config.json (where present), and
    give the tokenizer the model's context as its model_max_length."""
    folder = Path(folder)
    config = _read(folder / "config.json")
    if config is not None:
        _write(folder / "config.json", config | legacy_config_keys(config))
    tokenizer_config = _read(folder / "tokenizer_config.json")
    if tokenizer_config is not None:
        tokenizer_config = legacy_tokenizer_keys(tokenizer_config, folder)
        context = context_length(config or {})
        if context:
            tokenizer_config["model_max_length"] = context
        _write(folder / "tokenizer_config.json", tokenizer_config)


def context_length(config, as_lm_eval: bool = False) -> int | None:
    """How many tokens the model reads (`n_ctx`, `n_positions` or `max_position_embeddings`, times the factor of a
    dynamic-NTK RoPE, from a config or its dict; bytes for the byte-group model); None for a model without a fixed
    context (BLOOM's ALiBi). `as_lm_eval`: the length lm-evaluation-harness reads, without the dynamic factor, for
    harnesses that must cut inputs as it does."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    positions = get("n_ctx") or get("n_positions") or get("max_position_embeddings")
    rope = get("rope_parameters")
    if positions and not as_lm_eval and isinstance(rope, dict) and rope.get("rope_type") == "dynamic":
        positions = round(positions * rope["factor"])  # dynamic NTK: max_position_embeddings is the original length
    if positions and is_byte_model(config):  # a position reads a group: the context is in bytes
        return positions * get("bytes_per_group")
    return positions


def legacy_config_keys(config: dict) -> dict:
    """The 4.x spelling of a 5.x config's RoPE and dtype settings."""
    keys = {"torch_dtype": config["dtype"]} if config.get("dtype") else {}
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" not in rope:
        return keys  # no RoPE (BLOOM's ALiBi) or per-layer RoPE that 4.x cannot express
    if config.get("model_type") == "gpt_neox":
        keys |= {"rotary_pct": rope.get("partial_rotary_factor", 0.25), "rotary_emb_base": rope["rope_theta"]}
    else:
        keys["rope_theta"] = rope["rope_theta"]
        if "partial_rotary_factor" in rope:
            keys["partial_rotary_factor"] = rope["partial_rotary_factor"]
    keys["rope_scaling"] = legacy_rope_scaling(rope)
    return keys


def legacy_rope_scaling(rope: dict) -> dict | None:
    """4.x's `rope_scaling`: null for plain RoPE, else the scaling's own keys with its `type` (5.x reads the same
    dict as `rope_parameters` when it is not null, so it keeps every key but the ones the legacy keys carry)."""
    kind = rope.get("rope_type", "default")
    if kind == "default":
        return None
    # 4.3x accepts exactly {type, factor} for linear and dynamic scaling, so `rope_type` (5.x's name) stays out.
    scaling = {k: v for k, v in rope.items() if k not in ("rope_theta", "partial_rotary_factor", "rope_type")}
    return scaling | {"type": kind}


def legacy_tokenizer_keys(tokenizer_config: dict, folder: Path) -> dict:
    """tokenizer_config.json with a class name both releases know, and the chat template where 4.x looks."""
    updated = dict(tokenizer_config)
    if updated.get("tokenizer_class") in _FAST_NAMES and (folder / "tokenizer.json").is_file():
        updated["tokenizer_class"] = TOKENIZER_CLASS
    template = folder / "chat_template.jinja"
    if template.is_file():
        updated["chat_template"] = template.read_text(encoding="utf-8")
    return updated


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
