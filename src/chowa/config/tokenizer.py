"""Configs of `chowa tokenizer train`, `chowa tokenizer bytes` and `chowa tokenizer stats`.

Run as:
    chowa tokenizer train --config configs/tiny/tokenizer.yaml vocab_size=4000
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import REQUIRED, option, text_column
from chowa.data.text import ENCODINGS


@dataclass
class TokenizerTrainConfig:
    input: list[str] = option(REQUIRED, "Training text: .txt (one document per line) or .jsonl (`text` field) "
                                        "files or globs; .gz allowed; Parquet / Arrow files, datasets folders or "
                                        "hf:NAME[:CONFIG][@SPLIT] (`text` column).")
    out: str = option(REQUIRED, "Output folder (a Hugging Face tokenizer folder).")
    vocab_size: int = option(8000, "Vocabulary size, special and byte pieces included.", minimum=8)
    model_type: str = option("unigram", "SentencePiece algorithm.", choices=("unigram", "bpe"))
    newline: str = option("byte", "How newlines are tokenized: as byte pieces, or as the literal <NL> piece "
                                  "(documents' newlines are rewritten to <NL> for training).",
                          choices=("byte", "nl-token"))
    encoding: str = option("utf-8", "Input encoding; `auto` tries UTF-8 then Shift_JIS.", choices=ENCODINGS)
    normalization: str = option("identity", "Unicode normalization built into the tokenizer.",
                                choices=("identity", "nfkc", "nmt_nfkc"))
    max_lines: int = option(0, "Read at most this many documents (0 = all).", minimum=0)
    keep_cr: bool = option(False, "Keep carriage returns of CRLF line ends in the training text.")
    character_coverage: float = option(0.9995, "Share of characters covered by single pieces; the rarest fall "
                                               "back to bytes.", above=0, maximum=1)
    user_defined_symbols: list[str] = option([], "Extra pieces always kept whole (e.g. chat tags).")
    max_sentence_length: int = option(16384, "Longest document in bytes used for training (longer are skipped "
                                             "by SentencePiece).", minimum=1)
    model_max_length: int = option(2048, "model_max_length written to tokenizer_config.json.", minimum=1)
    columns: dict[str, str] = option({}, "Column mapping, e.g. columns.text=body: the text is the record's column "
                                         "`body` (JSONL records and datasets).")

    def __post_init__(self):
        text_column(self.columns)


@dataclass
class TokenizerBytesConfig:
    out: str = option(REQUIRED, "Output folder: a byte-group tokenizer folder (plain transformers loads it with "
                                "trust_remote_code=True).", metavar="DIR")
    codec: str = option("f4-utf8", "How text becomes bytes: f4-utf8 (each character's UTF-8 bytes filled with 0xFF "
                                   "to one 4-byte group), utf8 (plain), f4-utf32 (UTF-32BE), ga-utf8 (UTF-8 packed "
                                   "greedily into groups).", choices=("f4-utf8", "utf8", "f4-utf32", "ga-utf8"))
    specials: list[str] = option([], "Extra special tokens after <pad> <s> </s> <unk>, each one group FE k FE FE "
                                     "(e.g. chat tags that must never be split).")
    model_max_length: int = option(11520, "model_max_length (in bytes) written to tokenizer_config.json.",
                                   minimum=4)


@dataclass
class TokenizerStatsConfig:
    tokenizer: str = option(REQUIRED, "Tokenizer folder (chowa, rinna or HF).", metavar="DIR")
    input: list[str] = option(REQUIRED, "Text or JSONL files or globs; Parquet / Arrow files, datasets folders or "
                                        "hf:NAME[:CONFIG][@SPLIT] (`text` column).", metavar="FILE")
    encoding: str = option("utf-8", "Input encoding.", choices=ENCODINGS)
    keep_cr: bool = option(False, "Keep carriage returns of CRLF line ends.")
    columns: dict[str, str] = option({}, "Column mapping, e.g. columns.text=body: the text is the record's column "
                                         "`body` (JSONL records and datasets).")

    def __post_init__(self):
        text_column(self.columns)
