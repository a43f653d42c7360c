#!/usr/bin/env bash
# The long-context demo on a CPU (issue 18): the tiny preset trained at 256 positions on real text, then
#   (a) read at 1,024 positions unchanged, (b) extended x4 by linear interpolation and trained on at 1,024,
#   (c) the same with YaRN; held-out loss by position and passkey retrieval for all of them, and the training
#   memory / speed at 256 vs 1,024 positions with and without gradient checkpointing.
# The same commands extend a real model (model=FOLDER context.extend_to=8192 data.seq_len=8192).
# Run as: bash examples/long_context.sh            (about 15 minutes on 2 cores; RUN=runs/long by default)
set -euo pipefail
SHARED=${SHARED:-../shared/data}
RUN=${RUN:-runs/long}
CHOWA=${CHOWA:-.venv/bin/chowa}
PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -f "$SHARED/wagahaiwa_nekodearu.txt" ]; then
  echo "needs the real text in $SHARED (wagahaiwa_nekodearu.txt, botchan.txt); set SHARED=DIR" >&2
  exit 2
fi

# Training documents of 40 lines each from the first 90% of every file; the last 10% is held out whole.
mkdir -p "$RUN/data"
"$PYTHON" - "$SHARED" "$RUN/data" <<'PY'
import json, sys
from pathlib import Path
shared, out = Path(sys.argv[1]), Path(sys.argv[2])
train, heldout = [], []
for name in ("wagahaiwa_nekodearu.txt", "botchan.txt"):
    lines = [l.rstrip("\r") for l in (shared / name).read_text(encoding="utf-8").split("\n") if l.strip()]
    cut = int(len(lines) * 0.9)
    train += ["\n".join(lines[i:i + 40]) for i in range(0, cut, 40)]
    heldout.append("\n".join(lines[cut:]))
(out / "train.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in train),
                                 encoding="utf-8")
for i, text in enumerate(heldout):
    (out / f"heldout{i}.txt").write_text(text + "\n", encoding="utf-8")
print(f"{len(train)} training documents, {sum(map(len, heldout)):,} held-out characters")
PY

o() { echo "$@" | sed "s|runs/long|$RUN|g"; }
"$CHOWA" tokenizer train --config configs/long/tokenizer.yaml $(o input=[runs/long/data/train.jsonl] out=runs/long/tokenizer)
"$CHOWA" pretrain --config configs/long/pretrain.yaml $(o out=runs/long/base tokenizer=runs/long/tokenizer data.train=[runs/long/data/train.jsonl])
for method in linear yarn; do
  "$CHOWA" pretrain --config configs/long/extend.yaml $(o out=runs/long/$method model=runs/long/base tokenizer=runs/long/tokenizer data.train=[runs/long/data/train.jsonl]) context.method=$method
done

HELDOUT=("$RUN"/data/heldout*.txt)
# The base model within its trained window, then every model at 1,024 positions.
"$CHOWA" eval long --model "base-at-256=$RUN/base" --input "${HELDOUT[@]}" --length 256 --windows 48 \
  --passkey-lengths 256 --passkey-trials 8 --out "$RUN/eval-256"
"$CHOWA" eval long --model "base=$RUN/base" --model "linear=$RUN/linear" --model "yarn=$RUN/yarn" \
  --input "${HELDOUT[@]}" --length 1024 --windows 28 --passkey-lengths 256 512 1024 --passkey-trials 8 \
  --out "$RUN/eval-1024"
"$PYTHON" benchmarks/long_context_memory.py --model "$RUN/linear" --lengths 256,1024 --steps 4 --repeats 2
