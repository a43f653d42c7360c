"""BELLE's category evaluation, as keyfan/bloomz-rlhf's card reports it (`../shared/specs/judge.md` §3).

Reads `eval/eval_set.json` and `eval/eval_prompt.json` (both JSON Lines despite the name) from the user's BELLE
clone, answers every question in the model's chat format, and asks the judge `repeats` times per answer with one
user message assembled exactly as BELLE's scoring page (`eval/template_html/ChatGPT_Score.html.temp`) builds it:
the class's instruction, the question, the standard answer (except for generation, brainstorming and rewrite) and
the model's answer, with the page's own separators; temperature 0, max_tokens 3000. BELLE has no score parser:
chowa reads the first number after `得分` and an ASCII or full-width colon, clamped to [0, 1]; a judgment without one
is counted per class and left out of the means, never scored 0.

Classes are matched case-insensitively with the no-break space (U+00A0) of `closed qa` read as a space: the set
spells `open qa` and `closed\\xa0qa` where the prompt file has `open QA` and `closed\\xa0QA`, and BELLE's page, which
compares them exactly, never sends those 337 questions at all. A class without a judge prompt is an error naming it.

Table: the mean score per class (each answer's mean over its judgments), "others" being math and code pooled, then
the unweighted mean of the nine columns (macro ave) and of the eight without others, ×1 as on the card; math and
code apart, and the unparsed judgments per class, after it.

Run as:
    chowa eval belle --belle-dir BELLE --model runs/demo/ppo --judge-model gpt-3.5-turbo \\
        --judge-url https://api.openai.com --out runs/belle
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from chowa.config.judge import EvalBelleConfig
from chowa.errors import ChowaError
from chowa.files import atomic_write_text, check_writable, read_jsonl
from chowa.generate import generate_replies, load_chat_model
from chowa.tables import markdown_table

WITHOUT_STANDARD_ANSWER = ("generation", "brainstorming", "rewrite")
COLUMNS = ("others", "rewrite", "classification", "generation", "summarization", "extract", "open qa",
           "brainstorming", "closed qa")
OTHERS = ("math", "code")
JUDGE_SETTINGS = {"temperature": 0.0, "max_tokens": 3000}
_SCORE = re.compile(r"得分\s*[:：]\s*([0-9]+(?:\.[0-9]+)?)")


def class_key(name: str) -> str:
    """A class name as chowa matches it: no-break space as space, lower case, outer spaces trimmed."""
    return name.replace("\u00a0", " ").strip().lower()


def judge_message(prompt: str, record: dict, answer: str) -> str:
    """The judge's one user message, to the character as BELLE's scoring page assembles it."""
    if record["class"] in WITHOUT_STANDARD_ANSWER:
        return f"{prompt} {record['question']}  模型回答： '{answer}'。请针对模型回答给出得分，顺便给出理由："
    return (f"{prompt} {record['question']} 标准回答:{record['std_answer']}  模型回答：' {answer}'。"
            "请针对模型回答给出得分，顺便给出理由：")


def parse_score(judgment: str) -> float | None:
    """The first number after 得分: or 得分：, clamped to [0, 1]; None when there is none."""
    match = _SCORE.search(judgment)
    return min(1.0, max(0.0, float(match.group(1)))) if match else None


def read_belle(root: Path, limit: int = 0) -> tuple[list[dict], dict[str, str]]:
    """The evaluation records (at most `limit` per class) and the judge prompt of each class key."""
    records = read_jsonl(root / "eval" / "eval_set.json", "BELLE eval set")
    prompts_file = root / "eval" / "eval_prompt.json"
    prompts = {}
    for number, record in enumerate(read_jsonl(prompts_file, "BELLE judge prompts"), start=1):
        if not isinstance(record.get("class"), str) or not isinstance(record.get("prompt"), str):
            raise ChowaError(f"{prompts_file}:{number}: a judge prompt needs class and prompt (strings)")
        prompts[class_key(record["class"])] = record["prompt"]
    kept, per_class = [], defaultdict(int)
    for number, record in enumerate(records, start=1):
        if not {"question", "class"} <= set(record):
            raise ChowaError(f"{root / 'eval' / 'eval_set.json'}:{number}: needs question and class")
        key = class_key(record["class"])
        if key not in prompts:
            raise ChowaError(f"{prompts_file}: no judge prompt for the class {record['class']!r} (line {number} of "
                             f"eval_set.json); it has: {', '.join(sorted(prompts))}")
        if not limit or per_class[key] < limit:
            per_class[key] += 1
            kept.append(record | {"std_answer": record.get("std_answer") or ""})
    return kept, prompts


def summarize(records: list[dict], scores: list[list[float | None]]) -> dict:
    """Class means, others (math and code pooled), macro averages and unparsed counts."""
    by_class: dict[str, list[float]] = defaultdict(list)
    unparsed: dict[str, int] = defaultdict(int)
    for record, judged in zip(records, scores, strict=True):
        key = class_key(record["class"])
        parsed = [s for s in judged if s is not None]
        unparsed[key] += len(judged) - len(parsed)
        if parsed:
            by_class[key].append(sum(parsed) / len(parsed))
            if key in OTHERS:
                by_class["others"].append(sum(parsed) / len(parsed))

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    means = {key: mean(values) for key, values in by_class.items()}
    columns = {name: means.get(name) for name in COLUMNS}
    present = [v for v in columns.values() if v is not None]
    without = [v for name, v in columns.items() if name != "others" and v is not None]
    # the card's averages are over all nine (eight) columns; with classes missing they cover fewer, and say so
    return {"columns": columns, "macro ave": mean(present), "macro ave w/o others": mean(without),
            "macro columns": len(present),
            "math": means.get("math"), "code": means.get("code"), "unparsed": dict(unparsed),
            "answers": {key: len(values) for key, values in by_class.items()}}


def table(summary: dict) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    card = [*summary["columns"].values(), summary["macro ave"], summary["macro ave w/o others"]]
    lines = [markdown_table([*COLUMNS, "macro ave", "macro ave w/o others"], [[cell(v) for v in card]]), ""]
    if summary["macro columns"] < len(COLUMNS):
        lines += [f"(the macro averages cover the {summary['macro columns']} of {len(COLUMNS)} columns that have "
                  "scores)", ""]
    lines += [
             markdown_table(["math", "code"], [[cell(summary["math"]), cell(summary["code"])]]), "",
             markdown_table(["class", "unparsed judgments"], sorted(summary["unparsed"].items()))]
    return "\n".join(lines) + "\n"


def main(cfg: EvalBelleConfig) -> dict:
    """`chowa eval belle`: answer (answers are written before any judging), judge `repeats` times, write the
    outputs and print the card's table."""
    out = Path(cfg.out)
    check_writable(out, "--out", folder=True)
    records, prompts = read_belle(Path(cfg.belle_dir), cfg.limit)
    client = cfg.client(out / "judge_cache.jsonl")
    chat = load_chat_model(cfg.model)
    answers = generate_replies(chat, [[{"role": "user", "content": r["question"]}] for r in records],
                               cfg.sampling(), cfg.batch_size, names=[f"question {i + 1}" for i in range(len(records))])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "answers.jsonl", "".join(json.dumps(r | {"answer": a}, ensure_ascii=False) + "\n"
                                                     for r, a in zip(records, answers, strict=True)))
    settings = JUDGE_SETTINGS | ({"max_tokens": cfg.judge_max_tokens} if cfg.judge_max_tokens else {})
    calls = [{"messages": [{"role": "user", "content": judge_message(prompts[class_key(r["class"])], r, a)}],
              **settings, "_repeat": repeat}
             for r, a in zip(records, answers, strict=True) for repeat in range(cfg.repeats)]
    judgments = client.ask(calls, desc="judge BELLE")
    scores = [parse_score(j) for j in judgments]
    summary = summarize(records, [scores[i * cfg.repeats:(i + 1) * cfg.repeats] for i in range(len(records))])
    summary |= {"judge_model": cfg.judge_model, "repeats": cfg.repeats, "model": cfg.model, "usage": client.usage}
    atomic_write_text(out / "judgments.jsonl", "".join(
        json.dumps({"index": i // cfg.repeats, "class": records[i // cfg.repeats]["class"], "repeat": i % cfg.repeats,
                    "judgment": j, "score": score}, ensure_ascii=False) + "\n"
        for i, (j, score) in enumerate(zip(judgments, scores, strict=True))))
    atomic_write_text(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    atomic_write_text(out / "table.md", table(summary))
    print(table(summary), end="")
    print(f"judge: {client.usage_line()}; wrote {out}", file=sys.stderr)
    return summary
