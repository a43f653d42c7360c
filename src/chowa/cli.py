"""The `chowa` command: one subcommand per stage, each a thin shell around that stage's `main(cfg)`.

Config-driven stages take `--config FILE.yaml`, a `--flag` for each top-level key, and `key.sub=value`
overrides (later wins: YAML < flags < overrides). `--help` lists every key with its type, default and meaning.
Errors a user can cause print one paragraph, no traceback, and exit with status 2.

Run as:
    chowa --help
    chowa tokenizer train --input corpus.txt --vocab-size 8000 --out runs/tok
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Callable

from chowa import __version__
from chowa.config import describe_fields, load_config
from chowa.errors import ChowaError, TrainingInterrupted

_DEST_PREFIX = "cfg__"
REWARD_SCORE = "reward-score"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chowa",
        description="chowa (調和): tokenizer → pretrain → sft → reward → ppo → eval for Japanese–English chat "
                    "models. Each stage writes a Hugging Face folder with its resolved config.yaml and "
                    "metrics.jsonl.",
    )
    parser.add_argument("--version", action="version", version=f"chowa {__version__}")
    stages = parser.add_subparsers(dest="command", metavar="STAGE", required=True)
    _add_tokenizer_commands(stages)
    _add_model_commands(stages)
    _add_stage(stages, "pretrain", "chowa.pretrain", "PretrainConfig",
               "Pretrain a causal LM on packed text (checkpoints, exact resume, DDP/FSDP/DeepSpeed).")
    _add_stage(stages, "sft", "chowa.sft", "SFTConfig",
               "Supervised fine-tuning on conversations in a chat format (loss on replies only; optional LoRA).")
    _add_stage(stages, "reward", "chowa.reward.train", "RewardConfig",
               "Train a reward model on preference pairs (Bradley-Terry, scalar head on the SFT model). "
               "Score records with: chowa reward score --model DIR --input FILE.jsonl")
    _add_reward_score_command(stages)
    _add_stage(stages, "ppo", "chowa.ppo.train", "PPOConfig",
               "PPO from a reward model or a rule, with the trlx math and separate/shared/hydra/reference-branch "
               "value and reference layouts.")
    _add_pipeline_command(stages)
    _add_generation_commands(stages)
    _add_eval_commands(stages)
    _add_compare_commands(stages)
    _add_template_commands(stages)
    _add_data_commands(stages)
    return parser


def _add_stage(stages: argparse._SubParsersAction, name: str, module_name: str, schema_name: str,
               summary: str) -> None:
    """A config-driven stage: `chowa NAME --config FILE.yaml [--flag V] [key.sub=value ...]` -> module.main(cfg)."""
    import importlib

    schema = getattr(importlib.import_module(module_name), schema_name)
    parser = stages.add_parser(name, help=summary, description=summary,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, schema)
    parser.set_defaults(handler=_run_stage(schema, module_name))


def _add_pipeline_command(stages: argparse._SubParsersAction) -> None:
    from chowa.pipeline import STAGES, PipelineConfig

    pipeline = stages.add_parser(
        "pipeline", help="tokenizer → pretrain → sft → reward → ppo → eval → compare as one resumable job + report.",
        description="Run every stage as one resumable job and write OUT/report.md and report.html. A finished "
                    "stage is not redone, an interrupted one resumes, a changed config for a stage reruns it and "
                    "what follows. Each YAML section takes the keys of that stage's own config.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    pipeline.add_argument("--config", default="configs/tiny/pipeline.yaml", metavar="FILE.yaml",
                          help="Pipeline recipe (default: configs/tiny/pipeline.yaml, the laptop-CPU demo).")
    pipeline.add_argument("--out", default=None, metavar="DIR", help="Output folder (default: the recipe's `out`).")
    pipeline.add_argument("--from", dest="from_stage", default=None, choices=list(STAGES),
                          help="Rerun this stage and every later one even if finished.")
    pipeline.add_argument("--until", default=None, choices=list(STAGES), help="Stop after this stage.")
    pipeline.add_argument("overrides", nargs="*", metavar="key.sub=value",
                          help="Set any key, e.g. ppo.train.steps=10 or sft.format=rinna-nl.")
    rows = describe_fields(PipelineConfig)
    pipeline.epilog = "config keys:\n" + "\n".join(f"  {key}\n      {text}" for key, _, _, text in rows)
    pipeline.set_defaults(handler=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from chowa.pipeline import PipelineConfig
    from chowa.pipeline import main as run_pipeline

    flags = {k: v for k, v in {"out": args.out, "from_stage": args.from_stage, "until": args.until}.items() if v}
    run_pipeline(load_config(PipelineConfig, args.config, args.overrides, flags=flags))
    return 0


def _add_reward_score_command(stages: argparse._SubParsersAction) -> None:
    # `chowa reward score` shares its first word with the `reward` stage, whose positional overrides would swallow
    # "score"; `main` routes it here.
    score = stages.add_parser(
        REWARD_SCORE, prog="chowa reward score",
        description="Add a `score` to each record of a JSONL file: a conversation ending with a reply "
                    "(`messages`), a prompt with `chosen`/`rejected` (both scored), or an hh-rlhf transcript.")
    score.add_argument("--model", required=True, metavar="DIR", help="Reward model folder (chowa reward output).")
    score.add_argument("--input", required=True, metavar="FILE.jsonl", help="Records to score.")
    score.add_argument("--out", metavar="FILE.jsonl", help="Write here instead of stdout.")
    score.add_argument("--batch-size", type=int, default=8, help="Conversations scored together (default: 8).")
    score.set_defaults(handler=_reward_score)


def _reward_score(args: argparse.Namespace) -> int:
    from chowa.reward.score import score_file

    text = score_file(args.model, args.input, args.out, args.batch_size)
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    from chowa.formats import FORMATS

    parser.add_argument("--model", required=True, metavar="DIR", help="Chat model folder (chowa's or rinna layout).")
    parser.add_argument("--format", default=None, choices=list(FORMATS),
                        help="Chat format (default: the folder's chat_format.json, chat_template or rinna layout).")
    _add_sampling_group(parser)


def _add_sampling_group(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (Hugging Face semantics; unset = the format's model-card default)")
    group.add_argument("--temperature", type=float, default=None, help="Softmax temperature.")
    group.add_argument("--top-p", type=float, default=None, help="Nucleus sampling mass.")
    group.add_argument("--top-k", type=int, default=None, help="Sample among the k most likely tokens.")
    group.add_argument("--repetition-penalty", type=float, default=None,
                       help="Divide logits of tokens already present (>1 discourages repeats).")
    group.add_argument("--max-new-tokens", type=int, default=None, help="Longest reply in tokens.")
    group.add_argument("--greedy", action="store_true", help="Greedy decoding instead of sampling.")
    group.add_argument("--stop", action="append", default=[], metavar="TEXT",
                       help="Extra stop string (repeatable); the format's speaker tags always stop.")
    group.add_argument("--seed", type=int, default=0, help="Sampling seed.")


def _sampling(args: argparse.Namespace):
    from chowa.generate import Sampling

    return Sampling(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                    repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_new_tokens,
                    do_sample=False if args.greedy else None, stop=args.stop, seed=args.seed)


def _add_generation_commands(stages: argparse._SubParsersAction) -> None:
    generate = stages.add_parser(
        "generate", help="Reply to a prompt, or to every prompt of a JSONL file (batched).",
        description="Reply to --prompt, or to every record of --input (JSONL with `messages`, Alpaca "
                    "`instruction`/`input`, or `prompt`), rendering prompts in the model's chat format. With "
                    "--input, each record is written back with a `reply` field.")
    _add_sampling_arguments(generate)
    source = generate.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", metavar="TEXT", help="One user message.")
    source.add_argument("--input", metavar="FILE.jsonl", help="Prompt records.")
    generate.add_argument("--out", metavar="FILE.jsonl", help="Where to write records with replies (default: stdout).")
    generate.add_argument("--batch-size", type=int, default=8, help="Prompts generated together (default: 8).")
    generate.set_defaults(handler=_generate)
    chat = stages.add_parser("chat", help="Interactive multi-turn chat, streaming replies (/reset, /quit).",
                             description="Interactive multi-turn chat in the terminal, streaming each reply. Type "
                                         "/reset for a new conversation, /quit (or Ctrl-D) to leave.")
    _add_sampling_arguments(chat)
    chat.set_defaults(handler=_chat)


def _generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from chowa.generate import generate_replies, load_chat_model, read_prompt_file, write_jsonl

    chat = load_chat_model(args.model, args.format)
    if args.prompt is not None:
        print(generate_replies(chat, [[{"role": "user", "content": args.prompt}]], _sampling(args))[0])
        return 0
    items = read_prompt_file(args.input)
    with tqdm(total=len(items), desc="generate", unit="prompt", file=sys.stderr) as bar:
        replies = generate_replies(chat, [messages for _, messages in items], _sampling(args), args.batch_size,
                                   progress=bar.update)
    records = [record | {"reply": reply} for (record, _), reply in zip(items, replies, strict=True)]
    if args.out:
        print(f"wrote {write_jsonl(args.out, records)}", file=sys.stderr)
    else:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from chowa import chat
    from chowa.generate import load_chat_model

    return chat.main(load_chat_model(args.model, args.format), _sampling(args))


def _add_compare_commands(stages: argparse._SubParsersAction) -> None:
    compare = stages.add_parser(
        "compare", help="Win/tie/loss of model A against model B on a prompt file (reward, rule or human judge).",
        description="Generate both models' replies to every prompt of --prompts, judge each pair and print A's "
                    "win/tie/loss table; writes OUT/compare.csv and OUT/summary.json. Judges: reward:DIR, "
                    "rule:module:function (pointwise scores), pair:module:function (asked in both orders; "
                    "disagreement is a tie), human (writes OUT/sheet.csv; fill it, then `chowa compare tally`).")
    compare.add_argument("--a", metavar="DIR", help="Model A folder (the one whose wins are counted).")
    compare.add_argument("--b", metavar="DIR", help="Model B folder.")
    compare.add_argument("--prompts", metavar="FILE.jsonl", help="Prompt records (messages, instruction or prompt).")
    compare.add_argument("--judge", metavar="SPEC",
                         help="reward:DIR | rule:module:function | pair:module:function | human")
    compare.add_argument("--out", metavar="DIR", help="Output folder.")
    compare.add_argument("--batch-size", type=int, default=8, help="Prompts generated together (default: 8).")
    _add_sampling_group(compare)  # --temperature ... --seed (seed also shuffles the human sheet)
    compare.set_defaults(handler=_compare)
    actions = compare.add_subparsers(dest="action", metavar="ACTION")
    tally = actions.add_parser("tally", help="The table of a filled human sheet.",
                               description="Read a filled sheet.csv (verdict: 1, 2 or tie) and its key; print the "
                                           "table and write compare.csv and summary.json beside the key.")
    tally.add_argument("sheet", metavar="SHEET.csv")
    tally.add_argument("--key", metavar="FILE", help="The sheet's key (default: .sheet_key.json beside the sheet).")
    tally.set_defaults(handler=_compare_tally)


def _compare(args: argparse.Namespace) -> int:
    from chowa.eval.compare import compare, format_table

    missing = [f"--{name}" for name in ("a", "b", "prompts", "judge", "out") if getattr(args, name) is None]
    if missing:
        raise ChowaError(f"compare: {', '.join(missing)} required (or: chowa compare tally SHEET)")
    result = compare(args.a, args.b, args.prompts, args.judge, args.out, _sampling(args), args.batch_size, args.seed)
    if args.judge == "human":
        print(f"wrote {result['sheet']}: fill its verdict column with 1, 2 or tie, then run: chowa compare tally "
              f"{result['sheet']}")
    else:
        print(format_table(result))
        print(f"wrote {args.out}/compare.csv and summary.json", file=sys.stderr)
    return 0


def _compare_tally(args: argparse.Namespace) -> int:
    from chowa.eval.compare import format_table, tally

    print(format_table(tally(args.sheet, args.key)))
    return 0


def _add_eval_commands(stages: argparse._SubParsersAction) -> None:
    from chowa.eval.jglue.tasks import SUITES
    from chowa.formats import FORMATS

    evaluate = stages.add_parser("eval", help="Evaluate a model: the JGLUE suites as the model cards ran them.",
                                 description="Evaluate a model: the JGLUE suites exactly as the rinna and weblab "
                                             "model cards ran them.")
    actions = evaluate.add_subparsers(dest="action", metavar="ACTION", required=True)
    jglue = actions.add_parser(
        "jglue", help="Run JGLUE tasks or a published suite; print the cards' table, write results JSON.",
        description="Run JGLUE tasks (name-VERSION-PROMPT[:shots]) or a published suite on a model. --data-dir is one "
                    "root in the public sources' layout (JGLUE/datasets/, mgsm/, xwinograd/, jaqket_v2/, xlsum_ja/); "
                    "a task whose files are absent is reported as missing and the averages say which tasks they "
                    "cover. Per-document outputs are written next to --out.")
    jglue.add_argument("--model", required=True, metavar="DIR", help="Causal-LM folder.")
    jglue.add_argument("--data-dir", required=True, metavar="DIR",
                       help="Data root (see above); builtin:jglue is chowa's own small invented set in that layout.")
    which = jglue.add_mutually_exclusive_group(required=True)
    which.add_argument("--tasks", metavar="LIST", help="Comma-separated task names, e.g. jcommonsenseqa-1.1-0.3:3.")
    which.add_argument("--suite", choices=list(SUITES), help="A model card's task list and prompt versions.")
    jglue.add_argument("--limit", type=int, default=None, help="Evaluate only the first N documents of each task.")
    jglue.add_argument("--batch-size", type=int, default=8, help="Rows per forward pass (default: 8).")
    jglue.add_argument("--out", metavar="FILE.json", help="Results JSON (a Markdown table and samples beside it).")
    jglue.add_argument("--sequential", action="store_true",
                       help="Score one request at a time, as the reference harness does (same scores, slower).")
    jglue.add_argument("--rouge-tokenizer", default="model", choices=("model", "mecab"),
                       help="xlsum ROUGE-2 tokens: the model's tokenizer (published mode) or MeCab.")
    jglue.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                       help="Weights dtype (default: the checkpoint's).")
    jglue.add_argument("--device", default=None, help="Device (default: CUDA when present).")
    jglue.set_defaults(handler=_eval_jglue)
    prompts = actions.add_parser(
        "prompts", help="Write each evaluated document's full few-shot prompt as JSONL.",
        description="Write JSONL, one line per evaluated document in evaluation order: doc_id, prompt (the full "
                    "few-shot context), choices or until + max_new_tokens, gold. Without --model, prompts are not "
                    "trimmed to a context length and token budgets are null.")
    prompts.add_argument("--task", required=True, help="Task name, e.g. jnli-1.1-0.3.")
    prompts.add_argument("--data-dir", required=True, metavar="DIR", help="Data root.")
    prompts.add_argument("--limit", type=int, default=None, help="First N documents only.")
    prompts.add_argument("--model", default=None, metavar="DIR", help="Model whose tokenizer trims prompts.")
    prompts.add_argument("--out", default=None, metavar="FILE.jsonl", help="Output file (default: stdout).")
    prompts.set_defaults(handler=_eval_prompts)
    heldout = actions.add_parser(
        "heldout", help="Checked-answer accuracy, preferred style and reward of models on held-out prompts.",
        description="Answer every prompt of a JSONL file with each model (greedy unless --sampled) and report, per "
                    "model: checked-answer accuracy overall and per family (records with `family`/`answer`), the "
                    "share of number/weekday/date answers in the preferred style (the asker's language, polite if "
                    "Japanese), and with --reward-model the mean reward-model score. This is the pipeline's eval "
                    "table, for any set of models (e.g. SFT and two PPO runs). Replies are at most 32 tokens unless "
                    "--max-new-tokens says otherwise.")
    heldout.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                         help="A model to evaluate (repeatable), e.g. --model sft=runs/demo/sft.")
    heldout.add_argument("--prompts", default="builtin:prompts/heldout.jsonl", metavar="FILE.jsonl",
                         help="Prompt records (default: builtin:prompts/heldout.jsonl).")
    heldout.add_argument("--reward-model", metavar="DIR", help="Reward-model folder scoring every reply.")
    heldout.add_argument("--format", choices=list(FORMATS),
                         help="Chat format for every model (default: each folder's own).")
    heldout.add_argument("--limit", type=int, default=0, help="Use only the first N prompts (default: all).")
    heldout.add_argument("--batch-size", type=int, default=32, help="Prompts generated together (default: 32).")
    heldout.add_argument("--sampled", action="store_true",
                         help="Sample replies (--temperature/--top-p/--top-k below, else the format's defaults) "
                              "instead of greedy decoding.")
    heldout.add_argument("--out", metavar="DIR", help="Write heldout.json and replies_<name>.jsonl here.")
    _add_sampling_group(heldout)
    heldout.set_defaults(handler=_eval_heldout)


def _eval_heldout(args: argparse.Namespace) -> int:
    from chowa.eval.heldout import heldout_eval, results_table, write_results

    models = {}
    for spec in args.model:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise ChowaError(f"--model {spec!r}: expected NAME=DIR, e.g. sft=runs/demo/sft")
        if name in models:
            raise ChowaError(f"--model {spec!r}: the name {name!r} is given twice")
        models[name] = folder
    if args.sampled and args.greedy:
        raise ChowaError("--sampled and --greedy contradict each other (greedy is the default)")
    given = [flag for flag, value in (("--temperature", args.temperature), ("--top-p", args.top_p),
                                      ("--top-k", args.top_k)) if value is not None]
    if given and not args.sampled:
        raise ChowaError(f"{', '.join(given)}: for sampled replies only; add --sampled")
    sampling = _sampling(args)
    sampling.do_sample = args.sampled
    if sampling.max_new_tokens is None:
        sampling.max_new_tokens = 32
    results = heldout_eval(models, args.prompts, reward_model=args.reward_model, format_name=args.format,
                           sampling=sampling, batch_size=args.batch_size, limit=args.limit, out_dir=args.out)
    if args.out:
        write_results(args.out, results)
    print(results_table(results))
    return 0


def _eval_jglue(args: argparse.Namespace) -> int:
    from chowa.eval.jglue.runner import results_markdown, run_jglue

    results = run_jglue(args.model, args.data_dir, tasks=args.tasks, suite=args.suite, limit=args.limit,
                        batch_size=args.batch_size, out=args.out, sequential=args.sequential,
                        rouge_tokenizer=args.rouge_tokenizer, dtype=args.dtype, device=args.device)
    print(results_markdown(results))
    return 0


def _eval_prompts(args: argparse.Namespace) -> int:
    from chowa.eval.jglue.runner import write_prompts

    count = write_prompts(args.task, args.data_dir, out=args.out, limit=args.limit, model=args.model)
    if args.out:
        print(f"wrote {count} prompts to {args.out}", file=sys.stderr)
    return 0


def _add_template_commands(stages: argparse._SubParsersAction) -> None:
    from chowa.formats import FORMATS

    template = stages.add_parser("template", help="Show how a chat format renders a conversation.",
                                 description="Show how a chat format renders a conversation.")
    actions = template.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = actions.add_parser(
        "render", help="Print the prompt (conversation ends with a user turn) or training text of a JSON file.",
        description="Print a conversation rendered in a chat format: the generation prompt when the last message "
                    "is the user's, else the full training text with EOS after each reply. The JSON file holds a "
                    'list of {"role", "content"} messages or {"messages": [...]}.')
    render.add_argument("--format", required=True, choices=list(FORMATS), help="Chat format.")
    render.add_argument("--input", required=True, metavar="FILE.json", help="Conversation file.")
    render.add_argument("--eos-token", default="</s>", help="How EOS is written (default: </s>).")
    render.set_defaults(handler=_template_render)


def _add_data_commands(stages: argparse._SubParsersAction) -> None:
    from chowa.data.conversations import DATA_FORMATS, INSPECTORS
    from chowa.data.preferences import inspect_preferences
    from chowa.formats import FORMATS

    INSPECTORS.setdefault("preference", inspect_preferences)  # preferences.py builds on conversations.py

    data = stages.add_parser("data", help="Check how chowa reads your data before you train on it.",
                             description="Check how chowa reads your data before you train on it.")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect", help="Detected format, record count, bad records and the first example rendered.",
        description="Report the detected record format, the number of records, every bad record with file:line "
                    "and reason, and the first example rendered in the chat format with its trained part in ⟦ ⟧.")
    inspect.add_argument("files", nargs="+", metavar="FILE", help="Data files or globs.")
    inspect.add_argument("--kind", default="sft", choices=list(INSPECTORS), help="What the data is for.")
    inspect.add_argument("--format", default=None, choices=list(FORMATS), help="Chat format to render with.")
    inspect.add_argument("--data-format", default="auto", choices=("auto", *DATA_FORMATS),
                         help="Record format (default: detect per file).")
    inspect.add_argument("--tokenizer", default=None, metavar="DIR", help="Also count tokens with this tokenizer.")
    inspect.add_argument("--json", action="store_true", help="Print JSON (keys: format, records, bad_records, ...).")
    inspect.set_defaults(handler=_data_inspect)


def _add_model_commands(stages: argparse._SubParsersAction) -> None:
    model = stages.add_parser("model", help="List the architecture presets or describe one.",
                              description="List the architecture presets or describe one (built on the meta "
                                          "device: no memory, no weights).")
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="Every preset with a one-line summary.").set_defaults(handler=_model_list)
    info = actions.add_parser("info", help="Parameter count and shape of a preset or config folder.",
                              description="Parameter count (total, embedding, non-embedding), layers, hidden size, "
                                          "heads, FFN size, vocabulary and positions of a preset or config folder.")
    info.add_argument("--preset", required=True, metavar="NAME|DIR", help="Preset name or a folder with config.json.")
    info.add_argument("--vocab-size", type=int, default=None, help="Vocabulary size (default: the preset's).")
    info.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    info.set_defaults(handler=_model_info)


def _add_tokenizer_commands(stages: argparse._SubParsersAction) -> None:
    from chowa.tokenizer.train import TokenizerTrainConfig

    tokenizer = stages.add_parser("tokenizer", help="Train a SentencePiece tokenizer or measure one.",
                                  description="Train a SentencePiece tokenizer or measure one.")
    actions = tokenizer.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train", help="Train a SentencePiece tokenizer and save a Hugging Face folder.",
        description="Train a SentencePiece tokenizer (byte fallback, no dummy prefix, whitespace kept, digits "
                    "split) and save it as a folder that plain transformers.AutoTokenizer loads with the same ids.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(train, TokenizerTrainConfig)
    train.set_defaults(handler=_run_stage(TokenizerTrainConfig, "chowa.tokenizer.train"))

    stats = actions.add_parser("stats", help="Compression, byte-fallback and round-trip figures as JSON.",
                               description="Print JSON: characters per token for Japanese and ASCII-dominant "
                                           "lines, byte-fallback rate, unknown rate, whether every line "
                                           "round-trips, and (for SentencePiece folders) whether the Hugging "
                                           "Face ids equal SentencePiece's on every line.")
    stats.add_argument("--tokenizer", required=True, metavar="DIR", help="Tokenizer folder (chowa, rinna or HF).")
    stats.add_argument("--input", required=True, nargs="+", metavar="FILE", help="Text or JSONL files or globs.")
    stats.add_argument("--encoding", default="utf-8", choices=("utf-8", "shift_jis", "auto"),
                       help="Input encoding (default: utf-8).")
    stats.add_argument("--keep-cr", action="store_true", help="Keep carriage returns of CRLF line ends.")
    stats.set_defaults(handler=_tokenizer_stats)


def add_config_arguments(parser: argparse.ArgumentParser, schema: type) -> None:
    """`--config`, one `--flag` per top-level key, positional `key=value` overrides, and a key table epilog."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML recipe with any of the keys below.")
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        field_type = hints[field.name]
        if dataclasses.is_dataclass(field_type) or typing.get_origin(field_type) is dict:
            continue  # nested sections and mappings are set with key.sub=value
        flag = "--" + field.name.replace("_", "-")
        kwargs: dict = {"dest": _DEST_PREFIX + field.name, "default": None, "help": _flag_help(field)}
        if field_type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(field_type) is list:
            kwargs.update(nargs="+", metavar="VALUE")
        else:
            choices = field.metadata.get("choices")
            kwargs.update(choices=choices) if choices else kwargs.update(metavar=field.name.upper())
        parser.add_argument(flag, **kwargs)
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="Set any config key, nested ones included (put these before list flags or after --).")
    rows = describe_fields(schema)
    width = max(len(key) for key, *_ in rows)
    lines = [f"  {key:<{width}}  {kind} = {default}\n  {'':<{width}}  {text}" for key, kind, default, text in rows]
    parser.epilog = "config keys (YAML, --flag or key=value):\n" + "\n".join(lines)


def parse_config(args: argparse.Namespace, schema: type):
    """The validated config from an argparse namespace built by `add_config_arguments`."""
    flags = {k[len(_DEST_PREFIX):]: v for k, v in vars(args).items() if k.startswith(_DEST_PREFIX) and v is not None}
    return load_config(schema, args.config, args.overrides, flags=flags)


def _flag_help(field: dataclasses.Field) -> str:
    default = field.default if field.default is not dataclasses.MISSING else None
    shown = "required" if default == "???" else f"default: {default!r}"
    if field.default_factory is not dataclasses.MISSING:
        shown = f"default: {field.default_factory()!r}"
    return f"{field.metadata.get('help', '')} ({shown})".replace("%", "%%")


def _run_stage(schema: type, module_name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        import importlib

        cfg = parse_config(args, schema)
        result = importlib.import_module(module_name).main(cfg)
        if result is not None:
            print(f"wrote {result}")
        return 0

    return handler


def _tokenizer_stats(args: argparse.Namespace) -> int:
    from chowa.tokenizer.stats import tokenizer_stats

    report = tokenizer_stats(args.tokenizer, args.input, encoding=args.encoding, keep_cr=args.keep_cr)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def _template_render(args: argparse.Namespace) -> int:
    from chowa.formats import render_conversation_file

    print(render_conversation_file(args.input, args.format, args.eos_token))
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from chowa.data.conversations import format_inspection, inspect_data

    tokenizer = None
    if args.tokenizer:
        from chowa.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    report = inspect_data(args.files, args.kind, args.format, tokenizer, args.data_format)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_inspection(report))
    return 0


def _model_list(args: argparse.Namespace) -> int:
    from chowa.models.build import format_preset_list

    print(format_preset_list())
    return 0


def _model_info(args: argparse.Namespace) -> int:
    from chowa.models.build import format_model_info, model_info

    info = model_info(args.preset, vocab_size=args.vocab_size)
    print(json.dumps(info, indent=2) if args.json else format_model_info(info))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["reward", "score"]:
        argv = [REWARD_SCORE, *argv[2:]]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except TrainingInterrupted as exc:
        print(f"chowa: {exc}", file=sys.stderr)
        return 130
    except ChowaError as exc:
        print(f"chowa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chowa: interrupted", file=sys.stderr)
        return 130
