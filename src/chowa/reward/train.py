"""Reward-model training on preference pairs: the `reward` stage.

Pairs (`chowa.data.preferences`: hh-rlhf transcripts, prompt/chosen/rejected, conversation + two replies) are
rendered through the base model's chat format into two sequences each (context + reply + EOS, the ids of
`chowa.formats.render_training`). The model is the base causal LM (an SFT folder) loaded as a
`*ForSequenceClassification` with one label: transformers adds a linear head on the last hidden state, with no
per-architecture code here, and the score is read at the last non-pad token. The loss is Bradley–Terry
(`chowa.reward.losses`) with an optional margin (constant, or a record's `margin`) and centering term; chosen
and rejected sequences of a micro-batch run as one concatenated batch. Held-out metrics: `val_accuracy`,
`val_margin` (mean r_c − r_r), `val_score_mean` / `val_score_std`, `val_loss`, and `val_accuracy_<kind>` for each
record `kind`. The same loop as pretraining and SFT gives checkpoints, exact resume and metrics.jsonl; the final
folder reloads in plain transformers with identical scores (see `chowa.reward.score`).

Run as:
    chowa reward --config configs/tiny/reward.yaml
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

from chowa.config import save_config
from chowa.config.reward import RewardConfig, RewardLossConfig
from chowa.data.order import SeededOrder
from chowa.data.preferences import read_preferences
from chowa.data.records import ReadOptions
from chowa.errors import ChowaError
from chowa.formats import ChatFormat, chat_template, render_training, resolve_format, save_format
from chowa.models.load import load_model, load_model_tokenizer
from chowa.padding import pad_rows
from chowa.reward.losses import bradley_terry_loss
from chowa.reward.score import sequence_scores
from chowa.runtime import Runtime
from chowa.training.loop import fit
from chowa.training.plots import plot_metrics

PAD_TOKEN = "[PAD]"


@dataclass
class EncodedPair:
    chosen: list[int]
    rejected: list[int]
    margin: float
    kind: str


def main(cfg: RewardConfig) -> Path:
    out = Path(cfg.out)
    runtime = Runtime(cfg.runtime, out_dir=out)
    tokenizer = load_model_tokenizer(cfg.model, cfg.tokenizer)
    fmt = resolve_format(cfg.format, cfg.tokenizer or cfg.model)
    tokenizer.chat_template = chat_template(fmt)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # The score is read at the last id that is not the pad id; an EOS pad would hide the final EOS.
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    train_pairs = encode_pairs(cfg, cfg.data.train, fmt, tokenizer, runtime)
    heldout = encode_pairs(cfg, cfg.data.heldout, fmt, tokenizer, runtime) if cfg.data.heldout else []
    kinds = sorted({pair.kind for pair in heldout if pair.kind})
    model = load_reward_backbone(cfg.model, tokenizer)
    pad_id = tokenizer.pad_token_id
    runtime.print(f"reward: {len(train_pairs):,} training pairs, {len(heldout):,} held out, format {fmt.name}")
    order = SeededOrder(len(train_pairs), seed=cfg.runtime.seed)

    def next_batch(step: int, micro: int) -> dict[str, torch.Tensor]:
        per_step = cfg.train.batch_size * cfg.runtime.gradient_accumulation_steps * runtime.num_processes
        first = step * per_step + (micro * runtime.num_processes + runtime.process_index) * cfg.train.batch_size
        return collate_pairs([train_pairs[order[first + i]] for i in range(cfg.train.batch_size)], pad_id)

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        chosen, rejected = pair_scores(model, batch, pad_id)
        loss, _ = bradley_terry_loss(chosen, rejected, batch["margin"], cfg.loss.centering_coef)
        return loss, int(batch["attention_mask"].sum())

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return heldout_metrics(runtime, model, heldout, kinds, cfg.train.batch_size, pad_id, cfg.loss)

    # At step 0 (the untrained head) held-out accuracy is near chance.
    fit(runtime, model, tokenizer, cfg, out, next_batch, loss_fn, evaluate if heldout else None, "reward")
    if runtime.is_main:
        save_format(out, fmt)
        save_config(cfg, out)
        plot_metrics(runtime.metrics_path, out / "loss.png",
                     [("train_loss", "val_loss"), ("val_accuracy", *(f"val_accuracy_{k}" for k in kinds))],
                     title="reward")
    runtime.wait()
    return out


def load_reward_backbone(path: str, tokenizer) -> PreTrainedModel:
    """The causal LM in `path` as a one-label sequence classifier reading at the tokenizer's pad id.

    transformers keeps the trunk's weights, drops the LM head and initialises the new `score` head from the
    model's `initializer_range` (a normal draw, so the starting scores are small and differ per sequence).
    """
    model = load_model(path, "sequence-classification", new_head=True, num_labels=1)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))  # room for the added pad token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_pairs(cfg: RewardConfig, files: list[str], fmt: ChatFormat, tokenizer,
                 runtime: Runtime) -> list[EncodedPair]:
    """Each pair's two sequences as ids; pairs with a side longer than `max_length` are dropped."""
    loaded = read_preferences(files, cfg.data.data_format, cfg.data.skip_bad_records, ReadOptions.of(cfg.data))
    if loaded.bad_records:
        runtime.print(f"reward: skipped {len(loaded.bad_records)} bad records, first: {loaded.bad_records[0]}")
    encoded, too_long = [], 0
    for pair in loaded.pairs:
        try:
            chosen, rejected = (render_training(side, fmt, tokenizer)[0] for side in pair.conversations())
        except ChowaError as exc:
            raise ChowaError(f"{pair.source}: {exc}") from None
        if max(len(chosen), len(rejected)) > cfg.data.max_length:
            too_long += 1
            continue
        margin = cfg.loss.margin if pair.margin is None else pair.margin
        encoded.append(EncodedPair(chosen, rejected, margin, pair.kind))
    if too_long:
        runtime.print(f"reward: dropped {too_long} pairs longer than data.max_length={cfg.data.max_length} tokens")
    if not encoded:
        raise ChowaError(f"reward: no usable pairs in {', '.join(files)}")
    return encoded


def collate_pairs(pairs: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows, right-padded. input_ids, attention_mask: (2B, T); margin: (B,)."""
    input_ids, attention_mask = pad_rows([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)
    margin = torch.tensor([p.margin for p in pairs], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "margin": margin}


def pair_scores(model: torch.nn.Module, batch: dict[str, torch.Tensor], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(chosen, rejected) scores, each (B,), from one forward pass over the 2B rows."""
    scores = sequence_scores(model, batch["input_ids"], batch["attention_mask"], pad_id)
    return scores.chunk(2)


def pair_statistics(chosen: torch.Tensor, rejected: torch.Tensor, loss_per_pair: torch.Tensor) -> torch.Tensor:
    """Sums that add up across batches and processes: [pairs, correct, margin, loss, score, score²].

    chosen, rejected, loss_per_pair: (B,) -> (6,) float64.
    """
    scores = torch.cat([chosen, rejected]).double()
    return torch.stack([torch.tensor(float(len(chosen)), dtype=torch.float64, device=chosen.device),
                        (chosen > rejected).double().sum(), (chosen - rejected).double().sum(),
                        loss_per_pair.double().sum(), scores.sum(), (scores ** 2).sum()])


@torch.no_grad()
def heldout_metrics(runtime: Runtime, model: torch.nn.Module, pairs: list[EncodedPair], kinds: list[str],
                    batch_size: int, pad_id: int, loss: RewardLossConfig) -> dict[str, float]:
    """Accuracy, mean margin, loss and score mean/std over `pairs` (split across processes), plus accuracy per kind."""
    groups = ["", *kinds]  # "" = all pairs
    totals = torch.zeros(len(groups), 6, dtype=torch.float64, device=runtime.device)
    for rows, real in runtime.share(pairs, batch_size):
        batch = {k: v.to(runtime.device) for k, v in collate_pairs(rows, pad_id).items()}
        chosen, rejected = pair_scores(model, batch, pad_id)
        if not real:
            continue
        per_pair = torch.stack([bradley_terry_loss(c[None], r[None], m, loss.centering_coef)[0]
                                for c, r, m in zip(chosen, rejected, batch["margin"], strict=True)])
        for index, group in enumerate(groups):
            keep = torch.tensor([not group or p.kind == group for p in rows], device=runtime.device)
            if keep.any():
                totals[index] += pair_statistics(chosen[keep], rejected[keep], per_pair[keep])
    totals = runtime.accelerator.reduce(totals, reduction="sum")
    count, correct, margin, loss_sum, score, score_sq = totals[0].tolist()
    count = max(count, 1.0)
    mean = score / (2 * count)
    metrics = {"val_loss": loss_sum / count, "val_accuracy": correct / count, "val_margin": margin / count,
               "val_score_mean": mean, "val_score_std": max(score_sq / (2 * count) - mean ** 2, 0.0) ** 0.5}
    for index, kind in enumerate(kinds, start=1):
        metrics[f"val_accuracy_{kind}"] = totals[index, 1].item() / max(totals[index, 0].item(), 1.0)
    return {key: round(value, 6) for key, value in metrics.items()}
