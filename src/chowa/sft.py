"""Supervised fine-tuning on conversations: the `sft` stage.

Training files (Alpaca, OpenAI `messages`, ShareGPT, rinna `[{speaker, text}]`, hh-rlhf `chosen`; see
`chowa.data.conversations`) are mixed by weight, rendered through one chat format (`chowa.formats`) into token
ids with a loss mask over the replies and their EOS, and trained with the same loop, checkpoints and resume as
pretraining. The saved folder carries the chat format (`chat_format.json` and the tokenizer's `chat_template`),
so plain `tokenizer.apply_chat_template` renders prompts exactly as training did. With `lora.enabled` only
low-rank adapters are trained (peft) and merged into the weights on save.

Run as:
    chowa sft --config configs/tiny/sft.yaml
    accelerate launch --multi_gpu --num_processes 2 -m chowa sft --config configs/tiny/sft.yaml runtime.cpu=true
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from chowa.bytegroup import is_byte_tokenizer
from chowa.bytegroup.hf.codec_bytegroup import CodecError
from chowa.config import save_config
from chowa.config.sft import LoraConfig, SFTConfig
from chowa.data.conversations import DataSource, mix_sources
from chowa.data.order import SeededOrder
from chowa.data.records import ReadOptions
from chowa.errors import ChowaError
from chowa.folders import finish_folder
from chowa.formats import chat_template, render_training, resolve_format, save_format
from chowa.models.load import load_causal_lm, load_model_tokenizer
from chowa.padding import pad_rows
from chowa.runtime import Runtime
from chowa.training.loop import fit
from chowa.training.plots import plot_metrics

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside the replies


def main(cfg: SFTConfig) -> Path:
    out = Path(cfg.out)
    runtime = Runtime(cfg.runtime, out_dir=out)
    tokenizer = load_model_tokenizer(cfg.model, cfg.tokenizer)
    fmt = resolve_format(cfg.format, cfg.tokenizer or cfg.model)
    byte_model = is_byte_tokenizer(tokenizer)
    # saved with every checkpoint, so apply_chat_template renders what training saw (a byte model's BOS group too)
    tokenizer.chat_template = chat_template(fmt, bos=byte_model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if byte_model and cfg.data.max_length % 4:
        raise ChowaError(f"sft: data.max_length={cfg.data.max_length} is not whole groups of 4 bytes, which the "
                         "byte-group model reads; use a multiple of 4")
    pad = tokenizer.pad_group if byte_model else tokenizer.pad_token_id
    loss_fn = byte_reply_loss if byte_model else masked_lm_loss
    train_examples = _examples(cfg, cfg.data.train, cfg.data.weights, fmt, tokenizer, runtime)
    heldout = _examples(cfg, cfg.data.heldout, [], fmt, tokenizer, runtime) if cfg.data.heldout else []
    if cfg.data.packing:
        train_examples = pack_examples(train_examples, cfg.data.max_length)
    if cfg.lora.enabled and runtime.shards_parameters:  # the merge at the end runs on rank 0 alone
        raise ChowaError("lora.enabled: LoRA runs under DDP, not under FSDP or ZeRO-3 (its adapters are small and the "
                         "frozen model is merged on one process); launch without parameter sharding")
    model = load_causal_lm(cfg.model)
    if cfg.lora.enabled:
        model = _with_lora(model, cfg.lora)
    runtime.print(f"sft: {len(train_examples):,} training rows, {len(heldout):,} held out, format {fmt.name}")
    order = SeededOrder(len(train_examples), seed=cfg.runtime.seed)

    def next_batch(step: int, micro: int) -> dict[str, torch.Tensor]:
        per_step = cfg.train.batch_size * cfg.runtime.gradient_accumulation_steps * runtime.num_processes
        first = step * per_step + (micro * runtime.num_processes + runtime.process_index) * cfg.train.batch_size
        rows = [train_examples[order[first + i]] for i in range(cfg.train.batch_size)]
        return collate(rows, pad)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return reply_loss(runtime, model, heldout, cfg.train.batch_size, pad, loss_fn)

    model = fit(runtime, model, tokenizer, cfg, out, next_batch, loss_fn,
                evaluate if heldout else None, "sft", terms=partial(reply_targets, shift=4 if byte_model else 1))
    if cfg.lora.enabled and runtime.is_main:  # a plain folder: merged weights, no adapter files
        model.merge_and_unload().save_pretrained(str(out), safe_serialization=True)
        finish_folder(out)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            (out / name).unlink(missing_ok=True)
        readme = out / "README.md"  # peft's empty model-card template says nothing true of this folder
        if readme.is_file() and "Model Card for Model ID" in readme.read_text(encoding="utf-8"):
            readme.unlink()
    if runtime.is_main:
        save_format(out, fmt)
        save_config(cfg, out)
        plot_metrics(runtime.metrics_path, out / "loss.png", [("train_loss", "val_loss")], title="sft")
    runtime.wait()
    return out


def _examples(cfg: SFTConfig, files: list[str], weights: list[float], fmt, tokenizer, runtime: Runtime) -> list:
    sources = [DataSource(path, weights[i] if weights else 1.0, cfg.data.data_format) for i, path in enumerate(files)]
    loaded = mix_sources(sources, seed=cfg.runtime.seed, skip_bad_records=cfg.data.skip_bad_records,
                         options=ReadOptions.of(cfg.data))
    if loaded.bad_records:
        runtime.print(f"sft: skipped {len(loaded.bad_records)} bad records, first: {loaded.bad_records[0]}")
    examples = []
    for record in loaded.conversations:
        try:
            ids, mask = render_training(record.messages, fmt, tokenizer)
        except (ChowaError, CodecError) as exc:  # CodecError: text the byte-group tokenizer cannot encode
            raise ChowaError(f"{record.source}: {exc}") from None
        ids, mask = ids[:cfg.data.max_length], mask[:cfg.data.max_length]
        if any(mask):
            examples.append(Example(ids, [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]))
    if not examples:
        raise ChowaError(f"sft: no trainable examples in {', '.join(files)}")
    return examples


def pack_examples(examples: list[Example], max_length: int) -> list[Example]:
    """Concatenate consecutive examples into rows of at most `max_length` tokens (an example is never split)."""
    rows, ids, labels = [], [], []
    for example in examples:
        if ids and len(ids) + len(example.input_ids) > max_length:
            rows.append(Example(ids, labels))
            ids, labels = [], []
        ids, labels = ids + example.input_ids, labels + example.labels
    if ids:
        rows.append(Example(ids, labels))
    return rows


def collate(rows: list[Example], pad: int | list[int]) -> dict[str, torch.Tensor]:
    """Right-padded batch. input_ids, attention_mask, labels: (B, T). `pad`: the pad id, or the byte-group
    tokenizer's PAD group (rows of whole groups are padded with whole groups)."""
    input_ids, attention_mask = pad_rows([row.input_ids for row in rows], pad)
    labels, _ = pad_rows([row.labels for row in rows], IGNORE)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def masked_lm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over reply tokens only (labels == IGNORE elsewhere)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)
    return loss, reply_targets(batch, shift=1)


def byte_reply_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The byte-group model's loss per reply byte (it shifts by one group itself; labels == IGNORE elsewhere)."""
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    return loss, reply_targets(batch, shift=4)


def reply_targets(batch: dict[str, torch.Tensor], shift: int) -> int:
    """How many reply tokens a batch's loss averages: labels other than IGNORE from position `shift` on (the first
    target; a byte model's is one group of 4 in)."""
    return int((batch["labels"][:, shift:] != IGNORE).sum())


@torch.no_grad()
def reply_loss(runtime: Runtime, model: torch.nn.Module, examples: list[Example], batch_size: int,
               pad: int | list[int], loss_fn=masked_lm_loss) -> dict[str, float]:
    """Token-weighted mean loss over the replies of `examples`, split across processes."""
    total = torch.zeros(2, device=runtime.device)
    for rows, real in runtime.share(examples, batch_size):
        batch = {k: v.to(runtime.device) for k, v in collate(rows, pad).items()}
        loss, count = loss_fn(model, batch)
        if real:
            total += torch.tensor([loss.item() * count, count], device=runtime.device)
    total = runtime.accelerator.reduce(total, reduction="sum")
    value = (total[0] / total[1].clamp(min=1)).item()
    return {"val_loss": round(value, 6), "val_ppl": round(math.exp(min(value, 50)), 4)}


def _with_lora(model, cfg: LoraConfig):
    try:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model
    except ImportError:
        raise ChowaError("lora.enabled needs peft: pip install 'chowa[lora]'") from None
    peft_config = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, task_type="CAUSAL_LM",
                                 target_modules=cfg.target_modules or None)
    return get_peft_model(model, peft_config)
