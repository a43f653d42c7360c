"""The byte-group model of byGPT-JP: a Llama trunk that reads and predicts 4 bytes per step (specs/byte-model.md).

`hf/` holds the standalone files every saved folder carries (codec, configuration, model, tokenizer,
`custom_generate/`); `model` registers them with transformers and writes folders. Importing this package loads
nothing (no torch): the two tests below are what the rest of chowa asks of a model or tokenizer.
"""

from __future__ import annotations

MODEL_TYPE = "chowa_bytegroup"


def is_byte_model(model_or_config) -> bool:
    """Whether a model (or its config, or a config dict) is the byte-group model."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    return model_type == MODEL_TYPE


def is_byte_tokenizer(tokenizer) -> bool:
    """Whether a tokenizer is the byte-group tokenizer (ids are bytes, specials are 4-byte groups)."""
    return getattr(tokenizer, "byte_codec", None) is not None
