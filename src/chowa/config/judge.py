"""Configs of the LLM-judged evaluations: `eval answers` and `eval judge` (ja-vicuna-qa / MT-bench in FastChat's
layout) and `eval belle` (BELLE's category scores).

Run as:
    chowa eval judge --bench jp_bench --mode single --models rinna-ppo --judge-model gpt-4 \\
        --judge-url https://api.openai.com
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chowa.config import REQUIRED, named_folders, option
from chowa.config.generate import Sampling

_JUDGE = "the judge (any OpenAI-compatible chat-completions endpoint)"
MODES = ("pairwise-baseline", "pairwise-all", "single")


@dataclass
class JudgeEndpoint:
    judge_url: str = option(REQUIRED, "Base URL of the judge's endpoint (https://api.openai.com, a vLLM or chowa serve "
                                      "address, or the full .../chat/completions).", metavar="URL", group=_JUDGE)
    judge_model: str = option(REQUIRED, "The judge's model name, as the endpoint knows it (e.g. gpt-4).",
                              metavar="NAME", group=_JUDGE)
    judge_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the judge's API key (never given "
                                                  "on the command line; unset: no key is sent).", metavar="VAR",
                                group=_JUDGE)
    judge_key_header: str = option("Authorization", "Header the key goes in: Authorization (as Bearer KEY) or, for "
                                                    "Azure OpenAI, api-key.", metavar="NAME", group=_JUDGE)
    judge_concurrency: int = option(4, "Judge calls in flight at once.", minimum=1, group=_JUDGE)
    judge_retries: int = option(6, "Retries of a call answered 429 / 5xx or timed out (exponential backoff).",
                                minimum=0, group=_JUDGE)
    judge_cache: str = option("", "Cache of the judge's answers (JSONL; default: judge_cache.jsonl in the output "
                                  "folder): a rerun or resumed run never asks twice.", metavar="FILE", group=_JUDGE)
    judge_max_tokens: int | None = option(None, "Longest judgment (default: the protocol's, 2,048 for MT-bench and "
                                                "3,000 for BELLE; a local judge with a short context may need "
                                                "less, which leaves the reference's protocol).", minimum=1,
                                          group=_JUDGE)

    def client(self, default_cache: Path):
        """The judge client these options describe (the cache at `default_cache` unless --judge-cache)."""
        from chowa.eval.judge.client import JudgeClient

        return JudgeClient(self.judge_url, self.judge_model, self.judge_key_env,
                           Path(self.judge_cache) if self.judge_cache else default_cache, self.judge_concurrency,
                           self.judge_retries, key_header=self.judge_key_header)


@dataclass
class EvalAnswersConfig(Sampling):
    bench: str = option(REQUIRED, "Benchmark folder in FastChat's layout (question.jsonl, ...), e.g. "
                                  "ja-vicuna-qa-benchmark/data/jp_bench.", metavar="DIR")
    model: list[str] = option(REQUIRED, "A model to answer with as [ID=]FOLDER (repeatable; ID defaults to the "
                                        "folder's name); answers go to model_answer/<ID>/.", metavar="[ID=]DIR",
                              repeat=True)
    batch_size: int = option(8, "Questions generated together.", minimum=1)

    def model_folders(self) -> dict[str, str]:
        return named_folders(self.model, "eval answers: --model")


@dataclass
class EvalJudgeConfig(JudgeEndpoint):
    bench: str = option(REQUIRED, "Benchmark folder in FastChat's layout.", metavar="DIR")
    mode: str = option("pairwise-baseline", "What is judged: every model against --baseline, every pair, or each "
                                            "answer alone (a 1-10 score).", choices=MODES)
    models: str = option("", "Comma-separated model ids (folders of model_answer/; default: all of them).",
                         metavar="ID,...")
    baseline: str = option("", "The baseline model id of pairwise-baseline.", metavar="ID")
    reference_answers: str = option("gpt-4", "Folder of reference_answer/ to take math/reasoning/coding reference "
                                             "answers from (the reference always reads gpt-4).", metavar="NAME")
    out: str = option("", "Root to write judgments under, in the benchmark's layout (default: the benchmark's "
                          "model_judgment/).", metavar="DIR")
    overwrite: bool = option(False, "Judge again the groups whose judgment file exists (the reference skips them).")


@dataclass
class EvalBelleConfig(Sampling, JudgeEndpoint):
    belle_dir: str = option(REQUIRED, "The user's clone of LianjiaTech/BELLE (reads eval/eval_set.json and "
                                      "eval/eval_prompt.json).", metavar="DIR")
    model: str = option(REQUIRED, "Chat model folder to answer with.", metavar="DIR")
    out: str = option(REQUIRED, "Output folder: answers.jsonl, judgments.jsonl, summary.json, table.md.",
                      metavar="DIR")
    repeats: int = option(3, "Judgments per answer, averaged (BELLE's scaling paper judged 3 times).", minimum=1)
    limit: int = option(0, "Use only the first N questions of each class (0 = all).", minimum=0)
    batch_size: int = option(8, "Questions generated together.", minimum=1)
