"""Run the reference JGLUE harness (Stability-AI lm-evaluation-harness, jp-stable) on local files, timed per task.

This script runs inside the reference's own environment (transformers 4.34 and datasets 2.14, built by
`eval_throughput.py --reference-harness`), never in chowa's. The reference reads its data only through hub
loading scripts (`shunk031/JGLUE`, `kumapo/JAQKET`, `juletxara/mgsm`, `juletxara/xwinograd`); here
`datasets.load_dataset` answers those names with the rows `eval_throughput.py` wrote in the hub scripts' schema,
and nothing else in the reference changes. Its model is `hf-causal` as the cards ran it, without the request cache.

For every task it prints, as one JSON line: the seconds of each of `--repeats` runs of the reference's
`evaluate` (contexts, few-shot draws, model calls, metrics), its metrics, and every request the reference sent to
the model with the answer it got, so the caller can check both harnesses asked and scored the same.

Run as (by eval_throughput.py, or by hand):
    .venv/lmeval-jp/bin/python benchmarks/jglue_reference.py --harness ~/src/lm-evaluation-harness \
        --rows rows.json --model out/sft --batch-size 8 --limit 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--harness", required=True, help="a checkout of Stability-AI/lm-evaluation-harness (jp-stable)")
    parser.add_argument("--rows", required=True, help="JSON written by eval_throughput.py: the hub-schema rows")
    parser.add_argument("--model", required=True, help="the model folder, loaded by the reference's hf-causal")
    parser.add_argument("--batch-size", type=int, default=1, help="the reference's --batch_size (the cards ran 1)")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (the reference's --limit)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per task; the first run's answers are kept")
    args = parser.parse_args()
    sys.path.insert(0, args.harness)

    import datasets

    with open(args.rows, encoding="utf-8") as f:
        tasks = json.load(f)
    hub = {(t["path"], t["name"]): t["splits"] for t in tasks}

    def load_dataset(path, name=None, **_ignored):
        # The registry may resolve a bare name to a base class without DATASET_NAME (xwinograd_ja does), which the
        # hub answers with the dataset's only configuration.
        found = [splits for (p, n), splits in hub.items() if p == path and (n == name or name is None)]
        if len(found) != 1:
            raise ConnectionError(f"{path} {name}: not among the local rows (this run has no hub access)")
        return datasets.DatasetDict({split: datasets.Dataset.from_list(rows) for split, rows in found[0].items()})

    datasets.load_dataset = load_dataset  # the tasks call it as datasets.load_dataset(...)

    from lm_eval import evaluator, models
    from lm_eval import tasks as ref_tasks

    lm = models.get_model("hf-causal").create_from_arg_string(f"pretrained={args.model},use_fast=False",
                                                              {"batch_size": args.batch_size, "device": "cpu"})
    calls: list[tuple[str, list, list]] = []
    for kind in ("loglikelihood", "greedy_until"):
        method = getattr(lm, kind)

        def recorded(requests, _method=method, _kind=kind):
            answers = _method(requests)
            calls.append((_kind, [list(r) for r in requests], [_plain(a) for a in answers]))
            return answers

        setattr(lm, kind, recorded)
    for task in tasks:
        seconds = []
        for repeat in range(args.repeats):
            task_dict = ref_tasks.get_task_dict([task["task_id"]])  # built outside the timing, as a loaded task
            calls.clear()
            start = time.perf_counter()
            result = evaluator.evaluate(lm, task_dict, num_fewshot=[task["num_fewshot"]], limit=args.limit)
            seconds.append(time.perf_counter() - start)
            if repeat == 0:
                first = {"metrics": result["results"][task["task_id"]], "calls": list(calls)}
        print(json.dumps({"task_id": task["task_id"], "seconds": seconds, **first}, ensure_ascii=False), flush=True)


def _plain(answer):
    return list(answer) if isinstance(answer, tuple) else answer


if __name__ == "__main__":
    main()
