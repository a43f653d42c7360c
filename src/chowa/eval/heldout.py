"""Held-out checked-answer accuracy and mean reward of several chat models on the same prompts.

Each model answers every prompt of a JSONL file (greedy by default, batched); replies to prompts that carry an
answer (`family`/`answer`, see `chowa.data.generate.answers`) are checked for the answer and, for value answers,
for the style the built-in preferences prefer; with a reward model every reply is scored. This is how the
pipeline compares the pretrained, SFT and PPO models, and what `chowa eval heldout` prints.

Run as (from Python):
    results = heldout_eval({"sft": "runs/demo/sft", "ppo": "runs/demo/ppo"}, "builtin:prompts/heldout.jsonl",
                           reward_model="runs/demo/reward", out_dir="runs/demo/eval")
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from chowa.config import REQUIRED, atomic_write_text, option
from chowa.data.generate.answers import check_answer, is_checkable, preferred_style
from chowa.generate import Sampling, generate_replies, load_chat_model, read_prompt_file, write_jsonl
from chowa.report import heldout_tables, markdown_table


def heldout_eval(models: dict[str, str | os.PathLike], prompts: str, reward_model: str | os.PathLike | None = None,
                 format_name: str | None = None, sampling: Sampling | None = None, batch_size: int = 16,
                 limit: int = 0, out_dir: str | os.PathLike | None = None) -> dict:
    """{"prompts", "checkable", "models": {name: {"accuracy", "preferred_style", "by_family", "mean_reward",
    "samples"}}}; `preferred_style` is the share of value answers in the asker's language, polite if Japanese."""
    sampling = sampling or Sampling(do_sample=False, max_new_tokens=48)
    items = read_prompt_file(prompts)
    items = items[:limit] if limit else items
    scorer = None
    if reward_model is not None:
        from chowa.reward.score import load_reward_model

        scorer = load_reward_model(reward_model)
    results = {"prompts": len(items), "checkable": sum(is_checkable(r) for r, _ in items), "models": {}}
    for name, folder in models.items():
        chat = load_chat_model(folder, format_name)
        replies = generate_replies(chat, [messages for _, messages in items], sampling, batch_size)
        del chat
        records = [record | {"reply": reply} for (record, _), reply in zip(items, replies, strict=True)]
        summary = _accuracy(records)
        if scorer is not None:
            conversations = [messages + [{"role": "assistant", "content": reply}]
                             for (_, messages), reply in zip(items, replies, strict=True)]
            scores = scorer.score_conversations(conversations, batch_size)
            for record, score in zip(records, scores, strict=True):
                record["reward"] = round(score, 5)
            summary["mean_reward"] = round(sum(scores) / max(len(scores), 1), 5)
        summary["samples"] = [{"prompt": items[i][1][-1]["content"], "reply": records[i]["reply"],
                               **{key: records[i][key] for key in ("answer", "correct", "reward") if key in records[i]}}
                              for i in _sample_indices(records)]
        results["models"][name] = summary
        if out_dir is not None:
            write_jsonl(Path(out_dir) / f"replies_{name}.jsonl", records)
    return results


def results_table(results: dict) -> str:
    """The Markdown tables of `heldout_eval` results, as the pipeline report shows them."""
    return "\n\n".join(markdown_table(*rest) for _, *rest in heldout_tables(results["models"]))


def _sample_indices(records: list[dict], count: int = 6) -> list[int]:
    """The first prompt of each family (then the next ones), so the report's samples show several tasks."""
    firsts: dict = {}
    for index, record in enumerate(records):
        firsts.setdefault(record.get("family", index), index)
    rest = [index for index in range(len(records)) if index not in firsts.values()]
    return (list(firsts.values()) + rest)[:count]


def _accuracy(records: list[dict]) -> dict:
    """Checked-answer accuracy (overall and per family), and the share of value answers in the preferred style."""
    hits: dict[str, list[bool]] = defaultdict(list)
    styles: list[bool] = []
    for record in records:
        if is_checkable(record):
            hits[record["family"]].append(check_answer(record, record["reply"]))
            record["correct"] = hits[record["family"]][-1]
            style = preferred_style(record, record["reply"])
            if style is not None:
                record["preferred_style"] = style
                styles.append(style)
    every = [hit for family in hits.values() for hit in family]
    return {"accuracy": _share(every), "preferred_style": _share(styles),
            "by_family": {family: _share(h) for family, h in sorted(hits.items())}}


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


@dataclass
class EvalStageConfig:
    """The pipeline's `eval` stage: held-out checked answers and reward, and JGLUE-format scores, per model."""

    out: str = option(REQUIRED, "Output folder: heldout.json, replies_<model>.jsonl, jglue_<model>.json/.md.")
    models: dict[str, str] = option({}, "Name -> model folder, in the order the report lists them.")
    reward_model: str = option("", "Reward-model folder scoring every reply (empty: no reward column).")
    format: str = option("", "Chat format for every model (the pretrained model has none of its own).")
    prompts: str = option("builtin:prompts/heldout.jsonl", "Held-out prompt records with checkable answers.")
    limit: int = option(0, "Use only the first N prompts (0 = all).")
    max_new_tokens: int = option(32, "Longest greedy reply.")
    batch_size: int = option(32, "Prompts generated together.")
    jglue_data_dir: str = option("builtin:jglue", "JGLUE data root (empty: skip JGLUE).")
    jglue_suite: str = option("rinna-bilingual", "JGLUE suite run on every model.")
    jglue_limit: int = option(0, "Documents per JGLUE task (0 = all).")


def main(cfg: EvalStageConfig) -> dict:
    out = Path(cfg.out)
    results = heldout_eval(cfg.models, cfg.prompts, reward_model=cfg.reward_model or None,
                           format_name=cfg.format or None,
                           sampling=Sampling(do_sample=False, max_new_tokens=cfg.max_new_tokens),
                           batch_size=cfg.batch_size, limit=cfg.limit, out_dir=out)
    if cfg.jglue_data_dir:
        from chowa.eval.jglue.runner import run_jglue

        results["jglue"] = {}
        for name, folder in cfg.models.items():
            jglue = run_jglue(str(folder), cfg.jglue_data_dir, suite=cfg.jglue_suite, limit=cfg.jglue_limit or None,
                              batch_size=cfg.batch_size, out=str(out / f"jglue_{name}.json"))
            results["jglue"][name] = {"averages": jglue.get("averages"), "tasks": {
                task: {k: v for k, v in scores.items() if isinstance(v, int | float | str | None)}
                for task, scores in jglue.get("tasks", {}).items()}}
    write_results(out, results)
    return results


def write_results(out_dir: str | os.PathLike, results: dict) -> Path:
    """`OUT/heldout.json`, written atomically."""
    path = Path(out_dir) / "heldout.json"
    atomic_write_text(path, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return path
