"""JGLUE evaluation throughput: batched scoring (shared contexts, batched greedy) against one request at a time.

Both modes run in this process on the same loaded model, over the same documents in the same order, alternating
sequential / batched `--pairs` times per task. The sequential mode is the reference harness's computation (one
forward per choice, HF `generate` at batch size 1). Each task reports documents per second (median over pairs)
for both modes and their ratio, and the run fails unless both modes give the same metrics (choice accuracies and
generations identical; log-likelihoods within 1e-6 of their magnitude, at least 1e-5, in float32).

Run as:
    python benchmarks/eval_throughput.py --model out/sft --data-dir ~/data/jglue --limit 50
    python benchmarks/eval_throughput.py --model out/sft --data-dir ~/data/jglue --tasks jnli-1.1-0.3,jsquad-1.1-0.3 \
        --batch-size 16 --device cuda --dtype float16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from chowa.eval.jglue.data import load_task_data
from chowa.eval.jglue.runner import evaluate_instances
from chowa.eval.jglue.tasks import build_instances, resolve_tasks
from chowa.eval.models import HFCausalLM


def timed_run(lm: HFCausalLM, spec, instances, sequential: bool) -> tuple[float, dict, list[dict]]:
    lm.sequential = sequential
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    metrics, records = evaluate_instances(lm, spec, instances)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, metrics, records


def same_scores(seq: list[dict], bat: list[dict]) -> bool:
    for a, b in zip(seq, bat, strict=True):
        # Completions, golds and per-document metrics must be identical; log-likelihoods only close.
        if {k: v for k, v in a.items() if k != "loglikelihoods"} != {k: v for k, v in b.items()
                                                                      if k != "loglikelihoods"}:
            return False
        # fp32 sums differ by rounding in proportion to their magnitude (6e-5 on −400 nats)
        if any(abs(x - y) > max(1e-5, 1e-6 * abs(x)) for x, y in zip(a.get("loglikelihoods", []),
                                                                     b.get("loglikelihoods", []))):
            return False
    return True


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = HFCausalLM.from_folder(args.model, dtype=args.dtype, device=args.device, batch_size=args.batch_size,
                                progress=False)
    print(f"device {lm.device}, dtype {args.dtype}, batch size {args.batch_size}, threads {torch.get_num_threads()}")
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
