"""Named architecture presets: each is a `transformers` model type plus the config values of a published model.

A preset is data, not code: chowa owns the numbers, `transformers` owns the architecture. `build_config` turns a
preset name (or a Hugging Face config folder, dict or object) into a `PretrainedConfig`, with the vocabulary and
special-token ids taken from the tokenizer the model will be trained with.

Sources: each preset cites the public `config.json` it copies (read from copies of the hub file in public
fine-tunes and quantizations, which keep the original's values) and the model card its size is checked against.
`rotary_pct` / `rotary_emb_base` in those files are written here in their transformers-5 form, `rope_parameters`
with `partial_rotary_factor` / `rope_theta`.

Run as (from Python):
    config = build_config("rinna-ja-3.6b")
    config = build_config("tiny", tokenizer=tokenizer)      # vocabulary and bos/eos/pad ids from the tokenizer
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PretrainedConfig

from chowa.bytegroup import MODEL_TYPE
from chowa.errors import ChowaError


@dataclass(frozen=True)
class Preset:
    name: str
    model_type: str  # a `transformers` model_type: "gpt_neox", "bloom", "llama"
    config: dict[str, Any]  # keyword arguments of that model type's config class
    summary: str
    reference_params: float | None = None  # the size the preset must reproduce (see `reference`)
    reference: str = ""  # where `reference_params` comes from
    source: str = ""  # the config.json the values were copied from
    notes: tuple[str, ...] = field(default_factory=tuple)  # what is not public, and what we assumed instead


# rinna/japanese-gpt-neox-3.6b config.json (as copied in ebisuke/liz-nojaloli-ja, a fine-tune that keeps it):
# GPTNeoXForCausalLM, hidden 2816, 36 layers, 22 heads (head dim 128), intermediate 11264, rotary_pct 1.0,
# rotary_emb_base 10000, use_parallel_residual false, max_position_embeddings 2048, layer_norm_eps 1e-5,
# vocab 32000, tie_word_embeddings false, bos 2, eos 3, gelu. Card: "3.6 billion parameters", "36-layer,
# 2816-hidden-size". The 7.37 GB fp16 checkpoint (incl. 36 bool 2048x2048 mask buffers) agrees with 3.61B.
_RINNA_TRUNK: dict[str, Any] = {
    "hidden_size": 2816,
    "num_hidden_layers": 36,
    "num_attention_heads": 22,
    "intermediate_size": 11264,
    "hidden_act": "gelu",
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
    "use_parallel_residual": False,
    "max_position_embeddings": 2048,
    "layer_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "bos_token_id": 2,
    "eos_token_id": 3,
}

PRESETS: dict[str, Preset] = {}


def _register(preset: Preset) -> None:
    PRESETS[preset.name] = preset


_register(Preset(
    name="rinna-ja-3.6b",
    model_type="gpt_neox",
    config={**_RINNA_TRUNK, "vocab_size": 32000},
    summary="rinna japanese-gpt-neox-3.6b: GPT-NeoX, sequential residual, full rotary, 32k SentencePiece vocab",
    reference_params=3.6e9,
    reference="model card rinna/japanese-gpt-neox-3.6b: 3.6 billion",
    source="rinna/japanese-gpt-neox-3.6b config.json",
))

# rinna/bilingual-gpt-neox-4b config.json (as copied in PrunaAI/rinna-bilingual-gpt-neox-4b-HQQ-1bit-smashed and
# ryota39/bilingual-gpt-neox-4b-instruction-sft-en-ja-84k): the 3.6b trunk exactly, vocab 65536, plus
# attention_dropout 0.1 and hidden_dropout 0.1 (kept: they are in the published file, and matter only in training).
# Card: "English-Japanese bilingual GPT-NeoX model of 3.8 billion parameters", "36-layer, 2816-hidden-size".
_register(Preset(
    name="rinna-bilingual-3.8b",
    model_type="gpt_neox",
    config={**_RINNA_TRUNK, "vocab_size": 65536, "attention_dropout": 0.1, "hidden_dropout": 0.1},
    summary="rinna bilingual-gpt-neox-4b: the 3.6b trunk with a 65,536-piece ja/en vocab",
    reference_params=3.8e9,
    reference="model card rinna/bilingual-gpt-neox-4b: 3.8 billion",
    source="rinna/bilingual-gpt-neox-4b config.json",
))

# rinna/bilingual-gpt-neox-4b-8k: the bilingual model extended from 2,048 to 8,192 positions, which the card says
# was done by position interpolation (Chen et al. 2023) and further training on sequences longer than 4,000 tokens,
# and which needs transformers >= 4.31 (RoPE scaling for GPT-NeoX). The exact scaling entry of its config is not
# public; linear interpolation by 8192 / 2048 = 4 is the documented method, written as `context.extend_to=8192
# context.method=linear` would write it.
_register(Preset(
    name="rinna-bilingual-3.8b-8k",
    model_type="gpt_neox",
    config={**_RINNA_TRUNK, "vocab_size": 65536, "attention_dropout": 0.1, "hidden_dropout": 0.1,
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0,
                                "partial_rotary_factor": 1.0}},
    summary="rinna bilingual-gpt-neox-4b-8k: the bilingual model read at 8,192 positions by linear interpolation x4",
    reference_params=3.8e9,
    reference="model card rinna/bilingual-gpt-neox-4b-8k: 3.8 billion",
    source="rinna/bilingual-gpt-neox-4b config.json; card of bilingual-gpt-neox-4b-8k (position interpolation)",
    notes=("the published 8k config's RoPE scaling entry is not public; linear x4 is the card's documented method",),
))

# matsuo-lab/weblab-10b config.json (as copied in dahara1/weblab-10b-instruction-sft-GPTQ; the SFT model keeps the
# base architecture): hidden 4864, 36 layers, 38 heads (head dim 128), intermediate 19456, rotary_pct 0.25,
# rotary_emb_base 10000, use_parallel_residual true, max_position_embeddings 2048, layer_norm_eps 1e-5,
# vocab 50277, tie false, bos 0, eos 0 (Pythia / GPT-NeoX-20B conventions). The card says "10 billion", a rounded
# name: these values give 10.71B, and the published fp16 shards (10 + 10.1 + 1.49 GB) hold 10.7B, so the
# reference here is the checkpoint's 10.7B, not the name.
_register(Preset(
    name="weblab-10b",
    model_type="gpt_neox",
    config={
        "hidden_size": 4864,
        "num_hidden_layers": 36,
        "num_attention_heads": 38,
        "intermediate_size": 19456,
        "hidden_act": "gelu",
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        "use_parallel_residual": True,
        "max_position_embeddings": 2048,
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "vocab_size": 50277,
        "bos_token_id": 0,
        "eos_token_id": 0,
    },
    summary="matsuo-lab weblab-10b: GPT-NeoX (Pythia-style parallel residual, 25% rotary), GPT-NeoX-20B vocab",
    reference_params=10.7e9,
    reference="fp16 checkpoint of matsuo-lab/weblab-10b, 21.6 GB = 10.7B (card: '10 billion', a rounded name)",
    source="matsuo-lab/weblab-10b config.json",
))

# bigscience/bloom-7b1 config.json (as copied in izhx/udever-bloom-7b1, davisalex22/BLOOMTurismEC-7b1-ft):
# hidden 4096, n_layer 30, n_head 32, layer_norm_epsilon 1e-5, vocab 250880, bos 1, eos 2, pad 3,
# apply_residual_connection_post_layernorm false; FFN is fixed at 4 x hidden (16384) by the architecture; ALiBi, so
# no position table (trained at 2048 tokens); word embeddings tied to the LM head (BloomConfig default, and no
# tie_word_embeddings key in the file). bloomz-7b1 is bloom-7b1 fine-tuned on xP3 with the same config.
# Card: "7,069,016,064 parameters".
_register(Preset(
    name="bloomz-7b1",
    model_type="bloom",
    config={
        "hidden_size": 4096,
        "n_layer": 30,
        "n_head": 32,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "apply_residual_connection_post_layernorm": False,
        "tie_word_embeddings": True,
        "vocab_size": 250880,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 3,
    },
    summary="BLOOM 7.1B (bloom-7b1 / bloomz-7b1): ALiBi, tied embeddings, 250,880-token multilingual vocab",
    reference_params=7_069_016_064,
    reference="model card bigscience/bloom-7b1: 7,069,016,064",
    source="bigscience/bloom-7b1 config.json",
))

# The trunk of tohoku-nlp/bygpt-jp-multi-lm-head-6.5B-alpha as a plain Llama LM (see specs/byte-model.md §1, §8).
# Its config.json is not public; the card says "Llama-based, 6.5B" and the Llama-2-7B geometry fits that count:
# hidden 4096, 32 layers, 32 heads (no GQA), FFN 11008, RMSNorm eps 1e-5, rope_theta 10000, untied, silu
# (values from meta-llama/Llama-2-7b-hf config.json, as copied in anatal/stack-llama-2). Vocab 256 (one id per byte)
# and 2,880 positions (11,520-byte rows / 4 bytes per group) follow the spec, not a published file. The card's
# 6.5B adds the 4-byte merge and four byte heads to this trunk; the plain trunk with a byte vocab is 6.48B.
_register(Preset(
    name="llama-6.5b",
    model_type="llama",
    config={
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "intermediate_size": 11008,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "max_position_embeddings": 2880,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "vocab_size": 256,
        # byte specials are multi-byte groups, so no single id exists; the tokenizer supplies ids if it has them
        "bos_token_id": None,
        "eos_token_id": None,
    },
    summary="byGPT-JP 6.5B trunk as a plain Llama (Llama-2-7B geometry, byte vocab 256, 2,880 positions)",
    reference_params=6.5e9,
    reference="model card tohoku-nlp/bygpt-jp-multi-lm-head-6.5B-alpha: 6.5B (merge and byte heads included)",
    source="meta-llama/Llama-2-7b-hf config.json (geometry); specs/byte-model.md (vocab, positions)",
    notes=("original config.json not public: RoPE theta, norm eps, vocab and positions are assumptions",),
))

# byGPT-JP itself (specs/byte-model.md §4, §8): the Llama-2-7B trunk above over groups of 4 bytes, with the 4-byte
# embedding merge (Linear 16384 -> 4096) and four byte heads (4096 x 256 each): 6,548,623,360 parameters, the
# card's "6.5B". 2,880 groups = the card's 11,520-byte sequences.
_BYTEGROUP_LLAMA: dict[str, Any] = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "initializer_range": 0.02,
    "bytes_per_group": 4,
    "num_lm_heads": 4,
    "merge_type": "concat_linear",
    "codec": "f4-utf8",
}
_register(Preset(
    name="bytegroup-6.5b",
    model_type=MODEL_TYPE,
    config={**_BYTEGROUP_LLAMA, "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "intermediate_size": 11008, "max_position_embeddings": 2880},
    summary="byGPT-JP 6.5B: Llama-2-7B trunk over 4-byte groups, 4-byte merge, 4 byte heads (f4-utf8 codec)",
    reference_params=6.5e9,
    reference="model card tohoku-nlp/bygpt-jp-multi-lm-head-6.5B-alpha: 6.5B",
    source="meta-llama/Llama-2-7b-hf config.json (trunk); specs/byte-model.md §4, §8 (merge, heads, groups)",
    notes=("original code and config.json not public: codec, merge and head types, RoPE theta are assumptions",),
))
_register(Preset(
    name="bytegroup-tiny",
    model_type=MODEL_TYPE,
    config={**_BYTEGROUP_LLAMA, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 4, "intermediate_size": 172, "max_position_embeddings": 64},
    summary="test size of the byte-group model: 197,440 parameters, 64 groups (256 bytes) of context",
))

# Our own sizes, in the rinna style (full rotary, sequential residual, untied head, 2048 positions for small).
# Their vocabulary is a placeholder: the pretrain stage passes the trained tokenizer's size and special ids.
_register(Preset(
    name="tiny",
    model_type="gpt_neox",
    config={
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "hidden_act": "gelu",
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
        "use_parallel_residual": False,
        "max_position_embeddings": 512,
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "vocab_size": 2000,  # configs/tiny/tokenizer.yaml's size; the tokenizer's own size wins at build time
    },
    summary="test size: trains on a CPU in minutes (GPT-NeoX, 4 layers, hidden 128)",
))

# 12 x 768 is GPT-2 small's trunk (85M). Tying the head to the 32k embedding keeps the whole at ~110M, where an
# untied 32k head would add 25M parameters that a model this size trains poorly.
_register(Preset(
    name="small",
    model_type="gpt_neox",
    config={
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
        "use_parallel_residual": False,
        "max_position_embeddings": 2048,
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "vocab_size": 32000,  # placeholder: the tokenizer's size wins at build time
    },
    summary="one-GPU size, ~110M parameters with a 32k vocab (GPT-NeoX, 12 layers, hidden 768, tied head)",
    reference_params=1.0e8,
    reference="target size ~100M",
))


def list_presets() -> list[Preset]:
    """All presets, in the order they are declared."""
    return list(PRESETS.values())


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ChowaError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)} "
                         "(or give a folder holding a Hugging Face config.json)")
    return PRESETS[name]


def build_config(
    preset: str | os.PathLike | dict[str, Any] | PretrainedConfig,
    vocab_size: int | None = None,
    *,
    tokenizer: Any | None = None,
    **overrides: Any,
) -> PretrainedConfig:
    """A fresh `PretrainedConfig` from a preset name, a folder with a `config.json`, a config dict (with its
    `model_type`) or a config object, with `vocab_size` and then `overrides` applied on top.

    `tokenizer` (a Hugging Face tokenizer) sets the vocabulary to `len(tokenizer)` and the bos/eos/pad ids to the
    tokenizer's, unless `vocab_size` or an override says otherwise."""
    if tokenizer is not None:
        vocab_size = vocab_size or len(tokenizer)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if getattr(tokenizer, key, None) is not None:
                overrides.setdefault(key, getattr(tokenizer, key))
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    kwargs, model_type = _base_kwargs(preset)
    kwargs.update(overrides)
    if model_type == MODEL_TYPE:
        from chowa.bytegroup.model import register  # the byte-group classes (torch) only when a config needs them

        register()
    try:
        config = AutoConfig.for_model(model_type, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ChowaError(f"model config {_describe(preset)}: {exc}") from None
    # Config classes keep unknown keyword arguments as attributes, so a typo would pass silently; and a legacy
    # name (rotary_pct) would lose to the preset's rope_parameters. Overrides must use the config's own fields.
    known = set(type(config)().to_dict()) | set(config.attribute_map)
    unknown = sorted(key for key in overrides if key not in known)
    if unknown:
        raise ChowaError(f"model config {_describe(preset)}: unknown {model_type} config key(s) {', '.join(unknown)}; "
                         f"known keys: {', '.join(sorted(known))}")
    return config


def _base_kwargs(preset: str | os.PathLike | dict[str, Any] | PretrainedConfig) -> tuple[dict[str, Any], str]:
    """(config kwargs, model_type) of any accepted form of model spec; a copy, so callers may edit it."""
    if isinstance(preset, PretrainedConfig):
        return _without_model_type(preset.to_dict())
    if isinstance(preset, dict):
        if "model_type" not in preset:
            raise ChowaError("model config dict: 'model_type' is required (e.g. gpt_neox, bloom, llama)")
        return _without_model_type(preset)
    if isinstance(preset, str) and preset in PRESETS:
        found = PRESETS[preset]
        return dict(found.config), found.model_type
    path = Path(preset)
    if (path / "config.json").is_file():
        return _without_model_type(AutoConfig.from_pretrained(path, local_files_only=True).to_dict())
    if path.exists():
        raise ChowaError(f"model config: {path} has no config.json")
    get_preset(str(preset))  # raises the unknown-preset error
    raise AssertionError("unreachable")


def _without_model_type(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    kwargs = {key: value for key, value in config.items() if key not in ("model_type", "transformers_version")}
    return kwargs, config["model_type"]


def _describe(preset: Any) -> str:
    if isinstance(preset, str | os.PathLike):
        return repr(str(preset))
    return type(preset).__name__
