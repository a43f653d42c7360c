"""Configs of `chowa reward` (train a reward model) and `chowa reward score` (score records with one).

Run as:
    chowa reward --config configs/tiny/reward.yaml
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import DATA_SOURCES, REQUIRED, option
from chowa.config.reading import ReadConfig
from chowa.config.training import OptimConfig, RuntimeConfig, TrainConfig
from chowa.data.preferences import PREFERENCE_FORMATS
from chowa.formats import FORMATS


@dataclass
class RewardDataConfig(ReadConfig):
    train: list[str] = option(REQUIRED, f"Preference {DATA_SOURCES}; `builtin:preference/train.jsonl` is "
                                        "chowa's own set.")
    heldout: list[str] = option([], "Held-out preference files for accuracy, margin and score statistics.")
    data_format: str = option("auto", "Record format; `auto` detects it per record.",
                              choices=("auto", *PREFERENCE_FORMATS))
    skip_bad_records: bool = option(False, "Skip and count malformed records instead of stopping at the first.")
    max_length: int = option(512, "Longest sequence (context + reply + EOS) in tokens; longer pairs are dropped "
                                  "and counted, since cutting would remove the token the score is read at.", minimum=2)


@dataclass
class RewardLossConfig:
    margin: float = option(0.0, "Margin the chosen score should beat the rejected by (a record's own `margin` "
                                "field wins).")
    centering_coef: float = option(0.0, "Weight of mean((r_c + r_r)^2), which keeps scores near 0 (TRL: 0.01).",
                                   minimum=0)


@dataclass
class RewardConfig:
    out: str = option(REQUIRED, "Output folder: the reward model (HF sequence classifier + tokenizer + chat "
                                "format), checkpoints/, metrics.jsonl.")
    model: str = option(REQUIRED, "Folder to start from: an SFT output (or any HF causal LM, or a reward folder).")
    tokenizer: str = option("", "Tokenizer folder (default: the model folder).")
    format: str = option("", "Chat format; default: the model folder's own.", choices=tuple(FORMATS))
    data: RewardDataConfig = option(RewardDataConfig(), "Preference pairs to train on.")
    loss: RewardLossConfig = option(RewardLossConfig(), "Bradley–Terry margin and centering.")
    train: TrainConfig = option(TrainConfig(), "Loop: steps, batch size (pairs), evaluation, checkpoints, resume.")
    optim: OptimConfig = option(OptimConfig(lr=1e-5, min_lr=1e-6, warmup_steps=20), "AdamW and schedule.")
    runtime: RuntimeConfig = option(RuntimeConfig(), "Device, precision, seed, gradient accumulation.")


@dataclass
class RewardScoreConfig(ReadConfig):
    model: str = option(REQUIRED, "Reward model folder (chowa reward output).", metavar="DIR")
    input: str = option(REQUIRED, "Records to score: conversations ending with a reply, prompt/chosen/rejected "
                                  "pairs or hh-rlhf transcripts.", metavar="FILE.jsonl")
    out: str = option("", "Write here instead of stdout.", metavar="FILE.jsonl")
    batch_size: int = option(8, "Conversations scored together.", minimum=1)
