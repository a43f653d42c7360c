"""Where every command's model comes from: the weights in a Hugging Face folder (`load_model`, the one loader, so
the same mistake always gets the same error), or a fresh model from a preset; and where it runs by default.

Run as (from Python):
    model = load_or_build_model("tiny", tokenizer)             # random init, vocab from the tokenizer
    model = load_or_build_model("runs/demo/pretrain", tokenizer)  # continue from saved weights
    model = load_causal_lm("runs/demo/sft", device=default_device())
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from chowa.errors import ChowaError
from chowa.files import check_folder
from chowa.models.build import DTYPES, build_model

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def has_weights(path: str | os.PathLike) -> bool:
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in WEIGHT_FILES)


# What a folder is loaded as: a language model, or a one-score sequence classifier (a reward model).
HEADS = {"causal-lm": AutoModelForCausalLM, "sequence-classification": AutoModelForSequenceClassification}


def default_device() -> str:
    """CUDA when present, else the CPU: where generation, evaluation and scoring run unless told otherwise."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | os.PathLike, head: str = "causal-lm", dtype: str | None = None,
               device: str | torch.device | None = None, **kwargs: Any) -> PreTrainedModel:
    """The model in a local folder (or a hub name, for users with hub access) with the given head, in `dtype`
    (`auto`: the checkpoint's; None: transformers' default) on `device` (None: where transformers puts it)."""
    if check_folder(path, "model") and not has_weights(path):
        raise ChowaError(f"model: {path} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")
    if dtype is not None:
        if dtype != "auto" and dtype not in DTYPES:
            raise ChowaError(f"model: dtype must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
        kwargs["dtype"] = dtype if dtype == "auto" else DTYPES[dtype]
    try:
        model = HEADS[head].from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        raise ChowaError(f"model: cannot load {path} as a {head} model: {exc}") from None
    return model.to(device) if device is not None else model


def load_model_config(path: str | os.PathLike) -> PretrainedConfig:
    """A model folder's config (no weights loaded), with the loader's errors."""
    check_folder(path, "model")
    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ChowaError(f"model: cannot read the config of {path}: {exc}") from None


def load_causal_lm(path: str | os.PathLike, **kwargs: Any) -> PreTrainedModel:
    """A causal LM from a folder (see `load_model`)."""
    return load_model(path, "causal-lm", **kwargs)


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
