"""JGLUE evaluation throughput: batched scoring (shared contexts, batched greedy) against one request at a time.

Both modes run in this process on the same loaded model, over the same documents in the same order, alternating
sequential / batched `--pairs` times per task. The sequential mode is the reference harness's computation (one
forward per choice, HF `generate` at batch size 1). Each task reports documents per second (median over pairs)
for both modes and their ratio, and the run fails unless both modes give the same metrics (choice accuracies and
generations identical; log-likelihoods within 1e-6 of their magnitude, at least 1e-5, in float32).

With `--reference-harness DIR` (a checkout of Stability-AI/lm-evaluation-harness, the jp-stable branch the cards
used) the comparison is with the reference itself instead: it runs in its own environment (`.venv/lmeval-jp`,
transformers 4.34, built on first use) through `benchmarks/jglue_reference.py`, on the same model folder and the
same documents handed over in the hub scripts' schema, at each of `--reference-batch-sizes`. Both sides are timed
from the loaded model and data to the metrics (contexts, few-shot draws, model calls, scoring); the run fails
unless every request chowa sends (context and continuation, or context) is the reference's, every log-likelihood
agrees within the tolerance above, every generation is identical and the task metrics are equal.

Run as:
    python benchmarks/eval_throughput.py --model out/sft --data-dir ~/data/jglue --limit 50
    python benchmarks/eval_throughput.py --model out/sft --data-dir ~/data/jglue --limit 64 \
        --reference-harness ~/src/lm-evaluation-harness --reference-batch-sizes 1,8
    python benchmarks/eval_throughput.py --model out/sft --data-dir ~/data/jglue --tasks jnli-1.1-0.3,jsquad-1.1-0.3 \
        --batch-size 16 --device cuda --dtype float16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from chowa.eval.jglue.data import load_task_data
from chowa.eval.jglue.runner import evaluate_instances
from chowa.eval.jglue.tasks import build_instances, resolve_tasks
from chowa.eval.models import HFCausalLM

ROOT = Path(__file__).resolve().parent.parent
# The reference's environment: the releases of its time where chowa's venv has newer ones (the rest is lent).
REFERENCE_ENV = ["transformers==4.34.1", "tokenizers==0.14.1", "huggingface_hub==0.17.3", "datasets==2.14.7",
                 "pyarrow_hotfix", "peft==0.5.0", "accelerate==0.24.1", "numexpr", "jsonlines", "pycountry",
                 "zstandard", "mojimoji", "tqdm-multiprocess", "colorama"]
# Where the reference's hub loading scripts would have read each task, and the splits it asks for.
HUB_NAMES = {"jcommonsenseqa": ("shunk031/JGLUE", "JCommonsenseQA", "validation"),
             "jnli": ("shunk031/JGLUE", "JNLI", "validation"), "marc_ja": ("shunk031/JGLUE", "MARC-ja", "validation"),
             "jsquad": ("shunk031/JGLUE", "JSQuAD", "validation"), "jaqket_v2": ("kumapo/JAQKET", "v2.0", "validation"),
             "xwinograd_ja": ("juletxara/xwinograd", "jp", "test"), "mgsm": ("juletxara/mgsm", "ja", "test")}


def timed_run(lm: HFCausalLM, spec, instances, sequential: bool) -> tuple[float, dict, list[dict]]:
    lm.sequential = sequential
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    metrics, records = evaluate_instances(lm, spec, instances)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, metrics, records


def close(x: float, y: float) -> bool:
    # fp32 sums differ by rounding in proportion to their magnitude (6e-5 on −400 nats)
    return abs(x - y) <= max(1e-5, 1e-6 * abs(x))


def same_scores(seq: list[dict], bat: list[dict]) -> bool:
    for a, b in zip(seq, bat, strict=True):
        # Completions, golds and per-document metrics must be identical; log-likelihoods only close.
        if {k: v for k, v in a.items() if k != "loglikelihoods"} != {k: v for k, v in b.items()
                                                                      if k != "loglikelihoods"}:
            return False
        if not all(close(x, y) for x, y in zip(a.get("loglikelihoods", []), b.get("loglikelihoods", []))):
            return False
    return True


def hub_rows(name: str, docs: list[dict]) -> list[dict]:
    """chowa's documents back in the schema of the hub loading script the reference reads `name` through."""
    def row(d: dict) -> dict:
        if name == "jcommonsenseqa":
            return {"q_id": d["id"], "question": d["question"], **{f"choice{i}": c for i, c in enumerate(d["choices"])},
                    "label": d["gold"]}
        if name == "jnli":
            return {"sentence_pair_id": d["id"], "sentence1": d["premise"], "sentence2": d["hypothesis"],
                    "label": d["gold"]}
        if name == "marc_ja":
            return {"review_id": d["id"], "sentence": d["sentence"], "label": d["gold"]}
        if name == "jsquad":
            return {"id": d["id"], "title": d["title"], "context": d["context"], "question": d["question"],
                    "answers": {"text": d["answers"], "answer_start": [0] * len(d["answers"])}, "is_impossible": False}
        if name == "jaqket_v2":
            return {"qid": d["id"], "question": d["question"],
                    "answers": {"text": d["answers"], "answer_start": [0] * len(d["answers"])},
                    "ctxs": {"title": d["titles"], "text": d["texts"], "has_answer": d["has_answer"]}}
        if name == "mgsm":
            return {"question": d["question"], "answer": d["answer"], "answer_number": d["answer_number"],
                    "equation_solution": None}
        return {"sentence1": d["sentence1"], "sentence2": d["sentence2"], "answer": d["answer"]}  # xwinograd_ja

    return [row(d) for d in docs]


def run_reference(args, specs_and_data: list[tuple], batch_size: int, work: Path) -> dict[str, dict]:
    """The reference harness's timings, metrics and model calls per task id (see jglue_reference.py)."""
    sys.path.insert(0, str(ROOT))
    from tools.side_env import side_python

    python = side_python("lmeval-jp", REFERENCE_ENV)
    rows = work / "rows.json"
    tasks = []
    for spec, data in specs_and_data:
        path, name, eval_split = HUB_NAMES[spec.name]
        splits = {eval_split: hub_rows(spec.name, data.eval_docs)}
        if data.train_docs:
            splits["train"] = hub_rows(spec.name, data.train_docs)
        tasks.append({"task_id": spec.task_id, "num_fewshot": spec.num_fewshot, "path": path, "name": name,
                      "splits": splits})
    rows.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    command = [str(python), str(ROOT / "benchmarks" / "jglue_reference.py"), "--harness", args.reference_harness,
               "--rows", str(rows), "--model", args.model, "--batch-size", str(batch_size), "--limit", str(args.limit),
               "--repeats", str(args.pairs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": "",
           "HF_DATASETS_CACHE": str(work / "hf-datasets")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"the reference harness failed (batch size {batch_size}):\n{result.stderr[-3000:]}")
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {run["task_id"]: run for run in runs}


def same_as_reference(spec, metrics: dict, records: list[dict], reference: dict) -> list[str]:
    """What differs between chowa's run and the reference's (empty when they asked and scored alike)."""
    problems = []
    requests = [(r, a) for kind, reqs, answers in reference["calls"] for r, a in zip(reqs, answers)]
    if spec.kind == "ll":
        ours = [(rec["prompt"], choice, ll) for rec in records
                for choice, ll in zip(rec["choices"], rec["loglikelihoods"])]
        theirs = [(req[0], req[1], answer[0]) for req, answer in requests]
        same = lambda a, b: a[:2] == b[:2] and close(a[2], b[2])  # noqa: E731
    else:
        ours = [(rec["prompt"], rec["completion"]) for rec in records]
        theirs = [(req[0], answer) for req, answer in requests]
        same = lambda a, b: a == b  # noqa: E731
    if len(ours) != len(theirs):
        problems.append(f"{len(ours)} model requests, the reference sent {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if not same(a, b):
            problems.append(f"request {i}: chowa {a!r:.200} vs reference {b!r:.200}")
            break
    shared = [key for key in reference["metrics"] if not key.endswith("_stderr") and key in metrics]
    if not shared:
        problems.append(f"no metric in common: chowa {sorted(metrics)}, reference {sorted(reference['metrics'])}")
    for key in shared:
        if abs(metrics[key] - reference["metrics"][key]) > 1e-9:
            problems.append(f"{key}: chowa {metrics[key]} vs reference {reference['metrics'][key]}")
    return problems


def compare_with_reference(args, lm: HFCausalLM, specs: list) -> None:
    if lm.device.type != "cpu" or args.dtype != "float32":
        raise SystemExit("--reference-harness runs the reference on the CPU in float32; run chowa the same way")
    loaded = []
    for spec in specs:
        data = load_task_data(spec.name, args.data_dir)
        if data.missing:
            print(f"{spec.task_id:28} missing: {', '.join(data.missing)}")
            continue
        for warning in data.warnings:
            print(f"  note: {warning}")
        loaded.append((spec, data))
    sizes = [int(b) for b in args.reference_batch_sizes.split(",")]
    with tempfile.TemporaryDirectory() as work:
        reference = {b: run_reference(args, loaded, b, Path(work)) for b in sizes}
    header = "".join(f" {'ref b' + str(b) + ' docs/s':>15}" for b in sizes)
    ratios = "".join(f" {'x ref b' + str(b):>9}" for b in sizes)
    print(f"{'task':28} {'docs':>5}{header} {'chowa docs/s':>13}{ratios}  same as reference")
    for spec, data in loaded:
        seconds = []
        for _ in range(args.pairs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            instances = build_instances(spec, data, args.limit, lm.tokenizer, lm.max_length)
            metrics, records = evaluate_instances(lm, spec, instances)
            seconds.append(time.perf_counter() - start)
        docs = len(instances)
        ours = docs / statistics.median(seconds)
        theirs = [docs / statistics.median(reference[b][spec.task_id]["seconds"]) for b in sizes]
        problems = [p for b in sizes for p in same_as_reference(spec, metrics, records, reference[b][spec.task_id])]
        print(f"{spec.task_id:28} {docs:5d}" + "".join(f" {t:15.2f}" for t in theirs) + f" {ours:13.2f}"
              + "".join(f" {ours / t:8.2f}x" for t in theirs) + f"  {'yes' if not problems else 'NO'}")
        if problems:
            raise SystemExit(f"{spec.task_id}: chowa and the reference differ:\n  " + "\n  ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tasks", default="jcommonsenseqa-1.1-0.3,jnli-1.1-0.3,marc_ja-1.1-0.3,jsquad-1.1-0.3,"
                                           "xwinograd_ja")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--reference-harness", default=None,
                        help="a checkout of Stability-AI/lm-evaluation-harness (jp-stable): compare with it instead "
                             "of with chowa one request at a time")
    parser.add_argument("--reference-batch-sizes", default="1,8",
                        help="the reference's --batch_size values to time (the cards ran the default, 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = HFCausalLM.from_folder(args.model, dtype=args.dtype, device=args.device, batch_size=args.batch_size,
                                progress=False)
    print(f"device {lm.device}, dtype {args.dtype}, batch size {args.batch_size}, threads {torch.get_num_threads()}")
    if args.reference_harness:
        return compare_with_reference(args, lm, resolve_tasks(args.tasks))
    print(f"{'task':28} {'docs':>5} {'seq docs/s':>11} {'batched docs/s':>15} {'speed-up':>9}  same scores")
    for spec in resolve_tasks(args.tasks):
        data = load_task_data(spec.name, args.data_dir)
        if data.missing:
            print(f"{spec.task_id:28} missing")
            continue
        instances = build_instances(spec, data, args.limit, lm.tokenizer, lm.max_length)
        seq_times, bat_times, identical = [], [], True
        for _ in range(args.pairs):
            seq_s, seq_metrics, seq_records = timed_run(lm, spec, instances, sequential=True)
            bat_s, bat_metrics, bat_records = timed_run(lm, spec, instances, sequential=False)
            seq_times.append(seq_s)
            bat_times.append(bat_s)
            identical &= same_scores(seq_records, bat_records) and seq_metrics.keys() == bat_metrics.keys()
        seq_rate = len(instances) / statistics.median(seq_times)
        bat_rate = len(instances) / statistics.median(bat_times)
        print(f"{spec.task_id:28} {len(instances):5d} {seq_rate:11.2f} {bat_rate:15.2f} {bat_rate / seq_rate:8.2f}x"
              f"  {'yes' if identical else 'NO'}")
        if not identical:
            raise SystemExit(f"{spec.task_id}: batched and sequential scores differ")


if __name__ == "__main__":
    main()
