"""Train a SentencePiece tokenizer the way the seed models' were trained, saved as a Hugging Face folder.

Byte fallback on, no dummy prefix, whitespace kept as-is (runs of spaces, tabs), digits split, character
coverage 0.9995. Newlines are either byte pieces (`newline: byte`, rinna bilingual style) or the literal piece
`<NL>` (`newline: nl-token`, rinna japanese-gpt-neox-3.6b style; newlines inside documents are written as `<NL>`).
Special pieces: [PAD]=0, <unk>=1, <s>=2, </s>=3, as in rinna's GPT-NeoX checkpoints.

Run as:
    chowa tokenizer train --input corpus.txt docs.jsonl --vocab-size 8000 --out runs/tok
    chowa tokenizer train --config configs/tiny/tokenizer.yaml vocab_size=4000
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

from chowa.config import save_config, text_column
from chowa.config.tokenizer import TokenizerTrainConfig
from chowa.data.records import read_documents
from chowa.errors import ChowaError
from chowa.files import atomic_write_text, check_writable
from chowa.tokenizer.convert import quantize_scores
from chowa.tokenizer.load import save_tokenizer_folder

NL_TOKEN = "<NL>"
SPECIAL_IDS = {"pad": (0, "[PAD]"), "unk": (1, "<unk>"), "bos": (2, "<s>"), "eos": (3, "</s>")}


def main(cfg: TokenizerTrainConfig) -> Path:
    """Train, convert, verify the Hugging Face folder against SentencePiece, and write it to `cfg.out`."""
    out = Path(cfg.out)
    check_writable(out, "out", folder=True)
    start = time.perf_counter()
    documents, too_long = [], []
    for where, piece in _training_documents(cfg):
        if len(piece.encode()) > cfg.max_sentence_length:
            too_long.append(where)  # SentencePiece would drop it without saying which: name it instead
        else:
            documents.append(piece)
    lines = "1 line longer than" if len(too_long) == 1 else f"{len(too_long):,} lines longer than"
    skipped = (f"; {lines} max_sentence_length={cfg.max_sentence_length} bytes skipped, first {too_long[0]}"
               if too_long else "")
    if too_long:
        print(f"tokenizer: {skipped.removeprefix('; ')}", file=sys.stderr)
    if not documents:
        raise ChowaError(f"tokenizer: no text found in {', '.join(cfg.input)}{skipped}")
    model_bytes = quantize_scores(_train_sentencepiece(documents, cfg, skipped))
    save_tokenizer_folder(model_bytes, out, model_max_length=cfg.model_max_length)
    save_config(cfg, out)
    mismatches = _count_mismatches(model_bytes, out, documents[:20000])
    record = {
        "stage": "tokenizer", "documents": len(documents), "characters": sum(map(len, documents)),
        "vocab_size": cfg.vocab_size, "seconds": round(time.perf_counter() - start, 3),
        "hf_sentencepiece_mismatches": mismatches, "checked_documents": min(len(documents), 20000),
        "skipped_too_long": len(too_long),
    }
    atomic_write_text(out / "metrics.jsonl", json.dumps(record, ensure_ascii=False) + "\n")
    if mismatches:
        raise ChowaError(f"tokenizer: the Hugging Face folder disagrees with SentencePiece on {mismatches} "
                         f"training documents; please report this with {out / 'spiece.model'}")
    print(f"tokenizer: finished, {cfg.vocab_size:,} pieces from {len(documents):,} documents "
          f"({record['characters']:,} characters) in {record['seconds']:.0f} s; Hugging Face ids equal "
          f"SentencePiece's on all {record['checked_documents']:,} documents checked. Wrote {out}.")
    return out


def _training_documents(cfg: TokenizerTrainConfig) -> Iterator[tuple[str, str]]:
    """(file:line, text) of each training sentence: a document, or each line of it with byte newlines."""
    count = 0
    for source, number, document in read_documents(cfg.input, encoding=cfg.encoding, keep_cr=cfg.keep_cr,
                                                   field=text_column(cfg.columns)):
        if cfg.newline == "nl-token":
            pieces = [document.replace("\n", NL_TOKEN)]
        else:  # a newline never enters the vocabulary: it stays the byte piece <0x0A>
            pieces = [line for line in document.split("\n") if line]
        for piece in pieces:
            yield f"{source}:{number}", piece
            count += 1
            if cfg.max_lines and count >= cfg.max_lines:
                return


def _train_sentencepiece(documents: list[str], cfg: TokenizerTrainConfig, skipped: str = "") -> bytes:
    user_defined = list(cfg.user_defined_symbols)
    if cfg.newline == "nl-token" and NL_TOKEN not in user_defined:
        user_defined.insert(0, NL_TOKEN)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(documents), model_writer=model, vocab_size=cfg.vocab_size,
            model_type=cfg.model_type, byte_fallback=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
            split_digits=True, character_coverage=cfg.character_coverage,
            normalization_rule_name=cfg.normalization, user_defined_symbols=user_defined,
            max_sentence_length=cfg.max_sentence_length, num_threads=os.cpu_count() or 1, minloglevel=2,
            **{f"{role}_id": index for role, (index, _) in SPECIAL_IDS.items()},
            **{f"{role}_piece": piece for role, (_, piece) in SPECIAL_IDS.items()},
        )
    except RuntimeError as exc:  # e.g. "Vocabulary size is too high", with SentencePiece's own advice
        raise ChowaError(f"tokenizer: SentencePiece training failed: {exc}{skipped}") from None
    return model.getvalue()


def _count_mismatches(model_bytes: bytes, folder: Path, documents: list[str]) -> int:
    """Documents whose ids from the saved folder (plain transformers) differ from SentencePiece's."""
    from transformers import AutoTokenizer

    processor = spm.SentencePieceProcessor(model_proto=model_bytes)
    hf = AutoTokenizer.from_pretrained(str(folder))
    return sum(processor.encode(doc) != hf(doc, add_special_tokens=False, verbose=False)["input_ids"]
               for doc in documents)
