"""Settings every training stage shares: the loop (`train`), the optimizer (`optim`) and where it runs (`runtime`).

Run as (from Python):
    cfg = load_config(SFTConfig, "configs/tiny/sft.yaml"); cfg.train.steps, cfg.optim.lr, cfg.runtime.seed
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import option
from chowa.errors import ChowaError


def resume_option():
    """The `train.resume` field of every training stage."""
    return option("auto", "`auto`: continue from the latest complete checkpoint in `out` if there is one; `never`: "
                          "start over; or the path of a checkpoint folder. A checkpoint whose run had a config that "
                          "changes the result is refused, naming the keys.")


def resume_changes_option():
    """The `train.resume_changes` field of every training stage."""
    return option([], "Keys allowed to differ from the checkpoint's config when resuming, e.g. [train.steps] to "
                      "train a finished run further.")


@dataclass
class TrainConfig:
    steps: int = option(1000, "Optimizer steps in total.", minimum=1)
    batch_size: int = option(8, "Sequences per micro-batch on each process. Global batch = batch_size x "
                                "runtime.gradient_accumulation_steps x processes.", minimum=1)
    eval_every: int = option(100, "Evaluate on the held-out data every this many steps (0 = only at the end).",
                             minimum=0)
    eval_batches: int = option(8, "Held-out micro-batches per evaluation on each process.", minimum=1)
    save_every: int = option(200, "Save a resumable checkpoint every this many steps (0 = only at the end).", minimum=0)
    keep_checkpoints: int = option(2, "Newest checkpoints to keep (0 = all).", minimum=0)
    resume: str = resume_option()
    resume_changes: list[str] = resume_changes_option()


@dataclass
class OptimConfig:
    lr: float = option(5e-4, "Peak learning rate (reached at the end of warmup).", above=0)
    min_lr: float = option(1e-5, "Learning rate the cosine schedule decays to at the last step.", minimum=0)
    warmup_steps: int = option(100, "Optimizer steps of linear warmup from 0 to `lr`.", minimum=0)
    schedule: str = option("cosine", "Learning-rate schedule after warmup.", choices=("cosine", "linear", "constant"))
    betas: list[float] = option([0.9, 0.999], "AdamW betas.")
    eps: float = option(1e-8, "AdamW epsilon.", minimum=0)
    weight_decay: float = option(0.01, "Decoupled weight decay for weight matrices (never norms, biases or "
                                       "embeddings).", minimum=0)
    grad_clip: float = option(1.0, "Clip the global gradient norm to this (0 = no clipping).", minimum=0)

    def __post_init__(self):
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ChowaError(f"config: optim.betas must hold two numbers in [0, 1), got {list(self.betas)}")
        if 0 < self.lr < self.min_lr:  # (a negative lr is the range check's to report)
            raise ChowaError(f"config: optim.min_lr={self.min_lr} is above optim.lr={self.lr}, so the schedule would "
                             "rise instead of decay; set optim.min_lr to at most optim.lr")


@dataclass
class RuntimeConfig:
    seed: int = option(0, "Random seed for Python, NumPy and torch on every process.")
    mixed_precision: str = option("auto", "Autocast precision. `auto`: what `accelerate launch` was told, else "
                                          "bf16 on GPUs that support it, fp16 on other GPUs, none on CPU.",
                                  choices=("auto", "no", "fp16", "bf16"))
    gradient_accumulation_steps: int = option(1, "Micro-batches per optimizer step.", minimum=1)
    cpu: bool = option(False, "Run on the CPU even when a GPU is present.")
    gradient_checkpointing: bool = option(False, "Recompute each layer's activations during the backward pass "
                                                 "instead of keeping them: activation memory of one layer instead "
                                                 "of all (what long sequences need), for about a third more "
                                                 "compute. Results are unchanged.")
    attention: str = option("auto", "Attention kernel of the trained models. auto: what transformers loads, "
                                    "sdpa wherever the model supports it (BLOOM's ALiBi attention is its own); sdpa "
                                    "(torch's scaled_dot_product_attention, which runs flash or memory-efficient "
                                    "kernels on GPUs that have them); eager (the model's own matmuls; materialises "
                                    "T x T scores); flash_attention_2 (needs the flash-attn package and a GPU).",
                            choices=("auto", "sdpa", "eager", "flash_attention_2"))
    report_to: list[str] = option([], "Experiment trackers to send the metrics to as well, through accelerate: "
                                      "tensorboard (pip install 'chowa[track]'), wandb, mlflow, comet_ml, aim, "
                                      "clearml, dvclive. metrics.jsonl is written either way.")
