"""Run the JGLUE suite the rinna and weblab model cards report, and write its prompts for inspection.

`run_jglue` evaluates tasks (or a card's suite) on a Hugging Face model folder and returns the results dict;
with `out` it also writes results JSON, a Markdown table in the cards' layout, and one JSONL of per-document
outputs per task. `write_prompts` writes the exact prompts of one task, one JSON line per evaluated document.

Run as:
    chowa eval jglue --model out/sft --data-dir ~/data/jglue --suite weblab --out results.json
    chowa eval prompts --task jsquad-1.1-0.3 --data-dir ~/data/jglue --limit 5
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path
from typing import IO

import numpy as np

from chowa.config.eval import EvalPromptsConfig, JGLUEConfig
from chowa.errors import ChowaError
from chowa.eval.byte_lm import ByteGroupLM
from chowa.eval.jglue import metrics
from chowa.eval.jglue.data import TaskData, load_task_data
from chowa.eval.jglue.tasks import Instance, TaskSpec, build_instances, parse_task, resolve_tasks
from chowa.eval.models import NO_CONTEXT_LENGTH, HFCausalLM
from chowa.files import check_writable
from chowa.folders import context_length

log = logging.getLogger(__name__)
CARD_COLUMNS = {"jcommonsenseqa": "JCommonsenseQA", "jnli": "JNLI", "marc_ja": "MARC-ja", "jsquad": "JSQuAD",
                "jaqket_v2": "jaqket_v2", "xlsum_ja": "xlsum_ja", "xwinograd_ja": "xwinograd_ja", "mgsm": "mgsm"}
# The card's score of each task, on 0-100: accuracies ×100; EM and ROUGE-2 are already percentages.
HEADLINE = {"jcommonsenseqa": "acc", "jnli": "acc", "marc_ja": "acc", "xwinograd_ja": "acc", "mgsm": "acc",
            "jsquad": "exact_match", "jaqket_v2": "exact_match", "xlsum_ja": "rouge2"}


def run_jglue(model: str | HFCausalLM | ByteGroupLM, data_dir: str, tasks: str | list[str] | None = None,
              suite: str | None = None, limit: int | None = None, batch_size: int = 8, out: str | None = None,
              sequential: bool = False, rouge_tokenizer: str = "model", dtype: str = "auto",
              device: str | None = None) -> dict:
    """Evaluate; returns {"tasks": {task_id: {...}}, "averages": {...}, ...}. Absent data is "missing", never 0."""
    if limit is not None and limit < 1:
        raise ChowaError(f"limit must be at least 1, got {limit}")
    if rouge_tokenizer not in ("model", "mecab"):
        raise ChowaError(f"rouge_tokenizer must be 'model' or 'mecab', got {rouge_tokenizer!r}")
    specs = resolve_tasks(tasks, suite)
    task_data = task_data_present(specs, data_dir)
    # The reference seeds both global RNGs at start-up; ROUGE's bootstrap reads numpy's.
    random.seed(1234)
    np.random.seed(1234)
    loaded = isinstance(model, HFCausalLM | ByteGroupLM)
    lm = model if loaded else HFCausalLM.from_folder(
        model, dtype=dtype, device=device, batch_size=batch_size, sequential=sequential)
    results = {"model": None if loaded else str(model), "suite": suite, "limit": limit,
               "max_length": lm.max_length, "rouge_tokenizer": rouge_tokenizer, "tasks": {}}
    samples = {}
    for spec, data in zip(specs, task_data, strict=True):
        if data.missing:
            results["tasks"][spec.task_id] = {"status": "missing", "missing_files": data.missing}
            continue
        instances = build_instances(spec, data, limit, lm.tokenizer, lm.max_length)
        log.info("%s: %d documents, %d-shot", spec.task_id, len(instances), spec.num_fewshot)
        task_metrics, records = evaluate_instances(lm, spec, instances, rouge_tokenizer)
        results["tasks"][spec.task_id] = {"status": "ok", "n": len(instances), "num_fewshot": spec.num_fewshot,
                                          "metrics": task_metrics, "score": task_metrics[HEADLINE[spec.name]] * (
                                              100 if HEADLINE[spec.name] == "acc" else 1), "warnings": data.warnings}
        samples[spec.task_id] = records
    scores: dict[str, float | None] = {}
    for task_id, entry in results["tasks"].items():
        scores.setdefault(task_id.split("-")[0], entry.get("score"))  # the first run of a task counts
    results["averages"] = metrics.averages(scores)
    if out:
        save_results(results, samples, out)
    return results


def task_data_present(specs: list[TaskSpec], data_dir: str) -> list[TaskData]:
    """Each task's data under `data_dir` (absent files are reported per task); ChowaError when no task has any, as
    there would be nothing to evaluate."""
    task_data = [load_task_data(spec.name, data_dir) for spec in specs]
    if all(data.missing for data in task_data):
        raise ChowaError(f"JGLUE: no requested task has its files under {data_dir} (for {specs[0].task_id}: "
                         f"{', '.join(task_data[0].missing)}); see chowa eval jglue --help for the layout")
    return task_data


def evaluate_instances(lm: HFCausalLM, spec: TaskSpec, instances: list[Instance],
                       rouge_tokenizer: str = "model") -> tuple[dict, list[dict]]:
    """Task metrics (means over documents) and one record per document, in evaluation order."""
    if spec.kind == "ll":
        flat = [(inst.prompt, choice) for inst in instances for choice in inst.choices]
        scored = iter(lm.loglikelihood(flat))
        records = []
        for inst in instances:
            lls = [next(scored)[0] for _ in inst.choices]
            if spec.name == "xwinograd_ja":
                doc_metrics = {"acc": metrics.winograd_acc(lls[0], lls[1], inst.doc["answer"])}
            else:
                doc_metrics = metrics.choice_metrics(lls, inst.choices, inst.gold)
            records.append({"doc_id": inst.doc_id, "prompt": inst.prompt, "choices": inst.choices, "gold": inst.gold,
                            "loglikelihoods": lls, **doc_metrics})
        return _means(records, list(doc_metrics)), records
    completions = lm.generate_until([(inst.prompt, inst.until, inst.max_new_tokens) for inst in instances])
    records = []
    for inst, completion in zip(instances, completions):
        record = {"doc_id": inst.doc_id, "prompt": inst.prompt, "gold": inst.gold, "completion": completion}
        if spec.name in ("jsquad", "jaqket_v2"):
            record.update(exact_match=metrics.exact_match(completion, inst.gold),
                          f1=metrics.qa_f1(completion, inst.gold))
        elif spec.name == "mgsm":
            record.update(acc=float(metrics.mgsm_extract(completion) == inst.gold))
        records.append(record)
    if spec.name == "xlsum_ja":
        tokenize = lm.tokenizer.tokenize if rouge_tokenizer == "model" else metrics.ja_tokens
        return metrics.rouge2(completions, [inst.gold for inst in instances], tokenize), records
    if spec.name == "mgsm":
        return _means(records, ["acc"]), records
    # The reference reports QA scores as 100 × the mean, already on the card's 0-100 scale.
    return {key: 100 * value for key, value in _means(records, ["exact_match", "f1"]).items()}, records


def _means(records: list[dict], keys: list[str]) -> dict:
    return {key: sum(r[key] for r in records) / len(records) for key in keys} if records else {}


def save_results(results: dict, samples: dict[str, list[dict]], out: str | Path) -> Path:
    """results.json, results.md (the cards' table) and results.samples/<task_id>.jsonl side by side."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(results_markdown(results), encoding="utf-8")
    folder = out.with_suffix(".samples")
    folder.mkdir(exist_ok=True)
    for task_id, records in samples.items():
        lines = (json.dumps(r, ensure_ascii=False) for r in records)
        (folder / f"{task_id}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def results_markdown(results: dict, model_name: str | None = None) -> str:
    """The cards' table: Model | Average | one column per task, scores on 0-100 with two decimals."""
    by_name = {}
    for task_id, entry in results["tasks"].items():
        by_name.setdefault(task_id.split("-")[0], entry)
    columns = [name for name in CARD_COLUMNS if name in by_name]
    averages = results.get("averages", {})
    key = next((k for k in ("avg8", "avg6", "avg4", "avg8_partial", "avg6_partial", "avg4_partial")
                if k in averages), None)
    average = f"{averages[key]['value']:.2f}" if key else "-"
    cells = [f"{by_name[n]['score']:.2f}" if by_name[n]["status"] == "ok" else "missing" for n in columns]
    name = model_name or Path(results.get("model") or "model").name
    lines = ["| Model | Average | " + " | ".join(CARD_COLUMNS[n] for n in columns) + " |",
             "| :-- " * (len(columns) + 2) + "|",
             f"| {name} | {average} | " + " | ".join(cells) + " |", ""]
    for avg_key, entry in averages.items():
        if "missing" in entry:
            size = len(entry["tasks"]) + len(entry["missing"])
            covers = f"{len(entry['tasks'])}/{size}; missing: {', '.join(entry['missing'])}"
        else:
            covers = ", ".join(entry["tasks"])
        lines.append(f"- {avg_key} ({covers}) = {entry['value']:.2f}")
    for task_id, entry in results["tasks"].items():
        for warning in entry.get("warnings", []):
            lines.append(f"- warning ({task_id}): {warning}")
        if entry["status"] == "missing":
            lines.append(f"- {task_id}: missing ({', '.join(entry['missing_files'])})")
    if results.get("limit") is not None:
        lines.append(f"- only the first {results['limit']} documents of each task: not comparable with the cards")
    return "\n".join(lines) + "\n"


def write_prompts(task: str, data_dir: str, out: str | Path | IO[str] | None = None, limit: int | None = None,
                  model: str | None = None) -> int:
    """One JSON line per evaluated document, in evaluation order; returns the number written.

    Each line: doc_id, prompt (the full few-shot context), choices (log-likelihood tasks) or until and
    max_new_tokens (generation tasks), gold. Trimming and token budgets need the model's tokenizer and
    max_length: without `model`, prompts are untrimmed, tokenizer-dependent budgets are null, and mgsm's EOS stop
    string is null.
    """
    spec = parse_task(task)
    data = load_task_data(spec.name, data_dir)
    if data.missing:
        raise ChowaError(f"{spec.task_id}: data missing: {', '.join(data.missing)}")
    tokenizer = max_length = None
    if model is not None:
        from chowa.models.load import load_model_config
        from chowa.tokenizer import load_tokenizer

        config = load_model_config(model)
        tokenizer = load_tokenizer(model)
        max_length = context_length(config, as_lm_eval=True) or NO_CONTEXT_LENGTH
    instances = build_instances(spec, data, limit, tokenizer, max_length)
    stream = open(out, "w", encoding="utf-8") if isinstance(out, str | Path) else (out or sys.stdout)
    try:
        for inst in instances:
            record = {"doc_id": inst.doc_id, "prompt": inst.prompt}
            if inst.choices is not None:
                record["choices"] = inst.choices
            else:
                record.update(until=inst.until, max_new_tokens=inst.max_new_tokens)
            record["gold"] = inst.gold
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if stream is not out and stream is not sys.stdout:
            stream.close()
    return len(instances)


def main(cfg: JGLUEConfig) -> dict:
    """`chowa eval jglue`: evaluate, print the cards' table, write the results when `out` is set."""
    if cfg.out:
        check_writable(cfg.out, "--out")
    results = run_jglue(cfg.model, cfg.data_dir, tasks=cfg.tasks or None, suite=cfg.suite or None, limit=cfg.limit,
                        batch_size=cfg.batch_size, out=cfg.out or None, sequential=cfg.sequential,
                        rouge_tokenizer=cfg.rouge_tokenizer, dtype=cfg.dtype, device=cfg.device or None)
    print(results_markdown(results))
    return results


def prompts_main(cfg: EvalPromptsConfig) -> None:
    """`chowa eval prompts`: write the task's prompts to `out` (or stdout)."""
    if cfg.out:
        check_writable(cfg.out, "--out")
    count = write_prompts(cfg.task, cfg.data_dir, out=cfg.out or None, limit=cfg.limit, model=cfg.model or None)
    if cfg.out:
        print(f"wrote {count} prompts to {cfg.out}", file=sys.stderr)
