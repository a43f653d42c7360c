"""Shared fixtures: hermetic (no hub), tiny inputs, `../shared` used only where present."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# `accelerate launch` flags of each way to run two CPU processes. DDP and FSDP2 (full shard: each decoder layer its
# own unit, sharded checkpoints) run over gloo with runtime.cpu=true; DeepSpeed runs on its own CPU accelerator,
# without it (chowa.runtime.deepspeed_on_cpu).
LAUNCH_FLAGS = {
    "ddp": ["--multi_gpu"],
    "fsdp": ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
             "--fsdp_reshard_after_forward", "true", "--fsdp_state_dict_type", "SHARDED_STATE_DICT"],
    **{f"zero{stage}": ["--use_deepspeed", "--zero_stage", str(stage), "--gradient_accumulation_steps", "1",
                        "--zero3_save_16bit_model", "true"] for stage in (2, 3)},
}


def launch_two_processes(stage: str, overrides: list[str], sharding: str = "ddp") -> subprocess.CompletedProcess:
    """`chowa STAGE` under `accelerate launch` with two CPU processes, with `sharding` one of LAUNCH_FLAGS.

    accelerate 1.x's `launch --cpu` starts a single process unless given an MPI hostfile, so CPU multi-process runs
    go through `--multi_gpu` (torchrun) or `--use_fsdp` with `runtime.cpu=true`, which selects gloo.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
               *LAUNCH_FLAGS[sharding], "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "0", "-m", "chowa", stage, *overrides,
               f"runtime.cpu={str(not sharding.startswith('zero')).lower()}"]
    # CPU processes even on a machine with a GPU (FSDP2 would place its shards there, DeepSpeed would use NCCL)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


class Server:
    """A `chowa serve` subprocess: its base URL, its process and what it has written to stderr so far."""

    def __init__(self, process: subprocess.Popen, url: str, log: list[str]):
        self.process, self.url, self.log = process, url, log

    def stop(self, timeout: float = 120, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or `sig`), then wait for the exit status (killed if it does not come)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.contextmanager
def start_server(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[Server]:
    """`chowa serve ARGS --port 0` on 127.0.0.1 until the block ends (then SIGTERM); yields the `Server` once
    /health answers. The /health poll bypasses any proxy so the test stays on this machine."""
    command = [sys.executable, "-m", "chowa", "serve", *args, "--port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "2", **(env or {})})
    log: list[str] = []
    url = None
    deadline = time.monotonic() + timeout
    while url is None:
        line = process.stderr.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("chowa serve did not start:\n" + "".join(log) + process.stderr.read())
        log.append(line)
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
    threading.Thread(target=lambda: log.extend(process.stderr), daemon=True).start()  # keep the pipe drained
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while opener.open(f"{url}/health", timeout=10).status != 200:
        time.sleep(0.1)
    server = Server(process, url, log)
    try:
        yield server
    finally:
        server.stop()


# Strings every tokenizer must round-trip: whitespace runs, tabs, newlines, CRLF, emoji, combining marks,
# scripts absent from training (Georgian, Devanagari), and the examples from the rinna bug report.
HARD_STRINGS = [
    "  吾輩は  猫である   ",
    "ქართული ენა",
    "नमस्ते दुनिया",
    "a\tb\t\tc",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\n",
    "😀👍🏽 家族👨‍👩‍👧",
    "é vs e\u0301, が vs か\u3099",
    "   leading and trailing   ",
    "12345 ６７８ 3.14",
    "ｶﾀｶﾅ　全角スペース　",
    "",
    " ",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (a fresh clone has no shared folder)")
    return SHARED_DATA


_JA = ["今日は朝から雨が降っている。", "駅まで歩いて十分かかります。", "新しいパソコンでPythonを学んでいる。",
       "お茶を飲みながら本を読むのが好きだ。", "明日の会議は午後3時に始まります。", "冬になると山は雪で白くなる。",
       "母は毎朝６時に起きて弁当を作る。", "この店のラーメンはとても美味しい。", "電車が遅れたので、学校に遅刻した。",
       "「ありがとう」と彼女は笑顔で言った。"]
_EN = ["It has been raining since this morning.", "The meeting starts at 3 p.m. tomorrow.",
       "She said \"thank you\" with a smile.", "Reading a book with a cup of tea is my favourite thing.",
       "The train was late, so I was late for school.", "In winter the mountains turn white with snow.",
       "Tokyo has 23 special wards (and many cities).", "Learning Python on a new laptop is fun!"]


@pytest.fixture(scope="session")
def project_corpus(tmp_path_factory) -> list[Path]:
    """A small bilingual corpus written by the test suite: plain text plus multi-line JSONL documents."""
    folder = tmp_path_factory.mktemp("corpus")
    lines = [f"{_JA[i % len(_JA)]}{_JA[(i * 3 + 1) % len(_JA)]}" for i in range(120)]
    lines += [f"{_EN[i % len(_EN)]} {_EN[(i * 5 + 2) % len(_EN)]}" for i in range(120)]
    (folder / "mixed.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs = [{"text": f"{_JA[i % len(_JA)]}\n{_EN[i % len(_EN)]}\n  indented\tline {i}"} for i in range(40)]
    (folder / "docs.jsonl").write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs), encoding="utf-8")
    return [folder / "mixed.txt", folder / "docs.jsonl"]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, project_corpus) -> Path:
    """A 420-piece SentencePiece tokenizer trained on the project corpus (byte newlines)."""
    from chowa.config import load_config
    from chowa.tokenizer.train import TokenizerTrainConfig
    from chowa.tokenizer.train import main as train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    cfg = load_config(TokenizerTrainConfig, overrides=[f"out={out}", "vocab_size=420"],
                      flags={"input": [str(p) for p in project_corpus]})
    return train_tokenizer(cfg)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A randomly initialised 2-layer GPT-NeoX (hidden 32) with that tokenizer, saved as a plain HF folder."""
    from chowa.models.build import build_model
    from chowa.tokenizer import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model("tiny", tokenizer=tokenizer, seed=0, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
