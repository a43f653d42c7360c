"""The byte-group tokenizer: id = byte, text through a byte codec, special tokens as whole groups `FE k FE FE`.

A transformers slow tokenizer (`vocab_size` 256) that pads in whole PAD groups (left by default, always to a
multiple of 4, with a per-byte attention mask), truncates in whole groups and decodes group by group. The special
strings (`<pad>`, `<s>`, `</s>`, `<unk>`, then any `extra_specials`) are split out of the text by this class, not
by transformers' added-token trie, which maps one string to one id. `pad_token_id` (and `bos_token_id`,
`eos_token_id`) are 0xFE, the lead byte of every special, for transformers' sake only: a mask is never derived
from them. The groups themselves are `pad_group`, `bos_group`, `eos_token_ids`.

Standalone (transformers and the files beside it): copied into every saved folder, where
`AutoTokenizer.from_pretrained(dir, trust_remote_code=True)` loads it without chowa.

Run as (from Python):
    tokenizer = ByteGroupTokenizer(codec="f4-utf8")
    batch = tokenizer([tokenizer.bos_token + "こんにちは", tokenizer.bos_token + "A"], padding="longest",
                      add_special_tokens=False, return_tensors="pt")
"""

from __future__ import annotations

import re

from transformers import PreTrainedTokenizer

from .codec_bytegroup import FILL, GROUP, SPECIAL, get_codec

SPECIAL_NAMES = ("<pad>", "<s>", "</s>", "<unk>")  # groups FE 00 FE FE, FE 01 FE FE, ...


def _byte_token(value: int) -> str:
    return f"<0x{value:02X}>"


class ByteGroupTokenizer(PreTrainedTokenizer):
    vocab_files_names: dict[str, str] = {}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, codec: str = "f4-utf8", extra_specials: list[str] | None = None, padding_side: str = "left",
                 **kwargs):
        self.byte_codec = get_codec(codec)
        self.special_names = list(SPECIAL_NAMES) + list(extra_specials or [])
        if len(self.special_names) > 256:
            raise ValueError(f"at most 256 special tokens fit the groups FE k FE FE, not {len(self.special_names)}")
        self.special_index = {name: index for index, name in enumerate(self.special_names)}
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, self.special_names)) + ")")
        for key, name in (("pad_token", "<pad>"), ("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>")):
            kwargs.setdefault(key, name)
        super().__init__(codec=codec, extra_specials=list(extra_specials or []), padding_side=padding_side, **kwargs)

    # --- vocabulary ------------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return 256

    def get_vocab(self) -> dict[str, int]:
        # Special strings sit past the bytes so transformers never adds them as new ids; they encode as groups.
        vocab = {_byte_token(b): b for b in range(256)}
        vocab.update({name: 256 + index for index, name in enumerate(self.special_names)})
        return vocab

    def special_group(self, name: str) -> list[int]:
        return [SPECIAL, self.special_index[name], SPECIAL, SPECIAL]

    @property
    def pad_group(self) -> list[int]:
        return self.special_group("<pad>")

    @property
    def bos_group(self) -> list[int]:
        return self.special_group("<s>")

    @property
    def eos_token_ids(self) -> list[int]:
        """The EOS group, a list of ints (what the model's config holds as eos_token_id)."""
        return self.special_group("</s>")

    # --- encoding --------------------------------------------------------------------------------------------------

    def tokenize(self, text: str, **kwargs) -> list[str]:
        """Byte tokens `<0xHH>` and special strings; an unaligned codec's text is filled to a whole group before
        each special and at the end."""
        tokens = []
        for index, piece in enumerate(self._special_pattern.split(text)):
            if index % 2:
                tokens.append(piece)
                continue
            data = self.byte_codec.encode(piece, errors="strict")
            data += bytes((FILL,)) * (-len(data) % GROUP)
            tokens += [_byte_token(b) for b in data]
        return tokens

    def _convert_token_to_id(self, token: str) -> int:
        if token in self.special_index:
            return SPECIAL  # the lead byte; a list of tokens expands a special to its whole group
        return int(token[3:5], 16)

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self._convert_token_to_id(tokens)
        ids = []
        for token in tokens:
            ids += self.special_group(token) if token in self.special_index else [self._convert_token_to_id(token)]
        return ids

    def _convert_id_to_token(self, index: int) -> str:
        return _byte_token(index)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None
                                         ) -> list[int]:
        ids = self.bos_group + token_ids_0
        return ids + self.bos_group + token_ids_1 if token_ids_1 is not None else ids

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return GROUP * (2 if pair else 1)

    def get_special_tokens_mask(self, token_ids_0: list[int], token_ids_1: list[int] | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        ids = token_ids_0 if already_has_special_tokens else self.build_inputs_with_special_tokens(token_ids_0,
                                                                                                   token_ids_1)
        mask = []
        for start in range(0, len(ids), GROUP):
            group = ids[start:start + GROUP]
            mask += [int(self._special_name(group) is not None)] * len(group)
        return mask

    def truncate_sequences(self, ids: list[int], pair_ids: list[int] | None = None, num_tokens_to_remove: int = 0,
                           truncation_strategy="longest_first", stride: int = 0):
        """Truncation removes whole groups: the count and the stride rounded up to multiples of 4, and a pair
        (longest_first) loses whole groups from whichever sequence is longer, where transformers would halve a
        count between the two and cut a group."""
        groups = -(-num_tokens_to_remove // GROUP)
        stride = -(-stride // GROUP) * GROUP
        strategy = getattr(truncation_strategy, "value", truncation_strategy)
        if pair_ids is None or strategy != "longest_first" or groups <= 0:
            return super().truncate_sequences(ids, pair_ids, groups * GROUP, truncation_strategy, stride)
        cuts = [0, 0]
        for _ in range(groups):
            cuts[len(ids) // GROUP - cuts[0] < len(pair_ids) // GROUP - cuts[1]] += 1

        def cut(sequence: list[int], count: int) -> list[int]:
            if not count:
                return sequence
            return sequence[count * GROUP:] if self.truncation_side == "left" else sequence[:-count * GROUP]

        return cut(ids, cuts[0]), cut(pair_ids, cuts[1]), []

    def _pad(self, encoded_inputs: dict, max_length: int | None = None, padding_strategy="do_not_pad",
             pad_to_multiple_of: int | None = None, padding_side: str | None = None,
             return_attention_mask: bool | None = None) -> dict:
        """Pad with whole PAD groups to `max_length` rounded up to a multiple of 4; mask 0 on the padding."""
        ids = list(encoded_inputs["input_ids"])
        strategy = getattr(padding_strategy, "value", padding_strategy)
        target = len(ids) if strategy == "do_not_pad" or max_length is None else max(len(ids), max_length)
        target = -(-target // GROUP) * GROUP
        if pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        missing = target - len(ids)
        if missing % GROUP:
            raise ValueError(f"byte-group tokenizer: a sequence of {len(ids)} bytes is not whole groups of {GROUP}")
        padding = self.pad_group * (missing // GROUP)
        mask = list(encoded_inputs.get("attention_mask", [1] * len(ids)))
        left = (padding_side or self.padding_side) == "left"
        encoded_inputs["input_ids"] = padding + ids if left else ids + padding
        if return_attention_mask is not False:
            encoded_inputs["attention_mask"] = [0] * missing + mask if left else mask + [0] * missing
        for key in ("token_type_ids", "special_tokens_mask"):
            if key in encoded_inputs:
                extra = [0] * missing if key == "token_type_ids" else [1] * missing
                value = list(encoded_inputs[key])
                encoded_inputs[key] = extra + value if left else value + extra
        return encoded_inputs

    # --- decoding --------------------------------------------------------------------------------------------------

    def _special_name(self, group: list[int]) -> str | None:
        if len(group) == GROUP and group[0] == SPECIAL and group[2:] == [SPECIAL, SPECIAL] and \
                group[1] < len(self.special_names):
            return self.special_names[group[1]]
        return None

    def _decode(self, token_ids: int | list[int], skip_special_tokens: bool = False, **kwargs) -> str:
        """Group by group from position 0: specials as their strings (or dropped), the bytes between through the
        codec (a bad group becomes U+FFFD)."""
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        pieces, pending = [], bytearray()
        for start in range(0, len(ids), GROUP):
            group = ids[start:start + GROUP]
            name = self._special_name(group)
            if name is None:
                pending += bytes(group)
                continue
            pieces.append(self.byte_codec.decode(bytes(pending), errors="replace"))
            pending = bytearray()
            if not skip_special_tokens:
                pieces.append(name)
        pieces.append(self.byte_codec.decode(bytes(pending), errors="replace"))
        return "".join(pieces)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._decode(self.convert_tokens_to_ids(tokens))

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        return ()  # nothing to save: the vocabulary is the 256 bytes, the codec and specials are in the config
