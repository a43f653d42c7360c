"""Registration and folders of the byte-group model of byGPT-JP (tohoku-nlp/bygpt-jp-multi-lm-head-6.5B-alpha).

Its configuration, model, tokenizer, codec and `custom_generate/generate.py` live in `chowa/bytegroup/hf/` as
standalone files: every saved folder carries copies, so plain transformers loads it with `trust_remote_code=True`
and no chowa installed. This module registers the classes with transformers' Auto classes (so chowa loads such
folders without remote code) and writes the folders.

Run as (from Python):
    register()
    tokenizer = ByteGroupTokenizer(codec="f4-utf8")
    save_folder(model, tokenizer, "runs/bytes")   # model files, tokenizer files, the code, custom_generate/
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from chowa.bytegroup import MODEL_TYPE, is_byte_model, is_byte_tokenizer
from chowa.bytegroup.hf import custom_generate
from chowa.bytegroup.hf.codec_bytegroup import CODECS, CodecError, get_codec
from chowa.bytegroup.hf.configuration_bytegroup import ByteGroupConfig
from chowa.bytegroup.hf.modeling_bytegroup import ByteGroupForCausalLM
from chowa.bytegroup.hf.tokenization_bytegroup import ByteGroupTokenizer
from chowa.errors import ChowaError

__all__ = ["CODECS", "ByteGroupConfig", "ByteGroupForCausalLM", "ByteGroupTokenizer", "CodecError", "MODEL_TYPE",
           "check_codec", "get_codec", "register", "save_folder", "to_slot_sum",
           "write_custom_generate"]

REQUIREMENTS = "torch\ntransformers\n"


def register() -> None:
    """Make AutoConfig, AutoModelForCausalLM and AutoTokenizer know the byte-group classes (idempotent), and mark
    them so `save_pretrained` writes `auto_map` and copies their code."""
    AutoConfig.register(MODEL_TYPE, ByteGroupConfig, exist_ok=True)
    AutoModelForCausalLM.register(ByteGroupConfig, ByteGroupForCausalLM, exist_ok=True)
    AutoTokenizer.register(ByteGroupConfig, slow_tokenizer_class=ByteGroupTokenizer, exist_ok=True)
    ByteGroupConfig.register_for_auto_class()
    ByteGroupForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    ByteGroupTokenizer.register_for_auto_class("AutoTokenizer")


def to_slot_sum(model: ByteGroupForCausalLM) -> ByteGroupForCausalLM:
    """The same function with the `slot_sum` merge: split the merge's W into [W_0 | W_1 | W_2 | W_3]; then
    z = Σ_j W_j·E[b_j] = Σ_j S_j[b_j] with S_j = E·W_jᵀ (256 x d), one byte table per slot (4.2M parameters at
    d 4096 instead of 68.2M)."""
    if model.config.merge_type != "concat_linear":
        raise ValueError(f"to_slot_sum needs a concat_linear model, not {model.config.merge_type}")
    config = copy.deepcopy(model.config)
    config.merge_type = "slot_sum"
    width = config.hidden_size
    table, weight = model.model.embed_tokens.weight, model.merge.weight  # (256, d), (d, 4d)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("merge.")}
    state["merge.weight"] = torch.cat([table @ weight[:, j * width:(j + 1) * width].T for j in range(4)])
    converted = ByteGroupForCausalLM(config).to(weight.dtype)
    converted.load_state_dict(state)
    return converted.train(model.training)


def save_folder(model: ByteGroupForCausalLM | None, tokenizer: ByteGroupTokenizer | None,
                out_dir: str | os.PathLike) -> Path:
    """Write a folder plain transformers loads with `trust_remote_code=True`: weights and config (with `auto_map`),
    tokenizer files, the modeling/configuration/tokenization/codec code and (with a model) `custom_generate/`."""
    register()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    if model is not None:
        write_custom_generate(out)
    return out


def write_custom_generate(folder: str | os.PathLike) -> None:
    """`custom_generate/generate.py` and its requirements, which transformers puts in place of `model.generate`."""
    target = Path(folder) / "custom_generate"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(custom_generate.__file__).with_name("generate.py"), target / "generate.py")
    (target / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")


def check_codec(tokenizer, config, tokenizer_source: str | os.PathLike, model_source: str | os.PathLike) -> None:
    """A byte-group model needs a byte-group tokenizer with the same codec, and a byte-group tokenizer such a model."""
    codec = tokenizer.byte_codec.name if is_byte_tokenizer(tokenizer) else None
    expected = getattr(config, "codec", None) if is_byte_model(config) else None
    if codec != expected:
        has = f"a byte-group tokenizer with codec {codec}" if codec else "not a byte-group tokenizer"
        wants = f"reads codec {expected}" if expected else "is not a byte-group model"
        raise ChowaError(f"tokenizer: {tokenizer_source} is {has} but the model in {model_source} {wants}")
