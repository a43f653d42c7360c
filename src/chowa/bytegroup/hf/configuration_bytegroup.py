"""Configuration of the byte-group model (byGPT-JP style): a Llama trunk over groups of 4 bytes.

Standalone (torch and transformers only): copied into every saved folder, where `AutoConfig.from_pretrained(dir,
trust_remote_code=True)` reads it without chowa.

Run as (from Python):
    config = ByteGroupConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=172)
"""

from __future__ import annotations

from transformers import LlamaConfig

SPECIAL = 0xFE
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MERGE_TYPES = ("concat_linear", "slot_sum")


def special_group(index: int) -> list[int]:
    """The 4 bytes of special token `index`: FE index FE FE."""
    return [SPECIAL, index, SPECIAL, SPECIAL]


class ByteGroupConfig(LlamaConfig):
    """LlamaConfig plus the byte grouping. `vocab_size` is 256 (one id per byte) and `pad_token_id` None: a padding
    index would freeze the embedding of 0xFE, the lead byte of every special. The special groups live in
    `pad_group`, `bos_group`, `eos_group`; `eos_token_id` holds the EOS group as one sequence, as the card has it."""

    model_type = "chowa_bytegroup"

    def __init__(self, bytes_per_group: int = 4, num_lm_heads: int = 4, merge_type: str = "concat_linear",
                 codec: str = "f4-utf8", pad_group: list[int] | None = None, bos_group: list[int] | None = None,
                 eos_group: list[int] | None = None, **kwargs):
        if bytes_per_group != 4 or num_lm_heads != bytes_per_group:
            raise ValueError(f"bytes_per_group and num_lm_heads must both be 4, not {bytes_per_group} and "
                             f"{num_lm_heads}")
        if merge_type not in MERGE_TYPES:
            raise ValueError(f"merge_type must be one of {MERGE_TYPES}, not {merge_type!r}")
        self.bytes_per_group, self.num_lm_heads, self.merge_type, self.codec = (bytes_per_group, num_lm_heads,
                                                                                merge_type, codec)
        self.pad_group = list(pad_group or special_group(PAD_ID))
        self.bos_group = list(bos_group or special_group(BOS_ID))
        self.eos_group = list(eos_group or special_group(EOS_ID))
        kwargs["vocab_size"] = 256
        kwargs["pad_token_id"] = None
        kwargs["bos_token_id"] = None
        kwargs["eos_token_id"] = self.eos_group
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
