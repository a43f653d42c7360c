"""Where every command's model comes from: the weights in a Hugging Face folder (`load_model`, the one loader, so
the same mistake always gets the same error), or a fresh model from a preset; and where it runs by default.

Run as (from Python):
    model = load_or_build_model("tiny", tokenizer)             # random init, vocab from the tokenizer
    model = load_or_build_model("runs/demo/pretrain", tokenizer)  # continue from saved weights
    model = load_causal_lm("runs/demo/sft", device=default_device())
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from chowa.bytegroup import MODEL_TYPE, is_byte_model, is_byte_tokenizer
from chowa.errors import ChowaError
from chowa.files import check_folder
from chowa.models.build import DTYPES, build_model
from chowa.models.context import extend_context
from chowa.models.presets import build_config

# What a sequence classifier made from a language model adds (transformers names its head `score` or `classifier`).
_HEAD_PREFIXES = ("score.", "classifier.")
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
               device: str | torch.device | None = None, new_head: bool = False, **kwargs: Any) -> PreTrainedModel:
    """The model in a local folder (or a hub name, for users with hub access) with the given head, in `dtype`
    (`auto`: the checkpoint's; None: transformers' default) on `device` (None: where transformers puts it).

    Every weight the model needs must be in the folder, so a reward model is never loaded as a language model with
    a random LM head (or the reverse); `new_head=True` lets the head alone start fresh (a reward model made from an
    SFT folder).
    """
    if check_folder(path, "model") and not has_weights(path):
        raise ChowaError(f"model: {path} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")
    _register_own_types(path)
    _check_kind(path, head)
    if dtype is not None:
        if dtype != "auto" and dtype not in DTYPES:
            raise ChowaError(f"model: dtype must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
        kwargs["dtype"] = dtype if dtype == "auto" else DTYPES[dtype]
    try:
        model, info = HEADS[head].from_pretrained(str(path), output_loading_info=True, **kwargs)
    except (OSError, ValueError, SafetensorError) as exc:
        raise ChowaError(f"model: cannot load {path} as a {head} model: {str(exc).splitlines()[0]}") from None
    missing = sorted(key for key in info["missing_keys"] if not (new_head and key.startswith(_HEAD_PREFIXES)))
    if missing:
        raise ChowaError(f"model: {path} lacks weights a {head} model needs ({', '.join(missing[:3])}"
                         f"{', …' if len(missing) > 3 else ''}): is it a folder of another kind of model?")
    return model.to(device) if device is not None else model


def _check_kind(path: str | os.PathLike, head: str) -> None:
    """A sequence classifier (a chowa reward model) has no LM head to generate with: say so before loading."""
    if head == "causal-lm" and (classifier := _classifier_name(path)):
        raise ChowaError(f"model: {path} is a sequence classifier ({classifier}: a reward model), with no "
                         f"language-model head to generate with; score replies with chowa reward score --model {path}")


def _classifier_name(path: str | os.PathLike) -> str | None:
    """The architecture of a local folder saved as a sequence classifier, else None."""
    config = Path(path) / "config.json"
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") if config.is_file() else None
    if architectures and all(name.endswith("ForSequenceClassification") for name in architectures):
        return architectures[0]
    return None


def load_trunk(path: str | os.PathLike, **kwargs: Any) -> PreTrainedModel:
    """A model whose `base_model` (the transformer without a head) is wanted, such as a PPO critic's trunk: a
    reward model's folder or a language model's."""
    return load_model(path, "sequence-classification" if _classifier_name(path) else "causal-lm", **kwargs)


def load_model_config(path: str | os.PathLike) -> PretrainedConfig:
    """A model folder's config (no weights loaded), with the loader's errors."""
    check_folder(path, "model")
    _register_own_types(path)
    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ChowaError(f"model: cannot read the config of {path}: {exc}") from None


def _register_own_types(path: str | os.PathLike) -> None:
    """Let transformers load chowa's own model types (the byte-group model) from a folder without remote code."""
    config = Path(path) / "config.json"
    if config.is_file() and f'"{MODEL_TYPE}"' in config.read_text(encoding="utf-8"):
        from chowa.bytegroup.model import register

        register()


def check_vocabulary(tokenizer, rows: int, tokenizer_source: str | os.PathLike,
                     model_source: str | os.PathLike) -> None:
    """The tokenizer must be the model's: no id past the embedding table, and no table far larger than the
    vocabulary (published tables are padded for speed by up to a few percent, e.g. phi-2's 51,200 rows for 50,295
    tokens; a tenth more means another tokenizer). A byte-group tokenizer's ids are its 256 bytes."""
    size = tokenizer.vocab_size if is_byte_tokenizer(tokenizer) else len(tokenizer)
    if size > rows:
        raise ChowaError(f"tokenizer: {tokenizer_source} has {size:,} tokens but the model in {model_source} has "
                         f"{rows:,} embedding rows, so ids from {rows:,} up would index nothing; use the tokenizer the "
                         "model was trained with")
    if rows - size > max(64, rows // 10):
        raise ChowaError(f"tokenizer: {tokenizer_source} has {size:,} tokens but the model in {model_source} has "
                         f"{rows:,} embedding rows: it is not the tokenizer the model was trained with")


def load_model_tokenizer(model: str | os.PathLike, tokenizer: str | os.PathLike = ""):
    """The tokenizer of a model (its own folder's, or `tokenizer`), checked against the model's vocabulary before any
    weights load (`check_vocabulary`)."""
    from chowa.tokenizer import load_tokenizer

    source = tokenizer or model
    loaded = load_tokenizer(source)
    config = load_model_config(model)
    if getattr(config, "vocab_size", None):
        check_vocabulary(loaded, config.vocab_size, source, model)
    _check_byte_codec(loaded, config, source, model)
    return loaded


def _check_byte_codec(tokenizer, config, tokenizer_source, model_source) -> None:
    if is_byte_tokenizer(tokenizer) or is_byte_model(config):
        from chowa.bytegroup.model import check_codec

        check_codec(tokenizer, config, tokenizer_source, model_source)


def load_causal_lm(path: str | os.PathLike, **kwargs: Any) -> PreTrainedModel:
    """A causal LM from a folder (see `load_model`)."""
    return load_model(path, "causal-lm", **kwargs)


def load_or_build_model(spec: str, tokenizer, overrides: dict[str, Any] | None = None,
                        seed: int = 0, extend_to: int = 0, method: str = "linear") -> PreTrainedModel:
    """Weights from `spec` when it is a folder holding them, else a fresh model from a preset or config folder;
    with `extend_to`, its RoPE rewritten to read that many positions by `method` (see chowa.models.context)."""
    overrides = dict(overrides or {})
    if has_weights(spec):
        if overrides:
            raise ChowaError(f"model_config overrides {sorted(overrides)} cannot change the trained model in {spec}")
        extended = {"config": extend_context(load_model_config(spec), extend_to, method)} if extend_to else {}
        model = load_causal_lm(spec, **extended)
        check_vocabulary(tokenizer, model.get_input_embeddings().num_embeddings, "the tokenizer", spec)
    else:
        config = build_config(spec, tokenizer=tokenizer, **overrides)
        if extend_to:
            config = extend_context(config, extend_to, method)
        model = build_model(config, seed=seed)
    _check_byte_codec(tokenizer, model.config, "the tokenizer", spec)
    return model
