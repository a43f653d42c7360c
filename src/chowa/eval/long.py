"""Long-context evaluation: held-out loss by position, and passkey retrieval, for models at any context length.

Loss by position: each input file is read whole as one text, the files are tokenized and joined by EOS, and cut
into consecutive windows of `length + 1` tokens. The loss at position t is -log p(token t+1 | tokens 0..t), averaged
over windows within each position bucket. A model that uses its whole context has a flat or falling curve; a model
read past the positions it was trained at rises beyond them.

Passkey retrieval (Mohtashami & Jaggi 2023, the test LongLoRA, YaRN and others report): a random 5-digit key is
hidden at a chosen depth of repeated filler text and asked for at the end. A trial succeeds when greedy decoding
gives the key's tokens, which is read off one teacher-forced pass: greedy decoding reproduces a continuation exactly
when every one of its tokens is the argmax after the ones before it. The mean log-probability of the key's tokens is
reported beside the accuracy, a graded signal for small models that seldom get every digit.

Run as:
    chowa eval long --model base=runs/long/base --model linear=runs/long/linear --input heldout.txt --length 1024 \
        --passkey-lengths 256 512 1024 --out runs/long/eval
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from chowa.bytegroup import is_byte_model
from chowa.config import save_config
from chowa.config.eval import EvalLongConfig
from chowa.data.shards import newline_piece
from chowa.data.text import expand_inputs, read_file_text
from chowa.errors import ChowaError
from chowa.files import atomic_write_text, check_writable
from chowa.folders import context_length
from chowa.kvcache import accepts
from chowa.models.load import default_device, load_causal_lm, load_model_tokenizer

# The prompt of Mohtashami & Jaggi (2023), and a Japanese rendering of it.
PASSKEY_PROMPTS = {
    "en": {"intro": "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
                    "I will quiz you about the important information there.\n",
           "filler": "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n",
           "key": "The pass key is {key}. Remember it. {key} is the pass key.\n",
           "question": "What is the pass key? The pass key is", "answer": " {key}"},
    "ja": {"intro": "たくさんの関係のない文章の中に、大切な情報が隠されています。それを見つけて覚えてください。"
                    "あとでその情報について質問します。\n",
           "filler": "草は緑です。空は青いです。太陽は黄色です。さあ、行きましょう。行って、帰ってきます。\n",
           "key": "パスキーは{key}です。覚えてください。{key}がパスキーです。\n",
           "question": "パスキーは何ですか？パスキーは", "answer": "{key}"},
}


@dataclass
class Passkey:
    """One passkey trial: the prompt's token ids and the key's, which the model should continue with."""

    key: str
    depth: float
    prompt: list[int]
    answer: list[int]


def bucket_edges(length: int, edges: list[int] | None = None) -> list[int]:
    """Upper edges of the position buckets: the given ones up to `length`, else doubling up to `length` from an
    eighth of it, at most 512 wide (0-512, 512-1K, 1K-2K, 2K-4K, 4K-8K for 8,192)."""
    if edges:
        kept = [e for e in edges if e < length]
        return kept + [length]
    first = min(512, max(1, length // 8))
    out = [first]
    while out[-1] * 2 < length:
        out.append(out[-1] * 2)
    return out + [length]


def bucket_label(low: int, high: int) -> str:
    def short(n: int) -> str:
        return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)

    return f"{short(low)}–{short(high)}"


def encoder(tokenizer):
    """text -> ids as pretraining tokenizes it: no special tokens, newlines as `<NL>` where the tokenizer has it."""
    newline = newline_piece(tokenizer)

    def encode(text: str) -> list[int]:
        # verbose=False: a whole file is longer than the model's context on purpose (it is cut into windows)
        return tokenizer.encode(text.replace("\n", newline) if newline else text, add_special_tokens=False,
                                verbose=False)

    return encode


def encode_inputs(tokenizer, files: list[Path]) -> list[int]:
    """Every file tokenized whole (newlines as pretraining writes them), joined by EOS."""
    encode, ids = encoder(tokenizer), []
    for path in files:
        ids += encode(read_file_text(path)) + [tokenizer.eos_token_id]
    return ids


@torch.no_grad()
def loss_by_position(model, ids: list[int], length: int, windows: int, batch_size: int,
                     progress: bool = True) -> tuple[list[float], int]:
    """Mean next-token loss at each position 0..length-1 over consecutive windows; and the windows used."""
    count = min(windows, (len(ids) - 1) // length)
    if count < 1:
        raise ChowaError(f"eval long: the input holds {len(ids):,} tokens, fewer than one window of {length + 1:,}; "
                         "give more text or a smaller --length")
    device = next(model.parameters()).device
    totals = torch.zeros(length, dtype=torch.float64)
    for start in tqdm(range(0, count, batch_size), desc=f"loss at {length}", disable=not progress, leave=False):
        windows_here = range(start, min(count, start + batch_size))
        rows = torch.tensor([ids[w * length:(w + 1) * length + 1] for w in windows_here], device=device)
        logits = model(input_ids=rows[:, :-1]).logits.float()
        losses = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none")  # (B, T)
        totals += losses.sum(0).double().cpu()
    return (totals / count).tolist(), count


def bucket_means(per_position: list[float], edges: list[int]) -> dict[str, float]:
    means, low = {}, 0
    for high in edges:
        values = per_position[low:high]
        means[bucket_label(low, high)] = sum(values) / len(values)
        low = high
    return means


def passkey_trials(tokenizer, length: int, depths: list[float], trials: int, language: str,
                   rng: random.Random) -> list[Passkey]:
    """`trials` prompts per depth, each as close to `length` tokens (prompt and key together) as whole filler
    sentences allow."""
    parts = PASSKEY_PROMPTS[language]
    enc = encoder(tokenizer)
    intro, filler, question = enc(parts["intro"]), enc(parts["filler"]), enc(parts["question"])
    out = []
    for depth in depths:
        for _ in range(trials):
            key = str(rng.randint(10000, 99999))
            needle, answer = enc(parts["key"].format(key=key)), enc(parts["answer"].format(key=key))
            room = length - len(intro) - len(needle) - len(question) - len(answer)
            sentences = room // len(filler)
            if sentences < 1:
                raise ChowaError(f"eval long: a passkey prompt of {length} tokens has no room for filler; use a "
                                 "longer --passkey-lengths")
            before = round(depth * sentences)
            prompt = intro + filler * before + needle + filler * (sentences - before) + question
            out.append(Passkey(key, depth, prompt, answer))
    return out


@torch.no_grad()
def score_passkeys(model, trials: list[Passkey], batch_size: int, pad_id: int,
                   progress: bool = True) -> list[tuple[bool, float]]:
    """(greedy decoding gives the key, mean log-prob of the key's tokens) per trial, from teacher-forced passes."""
    device = next(model.parameters()).device
    keep = accepts(model, "logits_to_keep")
    results = []
    for start in tqdm(range(0, len(trials), batch_size), desc="passkey", disable=not progress, leave=False):
        chunk = trials[start:start + batch_size]
        rows = [t.prompt + t.answer for t in chunk]
        width = max(len(r) for r in rows)
        # Right padding: every real token attends only to real tokens before it, so no mask is needed.
        ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=device)
        # Only the tail from the first position that predicts a key token reaches the vocabulary projection.
        first = min(len(t.prompt) for t in chunk) - 1 if keep else 0
        extra = {"logits_to_keep": width - first} if keep else {}
        logits = model(input_ids=ids, **extra).logits.float()
        for i, trial in enumerate(chunk):
            start = len(trial.prompt) - 1 - first
            scored = F.log_softmax(logits[i, start:start + len(trial.answer)], dim=-1)
            target = torch.tensor(trial.answer, device=device)
            greedy = bool((scored.argmax(-1) == target).all())
            results.append((greedy, scored.gather(1, target[:, None]).mean().item()))
    return results


def evaluate_model(name: str, folder: str, cfg: EvalLongConfig, files: list[Path]) -> dict:
    tokenizer = load_model_tokenizer(folder)
    device = cfg.device or default_device()
    model = load_causal_lm(folder, dtype=cfg.dtype, device=device).eval()
    if is_byte_model(model.config):
        raise ChowaError(f"eval long: {folder} is a byte-group model; this evaluation reads token models")
    context = context_length(model.config)
    length = cfg.length or context
    if not length:
        raise ChowaError(f"eval long: {folder} has no fixed context (ALiBi); give --length")
    per_position, used = loss_by_position(model, encode_inputs(tokenizer, files), length, cfg.windows,
                                          cfg.batch_size)
    edges = bucket_edges(length, list(cfg.buckets))
    result = {"name": name, "folder": str(folder), "context": context, "length": length, "windows": used,
              "rope": getattr(model.config, "rope_parameters", None),
              "loss_by_bucket": bucket_means(per_position, edges),
              "loss_by_position": [round(x, 5) for x in per_position], "passkey": []}
    rng = random.Random(cfg.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for passkey_length in passkey_lengths(cfg, tokenizer, length):
        trials = passkey_trials(tokenizer, passkey_length, list(cfg.passkey_depths), cfg.passkey_trials,
                                cfg.passkey_language, rng)
        scores = score_passkeys(model, trials, cfg.batch_size, pad)
        for depth in cfg.passkey_depths:
            cell = [s for t, s in zip(trials, scores, strict=True) if t.depth == depth]
            result["passkey"].append({"length": passkey_length, "depth": depth,
                                      "accuracy": sum(ok for ok, _ in cell) / len(cell),
                                      "key_logprob": sum(lp for _, lp in cell) / len(cell), "trials": len(cell)})
    return result


def passkey_lengths(cfg: EvalLongConfig, tokenizer, length: int) -> list[int]:
    """The lengths asked for, or a quarter, a half and all of the window, less those too short to hold filler."""
    if cfg.passkey_lengths:
        return [n for n in cfg.passkey_lengths if n > 0]
    parts = PASSKEY_PROMPTS[cfg.passkey_language]
    enc = encoder(tokenizer)
    fixed = sum(len(enc(parts[k].format(key="12345"))) for k in ("intro", "key", "question", "answer"))
    return [n for n in (length // 4, length // 2, length) if n - fixed >= len(enc(parts["filler"]))]


def main(cfg: EvalLongConfig) -> dict:
    if cfg.out:
        check_writable(cfg.out, "--out", folder=True)
    files = expand_inputs(list(cfg.input))
    models = [evaluate_model(name, folder, cfg, files) for name, folder in cfg.model_folders().items()]
    results = {"models": models, "passkey_language": cfg.passkey_language}
    print(markdown(models))
    if cfg.out:
        out = Path(cfg.out)
        atomic_write_text(out / "long.json", json.dumps(results, ensure_ascii=False, indent=2) + "\n")
        plot_loss(models, out / "loss_by_position.png")
        written = ["long.json", "loss_by_position.png"]
        if any(m["passkey"] for m in models):
            plot_passkey(models, out / "passkey.png")
            written.append("passkey.png")
        save_config(cfg, out)
        print(f"\nwrote {', '.join(written)} in {out}")
    return results


def markdown(models: list[dict]) -> str:
    """The loss table (one row per model, its own buckets) and a passkey table per model."""
    lines = ["Held-out loss by position (nats/token; lower is better):", ""]
    for m in models:
        buckets = m["loss_by_bucket"]
        lines += [f"{m['name']} (context {m['context']}, read at {m['length']}, {m['windows']} windows)",
                  "| " + " | ".join(buckets) + " |", "|" + "---|" * len(buckets),
                  "| " + " | ".join(f"{v:.3f}" for v in buckets.values()) + " |", ""]
    for m in models:
        if not m["passkey"]:
            continue
        depths = sorted({c["depth"] for c in m["passkey"]})
        lines += [f"Passkey retrieval, {m['name']}: accuracy (mean key log-prob) by prompt length and key depth",
                  "| length | " + " | ".join(f"depth {d:g}" for d in depths) + " | all |",
                  "|---|" + "---|" * (len(depths) + 1)]
        for length in sorted({c["length"] for c in m["passkey"]}):
            cells = [c for c in m["passkey"] if c["length"] == length]
            by_depth = {c["depth"]: c for c in cells}
            overall = sum(c["accuracy"] for c in cells) / len(cells)
            lines.append(f"| {length} | " + " | ".join(
                f"{by_depth[d]['accuracy']:.0%} ({by_depth[d]['key_logprob']:.2f})" for d in depths)
                + f" | {overall:.0%} |")
        lines.append("")
    return "\n".join(lines).rstrip()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def plot_loss(models: list[dict], path: Path, bin_width: int = 0) -> None:
    """Loss against position (means over bins of positions), one line per model."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7.5, 4.2))
    for m in models:
        values = m["loss_by_position"]
        width = bin_width or max(1, len(values) // 32)
        xs = [i + width / 2 for i in range(0, len(values), width)]
        ys = [sum(values[i:i + width]) / len(values[i:i + width]) for i in range(0, len(values), width)]
        axis.plot(xs, ys, label=f"{m['name']} (context {m['context']})")
        if m["context"] and m["context"] < len(values):
            axis.axvline(m["context"], color=axis.lines[-1].get_color(), linestyle=":", alpha=0.6)
    axis.set_xlabel("position in the window (tokens)")
    axis.set_ylabel("held-out loss (nats/token)")
    axis.set_title("Loss by position (dotted: a model's trained context)")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_passkey(models: list[dict], path: Path) -> None:
    """A heat map per model: the key's mean log-probability by prompt length (rows) and key depth (columns), one
    colour scale for all, each cell labelled with its accuracy and log-probability (accuracy alone is all zeros for
    a small model, which would show nothing)."""
    plt = _pyplot()
    shown = [m for m in models if m["passkey"]]
    values = [c["key_logprob"] for m in shown for c in m["passkey"]]
    low, high = min(values), max(max(values), min(values) + 1e-6)
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown) + 1.4, 3.4), squeeze=False,
                             constrained_layout=True)
    image = None
    for index, (axis, m) in enumerate(zip(axes[0], shown, strict=True)):
        depths = sorted({c["depth"] for c in m["passkey"]})
        lengths = sorted({c["length"] for c in m["passkey"]})
        cell = {(c["length"], c["depth"]): c for c in m["passkey"]}
        grid = [[cell[(n, d)]["key_logprob"] for d in depths] for n in lengths]
        image = axis.imshow(grid, vmin=low, vmax=high, cmap="viridis", aspect="auto", origin="lower")
        for r, n in enumerate(lengths):
            for c, d in enumerate(depths):
                value = cell[(n, d)]
                bright = (value["key_logprob"] - low) / (high - low) > 0.6
                axis.text(c, r, f"{value['accuracy']:.0%}\n{value['key_logprob']:.1f}", ha="center", va="center",
                          fontsize=7, color="black" if bright else "white")
        axis.set_xticks(range(len(depths)), [f"{d:g}" for d in depths])
        axis.set_yticks(range(len(lengths)), [str(n) for n in lengths])
        axis.set_xlabel("key depth")
        if index == 0:
            axis.set_ylabel("prompt length (tokens)")
        axis.set_title(m["name"])
    fig.colorbar(image, ax=list(axes[0]), label="mean log-prob of the key's tokens")
    fig.suptitle("Passkey retrieval (cell: greedy accuracy, key log-prob)")
    _save(fig, path)
    plt.close(fig)
