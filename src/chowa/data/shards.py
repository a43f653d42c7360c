"""Pretraining data: documents tokenized once into memory-mapped token files, packed into fixed-length windows.

Documents (text lines or JSONL `text` records, see `chowa.data.text`) are tokenized, each followed by EOS, and
concatenated into one token stream per split. A deterministic share of documents is held out for validation.
The streams are cached under `cache_dir/<key>/` where the key hashes the input files (path, size, mtime), the
tokenizer files and the split settings, so a rerun or a resumed run reuses them and a changed input rebuilds.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from chowa.config import atomic_write_text
from chowa.data.order import SeededOrder
from chowa.data.text import expand_inputs, read_documents
from chowa.errors import ChowaError

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
    for path in expand_inputs(inputs):
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    if tokenizer_dir is not None:
        for name in sorted(os.listdir(tokenizer_dir)):
            if name.startswith(("tokenizer", "spiece", "special_tokens")):
                digest.update((Path(tokenizer_dir) / name).read_bytes())
    return digest.hexdigest()[:16]


def build_token_cache(inputs: list[str], tokenizer, cache_dir: str | os.PathLike, val_fraction: float = 0.02,
                      encoding: str = "utf-8", seed: int = 0, tokenizer_dir: str | os.PathLike | None = None,
                      show_progress: bool = True) -> TokenCache:
    """Tokenize `inputs` into `cache_dir/<key>/{train,val}.bin` unless that cache already exists."""
    if tokenizer.eos_token_id is None:
        raise ChowaError("pretrain: the tokenizer has no EOS token to separate documents")
    settings = {"val_fraction": val_fraction, "encoding": encoding, "seed": seed, "version": 1}
    folder = Path(cache_dir) / cache_key(inputs, tokenizer_dir, settings)
    if (folder / "meta.json").is_file():
        return TokenCache(folder, json.loads((folder / "meta.json").read_text()))
    newline = NL_TOKEN if NL_TOKEN in tokenizer.get_vocab() else None
    documents = [doc.replace("\n", newline) if newline else doc for _, _, doc in read_documents(inputs, encoding)]
    if not documents:
        raise ChowaError(f"pretrain: no documents found in {', '.join(inputs)}")
    held_out = _held_out_indices(len(documents), val_fraction, seed)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
    folder.mkdir(parents=True, exist_ok=True)
    streams = {"train": [], "val": []}
    batches = range(0, len(documents), _BATCH)
    for start in tqdm(batches, desc="tokenizing", unit="batch", disable=not show_progress, leave=False):
        encoded = tokenizer(documents[start:start + _BATCH], add_special_tokens=False, verbose=False)["input_ids"]
        for offset, ids in enumerate(encoded):
            streams["val" if start + offset in held_out else "train"].append(ids + [tokenizer.eos_token_id])
    meta = {"dtype": np.dtype(dtype).name, "documents": len(documents), "val_documents": len(held_out),
            "inputs": list(inputs), "vocab_size": len(tokenizer), "newline_token": newline}
    for split, docs in streams.items():
        tokens = np.concatenate([np.asarray(ids, dtype=dtype) for ids in docs]) if docs else np.zeros(0, dtype)
        tmp = folder / f".{split}.bin.tmp"
        tokens.tofile(tmp)
        os.replace(tmp, folder / f"{split}.bin")
        meta[f"{split}_tokens"] = int(tokens.size)
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=2) + "\n")
    return TokenCache(folder, meta)


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

    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int = 0, shuffle: bool = True):
        self.tokens, self.seq_len = tokens, seq_len
        self.num_windows = (len(tokens) - 1) // seq_len
        if self.num_windows < 1:
            raise ChowaError(f"pretrain: the corpus has {len(tokens)} tokens, fewer than one window of seq_len+1 = "
                             f"{seq_len + 1}; lower data.seq_len or add text")
        self.order = SeededOrder(self.num_windows, seed, shuffle)

    def window(self, index: int) -> np.ndarray:
        """Tokens of the `index`-th window in the global order: (seq_len + 1,) int64."""
        start = self.order[index] * self.seq_len
        return np.asarray(self.tokens[start:start + self.seq_len + 1], dtype=np.int64)
