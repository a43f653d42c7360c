"""Build a randomly initialised causal LM from a preset or config, and describe one without allocating it.

`model_info` builds the model on the meta device (shapes only, no memory), so `chowa model info --preset
weblab-10b` counts 10.7B parameters in a second on a laptop.

Run as (from Python):
    model = build_model("tiny", tokenizer=tokenizer, seed=0)
    print(format_model_info(model_info("rinna-ja-3.6b")))
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from chowa.config.model import ModelInfoConfig, ModelListConfig
from chowa.errors import ChowaError
from chowa.models.presets import PRESETS, build_config, list_presets

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}

ModelSpec = str | os.PathLike | dict[str, Any] | PretrainedConfig


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ChowaError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def build_model(
    spec: ModelSpec,
    *,
    vocab_size: int | None = None,
    tokenizer: Any | None = None,
    seed: int = 0,
    dtype: str | torch.dtype = "float32",
    **overrides: Any,
) -> PreTrainedModel:
    """A freshly initialised `AutoModelForCausalLM` for `spec` (see `build_config`), the same weights for the same
    seed. Initialising directly in `dtype` keeps a 10B bf16 model at 20 GB instead of 40 GB of fp32 first."""
    config = build_config(spec, vocab_size, tokenizer=tokenizer, **overrides)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype))


def count_parameters(model: PreTrainedModel) -> dict[str, int]:
    """Total, embedding (input table plus an untied output head) and non-embedding parameter counts."""
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    tables = {id(m.weight): m.weight.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings())
              if m is not None}
    embedding = sum(tables.values())
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}


def model_info(spec: ModelSpec, vocab_size: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Shape and size of the model `spec` describes, built on the meta device (no weights allocated)."""
    config = build_config(spec, vocab_size, **overrides)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    preset = PRESETS.get(spec) if isinstance(spec, str) else None
    hidden, heads = config.hidden_size, config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    return {
        "name": preset.name if preset else str(getattr(config, "_name_or_path", "") or config.model_type),
        "architecture": type(model).__name__,
        "model_type": config.model_type,
        "layers": config.num_hidden_layers,
        "hidden": hidden,
        "heads": heads,
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": getattr(config, "head_dim", None) or hidden // heads,
        # BLOOM (like GPT-2) has no intermediate_size: its MLP is fixed at 4 x hidden
        "ffn": getattr(config, "intermediate_size", None) or 4 * hidden,
        "vocab": config.vocab_size,
        "positions": getattr(config, "max_position_embeddings", None),
        "rope_theta": rope.get("rope_theta"),
        "rotary_fraction": rope.get("partial_rotary_factor", 1.0) if rope else None,
        "tied_embeddings": bool(config.tie_word_embeddings),
        "params": count_parameters(model),
        "reference_params": preset.reference_params if preset else None,
        "reference": preset.reference if preset else "",
        "source": preset.source if preset else "",
        "notes": list(preset.notes) if preset else [],
    }


def format_model_info(info: dict[str, Any]) -> str:
    """`chowa model info` output: one `label  value` line per fact."""
    params = info["params"]
    if info["rope_theta"] is not None:
        rotary = f"rotary on {info['rotary_fraction']:.0%} of each head, θ {info['rope_theta']:g}"
        positions = f"{info['positions']} ({rotary})"
    else:
        positions = f"{info['positions']}" if info["positions"] else "no position table (ALiBi)"
    heads = f"{info['heads']}" + (f" ({info['kv_heads']} kv)" if info["kv_heads"] != info["heads"] else "")
    rows = [
        ("model", info["name"]),
        ("architecture", f"{info['architecture']} ({info['model_type']})"),
        ("layers", info["layers"]),
        ("hidden", info["hidden"]),
        ("heads", f"{heads}, head dim {info['head_dim']}"),
        ("ffn", info["ffn"]),
        ("vocab", f"{info['vocab']:,}"),
        ("positions", positions),
        ("tied embeddings", "yes" if info["tied_embeddings"] else "no"),
        ("parameters", f"{params['total']:,} ({_short(params['total'])})"),
        ("  embedding", f"{params['embedding']:,} ({_short(params['embedding'])})"),
        ("  non-embedding", f"{params['non_embedding']:,} ({_short(params['non_embedding'])})"),
    ]
    if info["reference_params"]:
        delta = params["total"] / info["reference_params"] - 1
        rows.append(("reference", f"{_short(info['reference_params'])} ({delta:+.1%}): {info['reference']}"))
    if info["source"]:
        rows.append(("source", info["source"]))
    rows += [("note", note) for note in info["notes"]]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def list_main(cfg: ModelListConfig) -> None:
    """`chowa model list`."""
    print(format_preset_list())


def info_main(cfg: ModelInfoConfig) -> None:
    """`chowa model info`: a table, or JSON."""
    info = model_info(cfg.preset, vocab_size=cfg.vocab_size)
    print(json.dumps(info, indent=2) if cfg.json else format_model_info(info))


def format_preset_list() -> str:
    """`chowa model list` output: one line per preset with its measured size (meta-device builds, ~0.1 s each)."""
    rows = [(p.name, p.model_type, _short(model_info(p.name)["params"]["total"]), p.summary) for p in list_presets()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{name:<{widths[0]}}  {arch:<{widths[1]}}  {size:>{widths[2]}}  {summary}"
                     for name, arch, size, summary in rows)


def _short(count: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.2f}{suffix}"
    return str(int(count))
