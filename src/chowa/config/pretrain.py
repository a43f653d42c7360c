"""Config of `chowa pretrain`.

Run as:
    chowa pretrain --config configs/tiny/pretrain.yaml train.steps=1000
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chowa.config import REQUIRED, option, text_column
from chowa.config.training import OptimConfig, RuntimeConfig, TrainConfig
from chowa.data.text import ENCODINGS


@dataclass
class PretrainDataConfig:
    train: list[str] = option(REQUIRED, "Training text: .txt (one document per line) or .jsonl (`text` field) "
                                        "files or globs, .gz allowed; Parquet / Arrow files, datasets folders or "
                                        "hf:NAME[:CONFIG][@SPLIT] (`text` column, read in batches); "
                                        "`builtin:corpus/*.txt` is chowa's own corpus.")
    encoding: str = option("utf-8", "Input encoding; `auto` tries UTF-8 then Shift_JIS.", choices=ENCODINGS)
    seq_len: int = option(256, "Tokens per training window.", minimum=1)
    documents: str = option("cross", "How windows meet document boundaries: cross (packed back to back, a window "
                                     "may span several documents; every token is used) or within (each window "
                                     "lies inside one document; shorter documents and each document's last partial "
                                     "window are skipped: long-context training on long documents).",
                            choices=("cross", "within"))
    val_fraction: float = option(0.02, "Share of documents held out for validation loss and perplexity.", minimum=0,
                                 maximum=0.5)
    cache_dir: str = option("", "Where the tokenized cache lives (default: OUT/data). Reused while the inputs "
                                "and tokenizer are unchanged.")
    columns: dict[str, str] = option({}, "Column mapping, e.g. columns.text=body: the text is the record's column "
                                         "`body` (JSONL records and datasets).")

    def __post_init__(self):
        text_column(self.columns, "data.columns")


# How RoPE can read a longer context (chowa.models.context), as transformers 5 names them in `rope_parameters`.
METHODS = ("linear", "dynamic", "yarn")


@dataclass
class ContextConfig:
    extend_to: int = option(0, "Positions the model reads after this run (0: its own; bytes for the byte-group model, "
                               "as its data.seq_len). Rewrites the RoPE scaling of "
                               "`model` (a folder's weights or a preset) by `context.method` before training; set "
                               "data.seq_len to train at the new length. Models without RoPE (BLOOM) are refused.",
                            minimum=0)
    method: str = option("linear", "How RoPE reads the longer context, as transformers 5 names it in "
                                   "`rope_parameters`: linear (position interpolation, rinna's 8k model), dynamic "
                                   "(NTK-aware, rescaled by sequence length), yarn.",
                         choices=METHODS)


@dataclass
class PretrainConfig:
    out: str = option(REQUIRED, "Output folder: final HF model, checkpoints/, metrics.jsonl, loss.png.")
    tokenizer: str = option(REQUIRED, "Tokenizer folder (e.g. the `tokenizer` stage's output), or bytes:CODEC for the "
                                      "byte-group model's tokenizer (bytes:f4-utf8).")
    model: str = option("tiny", "A preset name (see `chowa model list`) for a fresh model, or a Hugging Face "
                                "model folder to continue training.")
    model_config: dict[str, Any] = option({}, "Overrides of the preset's transformers config, e.g. "
                                              "model_config.num_hidden_layers=2.")
    context: ContextConfig = option(ContextConfig(), "Extend the model's context (RoPE scaling) before training.")
    data: PretrainDataConfig = option(PretrainDataConfig(), "Corpus.")
    train: TrainConfig = option(TrainConfig(), "Loop: steps, batch size, evaluation, checkpoints, resume.")
    optim: OptimConfig = option(OptimConfig(), "AdamW and learning-rate schedule.")
    runtime: RuntimeConfig = option(RuntimeConfig(), "Device, precision, seed, gradient accumulation.")
