"""Config of `chowa sft`.

Run as:
    chowa sft --config configs/tiny/sft.yaml lora.enabled=true out=runs/sft-lora
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import DATA_SOURCES, REQUIRED, option
from chowa.config.reading import ReadConfig
from chowa.config.training import OptimConfig, RuntimeConfig, TrainConfig
from chowa.data.conversations import DATA_FORMATS
from chowa.errors import ChowaError
from chowa.formats import FORMATS


@dataclass
class SFTDataConfig(ReadConfig):
    train: list[str] = option(REQUIRED, f"Training {DATA_SOURCES}; `builtin:sft/train.jsonl` is chowa's own "
                                        "instruction set.")
    weights: list[float] = option([], "Mixture weight per `train` entry (2.0 = every record twice, 0.5 = a random "
                                      "half); empty = 1.0 each.")
    heldout: list[str] = option([], "Held-out files for the reply loss reported at every evaluation.")
    data_format: str = option("auto", "Record format of the files; `auto` detects it per file.",
                              choices=("auto", *DATA_FORMATS))
    skip_bad_records: bool = option(False, "Skip and count malformed records instead of stopping at the first.")
    max_length: int = option(512, "Longest example in tokens; longer ones are cut (their cut replies train on "
                                  "what remains).", minimum=2)
    packing: bool = option(False, "Pack several examples into each max_length row (fewer pad tokens; examples "
                                  "in a row attend to the ones before them).")

    def __post_init__(self):
        if self.weights and len(self.weights) != len(self.train):
            raise ChowaError(f"config: data.weights has {len(self.weights)} entries but data.train has "
                             f"{len(self.train)}")


@dataclass
class LoraConfig:
    enabled: bool = option(False, "Train low-rank adapters (peft) instead of every weight.")
    r: int = option(16, "Adapter rank.", minimum=1)
    alpha: int = option(32, "Adapter scaling numerator (scale = alpha / r).", above=0)
    dropout: float = option(0.05, "Dropout on the adapter input.", minimum=0, maximum=0.99)
    target_modules: list[str] = option([], "Module names to adapt; empty = peft's default for the architecture.")


@dataclass
class SFTConfig:
    out: str = option(REQUIRED, "Output folder: final HF model with its chat format, checkpoints/, metrics.jsonl.")
    model: str = option(REQUIRED, "Causal-LM folder to start from (chowa's pretrain output or any HF model).")
    tokenizer: str = option("", "Tokenizer folder (default: the model folder).")
    format: str = option("", "Chat format; default: the model folder's own (chat_format.json, chat_template or "
                             "rinna layout).", choices=tuple(FORMATS))
    data: SFTDataConfig = option(SFTDataConfig(), "Conversations to train on.")
    lora: LoraConfig = option(LoraConfig(), "Optional LoRA adapters.")
    train: TrainConfig = option(TrainConfig(), "Loop: steps, batch size, evaluation, checkpoints, resume.")
    optim: OptimConfig = option(OptimConfig(lr=2e-5, min_lr=2e-6, warmup_steps=20), "AdamW and schedule.")
    runtime: RuntimeConfig = option(RuntimeConfig(), "Device, precision, seed, gradient accumulation.")
