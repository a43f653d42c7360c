"""Configs of the evaluation commands: `eval jglue`, `eval prompts`, `eval heldout`, `eval long`, `compare`,
`compare tally`.

Run as:
    chowa eval heldout --model sft=runs/demo/sft --model ppo=runs/demo/ppo --reward-model runs/demo/reward
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chowa.config import REQUIRED, named_folders, option
from chowa.config.generate import Sampling
from chowa.config.reading import ReadConfig
from chowa.errors import ChowaError
from chowa.eval.jglue.tasks import SUITES
from chowa.formats import FORMATS

DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass
class JGLUEConfig:
    model: str = option(REQUIRED, "Causal-LM folder.", metavar="DIR")
    data_dir: str = option(REQUIRED, "Data root in the public sources' layout (JGLUE/datasets/, mgsm/, xwinograd/, "
                                     "jaqket_v2/, xlsum_ja/); builtin:jglue is chowa's own small invented set in "
                                     "that layout.", metavar="DIR")
    tasks: str = option("", "Comma-separated task names, e.g. jcommonsenseqa-1.1-0.3:3 (or give --suite).",
                        metavar="LIST")
    suite: str = option("", "A model card's task list and prompt versions (or give --tasks).", choices=tuple(SUITES))
    limit: int | None = option(None, "Evaluate only the first N documents of each task.", metavar="N", minimum=1)
    batch_size: int = option(8, "Rows per forward pass.", minimum=1)
    out: str = option("", "Results JSON (a Markdown table and per-document samples beside it).", metavar="FILE.json")
    sequential: bool = option(False, "Score one request at a time, as the reference harness does (same scores, "
                                     "slower).")
    rouge_tokenizer: str = option("model", "xlsum ROUGE-2 tokens: the model's tokenizer (published mode) or MeCab.",
                                  choices=("model", "mecab"))
    dtype: str = option("auto", "Weights dtype (auto: the checkpoint's).", choices=DTYPES)
    device: str = option("", "Device (default: CUDA when present).")

    def __post_init__(self):
        if bool(self.tasks) == bool(self.suite):
            raise ChowaError("eval jglue: give exactly one of --tasks LIST and --suite NAME")


@dataclass
class EvalPromptsConfig:
    task: str = option(REQUIRED, "Task name, e.g. jnli-1.1-0.3.")
    data_dir: str = option(REQUIRED, "Data root.", metavar="DIR")
    limit: int | None = option(None, "First N documents only.", metavar="N", minimum=1)
    model: str = option("", "Model whose tokenizer trims prompts to its context (default: no trimming).",
                        metavar="DIR")
    out: str = option("", "Output file (default: stdout).", metavar="FILE.jsonl")


@dataclass
class HeldoutEvalConfig(Sampling, ReadConfig):
    """Held-out checked answers, preferred style and reward (and JGLUE-format scores) of several models: `chowa eval
    heldout`, and the pipeline's `eval` stage."""

    RENAMED: ClassVar[dict[str, str]] = {"models": "model"}

    model: list[str] = option(REQUIRED, "A model to evaluate as NAME=DIR (repeatable), e.g. --model sft=runs/demo/sft; "
                                        "the report lists them in this order.", metavar="NAME=DIR", repeat=True)
    prompts: str = option("builtin:prompts/heldout.jsonl", "Prompt records; those with `family`/`answer` are checked.",
                          metavar="FILE.jsonl")
    reward_model: str = option("", "Reward-model folder scoring every reply (default: no reward column).",
                               metavar="DIR")
    format: str = option("", "Chat format for every model (default: each folder's own).", choices=tuple(FORMATS))
    limit: int = option(0, "Use only the first N prompts (0 = all).", minimum=0)
    batch_size: int = option(32, "Prompts generated together.", minimum=1)
    sampled: bool = option(False, "Sample replies (--temperature/--top-p/--top-k, else the format's defaults) instead "
                                  "of greedy decoding.")
    max_new_tokens: int | None = option(32, "Longest reply in tokens.", group="sampling (Hugging Face semantics; "
                                        "unset = the format's model-card default)", minimum=1)
    out: str = option("", "Write heldout.json and replies_<name>.jsonl here.", metavar="DIR")
    jglue_data_dir: str = option("", "Also run a JGLUE suite on every model from this data root (e.g. builtin:jglue; "
                                     "default: no JGLUE).", metavar="DIR")
    jglue_suite: str = option("rinna-bilingual", "JGLUE suite.", choices=tuple(SUITES))
    jglue_limit: int = option(0, "Documents per JGLUE task (0 = all).", minimum=0)

    def __post_init__(self):
        self.model_folders()  # NAME=DIR, each name once
        if self.sampled and self.greedy:
            raise ChowaError("eval heldout: --sampled and --greedy contradict each other (greedy is the default)")
        given = [f"--{name.replace('_', '-')}" for name in ("temperature", "top_p", "top_k")
                 if getattr(self, name) is not None]
        if given and not self.sampled:
            raise ChowaError(f"eval heldout: {', '.join(given)}: for sampled replies only; add --sampled")

    def model_folders(self) -> dict[str, str]:
        """Name -> folder, in the order given."""
        return named_folders(self.model, "eval heldout: --model", names_required=True)

    def replies(self) -> Sampling:
        """How replies are generated: greedy unless `sampled`."""
        sampling = self.sampling()
        sampling.greedy = not self.sampled
        return sampling


@dataclass
class CompareConfig(Sampling, ReadConfig):
    """Model A against model B on a prompt file: `chowa compare`, and the pipeline's `compare` stage."""

    a: str = option(REQUIRED, "Model A folder (the one whose wins are counted).", metavar="DIR")
    b: str = option(REQUIRED, "Model B folder.", metavar="DIR")
    judge: str = option(REQUIRED, "reward:DIR | rule:module:function | pair:module:function | llm:URL#MODEL | "
                                  "human.", metavar="SPEC")
    out: str = option(REQUIRED, "Output folder: compare.csv, summary.json, table.md (human: sheet.csv).",
                      metavar="DIR")
    judge_prompts: str = option("", "llm judge: a FastChat judge_prompts.jsonl whose 'pair' prompt to use (e.g. "
                                    "ja-vicuna-qa's; default: chowa's own).", metavar="FILE.jsonl")
    judge_key_env: str = option("OPENAI_API_KEY", "llm judge: environment variable holding its API key.",
                                metavar="VAR")
    prompts: str = option("builtin:prompts/heldout.jsonl", "Prompt records (messages, instruction or prompt).",
                          metavar="FILE.jsonl")
    batch_size: int = option(8, "Prompts generated together.", minimum=1)


@dataclass
class CompareTallyConfig:
    sheet: str = option(REQUIRED, "A filled sheet.csv (verdict: 1, 2 or tie).", metavar="SHEET.csv", positional=True)
    key: str = option("", "The sheet's key (default: .sheet_key.json beside the sheet).", metavar="FILE")


@dataclass
class EvalLongConfig:
    """Long-context behaviour of models: held-out loss by position and passkey retrieval: `chowa eval long`."""

    model: list[str] = option(REQUIRED, "A model as [NAME=]DIR (repeatable); the tables list them in this order.",
                              metavar="[NAME=]DIR", repeat=True)
    input: list[str] = option(REQUIRED, "Held-out text files or globs (.txt, .gz allowed), each read as one "
                                        "continuous text, for the loss by position.", metavar="FILE")
    length: int = option(0, "Tokens per loss window (0: each model's context).", minimum=0)
    windows: int = option(32, "Loss windows per model (at most; the input may hold fewer).", minimum=1)
    buckets: list[int] = option([], "Upper edges of the position buckets, e.g. [512,1024,2048] (default: doubling "
                                    "up to the window from an eighth of it, at most 512 wide: 0-512, 512-1K, ... for "
                                    "an 8K model).")
    passkey_lengths: list[int] = option([], "Prompt lengths in tokens for passkey retrieval (default: a quarter, a "
                                            "half and all of the loss window, those long enough to hold filler; "
                                            "0 = no passkey test).")
    passkey_depths: list[float] = option([0.0, 0.25, 0.5, 0.75, 1.0], "Where the key sits in the filler, as a "
                                                                      "share of its length (0 = start, 1 = end).")
    passkey_trials: int = option(5, "Keys tried at each length and depth (a new random 5-digit key each).", minimum=1)
    passkey_language: str = option("en", "Language of the passkey prompt and filler.", choices=("en", "ja"))
    batch_size: int = option(1, "Windows or passkey prompts per forward pass (a loss window's logits are length x "
                                "vocabulary floats: 2 GiB for 8,192 x 65,536).", minimum=1)
    seed: int = option(0, "Seed of the passkeys.")
    out: str = option("", "Write long.json, loss_by_position.png and passkey.png here.", metavar="DIR")
    dtype: str = option("float32", "Weights dtype (auto: the checkpoint's).", choices=DTYPES)
    device: str = option("", "Device (default: CUDA when present).")

    def __post_init__(self):
        self.model_folders()
        if any(not 0 <= d <= 1 for d in self.passkey_depths):
            raise ChowaError(f"eval long: --passkey-depths must lie in [0, 1], got {list(self.passkey_depths)}")
        if list(self.buckets) != sorted(set(self.buckets)) or any(b <= 0 for b in self.buckets):
            raise ChowaError(f"eval long: --buckets must be increasing positive edges, got {list(self.buckets)}")

    def model_folders(self) -> dict[str, str]:
        return named_folders(self.model, "eval long: --model")
