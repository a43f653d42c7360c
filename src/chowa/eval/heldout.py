"""Held-out checked-answer accuracy, preferred style and mean reward of several chat models on the same prompts:
`chowa eval heldout`, and the pipeline's `eval` stage.

Each model answers every prompt of a JSONL file (greedy unless sampled, batched); replies to prompts that carry an
answer (`family`/`answer`) are graded by `chowa.answers` (the right answer and, for value answers, the style the
built-in preferences prefer); with a reward model every reply is scored. With `jglue_data_dir` every model also
runs a JGLUE suite. This is how the pipeline compares the pretrained, SFT and PPO models.

Run as:
    chowa eval heldout --model sft=runs/demo/sft --model ppo=runs/demo/ppo --reward-model runs/demo/reward
    results = heldout_eval({"sft": "runs/demo/sft"}, "builtin:prompts/heldout.jsonl", Sampling(greedy=True,
                           max_new_tokens=32))   # from Python
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm.auto import tqdm

from chowa.answers import grade, is_checkable, summarize_grades
from chowa.config import save_config
from chowa.config.eval import HeldoutEvalConfig
from chowa.config.generate import Sampling
from chowa.data.prompts import read_prompts
from chowa.data.records import ReadOptions
from chowa.files import atomic_write_text, check_writable, write_jsonl
from chowa.generate import generate_replies, load_chat_model
from chowa.tables import heldout_markdown


def heldout_eval(models: dict[str, str | os.PathLike], prompts: str, sampling: Sampling,
                 reward_model: str | os.PathLike | None = None, format_name: str | None = None, batch_size: int = 16,
                 limit: int = 0, out_dir: str | os.PathLike | None = None,
                 options: ReadOptions | None = None) -> dict:
    """{"prompts", "checkable", "models": {name: {"accuracy", "preferred_style", "by_family", "mean_reward",
    "samples"}}}; `preferred_style` is the share of value answers in the asker's language, polite if Japanese."""
    items = read_prompts([str(prompts)], options)
    items = items[:limit] if limit else items
    scorer = None
    if reward_model is not None:
        from chowa.reward.score import load_reward_model

        scorer = load_reward_model(reward_model)
    results = {"prompts": len(items), "checkable": sum(is_checkable(item.record) for item in items), "models": {}}
    for name, folder in models.items():
        chat = load_chat_model(folder, format_name)
        with tqdm(total=len(items), desc=f"eval {name}", unit="prompt", leave=False) as bar:
            replies = generate_replies(chat, [item.messages for item in items], sampling, batch_size,
                                       progress=bar.update, names=[item.source for item in items])
        del chat
        records = [item.record | {"reply": reply} for item, reply in zip(items, replies, strict=True)]
        summary = _grade(records)
        if scorer is not None:
            conversations = [[*item.messages, {"role": "assistant", "content": reply}]
                             for item, reply in zip(items, replies, strict=True)]
            scores = scorer.score_conversations(conversations, batch_size)
            for record, score in zip(records, scores, strict=True):
                record["reward"] = round(score, 5)
            summary["mean_reward"] = round(sum(scores) / max(len(scores), 1), 5)
        summary["samples"] = [{"prompt": items[i].messages[-1]["content"], "reply": records[i]["reply"],
                               **{key: records[i][key] for key in ("answer", "correct", "reward") if key in records[i]}}
                              for i in _sample_indices(records)]
        results["models"][name] = summary
        if out_dir is not None:
            write_jsonl(Path(out_dir) / f"replies_{name}.jsonl", records)
    return results


def _sample_indices(records: list[dict], count: int = 6) -> list[int]:
    """The first prompt of each family (then the next ones), so the report's samples show several tasks."""
    firsts: dict = {}
    for index, record in enumerate(records):
        firsts.setdefault(record.get("family", index), index)
    rest = [index for index in range(len(records)) if index not in firsts.values()]
    return (list(firsts.values()) + rest)[:count]


def _grade(records: list[dict]) -> dict:
    """Accuracy (overall and per family) and preferred-style share; marks each record `correct` / `preferred_style`."""
    grades = []
    for record in records:
        grades.append(grade(record, record["reply"]))
        if grades[-1].correct is not None:
            record["correct"] = grades[-1].correct
        if grades[-1].preferred_style is not None:
            record["preferred_style"] = grades[-1].preferred_style
    return summarize_grades(grades)


def main(cfg: HeldoutEvalConfig) -> dict:
    """Run the evaluation, print the tables, and write heldout.json (and the replies) when `out` is set."""
    if cfg.out:
        check_writable(cfg.out, "--out", folder=True)
    if cfg.jglue_data_dir:  # before any model answers: a folder with no JGLUE data is a mistake, found at once
        from chowa.eval.jglue.runner import task_data_present
        from chowa.eval.jglue.tasks import resolve_tasks

        task_data_present(resolve_tasks(None, cfg.jglue_suite), cfg.jglue_data_dir)
    results = heldout_eval(cfg.model_folders(), cfg.prompts, cfg.replies(), reward_model=cfg.reward_model or None,
                           format_name=cfg.format or None, batch_size=cfg.batch_size, limit=cfg.limit,
                           out_dir=cfg.out or None, options=ReadOptions.of(cfg))
    if cfg.jglue_data_dir:
        results["jglue"] = _jglue(cfg)
    if cfg.out:
        write_results(cfg.out, results)
        save_config(cfg, cfg.out)
    print(heldout_markdown(results["models"]))
    return results


def _jglue(cfg: HeldoutEvalConfig) -> dict:
    from chowa.eval.jglue.runner import run_jglue

    scores = {}
    for name, folder in cfg.model_folders().items():
        out = str(Path(cfg.out) / f"jglue_{name}.json") if cfg.out else None
        jglue = run_jglue(str(folder), cfg.jglue_data_dir, suite=cfg.jglue_suite, limit=cfg.jglue_limit or None,
                          batch_size=cfg.batch_size, out=out)
        scores[name] = {"averages": jglue.get("averages"), "tasks": {
            task: {k: v for k, v in entry.items() if isinstance(v, int | float | str | None)}
            for task, entry in jglue.get("tasks", {}).items()}}
    return scores


def write_results(out_dir: str | os.PathLike, results: dict) -> Path:
    """`OUT/heldout.json`, written atomically."""
    path = Path(out_dir) / "heldout.json"
    atomic_write_text(path, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return path
