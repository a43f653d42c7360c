"""Quality at equal compute: the tiny byte-group model against the tiny SentencePiece GPT-NeoX, in bits per byte.

Both read the same real Japanese text (`../shared/data/wagahaiwa_nekodearu.txt`, 吾輩は猫である): every 50th
paragraph is held out, the rest trains. The SentencePiece tokenizer (unigram, `--vocab` pieces) is trained on
the training paragraphs first (not counted). Each model then trains on its packed stream (byte model: windows of
256 bytes = its 64 groups; GPT-NeoX: 128 tokens) with AdamW (lr 3e-3 after 30 warm-up steps, batch 16) for the
same wall-clock budget on this CPU, evaluation time excluded. Held-out bits per byte: every held-out paragraph is
cut into pieces of at most 60 characters (so each fits both contexts), each piece scored as a document (byte
model: `BOS piece EOS`, every group after BOS; GPT-NeoX: `EOS piece EOS`, every token after the first), and
total nats / ln 2 / (UTF-8 bytes of the pieces + one per piece for its end) for both. The loss curves (held-out
bits per byte against training seconds) go to a PNG.

Run as:
    OMP_NUM_THREADS=2 python benchmarks/bytegroup_quality.py --budget 150 --png docs/bytegroup-vs-sentencepiece.png
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F

from chowa.config import load_config
from chowa.data.shards import PackedStream, build_token_cache
from chowa.models.build import build_model
from chowa.tokenizer import load_tokenizer
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wagahaiwa_nekodearu.txt"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds per model")
    parser.add_argument("--vocab", type=int, default=8000, help="SentencePiece vocabulary")
    parser.add_argument("--eval-every", type=float, default=25.0, help="training seconds between evaluations")
    parser.add_argument("--png", type=Path, default=Path("bytegroup-vs-sentencepiece.png"))
    return parser.parse_args()


def _split(folder: Path) -> tuple[Path, list[str]]:
    paragraphs = [p.strip() for p in TEXT.read_text(encoding="utf-8").splitlines() if p.strip()]
    train = [p for i, p in enumerate(paragraphs) if i % 50]
    pieces = [p[k:k + 60] for i, p in enumerate(paragraphs) if not i % 50 for k in range(0, len(p), 60)]
    (folder / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    return folder / "train.txt", pieces


@torch.no_grad()
def _heldout_bpb(model, tokenizer, pieces: list[str], byte_model: bool) -> float:
    """Total nats over every held-out piece's tokens (and its end) / ln 2 / (UTF-8 bytes + 1 per piece)."""
    model.eval()
    nats = 0.0
    for piece in pieces:
        ids = tokenizer.encode(piece, add_special_tokens=False)
        if byte_model:
            row = torch.tensor([tokenizer.bos_group + ids + tokenizer.eos_token_ids])
            out = model(row, labels=row)
            nats += out.loss.item() * (row.shape[1] - 4)
        else:
            row = torch.tensor([[tokenizer.eos_token_id] + ids + [tokenizer.eos_token_id]])
            logits = model(row[:, :-1]).logits[0].float()
            nats += F.cross_entropy(logits, row[0, 1:], reduction="sum").item()
    model.train()
    return nats / math.log(2) / sum(len(p.encode("utf-8")) + 1 for p in pieces)


def _train(name: str, model, tokenizer, stream: PackedStream, pieces: list[str], args, byte_model: bool) -> list:
    """Train for `args.budget` seconds; returns [(training seconds, held-out bpb), ...]."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    curve, spent, step, next_eval = [(0.0, _heldout_bpb(model, tokenizer, pieces, byte_model))], 0.0, 0, 0.0
    model.train()
    while spent < args.budget:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = 3e-3 * min(1.0, (step + 1) / 30)
        batch = torch.from_numpy(np.stack([stream.window(step * 16 + i) for i in range(16)]))
        if byte_model:
            tokens = batch[:, :-1]
            loss = model(tokens, labels=tokens).loss
        else:
            logits = model(batch[:, :-1]).logits
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        spent += time.perf_counter() - started
        step += 1
        if spent >= next_eval + args.eval_every or spent >= args.budget:
            next_eval = spent
            curve.append((spent, _heldout_bpb(model, tokenizer, pieces, byte_model)))
            print(f"{name}: step {step}, {spent:.0f} s, held-out {curve[-1][1]:.3f} bits per byte", flush=True)
    return curve


def main() -> None:
    args = _arguments()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        train_file, pieces = _split(folder)
        sp_dir = train_tokenizer(load_config(TokenizerTrainConfig, overrides=[
            f"out={folder / 'sp'}", f"vocab_size={args.vocab}"], flags={"input": [str(train_file)]}))
        curves, sizes = {}, {}
        for name, tokenizer_spec, preset, seq_len in (("bytegroup-tiny", "bytes:f4-utf8", "bytegroup-tiny", 256),
                                                      ("tiny (SentencePiece)", str(sp_dir), "tiny", 128)):
            tokenizer = load_tokenizer(tokenizer_spec)
            cache = build_token_cache([str(train_file)], tokenizer, folder / "cache" / preset, val_fraction=0.0,
                                      show_progress=False)
            stream = PackedStream(cache.train_tokens(), seq_len, seed=0)
            torch.manual_seed(0)
            model = build_model(preset, tokenizer=tokenizer, seed=0)
            sizes[name] = sum(p.numel() for p in model.parameters())
            curves[name] = _train(name, model, tokenizer, stream, pieces, args, preset == "bytegroup-tiny")
    held_bytes = sum(len(p.encode("utf-8")) + 1 for p in pieces)
    print(f"# {TEXT.name}: {len(pieces)} held-out pieces, {held_bytes:,} UTF-8 bytes; budget {args.budget:.0f} s "
          f"per model, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| model | parameters | held-out bits per byte at start | at the end of the budget |")
    print("|---|---|---|---|")
    for name, curve in curves.items():
        print(f"| {name} | {sizes[name]:,} | {curve[0][1]:.3f} | {curve[-1][1]:.3f} |")
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        axis.plot([t for t, _ in curve], [b for _, b in curve], marker="o", label=name)
    axis.set_xlabel("training seconds (2-core CPU)")
    axis.set_ylabel("held-out bits per UTF-8 byte")
    axis.set_title("Wagahai wa neko de aru: byte-group vs SentencePiece at equal compute")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.png, dpi=120)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
