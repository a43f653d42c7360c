"""Where a stage's model comes from: a fresh model from a preset, or the weights in a Hugging Face folder.

Run as (from Python):
    model = load_or_build_model("tiny", tokenizer)             # random init, vocab from the tokenizer
    model = load_or_build_model("runs/demo/pretrain", tokenizer)  # continue from saved weights
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, PreTrainedModel

from chowa.errors import ChowaError
from chowa.models.build import build_model

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def has_weights(path: str | os.PathLike) -> bool:
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in WEIGHT_FILES)


def load_causal_lm(path: str | os.PathLike, **kwargs: Any) -> PreTrainedModel:
    """A causal LM with weights from a local folder (or a hub name, for users with hub access)."""
    folder = Path(path)
    if folder.exists() and not has_weights(folder):
        raise ChowaError(f"model: {folder} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        raise ChowaError(f"model: cannot load {path}: {exc}") from None


def load_or_build_model(spec: str, tokenizer, overrides: dict[str, Any] | None = None,
                        seed: int = 0) -> PreTrainedModel:
    """Weights from `spec` when it is a folder holding them, else a fresh model from a preset or config folder."""
    overrides = dict(overrides or {})
    if has_weights(spec):
        if overrides:
            raise ChowaError(f"model_config overrides {sorted(overrides)} cannot change the trained model in {spec}")
        model = load_causal_lm(spec)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            raise ChowaError(f"model: {spec} has {model.get_input_embeddings().num_embeddings} embeddings but the "
                             f"tokenizer has {len(tokenizer)} tokens")
        return model
    return build_model(spec, tokenizer=tokenizer, seed=seed, **overrides)
