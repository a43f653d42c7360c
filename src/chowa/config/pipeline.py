"""Config of `chowa pipeline`: one section per stage, each taking the keys of that stage's own config.

Run as:
    chowa pipeline --config configs/tiny/pipeline.yaml --out runs/demo ppo.train.steps=10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chowa.config import option

# The stages in their order, each a section below (chowa.commands.PIPELINE says what runs in each; a test checks
# that the two agree).
STAGE_NAMES = ("tokenizer", "pretrain", "sft", "reward", "ppo", "eval", "compare")


@dataclass
class PipelineConfig:
    out: str = option("runs/pipeline", "Output folder: one subfolder per stage, pipeline_state.json, report.md/html.",
                      metavar="DIR")
    tokenizer: dict[str, Any] = option({}, "`chowa tokenizer train` keys (out is set by the pipeline).")
    pretrain: dict[str, Any] = option({}, "`chowa pretrain` keys (out, tokenizer are set by the pipeline).")
    sft: dict[str, Any] = option({}, "`chowa sft` keys (out, model are set by the pipeline).")
    reward: dict[str, Any] = option({}, "`chowa reward` keys (out, model are set by the pipeline).")
    ppo: dict[str, Any] = option({}, "`chowa ppo` keys (out, model are set by the pipeline; use "
                                     "reward.model=${out}/reward for the pipeline's reward model).")
    eval: dict[str, Any] = option({}, "`chowa eval heldout` keys (out, model, reward_model are set by the pipeline).")
    compare: dict[str, Any] = option({}, "`chowa compare` keys (out, a, b, judge are set by the pipeline: PPO against "
                                         "SFT, judged by the pipeline's reward model, or by an LLM when judge is "
                                         "llm:URL#MODEL).")
    from_stage: str = option("", "Rerun this stage and every later one even if finished.", STAGE_NAMES, flag="--from")
    until: str = option("", "Stop after this stage.", STAGE_NAMES)
