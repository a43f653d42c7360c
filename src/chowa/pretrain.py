"""Causal-LM pretraining on packed token windows: the `pretrain` stage.

Text files, JSONL (`text` field) or globs are tokenized once into a memory-mapped cache (documents joined with
EOS, a held-out share for validation), packed into windows of `data.seq_len` tokens, and trained with AdamW and
a cosine schedule. Checkpoints are Hugging Face folders plus the training state; `train.resume: auto` continues
from the latest complete one with the loss at every later step equal to an uninterrupted run's.

Run as:
    chowa pretrain --config configs/tiny/pretrain.yaml
    accelerate launch --num_processes 2 --cpu -m chowa pretrain --config configs/tiny/pretrain.yaml
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chowa.bytegroup import is_byte_model, is_byte_tokenizer
from chowa.config import save_config, text_column
from chowa.config.pretrain import PretrainConfig
from chowa.config.training import TrainConfig
from chowa.data.shards import PackedStream, build_token_cache, unigram_entropy
from chowa.errors import ChowaError
from chowa.models.load import load_or_build_model
from chowa.runtime import Runtime
from chowa.tokenizer import load_tokenizer
from chowa.training.loop import fit
from chowa.training.plots import plot_metrics


def main(cfg: PretrainConfig) -> Path:
    out = Path(cfg.out)
    runtime = Runtime(cfg.runtime, out_dir=out)
    tokenizer = load_tokenizer(cfg.tokenizer)
    if cfg.data.documents == "within" and is_byte_tokenizer(tokenizer):
        raise ChowaError("pretrain: data.documents=within reads document ends by the EOS token id, which a byte-group "
                         "tokenizer's groups share with ordinary bytes; use data.documents=cross")
    if runtime.is_main:
        cache = _token_cache(cfg, tokenizer, out)
    runtime.wait()
    cache = _token_cache(cfg, tokenizer, out)  # every process opens the cache rank 0 built
    within = tokenizer.eos_token_id if cfg.data.documents == "within" else None
    train_stream = PackedStream(cache.train_tokens(), cfg.data.seq_len, seed=cfg.runtime.seed,
                                within_documents_of=within)
    val_stream = _val_stream(cache, cfg.data.seq_len)
    entropy = unigram_entropy(cache.train_tokens(), len(tokenizer))
    runtime.print(f"pretrain: {cache.meta['train_tokens']:,} training tokens ({train_stream.num_windows:,} windows), "
                  f"{cache.meta['val_tokens']:,} held out; unigram entropy {entropy:.3f} nats")
    model = load_or_build_model(cfg.model, tokenizer, cfg.model_config, seed=cfg.runtime.seed,
                                extend_to=cfg.context.extend_to, method=cfg.context.method)
    if cfg.context.extend_to:
        rope = model.config.rope_parameters
        runtime.print(f"pretrain: context extended to {cfg.context.extend_to:,} positions ({rope['rope_type']}, "
                      f"factor {rope['factor']:g}); training windows of {cfg.data.seq_len:,} tokens")
    runtime.print(f"pretrain: {sum(p.numel() for p in model.parameters()):,} parameters")
    loss_fn = _loss_for(model, cfg.data.seq_len)

    def next_batch(step: int, micro: int) -> dict[str, torch.Tensor]:
        # The global batch of a step is the windows [step*G, (step+1)*G) of the seeded order; each process takes
        # its own slice, so 1 process and N processes with the same global batch see the same windows.
        per_step = cfg.train.batch_size * cfg.runtime.gradient_accumulation_steps * runtime.num_processes
        first = step * per_step + (micro * runtime.num_processes + runtime.process_index) * cfg.train.batch_size
        windows = [train_stream.window(first + i) for i in range(cfg.train.batch_size)]
        return {"tokens": torch.from_numpy(np.stack(windows))}

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return _validate(runtime, model, val_stream, cfg.train, loss_fn) | {"unigram_entropy": round(entropy, 4)}

    fit(runtime, model, tokenizer, cfg, out, next_batch, loss_fn,
        evaluate if val_stream else None, "pretrain")
    if runtime.is_main:
        save_config(cfg, out)
        plot_metrics(runtime.metrics_path, out / "loss.png", [("train_loss", "val_loss", "unigram_entropy")],
                     title=f"pretrain: {cfg.model}")
    runtime.wait()
    return out


def causal_lm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over a packed window batch. tokens: (B, T+1)."""
    tokens = batch["tokens"]
    logits = model(input_ids=tokens[:, :-1]).logits
    loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
    return loss, tokens[:, 1:].numel()


def byte_group_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy per byte of a byte-group model over a packed window batch. tokens: (B, T+1) with T a
    multiple of 4: the first T bytes are input and labels at once (the model shifts by one group)."""
    tokens = batch["tokens"][:, :-1]
    loss = model(input_ids=tokens, labels=tokens).loss
    return loss, tokens[:, 4:].numel()


def _loss_for(model: torch.nn.Module, seq_len: int):
    """The loss of this kind of model; a byte-group model needs windows of whole groups."""
    if not is_byte_model(model):
        return causal_lm_loss
    if seq_len % 4:
        raise ChowaError(f"pretrain: data.seq_len={seq_len} is not whole groups of 4 bytes, which the byte-group "
                         "model reads; use a multiple of 4 (the card: 11520)")
    return byte_group_loss


@torch.no_grad()
def _validate(runtime: Runtime, model: torch.nn.Module, stream: PackedStream, train: TrainConfig,
              loss_fn=causal_lm_loss) -> dict[str, float]:
    """Mean loss over the first held-out windows, split evenly across processes (FSDP needs equal work)."""
    per_process = min(train.eval_batches * train.batch_size, stream.num_windows // runtime.num_processes)
    total = torch.zeros(2, device=runtime.device)
    for start in range(0, per_process, train.batch_size):
        indices = range(start, min(start + train.batch_size, per_process))
        windows = [stream.window(i * runtime.num_processes + runtime.process_index) for i in indices]
        loss, count = loss_fn(model, {"tokens": torch.from_numpy(np.stack(windows)).to(runtime.device)})
        total += torch.tensor([loss.item() * count, count], device=runtime.device)
    total = runtime.accelerator.reduce(total, reduction="sum")
    val_loss = (total[0] / total[1].clamp(min=1)).item()
    metrics = {"val_loss": round(val_loss, 6), "val_ppl": round(math.exp(min(val_loss, 50)), 4)}
    if loss_fn is byte_group_loss:  # a byte model's headline figure: bits per byte
        metrics["val_bpb"] = round(val_loss / math.log(2), 6)
    return metrics


def _token_cache(cfg: PretrainConfig, tokenizer, out: Path):
    return build_token_cache(cfg.data.train, tokenizer, cfg.data.cache_dir or out / "data",
                             val_fraction=cfg.data.val_fraction, encoding=cfg.data.encoding, seed=cfg.runtime.seed,
                             field=text_column(cfg.data.columns, "data.columns"),
                             tokenizer_dir=cfg.tokenizer if Path(cfg.tokenizer).is_dir() else None)


def _val_stream(cache, seq_len: int) -> PackedStream | None:
    tokens = cache.val_tokens()
    return PackedStream(tokens, seq_len, shuffle=False) if len(tokens) > seq_len else None
