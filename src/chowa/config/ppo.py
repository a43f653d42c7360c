"""Config of `chowa ppo`: prompts, the reward source, rollout sampling, the PPO method, the loop.

Run as:
    chowa ppo --config configs/tiny/ppo.yaml method.layout=separate
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chowa.config import DATA_SOURCES, REQUIRED, option
from chowa.config.reading import ReadConfig
from chowa.config.training import OptimConfig, RuntimeConfig, resume_changes_option, resume_option
from chowa.errors import ChowaError
from chowa.formats import FORMATS

# Where the value estimate and the frozen reference live (see chowa.ppo.layouts).
LAYOUTS = ("separate", "shared", "hydra", "reference-branch")


@dataclass
class PromptDataConfig(ReadConfig):
    prompts: list[str] = option(REQUIRED, f"Prompt {DATA_SOURCES} (OpenAI `messages`, Alpaca "
                                          "`instruction`/`input` or `prompt`), e.g. `builtin:sft/train.jsonl`.")
    heldout: list[str] = option([], "Held-out prompt files, answered and scored at every evaluation (see "
                                    "generation.eval_greedy and eval_samples).")
    heldout_size: int = option(64, "Use at most this many held-out prompts (the first ones).", minimum=0)
    max_prompt_length: int = option(256, "Keep only the last this-many prompt tokens.", minimum=1)


@dataclass
class RewardSourceConfig:
    model: str = option("", "Reward-model folder (HF sequence classifier, same tokenizer as the policy).")
    function: str = option("", "Rule-based reward `module:function(samples, prompts, **meta) -> list[float]`, e.g. "
                               "`chowa.answers:checked_answer`.")
    url: str = option("", "A reward model served by `chowa serve --reward-model` (http://HOST:PORT): each sample "
                          "is sent as its prompt's messages and the cleaned reply, as OpenRLHF's remote reward "
                          "model receives decoded text. Exactly one of `model`, `function` and `url`.")
    url_model: str = option("", "Name of the served reward model (default: the server's only one).")
    url_key_env: str = option("", "Environment variable holding the server's API key (default: none).",
                              metavar="VAR")
    reference_reply: bool = option(False, "Score minus the score of the prompt's reference reply (Alpaca `output` "
                                          "or a final assistant message), as trlx's hh example.")
    cliprange_reward: float = option(10.0, "Clip scores to ±this (0 = no clipping).", minimum=0)
    scale: str = option("none", "Divide scores by the running std (`running`), the first rollout's std (`ref`), "
                                "or not at all.", choices=("running", "ref", "none"))
    missing_eos_penalty: float = option(0.0, "Subtract this from the score of a response that never ended.", minimum=0)
    batch_size: int = option(16, "Sequences per reward-model forward pass.", minimum=1)

    def check(self) -> None:
        """Exactly one source (the unset default cannot hold it, so PPOConfig and RewardSource call this)."""
        if [bool(self.model), bool(self.function), bool(self.url)].count(True) != 1:
            raise ChowaError("config: set exactly one of reward.model (a reward-model folder), reward.function "
                             "(module:function) and reward.url (a chowa serve reward endpoint)")


@dataclass
class RolloutConfig:
    max_new_tokens: int = option(64, "Longest response in tokens; one that runs out is scored as is.", minimum=1)
    temperature: float = option(1.0, "Sampling temperature; log-probs are taken at the same temperature.", above=0)
    stop: list[str] = option([], "Stop strings ending a response (cut before them, EOS appended); empty = the chat "
                                 "format's own turn tags.")
    eval_greedy: bool = option(True, "Answer held-out prompts greedily (else sampled with a fixed seed).")
    eval_samples: int = option(0, "Also answer each held-out prompt with this many sampled replies (fixed seed) and "
                                  "log their mean as heldout_score_sampled / heldout_accuracy_sampled: the policy's "
                                  "expected reward, what trlx's evaluation reports (it samples with gen_kwargs).",
                               minimum=0)

    def __post_init__(self):
        if self.eval_samples < 0:
            raise ChowaError(f"config: generation.eval_samples must be 0 or more, got {self.eval_samples}")


@dataclass
class PPOMethodConfig:
    layout: str = option("hydra", "Where value and reference live: separate (own critic, full reference copy), "
                                  "shared (value head on the policy), hydra (frozen bottom shared with a reference "
                                  "branch), reference-branch (value on a branch of the frozen bottom).",
                         choices=LAYOUTS)
    num_layers_unfrozen: int = option(2, "Top blocks that train (-1 = all); hydra layouts branch here.", minimum=-1)
    value_model: str = option("", "Folder to initialise the separate critic's trunk from (e.g. the reward model); "
                                  "default: the policy.")
    num_rollouts: int = option(64, "Samples collected per step on each process.", minimum=1)
    chunk_size: int = option(16, "Prompts sampled together.", minimum=1)
    ppo_epochs: int = option(4, "Passes over each step's samples.", minimum=1)
    batch_size: int = option(16, "Samples per optimizer step.", minimum=1)
    minibatch_size: int = option(0, "Samples per forward/backward (gradient accumulation); 0 = batch_size.", minimum=0)
    init_kl_coef: float = option(0.05, "Initial KL penalty coefficient β.", minimum=0)
    target: float | None = option(None, "Target KL for the adaptive controller; null = fixed β.", above=0)
    horizon: int = option(10000, "Adaptive controller horizon.", minimum=1)
    kl_estimator: str = option("k1", "Per-token KL penalty estimator: k1 = lp − ref (trlx), k3 = exp(ref − lp) − 1 + "
                                     "lp − ref (Schulman's, non-negative; TRL). Outside trlx_compat the controller "
                                     "reads the same estimator.", choices=("k1", "k3"))
    gamma: float = option(1.0, "Discount.", minimum=0, maximum=1)
    lam: float = option(0.95, "GAE λ.", minimum=0, maximum=1)
    cliprange: float = option(0.2, "Policy ratio clip ε.", above=0)
    cliprange_value: float = option(0.2, "Value clip ε_v.", above=0)
    vf_coef: float = option(1.0, "Value loss weight.", minimum=0)
    whiten: str = option("masked", "Advantage whitening.", choices=("masked", "trlx", "none"))
    whiten_scope: str = option("minibatch", "Whiten per minibatch (trlx) or over the whole rollout.",
                               choices=("minibatch", "rollout"))
    trlx_compat: bool = option(False, "Reproduce trlx: the KL controller reads trlx's statistic (exp(l) − 1 − l over "
                                      "prompt and response tokens, chunks combined as the square of the mean "
                                      "sqrt), log-probs at temperature 1, unmasked approx-KL. Advantages are "
                                      "trlx's either way. Add whiten=trlx for trlx's whitening.")

    def __post_init__(self):
        if self.value_model and self.layout != "separate":
            raise ChowaError("config: method.value_model is only used by layout 'separate'")


@dataclass
class PPOTrainConfig:
    steps: int = option(100, "PPO steps (each: collect method.num_rollouts samples, then method.ppo_epochs passes).",
                        minimum=1)
    eval_every: int = option(10, "Score the held-out prompts every this many steps (0 = only at the end).", minimum=0)
    save_every: int = option(50, "Save a resumable checkpoint every this many steps (0 = only at the end).", minimum=0)
    keep_checkpoints: int = option(2, "Newest checkpoints to keep (0 = all).", minimum=0)
    resume: str = resume_option()
    resume_changes: list[str] = resume_changes_option()
    log_samples: int = option(4, "Sampled replies per step written to samples.jsonl.", minimum=0)


@dataclass
class PPOConfig:
    RENAMED: ClassVar[dict[str, str]] = {"ppo": "method"}  # `ppo.ppo.*` read as "ppo ppo"

    out: str = option(REQUIRED, "Output folder: final policy (HF folder + chat format), checkpoints/, metrics.")
    model: str = option(REQUIRED, "The SFT policy folder to start from; also the frozen reference.")
    tokenizer: str = option("", "Tokenizer folder (default: the model folder).")
    format: str = option("", "Chat format; default: the model folder's own.", choices=tuple(FORMATS))
    data: PromptDataConfig = option(PromptDataConfig(), "Prompts to sample from.")
    reward: RewardSourceConfig = option(RewardSourceConfig(), "Where scores come from, and how they are clipped "
                                                              "and scaled.")
    generation: RolloutConfig = option(RolloutConfig(), "Sampling of rollouts and held-out replies.")
    method: PPOMethodConfig = option(PPOMethodConfig(), "PPO (defaults: trlx's, specs/ppo.md §7).")
    train: PPOTrainConfig = option(PPOTrainConfig(), "Steps, evaluation, checkpoints, resume.")
    optim: OptimConfig = option(OptimConfig(lr=1e-5, min_lr=1e-5, warmup_steps=0, schedule="constant",
                                            betas=[0.9, 0.95], weight_decay=1e-6), "AdamW (trlx defaults).")
    runtime: RuntimeConfig = option(RuntimeConfig(), "Device, precision, seed.")

    def __post_init__(self):
        self.reward.check()
