#!/usr/bin/env bash
# What sharding buys on CPU processes: peak memory of the largest process and wall time of a whole 2-process
# `chowa pretrain` run (start-up, 8 steps, checkpoint, final folder) under FSDP2, ZeRO-2 and ZeRO-3, each against
# DDP, timed by farm-bench (pairs A B A B ..., median ratio). The model is the `tiny` preset widened to 25M
# parameters (hidden 512, 8 layers), so its fp32 weights, gradients and AdamW moments (400 MB a copy) stand out from
# the ~0.5 GB every torch process starts with. Run alone on an idle machine.
# Run as: bash benchmarks/sharding_cpu.sh        (OUT=runs/sharding_cpu, PYTHON=.venv/bin/python, RUNS=3)
set -euo pipefail
OUT=${OUT:-runs/sharding_cpu}
PY=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-3}
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
    "train.steps=8 train.batch_size=2 train.eval_every=0 train.save_every=8 model_config.hidden_size=512" \
    "model_config.num_hidden_layers=8 model_config.num_attention_heads=8 model_config.intermediate_size=2048" \
    "runtime.cpu=$cpu"
}
for mode in fsdp zero2 zero3; do
  echo "== $mode against ddp" | tee "$OUT/$mode.txt"
  # shellcheck disable=SC2046
  farm-bench -n "$RUNS" --warmup 1 --timeout 1800 --vs "$(command_for ddp)" -- $(command_for "$mode") \
    | tee -a "$OUT/$mode.txt"
done
