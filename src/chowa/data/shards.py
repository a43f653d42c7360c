"""Pretraining data: documents tokenized once into memory-mapped token files, packed into fixed-length windows.

Documents (text lines, JSONL `text` records or the `text` column of a dataset, see `chowa.data.records`) are
tokenized in batches, each followed by EOS, and appended to one token file per split as they come: token ids never
pile up in memory, a dataset (Parquet, Arrow, datasets, hf:) is read in batches of rows, and a text or JSONL file
one file at a time. A deterministic share of documents is held out for validation (a first pass counts the
documents, so it is drawn exactly as for a corpus read whole). The streams are cached under `cache_dir/<key>/`
where the key hashes the inputs (path, size, mtime; a Hub dataset's fingerprint), the tokenizer files and the split
settings, so a rerun or a resumed run reuses them and a changed input rebuilds.

For a tokenizer with an `<NL>` piece (rinna japanese-gpt-neox style) newlines inside documents are written as
`<NL>`, as the tokenizer was trained.

Run as (from Python):
    cache = build_token_cache(["corpus/*.txt"], tokenizer, "runs/x/data", val_fraction=0.02)
    stream = PackedStream(cache.train_tokens(), seq_len=512, seed=0); window = stream.window(17)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from chowa.bytegroup import is_byte_tokenizer
from chowa.bytegroup.hf.codec_bytegroup import CodecError
from chowa.data.order import SeededOrder
from chowa.data.records import count_documents, expand_sources, read_documents, source_fingerprint
from chowa.errors import ChowaError
from chowa.files import atomic_write_text
from chowa.formats import bos_ids, eos_ids

NL_TOKEN = "<NL>"
_BATCH = 512


@dataclass(frozen=True)
class TokenCache:
    folder: Path
    meta: dict

    def _tokens(self, split: str) -> np.ndarray:
        if not self.meta[f"{split}_tokens"]:  # an empty split (val_fraction 0) cannot be memory-mapped
            return np.zeros(0, dtype=self.meta["dtype"])
        return np.memmap(self.folder / f"{split}.bin", dtype=self.meta["dtype"], mode="r")

    def train_tokens(self) -> np.ndarray:
        return self._tokens("train")

    def val_tokens(self) -> np.ndarray:
        return self._tokens("val")


def cache_key(inputs: list[str], tokenizer_dir: str | os.PathLike | None, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for source in expand_sources(inputs):
        digest.update(source_fingerprint(source).encode())
    if tokenizer_dir is not None:
        for name in sorted(os.listdir(tokenizer_dir)):
            if name.startswith(("tokenizer", "spiece", "special_tokens")):
                digest.update((Path(tokenizer_dir) / name).read_bytes())
    return digest.hexdigest()[:16]


def build_token_cache(inputs: list[str], tokenizer, cache_dir: str | os.PathLike, val_fraction: float = 0.02,
                      encoding: str = "utf-8", seed: int = 0, tokenizer_dir: str | os.PathLike | None = None,
                      show_progress: bool = True, field: str = "text") -> TokenCache:
    """Tokenize `inputs` into `cache_dir/<key>/{train,val}.bin` unless that cache already exists."""
    if tokenizer.eos_token_id is None:
        raise ChowaError("pretrain: the tokenizer has no EOS token to separate documents")
    settings = {"val_fraction": val_fraction, "encoding": encoding, "seed": seed, "version": 1}
    if field != "text":
        settings["field"] = field
    if is_byte_tokenizer(tokenizer):  # a byte tokenizer may come with no folder (bytes:CODEC)
        settings["byte_codec"] = tokenizer.byte_codec.name
    folder = Path(cache_dir) / cache_key(inputs, tokenizer_dir, settings)
    if (folder / "meta.json").is_file():
        return TokenCache(folder, json.loads((folder / "meta.json").read_text()))
    count = count_documents(inputs, encoding, field=field)
    if not count:
        raise ChowaError(f"pretrain: no documents found in {', '.join(inputs)}")
    held_out = _held_out_indices(count, val_fraction, seed)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
    folder.mkdir(parents=True, exist_ok=True)
    tokens = _write_streams(read_documents(inputs, encoding, field=field), count, held_out, tokenizer, dtype, folder,
                            show_progress)
    meta = {"dtype": np.dtype(dtype).name, "documents": count, "val_documents": len(held_out),
            "inputs": list(inputs), "vocab_size": len(tokenizer), "newline_token": newline_piece(tokenizer),
            "train_tokens": tokens["train"], "val_tokens": tokens["val"]}
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=2) + "\n")
    return TokenCache(folder, meta)


def _write_streams(documents: Iterator[tuple[Path | str, int, str]], count: int, held_out: set[int], tokenizer, dtype,
                   folder: Path, show_progress: bool) -> dict[str, int]:
    """Append each document (`document_ids`) to its split's token file, a batch at a time; returns tokens per split."""
    newline = newline_piece(tokenizer)
    handles = {split: open(folder / f".{split}.bin.tmp", "wb") for split in ("train", "val")}
    written = {"train": 0, "val": 0}
    try:
        with tqdm(total=count, desc="tokenizing", unit="doc", disable=not show_progress, leave=False) as bar:
            for start, batch in _batches(documents, _BATCH):
                texts = [doc.replace("\n", newline) if newline else doc for _, _, doc in batch]
                encoded = _encode_documents(tokenizer, texts, batch)
                for offset, ids in enumerate(encoded):
                    split = "val" if start + offset in held_out else "train"
                    ids = document_ids(tokenizer, ids)
                    np.asarray(ids, dtype=dtype).tofile(handles[split])
                    written[split] += len(ids)
                bar.update(len(batch))
    finally:
        for handle in handles.values():
            handle.close()
    for split in handles:
        os.replace(folder / f".{split}.bin.tmp", folder / f"{split}.bin")
    return written


def _encode_documents(tokenizer, texts: list[str], batch: list[tuple[Path | str, int, str]]) -> list[list[int]]:
    try:
        return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    except CodecError:  # text a byte codec cannot encode: name the document
        for (path, number, _), text in zip(batch, texts, strict=True):
            try:
                tokenizer.encode(text, add_special_tokens=False)
            except CodecError as exc:
                raise ChowaError(f"{path}:{number}: {exc}") from None
        raise


def document_ids(tokenizer, ids: list[int]) -> list[int]:
    """A document as it goes into the stream: its ids and EOS; for a byte-group tokenizer `BOS … EOS` as whole
    groups (spec §5), so every document starts on a group boundary."""
    return bos_ids(tokenizer) + ids + eos_ids(tokenizer)


def _batches(items: Iterator, size: int) -> Iterator[tuple[int, list]]:
    """(index of the first item, up to `size` items) until `items` runs out."""
    start, batch = 0, []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield start, batch
            start, batch = start + size, []
    if batch:
        yield start, batch


def newline_piece(tokenizer) -> str | None:
    """`<NL>` when the tokenizer has it (rinna japanese-gpt-neox style): newlines inside documents are written so."""
    return NL_TOKEN if NL_TOKEN in tokenizer.get_vocab() else None


def _held_out_indices(count: int, fraction: float, seed: int) -> set[int]:
    """A seeded random share of document indices; at least one when `fraction` > 0 and there are two or more."""
    if fraction <= 0 or count < 2:
        return set()
    size = min(count - 1, max(1, round(count * fraction)))
    return set(random.Random(seed).sample(range(count), size))


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy in nats of the token distribution: the loss of a model that ignores context entirely."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size).astype(np.float64)
    probs = counts[counts > 0] / counts.sum()
    return float(-(probs * np.log(probs)).sum())


class PackedStream:
    """Fixed windows of `seq_len + 1` tokens over a token stream, visited in a seeded order, epoch after epoch.

    Window `i` of the global order is a pure function of (seed, i), so a run resumed at any step reads exactly
    the windows it would have read, whatever the number of processes.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int = 0, shuffle: bool = True,
                 within_documents_of: int | None = None):
        """`within_documents_of`: an EOS id; windows then lie inside one document each (see `document_windows`)."""
        self.tokens, self.seq_len = tokens, seq_len
        self.starts = None if within_documents_of is None else document_windows(tokens, seq_len, within_documents_of)
        self.num_windows = (len(tokens) - 1) // seq_len if self.starts is None else len(self.starts)
        if self.num_windows < 1 and self.starts is not None:
            raise ChowaError(f"pretrain: no document is as long as one window of seq_len+1 = {seq_len + 1} tokens "
                             "(data.documents=within); lower data.seq_len, add longer documents or use "
                             "data.documents=cross")
        if self.num_windows < 1:
            raise ChowaError(f"pretrain: the corpus has {len(tokens)} tokens, fewer than one window of seq_len+1 = "
                             f"{seq_len + 1}; lower data.seq_len or add text")
        self.order = SeededOrder(self.num_windows, seed, shuffle)

    def window(self, index: int) -> np.ndarray:
        """Tokens of the `index`-th window in the global order: (seq_len + 1,) int64."""
        slot = self.order[index]
        start = slot * self.seq_len if self.starts is None else int(self.starts[slot])
        return np.asarray(self.tokens[start:start + self.seq_len + 1], dtype=np.int64)


def document_windows(tokens: np.ndarray, seq_len: int, eos_id: int) -> np.ndarray:
    """Starts of the windows of `seq_len + 1` tokens that lie inside one document (its tokens through its EOS),
    `seq_len` apart from the document's first token; a document shorter than a window, and each document's last
    partial window, give none."""
    chunk = 1 << 24  # the memory-mapped stream is scanned in pieces, never compared whole
    ends = np.concatenate([[]] + [start + np.flatnonzero(np.asarray(tokens[start:start + chunk]) == eos_id)
                                  for start in range(0, len(tokens), chunk)]).astype(np.int64)
    firsts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    counts = (ends - firsts) // seq_len  # a window needs start + seq_len <= the index of the document's EOS
    document_first = np.repeat(firsts, counts)
    nth_in_document = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return document_first + seq_len * nth_in_document
