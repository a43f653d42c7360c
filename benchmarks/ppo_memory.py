"""PPO memory and speed per layout: peak memory and seconds per PPO step for separate, shared, hydra and
reference-branch at the same model size.

One PPO step here is what `chowa.ppo.train` does after sampling (sampling runs the same policy in every layout, so
it is left out): the experience pass (policy logits, values and reference logits, no autograd) over a rollout of
`--rollouts` sequences, then `--ppo-epochs` passes of forward, clipped PPO loss, backward and AdamW step in batches
of `--batch-size`, on random token ids (prompt `--prompt-len` + response `--response-len`). Every layout freezes
the same bottom (`--unfrozen` top blocks train) and uses the same optimizer, so the differences are the layouts':
a full reference copy and a full critic trunk (separate) against a value head on the policy (shared) or on a
branch (reference-branch), and a full reference copy against a top-k reference branch (hydra, reference-branch).

Each layout runs in a fresh subprocess so peak memory is its own: `torch.cuda.max_memory_allocated` on a GPU,
else the process's peak resident set size (`ru_maxrss`), which includes the ~0.3-0.5 GB every torch process holds
before any model is built (the same for every layout; reported separately as `baseline_rss`). Seconds per step
are the median of `--steps` timed steps after one warm-up step; with `--repeats N` each layout runs N times,
round-robin, and the medians over the runs are reported.

Run as:
    python benchmarks/ppo_memory.py                       # CPU, GPT-NeoX 8 x 512, vocab 8000
    python benchmarks/ppo_memory.py --device cuda --hidden 1024 --layers 16 --rollouts 32
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from chowa.config.ppo import LAYOUTS
from chowa.ppo import losses
from chowa.ppo.layouts import PPOModel


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--unfrozen", type=int, default=2, help="num_layers_unfrozen for every layout")
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--response-len", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="subprocesses per layout, run round-robin")
    parser.add_argument("--layout", choices=LAYOUTS, help="run one layout in this process (used internally)")
    return parser.parse_args(argv)


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def ppo_step(model: PPOModel, optimizer: torch.optim.Optimizer, ids: torch.Tensor, prompt_len: int,
             batch_size: int, ppo_epochs: int) -> None:
    """Experience pass, then `ppo_epochs` passes of PPO updates over the rollout `ids` (N, P + R), through the
    same `PPOModel.forward` (response log-probs, values, reference log-probs, entropy) as `chowa ppo`."""
    mask = torch.ones_like(ids)
    model.eval()
    with torch.no_grad():
        old = model(ids, mask, first=prompt_len, with_reference=True, with_entropy=True)
        response_mask = torch.ones_like(old.logprobs)
        scores = torch.randn(ids.shape[0], device=ids.device)
        rewards = losses.rollout_rewards(old.logprobs, old.ref_logprobs, response_mask, scores, kl_coef=0.05)
        advantages, returns = losses.gae_advantages_and_returns(rewards, old.values, response_mask)
    model.train()
    for _ in range(ppo_epochs):
        for first in range(0, ids.shape[0], batch_size):
            part = slice(first, first + batch_size)
            new = model(ids[part], mask[part], first=prompt_len, with_reference=False)
            loss = losses.ppo_loss(new.logprobs, old.logprobs[part], new.values, old.values[part],
                                   losses.whiten(advantages[part], response_mask[part]), returns[part],
                                   response_mask[part])
            loss.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def run_layout(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    baseline = _peak_bytes(device)
    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                           num_attention_heads=max(1, args.hidden // 64), intermediate_size=4 * args.hidden,
                           max_position_embeddings=args.prompt_len + args.response_len, tie_word_embeddings=False)
    model = PPOModel(GPTNeoXForCausalLM(config), args.layout, args.unfrozen).to(device)
    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(groups["policy"] + groups["value"], lr=1e-5)
    ids = torch.randint(4, args.vocab, (args.rollouts, args.prompt_len + args.response_len), device=device)
    timings = []
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        ppo_step(model, optimizer, ids, args.prompt_len, args.batch_size, args.ppo_epochs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:  # the first step warms allocators and creates the optimizer state
            timings.append(time.perf_counter() - started)
    return {"layout": args.layout, "peak_gb": round(_peak_bytes(device) / 2**30, 3),
            "baseline_rss_gb": round(baseline / 2**30, 3) if device.type == "cpu" else 0.0,
            "seconds_per_step": round(statistics.median(timings), 3),
            "total_params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "trainable_params_m": round(sum(p.numel() for g in groups.values() for p in g) / 1e6, 2)}


def main(argv: list[str] | None = None) -> list[dict]:
    args = _arguments(argv)
    if args.layout:
        print(json.dumps(run_layout(args)))
        return []
    passed = list(argv if argv is not None else sys.argv[1:])
    runs: dict[str, list[dict]] = {layout: [] for layout in LAYOUTS}
    for _ in range(args.repeats):  # round-robin, so a noisy neighbour slows every layout alike
        for layout in LAYOUTS:
            result = subprocess.run([sys.executable, __file__, *passed, "--layout", layout], capture_output=True,
                                    text=True, check=True)
            runs[layout].append(json.loads(result.stdout.strip().splitlines()[-1]))
    rows = [runs[layout][0] | {"seconds_per_step": round(statistics.median(r["seconds_per_step"] for r in found), 2),
                               "peak_gb": round(statistics.median(r["peak_gb"] for r in found), 3)}
            for layout, found in runs.items()]
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "CPU"
    print(f"# device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; GPT-NeoX "
          f"{args.layers} x {args.hidden}, vocab {args.vocab}, unfrozen {args.unfrozen}; rollout {args.rollouts} x "
          f"({args.prompt_len} + {args.response_len}) tokens, batch {args.batch_size}, {args.ppo_epochs} epochs; "
          f"baseline RSS {rows[0]['baseline_rss_gb']} GB")
    print("| layout | params (M) | trainable (M) | peak memory (GB) | s / PPO step |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['layout']} | {row['total_params_m']} | {row['trainable_params_m']} | {row['peak_gb']} | "
              f"{row['seconds_per_step']} |")
    return rows


if __name__ == "__main__":
    main()
