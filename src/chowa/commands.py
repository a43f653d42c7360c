"""Every chowa command, listed once: its words on the command line, its config schema and the function that runs it;
and the pipeline's stages, which are some of those commands joined by the paths between them.

The CLI (`chowa.cli`) builds its parser from `COMMANDS` and the pipeline (`chowa.pipeline`) runs `PIPELINE`; nothing
else wires a command. The schemas (`chowa.config.*`) import neither torch nor transformers, so `chowa --help` and
`chowa STAGE --help` start at once; each `run` function imports its stage's module only when it is called.

Run as (from Python):
    command = COMMAND["sft"]; command.run(load_config(command.schema, "configs/tiny/sft.yaml"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chowa.config.data import DataInspectConfig, TemplateRenderConfig
from chowa.config.eval import (
    CompareConfig,
    CompareTallyConfig,
    EvalLongConfig,
    EvalPromptsConfig,
    HeldoutEvalConfig,
    JGLUEConfig,
)
from chowa.config.generate import ChatConfig, GenerateConfig
from chowa.config.judge import EvalAnswersConfig, EvalBelleConfig, EvalJudgeConfig
from chowa.config.model import ModelInfoConfig, ModelListConfig
from chowa.config.pipeline import PipelineConfig
from chowa.config.ppo import PPOConfig
from chowa.config.pretrain import PretrainConfig
from chowa.config.reward import RewardConfig, RewardScoreConfig
from chowa.config.serve import ServeConfig
from chowa.config.sft import SFTConfig
from chowa.config.tokenizer import TokenizerBytesConfig, TokenizerStatsConfig, TokenizerTrainConfig
from chowa.errors import ChowaError
from chowa.pipeline import Stage
from chowa.pipeline import main as run_pipeline


@dataclass(frozen=True)
class Command:
    name: str
    """The words after `chowa`: "sft", "eval heldout"."""
    schema: type
    run: Callable[[Any], Any]
    """`run(cfg)` does the work; a Path it returns is printed as "wrote PATH"."""
    summary: str
    description: str = ""
    default_config: str | None = None
    """The YAML read when `--config` is not given."""


# --- what each command runs (imported on call, so building the parser loads no torch) ---------------------------

def _tokenizer_train(cfg: TokenizerTrainConfig) -> Path:
    from chowa.tokenizer.train import main
    return main(cfg)


def _tokenizer_bytes(cfg: TokenizerBytesConfig) -> Path:
    from chowa.tokenizer.byte_group import main
    return main(cfg)


def _tokenizer_stats(cfg: TokenizerStatsConfig) -> None:
    from chowa.tokenizer.stats import main
    return main(cfg)


def _model_list(cfg: ModelListConfig) -> None:
    from chowa.models.build import list_main
    return list_main(cfg)


def _model_info(cfg: ModelInfoConfig) -> None:
    from chowa.models.build import info_main
    return info_main(cfg)


def _pretrain(cfg: PretrainConfig) -> Path:
    from chowa.pretrain import main
    return main(cfg)


def _sft(cfg: SFTConfig) -> Path:
    from chowa.sft import main
    return main(cfg)


def _reward(cfg: RewardConfig) -> Path:
    from chowa.reward.train import main
    return main(cfg)


def _reward_score(cfg: RewardScoreConfig) -> Path | None:
    from chowa.reward.score import main
    return main(cfg)


def _ppo(cfg: PPOConfig) -> Path:
    from chowa.ppo.train import main
    return main(cfg)


def _pipeline(cfg: PipelineConfig) -> Path:
    return run_pipeline(cfg, PIPELINE)


def _generate(cfg: GenerateConfig) -> None:
    from chowa.generate import main
    return main(cfg)


def _chat(cfg: ChatConfig) -> None:
    from chowa.chat import main
    return main(cfg)


def _eval_answers(cfg: EvalAnswersConfig) -> None:
    from chowa.eval.judge.mtbench import answers_main
    return answers_main(cfg)


def _eval_judge(cfg: EvalJudgeConfig) -> list[dict]:
    from chowa.eval.judge.mtbench import judge_main
    return judge_main(cfg)


def _eval_belle(cfg: EvalBelleConfig) -> dict:
    from chowa.eval.judge.belle import main
    return main(cfg)


def _serve(cfg: ServeConfig) -> None:
    from chowa.serve import main
    return main(cfg)


def _eval_jglue(cfg: JGLUEConfig) -> dict:
    from chowa.eval.jglue.runner import main
    return main(cfg)


def _eval_prompts(cfg: EvalPromptsConfig) -> None:
    from chowa.eval.jglue.runner import prompts_main
    return prompts_main(cfg)


def _eval_heldout(cfg: HeldoutEvalConfig) -> dict:
    from chowa.eval.heldout import main
    return main(cfg)


def _eval_long(cfg: EvalLongConfig) -> dict:
    from chowa.eval.long import main
    return main(cfg)


def _compare(cfg: CompareConfig) -> dict:
    from chowa.eval.compare import main
    return main(cfg)


def _compare_tally(cfg: CompareTallyConfig) -> dict:
    from chowa.eval.compare import tally_main
    return tally_main(cfg)


def _template_render(cfg: TemplateRenderConfig) -> None:
    from chowa.inspection import render_main
    return render_main(cfg)


def _data_inspect(cfg: DataInspectConfig) -> dict:
    from chowa.inspection import main
    return main(cfg)


# --- the table ---------------------------------------------------------------------------------------------------

# Words that only group commands (`chowa eval jglue`), with what `chowa WORD --help` says of them.
GROUPS = {
    "tokenizer": "Train a SentencePiece tokenizer, write a byte-group one, or measure one.",
    "model": "List the architecture presets or describe one (built on the meta device: no memory, no weights).",
    "eval": "Evaluate models: the JGLUE suites as the model cards ran them, held-out checked answers, LLM judges, "
            "long-context loss and passkey retrieval.",
    "template": "Show how a chat format renders a conversation.",
    "data": "Check how chowa reads your data before you train on it.",
}

COMMANDS: tuple[Command, ...] = (
    Command("tokenizer train", TokenizerTrainConfig, _tokenizer_train,
            "Train a SentencePiece tokenizer and save a Hugging Face folder.",
            "Train a SentencePiece tokenizer (byte fallback, no dummy prefix, whitespace kept, digits split) and save "
            "it as a folder that plain transformers.AutoTokenizer loads with the same ids."),
    Command("tokenizer bytes", TokenizerBytesConfig, _tokenizer_bytes,
            "Write a byte-group tokenizer folder (byGPT-JP style; nothing to train).",
            "Write the tokenizer of the byte-group model: id = byte, text through a byte codec, 4 bytes per trunk "
            "position, special tokens as whole groups FE k FE FE. The folder carries its code, so plain "
            "transformers loads it with trust_remote_code=True."),
    Command("tokenizer stats", TokenizerStatsConfig, _tokenizer_stats,
            "Compression, byte-fallback and round-trip figures as JSON.",
            "Print JSON: characters per token for Japanese and ASCII-dominant lines, byte-fallback rate, unknown "
            "rate, whether every line round-trips, and (for SentencePiece folders) whether the Hugging Face ids "
            "equal SentencePiece's on every line. For a byte-group tokenizer: bytes and groups per character "
            "instead of characters per token."),
    Command("model list", ModelListConfig, _model_list, "Every preset with a one-line summary."),
    Command("model info", ModelInfoConfig, _model_info, "Parameter count and shape of a preset or config folder.",
            "Parameter count (total, embedding, non-embedding), layers, hidden size, heads, FFN size, vocabulary and "
            "positions of a preset or config folder."),
    Command("pretrain", PretrainConfig, _pretrain,
            "Pretrain a causal LM on packed text (checkpoints, exact resume, DDP/FSDP/DeepSpeed)."),
    Command("sft", SFTConfig, _sft,
            "Supervised fine-tuning on conversations in a chat format (loss on replies only; optional LoRA)."),
    Command("reward", RewardConfig, _reward,
            "Train a reward model on preference pairs (Bradley-Terry, scalar head on the SFT model). Score records "
            "with: chowa reward score --model DIR --input FILE.jsonl"),
    Command("reward score", RewardScoreConfig, _reward_score,
            "Add reward-model scores to the records of a JSONL file.",
            "Add a `score` to each record of a JSONL file: a conversation ending with a reply (`messages`), a prompt "
            "with `chosen`/`rejected` (both scored), or an hh-rlhf transcript."),
    Command("ppo", PPOConfig, _ppo,
            "PPO from a reward model or a rule, with the trlx math and separate/shared/hydra/reference-branch value "
            "and reference layouts."),
    Command("pipeline", PipelineConfig, _pipeline,
            "tokenizer → pretrain → sft → reward → ppo → eval → compare as one resumable job + report.",
            "Run every stage as one resumable job and write OUT/report.md and report.html. A finished stage is not "
            "redone, an interrupted one resumes, a changed config for a stage reruns it and what follows. Each YAML "
            "section takes the keys of that stage's own config.", default_config="configs/tiny/pipeline.yaml"),
    Command("generate", GenerateConfig, _generate,
            "Reply to a prompt, or to every prompt of a JSONL file (batched).",
            "Reply to --prompt, or to every record of --input (JSONL with `messages`, Alpaca `instruction`/`input`, "
            "or `prompt`), rendering prompts in the model's chat format. With --input, each record is written back "
            "with a `reply` field."),
    Command("chat", ChatConfig, _chat, "Interactive multi-turn chat, streaming replies (/reset, /quit).",
            "Interactive multi-turn chat in the terminal, streaming each reply. Type /reset for a new conversation, "
            "/quit (or Ctrl-D) to leave."),
    Command("serve", ServeConfig, _serve,
            "Serve models over an OpenAI-compatible API with continuous batching and a chat page.",
            "Serve chat models (POST /v1/chat/completions, /v1/completions) and reward models (POST /v1/rewards) "
            "over an OpenAI-compatible HTTP API, with continuous batching, GET /metrics (Prometheus), GET /health "
            "and a chat page at GET /. Binds 127.0.0.1 unless --host says otherwise; SIGTERM or Ctrl-C finishes the "
            "requests in flight, then exits."),
    Command("eval jglue", JGLUEConfig, _eval_jglue,
            "Run JGLUE tasks or a published suite; print the cards' table, write results JSON.",
            "Run JGLUE tasks (name-VERSION-PROMPT[:shots]) or a published suite on a model. A task whose files are "
            "absent is reported as missing and the averages say which tasks they cover. Per-document outputs are "
            "written next to --out."),
    Command("eval prompts", EvalPromptsConfig, _eval_prompts,
            "Write each evaluated document's full few-shot prompt as JSONL.",
            "Write JSONL, one line per evaluated document in evaluation order: doc_id, prompt (the full few-shot "
            "context), choices or until + max_new_tokens, gold. Without --model, prompts are not trimmed to a "
            "context length and token budgets are null."),
    Command("eval heldout", HeldoutEvalConfig, _eval_heldout,
            "Checked-answer accuracy, preferred style and reward of models on held-out prompts.",
            "Answer every prompt of a JSONL file with each model (greedy unless --sampled) and report, per model: "
            "checked-answer accuracy overall and per family (records with `family`/`answer`), the share of "
            "number/weekday/date answers in the preferred style (the asker's language, polite if Japanese), and "
            "with --reward-model the mean reward-model score. This is the pipeline's eval table, for any set of "
            "models (e.g. SFT and two PPO runs)."),
    Command("eval long", EvalLongConfig, _eval_long,
            "Held-out loss by position and passkey retrieval: how far a model reads its context.",
            "For each model: held-out loss at every position of consecutive windows of --length tokens (each "
            "--input file read whole), averaged per position bucket (0-512, 512-1K, ... up to the window); and "
            "passkey retrieval (a random 5-digit key hidden at each --passkey-depths share of repeated filler, asked "
            "for at the end) at each --passkey-lengths, scored by whether greedy decoding gives the key and by the "
            "key's mean log-probability. Prints tables; with --out writes long.json, loss_by_position.png and a "
            "passkey.png heat map. Read a model past its trained context (--length) to see what extension buys."),
    Command("eval answers", EvalAnswersConfig, _eval_answers,
            "Answer a ja-vicuna-qa / MT-bench folder's questions with chowa models, in its layout.",
            "Answer the first turn of every question of a benchmark folder in FastChat's layout (e.g. "
            "ja-vicuna-qa-benchmark/data/jp_bench) with each model, rendered in the model's chat format, at the "
            "reference's per-category temperatures unless --temperature is given; writes model_answer/<ID>/"
            "results.jsonl and config.json."),
    Command("eval judge", EvalJudgeConfig, _eval_judge,
            "Judge a ja-vicuna-qa / MT-bench folder's answers with an LLM, as the reference does.",
            "Ask an OpenAI-compatible judge exactly the reference's messages (FastChat's llm_judge as ja-vicuna-qa "
            "runs it: both orders for pairwise, reference answers for math/reasoning/coding, temperature 0), parse "
            "its verdicts as the reference does, write model_judgment/ in the reference's format and print its "
            "table (win, lose and adjusted win rate x100; mean score for single). Answers from any tool in that "
            "layout are judged the same way. Answers are cached, so a rerun asks nothing twice."),
    Command("eval belle", EvalBelleConfig, _eval_belle,
            "BELLE's per-category LLM-judged scores of a model, as the bloomz-rlhf card reports them.",
            "Answer every question of BELLE's eval set (from the user's clone) in the model's chat format, judge "
            "each answer --repeats times with its class's prompt assembled as BELLE's scoring page does, and print "
            "the card's table (others = math and code; macro averages), math and code apart, and the unparsed "
            "judgments per class."),
    Command("compare", CompareConfig, _compare,
            "Win/tie/loss of model A against model B on a prompt file (reward, rule or human judge).",
            "Generate both models' replies to every prompt of --prompts, judge each pair and print A's win/tie/loss "
            "table; writes OUT/compare.csv and OUT/summary.json. Judges: reward:DIR, rule:module:function (pointwise "
            "scores), pair:module:function and llm:URL#MODEL (asked in both orders; disagreement is a tie), human "
            "(writes OUT/sheet.csv; fill it, then `chowa compare tally`)."),
    Command("compare tally", CompareTallyConfig, _compare_tally, "The table of a filled human sheet.",
            "Read a filled sheet.csv (verdict: 1, 2 or tie) and its key; print the table and write compare.csv and "
            "summary.json beside the key."),
    Command("template render", TemplateRenderConfig, _template_render,
            "Print the prompt (conversation ends with a user turn) or training text of a JSON file.",
            "Print a conversation rendered in a chat format: the generation prompt when the last message is the "
            "user's, else the full training text with EOS after each reply."),
    Command("data inspect", DataInspectConfig, _data_inspect,
            "Detected format, record count, bad records and the first example rendered.",
            "Report the detected record format, the number of records, every bad record with file:line and reason, "
            "and the first example rendered in the chat format with its trained part in ⟦ ⟧."),
)

COMMAND: dict[str, Command] = {command.name: command for command in COMMANDS}


def _stage(name: str, command: str, wiring: Callable[[Path, PipelineConfig], dict]) -> Stage:
    return Stage(name, COMMAND[command].schema, COMMAND[command].run, wiring)


def _eval_wiring(out: Path, cfg: PipelineConfig) -> dict:
    """Held-out evaluation of the pretrained, SFT and PPO models, in SFT's chat format when it names one (the
    pretrained model has none of its own), scored by the pipeline's reward model."""
    return {"out": out / "eval", "reward_model": out / "reward",
            "model": [f"pretrained={out / 'pretrain'}", f"sft={out / 'sft'}", f"ppo={out / 'ppo'}"],
            **({"format": cfg.sft["format"]} if cfg.sft.get("format") else {})}


def _compare_judge(out: Path, cfg: PipelineConfig) -> str:
    """The pipeline's own reward model, or an LLM judge the config names (no other judge fits a pipeline)."""
    judge = str(cfg.compare.get("judge", ""))
    if judge and not judge.startswith("llm:"):
        raise ChowaError(f"pipeline: compare.judge {judge!r}: the pipeline judges with its reward model, or with an "
                         "LLM given as llm:URL#MODEL; run chowa compare yourself for other judges")
    return judge or f"reward:{out / 'reward'}"


# The pipeline's stages in order: which command runs in OUT/<name>/, and the keys the pipeline sets to join them.
PIPELINE: tuple[Stage, ...] = (
    _stage("tokenizer", "tokenizer train", lambda out, cfg: {"out": out / "tokenizer"}),
    _stage("pretrain", "pretrain", lambda out, cfg: {"out": out / "pretrain", "tokenizer": out / "tokenizer"}),
    _stage("sft", "sft", lambda out, cfg: {"out": out / "sft", "model": out / "pretrain"}),
    _stage("reward", "reward", lambda out, cfg: {"out": out / "reward", "model": out / "sft"}),
    _stage("ppo", "ppo", lambda out, cfg: {"out": out / "ppo", "model": out / "sft"}),
    _stage("eval", "eval heldout", _eval_wiring),
    _stage("compare", "compare", lambda out, cfg: {
        "out": out / "compare", "a": out / "ppo", "b": out / "sft", "judge": _compare_judge(out, cfg)}),
)
