"""chowa's PPO against TRL's last PPOTrainer, side by side: samples per second and peak memory of whole PPO steps.

TRL's PPO (`trl==1.12.0`, `trl.experimental.ppo`; later TRL removed it) keeps four separate models: policy, frozen
reference, reward model and a value model, all full copies, policy and value trained whole. chowa runs the same
work in its `separate` layout (a frozen reference and its own critic trunk), once with the whole policy training
as in TRL (`chowa-separate-all`) and once with trlx's default of the top `--unfrozen` blocks, and in its `hydra`
layout (the bottom of the policy frozen and shared, the reference a copy of the top blocks, the value a head on the
policy; trlx's design). Every side gets the same random GPT-NeoX policy and reward model (saved once, in fp32),
the same prompts rendered in the same chat format, the same rollouts per step, generation batch, response length,
PPO epochs, optimizer batch and micro-batch, learning rate and KL coefficient, sampling at temperature 1.

A step is everything PPO does for one batch of rollouts: sampling, reward-model scoring, the experience pass
(policy, reference, values), GAE, and the PPO epochs of updates. Seconds per step are the median over the steps
after the first (which warms allocators and builds the optimizer state); samples per second = rollouts per step /
that median. Memory is the process's peak resident set (`VmHWM`, CPU) or `torch.cuda.max_memory_allocated`
(GPU), with the resident set before any model was built reported beside it (imports differ: TRL pulls datasets and
the Trainer). Each side runs in a fresh subprocess; TRL runs in a virtual environment of its own built by this
script (`.venv/trl-1.12.0`, TRL installed without its dependencies, borrowing this venv's torch and transformers),
so TRL's pins never touch chowa's and both sides run the very same torch and transformers.

Run as:
    OMP_NUM_THREADS=2 python benchmarks/ppo_vs_trl.py                      # CPU, fp32
    python benchmarks/ppo_vs_trl.py --device cuda --dtype bf16 --rollouts 64 --hidden 1024 --layers 16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("trl", "chowa-separate-all", "chowa-separate", "chowa-hydra")
TRL = ["trl==1.12.0"]


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="bf16: autocast on both sides")
    parser.add_argument("--hidden", type=int, default=384, help="hidden size of the random GPT-NeoX")
    parser.add_argument("--layers", type=int, default=6, help="its number of blocks")
    parser.add_argument("--unfrozen", type=int, default=2, help="chowa's method.num_layers_unfrozen (trlx: 2)")
    parser.add_argument("--rollouts", type=int, default=16, help="rollouts per PPO step (= generation batch)")
    parser.add_argument("--micro-batch", type=int, default=8, help="samples per forward/backward")
    parser.add_argument("--response-length", type=int, default=32, help="new tokens per rollout at most")
    parser.add_argument("--prompt-length", type=int, default=64, help="prompts keep their last this-many tokens")
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="PPO steps per run (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, round-robin")
    parser.add_argument("--work", type=Path, help="where the shared models and prompts go (default: a temp dir)")
    parser.add_argument("--side", choices=SIDES, help="run one side in this process (used internally)")
    return parser.parse_args(argv)


# --- the shared inputs ----------------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace, work: Path) -> None:
    """Tokenizer, random policy and reward model, and the prompts (as chat records and as rendered ids)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

    from chowa.config import load_config
    from chowa.data.prompts import read_prompts
    from chowa.formats import encode_prompt, get_format, save_format
    from chowa.tokenizer import load_tokenizer
    from chowa.tokenizer.train import TokenizerTrainConfig
    from chowa.tokenizer.train import main as train_tokenizer

    cfg = load_config(TokenizerTrainConfig, overrides=[f"out={work / 'tokenizer'}", "vocab_size=2000"],
                      flags={"input": ["builtin:corpus/*.txt", "builtin:corpus/*.jsonl"]})
    tokenizer = load_tokenizer(train_tokenizer(cfg))
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers,
                           num_attention_heads=max(1, args.hidden // 64), intermediate_size=4 * args.hidden,
                           max_position_embeddings=args.prompt_length + args.response_length + 8,
                           tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    fmt = get_format("rinna")
    reward_config = copy.deepcopy(config)
    reward_config.num_labels = 1
    for name, model, seed in (("policy", GPTNeoXForCausalLM, 0), ("reward", GPTNeoXForSequenceClassification, 1)):
        torch.manual_seed(seed)
        model = model(config if name == "policy" else reward_config)
        model.save_pretrained(work / name)
        tokenizer.save_pretrained(work / name)
        save_format(work / name, fmt.name)
    prompts = read_prompts(["builtin:sft/train.jsonl"])[:args.rollouts * args.steps]
    with (work / "prompts.jsonl").open("w", encoding="utf-8") as records, \
            (work / "prompt_ids.jsonl").open("w", encoding="utf-8") as ids:
        for prompt in prompts:
            records.write(json.dumps({"messages": prompt.messages}, ensure_ascii=False) + "\n")
            rendered = encode_prompt(prompt.messages, fmt, tokenizer)[-args.prompt_length:]
            ids.write(json.dumps({"input_ids": rendered}) + "\n")


# --- one side, in its own process -----------------------------------------------------------------------------------


def _memory_now_and_peak() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in GB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[key].split()[0]) / 2**20 for key in ("VmRSS", "VmHWM"))


def _peak_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return _memory_now_and_peak()[1]


def run_trl(args: argparse.Namespace, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    baseline = _memory_now_and_peak()[0]
    tokenizer = AutoTokenizer.from_pretrained(work / "policy")
    tokenizer.padding_side = "left"
    policy, reference = (AutoModelForCausalLM.from_pretrained(work / "policy") for _ in range(2))
    reward, value = (AutoModelForSequenceClassification.from_pretrained(work / "reward", num_labels=1)
                     for _ in range(2))
    prompts = [json.loads(line) for line in (work / "prompt_ids.jsonl").read_text().splitlines()]
    ends: list[float] = []

    class StepTimes(TrainerCallback):
        def on_train_begin(self, *_, **__):
            ends.append(time.perf_counter())

        def on_step_end(self, *_, **__):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            ends.append(time.perf_counter())

    config = PPOConfig(output_dir=str(work / "trl-out"), per_device_train_batch_size=args.micro_batch,
                       gradient_accumulation_steps=args.rollouts // args.micro_batch, num_mini_batches=1,
                       num_ppo_epochs=args.ppo_epochs, learning_rate=1e-5, lr_scheduler_type="constant",
                       response_length=args.response_length, temperature=1.0, kl_coef=0.05, stop_token="eos",
                       local_rollout_forward_batch_size=args.rollouts, total_episodes=args.rollouts * args.steps,
                       num_sample_generations=0, save_strategy="no", report_to=[], logging_steps=1, seed=0,
                       use_cpu=args.device == "cpu", bf16=args.dtype == "bf16", dataloader_num_workers=0)
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=reference,
                         reward_model=reward, value_model=value, train_dataset=Dataset.from_list(prompts),
                         callbacks=[StepTimes()])
    trainer.train()
    eos = [r["val/num_eos_tokens"] for r in trainer.state.log_history if "val/num_eos_tokens" in r]
    return {"seconds": [b - a for a, b in zip(ends, ends[1:], strict=False)], "baseline_gb": baseline,
            "peak_gb": _peak_gb(args.device), "eos_per_step": statistics.mean(eos)}


def run_chowa(args: argparse.Namespace, work: Path, side: str) -> dict:
    """`chowa-LAYOUT`, or `chowa-separate-all`: every block of the policy trains, as in TRL."""
    import torch

    from chowa.config import load_config
    from chowa.ppo.train import PPOConfig, PPORun
    from chowa.runtime import Runtime
    from chowa.training.optim import build_optimizer, build_scheduler

    baseline = _memory_now_and_peak()[0]
    layout = side.removeprefix("chowa-").removesuffix("-all")
    unfrozen = -1 if side.endswith("-all") else args.unfrozen
    out = work / side
    precision = "bf16" if args.dtype == "bf16" else "'no'"  # quoted: YAML reads a bare no as false
    cfg = load_config(PPOConfig, overrides=[
        f"out={out}", f"model={work / 'policy'}", f"data.prompts=[{work / 'prompts.jsonl'}]",
        f"data.max_prompt_length={args.prompt_length}", f"reward.model={work / 'reward'}",
        f"reward.batch_size={args.rollouts}", f"generation.max_new_tokens={args.response_length}",
        f"method.layout={layout}", f"method.num_layers_unfrozen={unfrozen}",
        f"method.num_rollouts={args.rollouts}", f"method.chunk_size={args.rollouts}",
        f"method.batch_size={args.rollouts}", f"method.minibatch_size={args.micro_batch}",
        f"method.ppo_epochs={args.ppo_epochs}", "method.init_kl_coef=0.05", "optim.lr=1e-5",
        f"runtime.cpu={str(args.device == 'cpu').lower()}",
        f"runtime.mixed_precision={precision}", f"train.steps={args.steps}"])
    # The two phases of each step of `chowa ppo` (chowa.ppo.train.main), without its evaluation and checkpoints.
    runtime = Runtime(cfg.runtime, out_dir=out)
    run = PPORun(cfg, runtime)
    optimizer = build_optimizer(run.model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.train.steps * cfg.method.ppo_epochs)
    run.model, optimizer = runtime.accelerator.prepare(run.model, optimizer)
    torch.manual_seed(cfg.runtime.seed)
    seconds, lengths = [], []
    for step in range(cfg.train.steps):
        started = time.perf_counter()
        experiences, stats, _ = run.collect(step)
        run.update(experiences, step, optimizer, scheduler, stats["kl"].item())
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
        lengths.append(stats["response_length"].item())
    return {"seconds": seconds, "baseline_gb": baseline, "peak_gb": _peak_gb(args.device),
            "response_length": statistics.mean(lengths)}


# --- the driver -----------------------------------------------------------------------------------------------------


def _side_python(side: str) -> str:
    if side != "trl":
        return sys.executable
    sys.path.insert(0, str(ROOT))
    from tools.side_env import side_python

    return str(side_python("trl-1.12.0", TRL))


def main(argv: list[str] | None = None) -> list[dict]:
    args = _arguments(argv)
    if args.side:
        result = run_trl(args, args.work) if args.side == "trl" else run_chowa(args, args.work, args.side)
        print(json.dumps(result))
        return []
    if args.rollouts % args.micro_batch:
        raise SystemExit("--rollouts must be a multiple of --micro-batch")
    passed = [a for a in (argv if argv is not None else sys.argv[1:])]
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        prepare(args, work)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1", "PYTHONPATH": ""}
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for _ in range(args.repeats):  # round-robin, so a noisy neighbour slows every side alike
            for side in SIDES:
                result = subprocess.run([_side_python(side), __file__, *passed, "--work", str(work), "--side", side],
                                        capture_output=True, text=True, env=env, cwd=ROOT)
                if result.returncode != 0:
                    raise SystemExit(f"{side} failed:\n{result.stderr[-3000:]}")
                runs[side].append(json.loads(result.stdout.strip().splitlines()[-1]))
    return _report(args, runs)


def _report(args: argparse.Namespace, runs: dict[str, list[dict]]) -> list[dict]:
    import torch

    rows = []
    for side, found in runs.items():
        step = statistics.median(statistics.median(r["seconds"][1:]) for r in found)
        peak = statistics.median(r["peak_gb"] for r in found)
        baseline = statistics.median(r["baseline_gb"] for r in found)
        if side == "trl":  # TRL trains every rollout at the full response width, masked after an EOS
            eos = statistics.mean(r["eos_per_step"] for r in found)
            response = f"{args.response_length} wide, {eos:.1f} EOS / step"
        else:
            response = f"{statistics.mean(r['response_length'] for r in found):.1f}"
        rows.append({"side": side, "response": response, "seconds_per_step": step,
                     "samples_per_second": args.rollouts / step, "peak_gb": peak, "baseline_gb": baseline,
                     "above_baseline_gb": peak - baseline})
    trl = rows[0]
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "CPU"
    print(f"# device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {args.dtype}; random "
          f"GPT-NeoX {args.layers} x {args.hidden}, vocab 2000; {args.rollouts} rollouts x <= {args.response_length} "
          f"new tokens per step, prompts <= {args.prompt_length} tokens, {args.ppo_epochs} PPO epochs, one optimizer "
          f"step per epoch, micro-batch {args.micro_batch}; chowa num_layers_unfrozen {args.unfrozen}; "
          f"{args.steps - 1} timed steps x {args.repeats} runs")
    print("| side | response tokens | s / step | samples / s | vs TRL | peak memory (GB) | above baseline (GB) "
          "| vs TRL |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['side']} | {row['response']} | {row['seconds_per_step']:.2f} | "
              f"{row['samples_per_second']:.2f} | {row['samples_per_second'] / trl['samples_per_second']:.2f}x | "
              f"{row['peak_gb']:.3f} | {row['above_baseline_gb']:.3f} | "
              f"{row['above_baseline_gb'] / trl['above_baseline_gb']:.2f}x |")
    return rows


if __name__ == "__main__":
    main()
