"""Pretraining throughput: chowa's `pretrain` stage against a plain `transformers.Trainer`, same model, data, batch.

Both runs train the same freshly initialised preset (same seed, same config) on the same packed windows of the same
token cache, in the same order, with the same batch, sequence length, AdamW hyper-parameters, warmup + cosine
schedule, gradient clipping and number of steps; no evaluation or checkpoint inside the timed steps. They run in
this process, alternating A B A B, and each reports:

- steady-state tokens/s: B x T x (steps timed) / seconds between the start of step `--warmup` and the start of the
  last step (the first steps, which warm allocators and kernels, and the end-of-run save are left out);
- MFU: FLOPs/token x tokens/s / peak, FLOPs/token = 6 N + 12 L T d (PaLM, appendix B), N = parameters that take
  part in matmuls (all but the input embedding table; an output head counts once, tied or not), L layers, T the
  sequence length, d the hidden size; peak = the best of several timed square matmuls on the same device, in the
  dtype the runs compute in (fp32 on CPU, bf16 under CUDA autocast);
- wall seconds of the whole stage call (setup, training, final save), and the train loss at step 1 and over the
  last logged steps, to show both trained the same thing.

chowa runs in-process through `chowa.pretrain.main(cfg)`, unchanged: the only hook is a wrapper around the
`next_batch` it hands to `fit`, which stamps the start of each step. Its unavoidable end-of-run work (one
held-out evaluation, the final checkpoint and model folder) falls after the timed steps.

Known differences, all in what the libraries choose by default: the Trainer's own loss shifts `labels=input_ids`
inside the window (T-1 targets per row; chowa predicts T from T+1 tokens, same forward size), it decays the
embedding tables where chowa does not, its warmup starts from lr 0 where chowa's starts at lr/warmup, and it uses
its default optimizer implementation (`adamw_torch_fused` on torch >= 2.8) where chowa uses `torch.optim.AdamW`.
`--trainer-optim chowa` hands the Trainer chowa's own optimizer and schedule objects instead, so that the training
loops are the only difference.

Run as:
    python benchmarks/pretrain_throughput.py --pairs 3 --steps 60 --batch-size 16 --seq-len 128
    python benchmarks/pretrain_throughput.py --pairs 3 --steps 30 --warmup 5 --trainer-optim chowa
    python benchmarks/pretrain_throughput.py --corpus /path/to/text.txt --model-config num_hidden_layers=2
    python benchmarks/pretrain_throughput.py --device cuda --preset small --seq-len 1024 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
import yaml
from transformers import Trainer, TrainerCallback, TrainingArguments

import chowa.pretrain
from chowa.data.shards import PackedStream, build_token_cache
from chowa.models.load import load_or_build_model
from chowa.pretrain import PretrainConfig, PretrainDataConfig
from chowa.runtime import RuntimeConfig
from chowa.tokenizer import load_tokenizer
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer
from chowa.training.loop import TrainConfig
from chowa.training.optim import OptimConfig, build_optimizer, build_scheduler

LOG_EVERY = 10  # the Trainer logs its mean loss every this many steps; chowa's final loss is averaged alike
VAL_FRACTION = 0.01  # chowa's stage needs a non-empty held-out split; it is evaluated once, after the timed steps


@dataclass
class Setup:
    tokenizer: str
    corpus: list[str]
    cache_dir: Path
    preset: str
    model_config: dict[str, Any]
    steps: int
    warmup: int
    batch_size: int
    seq_len: int
    optim: OptimConfig
    device: str
    seed: int
    trainer_optim: str


@dataclass
class Result:
    tokens_per_s: float
    tokens_per_cpu_s: float
    wall_s: float
    first_loss: float
    final_loss: float
    flops_per_token: float


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, size: int, reps: int = 8) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) matmul over `reps` timed runs after one warm-up."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)
    best = math.inf
    for _ in range(reps):
        sync(device)
        started = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """6 N + 12 L T d: N the matmul parameters (all but the input table), L layers, T tokens, d hidden size."""
    params = sum(p.numel() for p in model.parameters())  # a tied head is yielded once, with the input table
    matmul_params = params - model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    if head is not None and head.weight is model.get_input_embeddings().weight:
        matmul_params += head.weight.numel()
    config = model.config
    return 6 * matmul_params + 12 * config.num_hidden_layers * seq_len * config.hidden_size


def stamp() -> tuple[float, float]:
    """(wall, CPU) seconds now; CPU time is this process's, all threads: steadier than wall on a shared machine."""
    return time.perf_counter(), time.process_time()


def steady_throughput(starts: list[tuple[float, float]], setup: Setup) -> tuple[float, float]:
    """Tokens per wall second and per CPU second between the start of step `warmup` and the start of the last."""
    tokens = (len(starts) - 1 - setup.warmup) * setup.batch_size * setup.seq_len
    (wall_0, cpu_0), (wall_1, cpu_1) = starts[setup.warmup], starts[-1]
    return tokens / (wall_1 - wall_0), tokens / (cpu_1 - cpu_0)


def boundary(step: int, setup: Setup) -> bool:
    """Steps whose start is a timing boundary: only there is the GPU queue drained, so the loop keeps its overlap."""
    return step in (setup.warmup, setup.steps - 1)


def run_chowa(setup: Setup, out: Path) -> Result:
    cfg = PretrainConfig(
        out=str(out), tokenizer=setup.tokenizer, model=setup.preset, model_config=dict(setup.model_config),
        data=PretrainDataConfig(train=list(setup.corpus), seq_len=setup.seq_len, val_fraction=VAL_FRACTION,
                                cache_dir=str(setup.cache_dir)),
        train=TrainConfig(steps=setup.steps, batch_size=setup.batch_size, eval_every=0, eval_batches=1, save_every=0,
                          keep_checkpoints=1, resume="never"),
        optim=setup.optim,
        runtime=RuntimeConfig(seed=setup.seed, mixed_precision="bf16" if setup.device == "cuda" else "no",
                              cpu=setup.device == "cpu"),
    )
    starts: list[tuple[float, float]] = []
    seen: dict[str, torch.nn.Module] = {}
    fit = chowa.pretrain.fit

    def timed_fit(runtime, model, tokenizer, cfg, out_dir, next_batch, *rest):
        seen["model"] = model

        def timed_next_batch(step: int, micro: int):
            if micro == 0:
                if boundary(step, setup):
                    sync(setup.device)
                starts.append(stamp())
            return next_batch(step, micro)

        return fit(runtime, model, tokenizer, cfg, out_dir, timed_next_batch, *rest)

    chowa.pretrain.fit = timed_fit
    try:
        started = time.perf_counter()
        chowa.pretrain.main(cfg)
        wall = time.perf_counter() - started
    finally:
        chowa.pretrain.fit = fit
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    tail = setup.steps % LOG_EVERY or LOG_EVERY
    return Result(*steady_throughput(starts, setup), wall, losses[0], statistics.fmean(losses[-tail:]),
                  flops_per_token(seen["model"], setup.seq_len))


class WindowDataset(torch.utils.data.Dataset):
    """Window i of chowa's seeded order as a Trainer example: input_ids and labels are its first T tokens."""

    def __init__(self, stream: PackedStream, count: int):
        self.stream, self.count = stream, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(self.stream.window(index)[:-1])
        return {"input_ids": ids, "labels": ids}


class StepClock(TrainerCallback):
    def __init__(self, setup: Setup):
        self.setup, self.starts = setup, []

    def on_step_begin(self, args, state, control, **kwargs):
        if boundary(state.global_step, self.setup):
            sync(self.setup.device)
        self.starts.append(stamp())


def run_trainer(setup: Setup, out: Path, stream: PackedStream) -> Result:
    started = time.perf_counter()
    tokenizer = load_tokenizer(setup.tokenizer)
    model = load_or_build_model(setup.preset, tokenizer, setup.model_config, seed=setup.seed)
    optim = setup.optim
    args = TrainingArguments(
        output_dir=str(out), max_steps=setup.steps, per_device_train_batch_size=setup.batch_size,
        learning_rate=optim.lr, lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr": optim.min_lr},
        warmup_steps=optim.warmup_steps, weight_decay=optim.weight_decay, adam_beta1=optim.betas[0],
        adam_beta2=optim.betas[1], adam_epsilon=optim.eps, max_grad_norm=optim.grad_clip,
        train_sampling_strategy="sequential", dataloader_num_workers=0, logging_steps=LOG_EVERY,
        logging_first_step=True, save_strategy="no", eval_strategy="no", report_to="none", seed=setup.seed,
        use_cpu=setup.device == "cpu", bf16=setup.device == "cuda",
    )
    optimizers = (None, None)  # the Trainer builds its own from `args`
    if setup.trainer_optim == "chowa":
        optimizer = build_optimizer(model, optim)
        optimizers = (optimizer, build_scheduler(optimizer, optim, setup.steps))
    clock = StepClock(setup)
    trainer = Trainer(model=model, args=args, train_dataset=WindowDataset(stream, setup.steps * setup.batch_size),
                      callbacks=[clock], optimizers=optimizers)
    trainer.train()
    wall = time.perf_counter() - started
    logged = [r for r in trainer.state.log_history if "loss" in r]
    return Result(*steady_throughput(clock.starts, setup), wall, logged[0]["loss"], logged[-1]["loss"],
                  flops_per_token(model, setup.seq_len))


def prepare(opts: argparse.Namespace, work: Path) -> tuple[Setup, PackedStream]:
    if opts.tokenizer:
        tokenizer_dir = opts.tokenizer
    else:
        tokenizer_dir = str(work / "tokenizer")
        train_tokenizer(TokenizerTrainConfig(input=list(opts.corpus), out=tokenizer_dir, vocab_size=opts.vocab_size))
    optim = OptimConfig(lr=opts.lr, min_lr=opts.lr / 10, warmup_steps=max(1, opts.steps // 10), weight_decay=0.01)
    setup = Setup(tokenizer_dir, list(opts.corpus), work / "data", opts.preset, opts.model_config, opts.steps,
                  opts.warmup, opts.batch_size, opts.seq_len, optim, opts.device, opts.seed, opts.trainer_optim)
    # The cache chowa's stage will find (same inputs, tokenizer, split and seed), built here once for both runs.
    cache = build_token_cache(setup.corpus, load_tokenizer(tokenizer_dir), setup.cache_dir, val_fraction=VAL_FRACTION,
                              seed=setup.seed, tokenizer_dir=tokenizer_dir)
    stream = PackedStream(cache.train_tokens(), setup.seq_len, seed=setup.seed)
    print(f"corpus: {cache.meta['train_tokens']:,} training tokens, {stream.num_windows:,} windows of {setup.seq_len}; "
          f"{setup.steps} steps x {setup.batch_size} windows read {setup.steps * setup.batch_size:,}")
    return setup, stream


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--model-config takes KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", default=["builtin:corpus/*.txt"], help="text/JSONL files or globs")
    parser.add_argument("--tokenizer", default="", help="tokenizer folder (default: train one on the corpus)")
    parser.add_argument("--vocab-size", type=int, default=2000, help="vocabulary of the trained tokenizer")
    parser.add_argument("--preset", default="tiny", help="model preset (`chowa model list`)")
    parser.add_argument("--model-config", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="preset override, repeatable, e.g. num_hidden_layers=2")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of tokens/s")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (min_lr = lr/10, warmup = steps/10)")
    parser.add_argument("--pairs", type=int, default=3, help="chowa/Trainer pairs, run A B A B")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainer-optim", choices=("trainer", "chowa"), default="trainer",
                        help="the Trainer's own AdamW and schedule from TrainingArguments, or chowa's objects (then "
                             "the loops are the only difference)")
    parser.add_argument("--peak-size", type=int, default=0, help="matmul side for the peak (default: 2048 CPU, "
                                                                  "8192 GPU)")
    parser.add_argument("--work", default="runs/bench/pretrain_throughput", help="scratch folder, reused")
    opts = parser.parse_args()
    opts.model_config = dict(opts.model_config)
    if opts.steps < opts.warmup + 2:
        parser.error("--steps must exceed --warmup by at least 2")
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    return opts


def main() -> None:
    opts = parse_args()
    work = Path(opts.work)
    setup, stream = prepare(opts, work)
    dtype = torch.bfloat16 if opts.device == "cuda" else torch.float32
    peak_size = opts.peak_size or (8192 if opts.device == "cuda" else 2048)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads; "
          f"peak from {str(dtype).removeprefix('torch.')} {peak_size}x{peak_size} matmuls on {opts.device}")
    results: dict[str, list[Result]] = {"chowa": [], "trainer": []}
    peak = 0.0
    for pair in range(opts.pairs):
        # The peak is re-measured before every pair and the best kept: the hardware's rate, not the load's.
        peak = max(peak, matmul_peak(opts.device, dtype, peak_size))
        for name in ("chowa", "trainer"):
            out = work / f"{name}-run"
            shutil.rmtree(out, ignore_errors=True)
            result = run_chowa(setup, out) if name == "chowa" else run_trainer(setup, out, stream)
            results[name].append(result)
            print(f"pair {pair + 1} {name:8s} {result.tokens_per_s:9,.0f} tok/s ({result.tokens_per_cpu_s:,.0f} per "
                  f"CPU s)  wall {result.wall_s:6.1f} s  loss step 1 {result.first_loss:.4f}, last {LOG_EVERY} steps "
                  f"{result.final_loss:.4f}", flush=True)
    report(results, peak)


def report(results: dict[str, list[Result]], peak: float) -> None:
    """A markdown table, pair by pair and medians, ready for BENCHMARKS.md."""
    chowa_runs, trainer_runs = results["chowa"], results["trainer"]
    ratios = [a.tokens_per_s / b.tokens_per_s for a, b in zip(chowa_runs, trainer_runs, strict=True)]
    cpu_ratios = [a.tokens_per_cpu_s / b.tokens_per_cpu_s for a, b in zip(chowa_runs, trainer_runs, strict=True)]
    print(f"\npeak {peak / 1e9:,.1f} GFLOP/s (best matmul); {chowa_runs[0].flops_per_token:,.0f} FLOPs/token\n")
    print("| pair | chowa tok/s | Trainer tok/s | chowa/Trainer | chowa MFU | Trainer MFU | "
          "chowa/Trainer per CPU s | chowa wall s | Trainer wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    pairs = zip(chowa_runs, trainer_runs, ratios, cpu_ratios, strict=True)
    rows = [(str(i), a.tokens_per_s, b.tokens_per_s, ratio, cpu_ratio, a.wall_s, b.wall_s)
            for i, (a, b, ratio, cpu_ratio) in enumerate(pairs, 1)]
    med = statistics.median
    rows.append(("median", med(r.tokens_per_s for r in chowa_runs), med(r.tokens_per_s for r in trainer_runs),
                 med(ratios), med(cpu_ratios), med(r.wall_s for r in chowa_runs), med(r.wall_s for r in trainer_runs)))
    flops = chowa_runs[0].flops_per_token
    for label, chowa_tps, trainer_tps, ratio, cpu_ratio, chowa_wall, trainer_wall in rows:
        print(f"| {label} | {chowa_tps:,.0f} | {trainer_tps:,.0f} | {ratio:.3f} | {chowa_tps * flops / peak:.2%} | "
              f"{trainer_tps * flops / peak:.2%} | {cpu_ratio:.3f} | {chowa_wall:.1f} | {trainer_wall:.1f} |")
    print(f"\nloss at step 1: chowa {chowa_runs[0].first_loss:.4f}, Trainer {trainer_runs[0].first_loss:.4f}; "
          f"mean over the last {LOG_EVERY} steps: chowa {chowa_runs[0].final_loss:.4f}, "
          f"Trainer {trainer_runs[0].final_loss:.4f}")
    print(f"chowa/Trainer tokens/s per pair: median {med(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
