#!/usr/bin/env bash
# The GPU check (issue 19): what only a GPU shows, in one script of under 10 minutes on one GPU.
#   1. bf16 pretraining tokens/s and MFU against transformers.Trainer on the `small` preset;
#   2. peak memory and samples/s of PPO, hydra against separate (and the other layouts);
#   3. `accelerate launch` with FSDP2 and with DeepSpeed ZeRO-3 for 20 SFT steps each, every step's loss checked
#      against plain DDP (one process): PASS within 0.05 (bf16 autocast rounds differently under each wrapper);
#   4. `chowa serve` throughput (GPT-NeoX).
# Every step writes OUT/<step>.log and its table; the step's exit status is recorded and the script goes on. The
# steps' time limits add up to 530 s.
# Nothing is downloaded: the SFT model is pretrained here on chowa's own corpus. DeepSpeed comes with `make setup`
# (pip install 'chowa[deepspeed]'); without it the ZeRO-3 step is reported as skipped. The CPU counterparts of
# steps 2-3 (every stage and PPO layout under FSDP2 and ZeRO-2/3 on two processes) are `dist` tests in the suite.
# Run as: bash benchmarks/gpu_check.sh          (OUT=runs/gpu_check, PYTHON=.venv/bin/python)
# Status: not yet run on a GPU by this project (none was lent so far); BENCHMARKS.md says so until it has been.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
PY=${PYTHON:-.venv/bin/python}
CHOWA=(${PY} -m chowa)
LAUNCH=(${PY} -m accelerate.commands.launch --num_machines 1 --num_processes 1 --mixed_precision bf16
        --dynamo_backend no --main_process_port 0)
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
"$PY" -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'accelerate', accelerate.__version__)" | tee -a "$OUT/device.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep the log, show its tail
  local name=$1 limit=$2; shift 2
  echo "== $name"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/$name.log"
  tail -n 20 "$OUT/$name.log" | grep -v "rc=" || true
}

step pretrain 110 "$PY" benchmarks/pretrain_throughput.py --device cuda --preset small --batch-size 16 \
  --seq-len 512 --steps 40 --warmup 10 --pairs 1 --work "$OUT/pretrain"
step ppo_memory 80 "$PY" benchmarks/ppo_memory.py --device cuda --hidden 1024 --layers 12 --vocab 32000 \
  --rollouts 32 --batch-size 16 --prompt-len 128 --response-len 128 --steps 3

# SFT under DDP (one process), FSDP2 and ZeRO-3: the same 20 steps from the same base, losses compared.
SFT=(--config configs/tiny/sft.yaml "model=$OUT/base" train.steps=20 train.eval_every=0 train.save_every=0
     train.batch_size=16 runtime.mixed_precision=bf16)
step sft_base 60 bash -c "${CHOWA[*]} tokenizer train --config configs/tiny/tokenizer.yaml out=$OUT/tokenizer && \
  ${CHOWA[*]} pretrain --config configs/tiny/pretrain.yaml out=$OUT/base tokenizer=$OUT/tokenizer train.steps=100 \
  train.eval_every=0 train.save_every=0"
step sft_ddp 40 "${CHOWA[@]}" sft "${SFT[@]}" "out=$OUT/sft-ddp"
step sft_fsdp 60 "${LAUNCH[@]}" --use_fsdp --fsdp_version 2 --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP \
  --fsdp_transformer_layer_cls_to_wrap GPTNeoXLayer --fsdp_state_dict_type SHARDED_STATE_DICT \
  -m chowa sft "${SFT[@]}" "out=$OUT/sft-fsdp"
if "$PY" -c "import deepspeed" 2>/dev/null; then
  step sft_zero3 80 "${LAUNCH[@]}" --use_deepspeed --zero_stage 3 --zero3_init_flag true \
    --zero3_save_16bit_model true --gradient_accumulation_steps 1 --gradient_clipping 1.0 \
    -m chowa sft "${SFT[@]}" "out=$OUT/sft-zero3"
else
  echo "== sft_zero3: skipped, deepspeed is not installed" | tee "$OUT/sft_zero3.log"
fi
"$PY" - "$OUT" <<'PY' | tee "$OUT/sft_losses.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def losses(name):
    path = out / name / "metrics.jsonl"
    return {r["step"]: r["train_loss"] for r in map(json.loads, path.open()) if "train_loss" in r} if path.is_file() else {}
ddp = losses("sft-ddp")
print("| layout | steps | first loss | last loss | max abs difference from DDP | within 0.05 |")
print("|---|---|---|---|---|---|")
for name in ("sft-ddp", "sft-fsdp", "sft-zero3"):
    run = losses(name)
    if not run:
        print(f"| {name} | - | - | - | not run | - |")
        continue
    common = sorted(set(run) & set(ddp))
    diff = max(abs(run[s] - ddp[s]) for s in common) if common else float("nan")
    verdict = "PASS" if common and len(common) == len(ddp) and diff <= 0.05 else "FAIL"
    print(f"| {name} | {len(run)} | {run[min(run)]:.4f} | {run[max(run)]:.4f} | {diff:.2e} | {verdict} |")
PY

# chowa against the same requests one at a time (transformers serve fails on GPT-NeoX in 5.24: see BENCHMARKS)
step serve 100 "$PY" benchmarks/serve_throughput.py --device cuda --arch gpt-neox --quick --servers chowa \
  --startup-timeout 60 --out "$OUT/serve.json"
echo "figures in $OUT; copy them into BENCHMARKS.md with the device line from $OUT/device.txt"
