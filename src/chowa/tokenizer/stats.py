"""How well a tokenizer fits a corpus: compression, byte fallback, unknowns, lossless round trip.

Run as:
    chowa tokenizer stats --tokenizer runs/tok --input ../shared/data/botchan.txt
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tqdm import tqdm

from chowa.bytegroup import is_byte_tokenizer
from chowa.bytegroup.hf.codec_bytegroup import CodecError
from chowa.config import text_column
from chowa.config.tokenizer import TokenizerStatsConfig
from chowa.data.records import read_documents
from chowa.data.text import JAPANESE
from chowa.errors import ChowaError
from chowa.tokenizer.load import SENTENCEPIECE_FILES, load_tokenizer

_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


def line_kind(line: str) -> str:
    """`ja` for lines with kana or kanji, `ascii` for mostly-ASCII lines, else `other`."""
    if JAPANESE.search(line):
        return "ja"
    ascii_chars = sum(ch.isascii() for ch in line)
    return "ascii" if ascii_chars * 2 > len(line) else "other"


def main(cfg: TokenizerStatsConfig) -> None:
    """`chowa tokenizer stats`: the report as JSON on stdout."""
    report = tokenizer_stats(cfg.tokenizer, cfg.input, encoding=cfg.encoding, keep_cr=cfg.keep_cr,
                             field=text_column(cfg.columns))
    print(json.dumps(report, ensure_ascii=False, indent=2))


def tokenizer_stats(tokenizer_dir: str, inputs: list[str], encoding: str = "utf-8", keep_cr: bool = False,
                    field: str = "text") -> dict:
    """Per-kind characters per token, byte-fallback and unknown rates, and round-trip (and SentencePiece) checks."""
    tokenizer = load_tokenizer(tokenizer_dir)
    processor = _sentencepiece_processor(Path(tokenizer_dir))
    byte_ids = {i for token, i in tokenizer.get_vocab().items() if _BYTE_PIECE.match(token)}
    chars = {"ja": 0, "ascii": 0, "other": 0}
    tokens = {"ja": 0, "ascii": 0, "other": 0}
    total_tokens = byte_tokens = unk_tokens = lines = 0
    failures: list[str] = []
    sp_mismatches: list[str] = []
    documents = read_documents(inputs, encoding=encoding, keep_cr=keep_cr, field=field)
    for path, number, line in tqdm(documents, desc="lines", unit=" lines", leave=False):
        try:
            ids = tokenizer(line, add_special_tokens=False, verbose=False)["input_ids"]
        except CodecError as exc:  # text a byte codec cannot encode (a lone surrogate)
            raise ChowaError(f"{path}:{number}: {exc}") from None
        kind = line_kind(line)
        chars[kind] += len(line)
        tokens[kind] += len(ids)
        total_tokens += len(ids)
        byte_tokens += sum(i in byte_ids for i in ids)
        unk_tokens += sum(i == tokenizer.unk_token_id for i in ids)
        lines += 1
        if tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) != line:
            failures.append(f"{path}:{number}")
        if processor is not None and processor.encode(line) != ids:
            sp_mismatches.append(f"{path}:{number}")
    report = {
        "lines": lines,
        "tokens": total_tokens,
        "chars_per_token": {k: round(chars[k] / tokens[k], 4) if tokens[k] else None for k in chars},
        "byte_fallback_rate": round(byte_tokens / max(total_tokens, 1), 6),
        "unknown_rate": round(unk_tokens / max(total_tokens, 1), 6),
        "round_trip_all": not failures,
        "round_trip_failures": len(failures),
        "first_failures": failures[:5],
    }
    if is_byte_tokenizer(tokenizer):  # every id is a byte
        del report["chars_per_token"], report["byte_fallback_rate"], report["unknown_rate"]
        report["codec"] = tokenizer.byte_codec.name
        report["bytes_per_char"] = {k: round(tokens[k] / chars[k], 4) if chars[k] else None for k in chars}
        report["groups_per_char"] = {k: round(v / 4, 4) if v else None for k, v in report["bytes_per_char"].items()}
    if processor is not None:
        report["sentencepiece_ids_equal_all"] = not sp_mismatches
        report["sentencepiece_mismatches"] = len(sp_mismatches)
        report["first_mismatches"] = sp_mismatches[:5]
    return report


def _sentencepiece_processor(folder: Path):
    import sentencepiece as spm

    model = next((folder / name for name in SENTENCEPIECE_FILES if (folder / name).is_file()), None)
    return spm.SentencePieceProcessor(model_file=str(model)) if model else None

