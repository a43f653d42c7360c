#!/usr/bin/env bash
# What sharding buys on CPU processes: each process's memory high-water mark during training (rank 0's
# `max_memory_mb` at the last step, before the final folder is gathered) and the wall time of a whole 2-process
# `chowa pretrain` run (start-up, 4 steps, checkpoint, final folder) under FSDP2, ZeRO-2 and ZeRO-3, each against
# DDP, timed by farm-bench (pairs A B A B ..., median ratio; its "peak" is the largest process over the whole run,
# final gather included). The model is the `tiny` preset widened to 101M parameters (hidden 1024, 8 layers), so its
# fp32 weights, gradients and AdamW moments (0.4 GB a copy) stand out from the ~0.5 GB every torch process starts
# with. Run alone on an idle machine (about 8 minutes on 2 cores).
# Run as: bash benchmarks/sharding_cpu.sh        (OUT=runs/sharding_cpu, PYTHON=.venv/bin/python, RUNS=2)
set -euo pipefail
OUT=${OUT:-runs/sharding_cpu}
PY=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-2}
mkdir -p "$OUT"
[ -f "$OUT/tokenizer/tokenizer.json" ] || "$PY" -m chowa tokenizer train --config configs/tiny/tokenizer.yaml \
  "out=$OUT/tokenizer" > "$OUT/tokenizer.log" 2>&1

declare -A FLAGS=(
  [ddp]="--multi_gpu"
  [fsdp]="--use_fsdp --fsdp_version 2 --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_reshard_after_forward true --fsdp_state_dict_type SHARDED_STATE_DICT"
  [zero2]="--use_deepspeed --zero_stage 2 --gradient_accumulation_steps 1"
  [zero3]="--use_deepspeed --zero_stage 3 --gradient_accumulation_steps 1 --zero3_save_16bit_model true"
)
command_for() {  # the whole launch of one mode, as one shell-free command line
  local mode=$1 cpu=true
  [[ $mode == zero* ]] && cpu=false
  echo "env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $PY -m accelerate.commands.launch --num_processes 2 --num_machines 1" \
    "${FLAGS[$mode]} --mixed_precision no --dynamo_backend no --main_process_port 0 -m chowa pretrain" \
    "--config configs/tiny/pretrain.yaml tokenizer=$OUT/tokenizer out=$OUT/$mode train.resume=never" \
    "train.steps=4 train.batch_size=2 train.eval_every=0 train.save_every=4 model_config.hidden_size=1024" \
    "model_config.num_hidden_layers=8 model_config.num_attention_heads=8 model_config.intermediate_size=4096" \
    "runtime.cpu=$cpu"
}
for mode in fsdp zero2 zero3; do
  echo "== $mode against ddp" | tee "$OUT/$mode.txt"
  # shellcheck disable=SC2046
  farm-bench -n "$RUNS" --warmup 0 --timeout 1800 --vs "$(command_for ddp)" -- $(command_for "$mode") \
    | tee -a "$OUT/$mode.txt"
done
"$PY" - "$OUT" <<'PY' | tee "$OUT/memory.txt"
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| mode | rank 0's memory high-water mark in training (MiB) | against DDP | median tokens/s |")
print("|---|---|---|---|")
ddp = None
for mode in ("ddp", "fsdp", "zero2", "zero3"):
    steps = [r for r in map(json.loads, (out / mode / "metrics.jsonl").open()) if "train_loss" in r]
    peak = steps[-1]["max_memory_mb"]
    ddp = ddp or peak
    speed = statistics.median(r["tokens_per_s"] for r in steps)
    print(f"| {mode} | {peak:,.0f} | {peak / ddp:.2f} | {speed:,.0f} |")
PY
