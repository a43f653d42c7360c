"""Training memory and speed at long sequences: peak memory and tokens/s with and without gradient checkpointing.

Each configuration (sequence length x `runtime.gradient_checkpointing`) runs in a fresh process, so the peak of one
never hides another's: it loads the model, applies chowa's runtime settings (`configure_model`, SDPA attention),
and times `--steps` AdamW steps of chowa's pretraining loss on windows of the same number of tokens per batch
(`--tokens-per-batch`: 16 x 256 = 4 x 1,024), after one warm-up step. Peak memory is what the training steps add
to the process after loading: `torch.cuda.max_memory_allocated` on a GPU, the growth of the resident set's high-water
mark (ru_maxrss) on a CPU; both count from the loaded model, so the optimizer state (equal at every length) is in.
Configurations run in turn, `--repeats` rounds, median reported.

Run as:
    python benchmarks/long_context_memory.py --model runs/long/linear --lengths 256,1024 --steps 5
    python benchmarks/long_context_memory.py --model runs/long/linear --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def run_one(args) -> dict:
    import torch

    from chowa.config.training import RuntimeConfig
    from chowa.models.load import load_causal_lm
    from chowa.pretrain import causal_lm_loss
    from chowa.runtime import configure_model

    device = torch.device(args.device)
    model = load_causal_lm(args.model, dtype=args.dtype, device=device)
    configure_model(model, RuntimeConfig(gradient_checkpointing=args.checkpointing))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = max(1, args.tokens_per_batch // args.length)
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def step() -> None:
        tokens = torch.randint(0, vocab, (batch, args.length + 1), generator=generator).to(device)
        loss, _ = causal_lm_loss(model, {"tokens": tokens})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # The baseline is the loaded model: the peak then holds the optimizer state (the same at every length) and the
    # step's activations. ru_maxrss is a high-water mark, so it is read before the first step.
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()  # warm-up: optimizer state and kernels exist before the timing starts
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    seconds = time.perf_counter() - start
    return {"tokens_per_s": batch * args.length * args.steps / seconds, "peak_mib": peak / 2**20, "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder to train (e.g. an extended one)")
    parser.add_argument("--lengths", default="256,1024", help="sequence lengths to compare")
    parser.add_argument("--tokens-per-batch", type=int, default=4096, help="tokens per step at every length")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per configuration")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all configurations (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one configuration
    parser.add_argument("--length", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return
    configs = [(int(n), c) for n in args.lengths.split(",") for c in (False, True)]
    runs: dict[tuple[int, bool], list[dict]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for length, checkpointing in configs:
            command = [sys.executable, __file__, "--one", "--model", args.model, "--length", str(length),
                       "--tokens-per-batch", str(args.tokens_per_batch), "--steps", str(args.steps),
                       "--device", args.device, "--dtype", args.dtype] + (["--checkpointing"] if checkpointing else [])
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"length {length}, checkpointing {checkpointing} failed:\n{result.stderr[-2000:]}")
            runs[(length, checkpointing)].append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"model {args.model}, device {args.device}, dtype {args.dtype}, {args.tokens_per_batch} tokens per step, "
          f"median of {args.repeats}")
    print("| length | batch | gradient checkpointing | peak memory (MiB) | tokens/s |")
    print("|---|---|---|---|---|")
    for (length, checkpointing), results in runs.items():
        peak = statistics.median(r["peak_mib"] for r in results)
        speed = statistics.median(r["tokens_per_s"] for r in results)
        print(f"| {length} | {results[0]['batch']} | {'on' if checkpointing else 'off'} | {peak:.1f} | {speed:,.0f} |")


if __name__ == "__main__":
    main()
