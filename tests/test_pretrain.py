"""Pretraining: the loss learns the corpus, checkpoints reload in plain transformers, resume is exact."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from chowa.config import load_config
from chowa.models.build import build_model
from chowa.models.presets import build_config
from chowa.pretrain import PretrainConfig
from chowa.pretrain import main as pretrain
from chowa.training.checkpoint import checkpoint_dirs
from chowa.training.plots import read_metrics
from conftest import LAUNCH_FLAGS, launch_two_processes

TINY = ["model_config.hidden_size=32", "model_config.num_hidden_layers=2", "model_config.num_attention_heads=2",
        "model_config.intermediate_size=64"]


def _overrides(out: Path, tokenizer_dir: Path, corpus: list[Path], *extra: str) -> list[str]:
    return [f"out={out}", f"tokenizer={tokenizer_dir}", f"data.train=[{','.join(str(p) for p in corpus)}]",
            "data.seq_len=32", "data.val_fraction=0.1", "train.batch_size=4", "optim.lr=3e-3", "optim.min_lr=3e-4",
            "optim.warmup_steps=5", "runtime.cpu=true", *TINY, *extra]


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in read_metrics(out / "metrics.jsonl") if "train_loss" in r}


def _command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "chowa", "pretrain", *overrides]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def test_loss_falls_below_unigram_entropy_and_model_reloads(tmp_path, tokenizer_dir, project_corpus):
    out = tmp_path / "run"
    cfg = load_config(PretrainConfig, overrides=_overrides(out, tokenizer_dir, project_corpus, "train.steps=240",
                                                           "train.eval_every=120", "train.save_every=120",
                                                           "optim.lr=1e-2"))
    pretrain(cfg)
    records = read_metrics(out / "metrics.jsonl")
    evaluated = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evaluated] == [0, 120, 240]
    assert all(r["max_memory_mb"] > 100 for r in records if "train_loss" in r)  # a torch process's resident set
    assert evaluated[-1]["val_loss"] < evaluated[-1]["unigram_entropy"] - 1.0, evaluated[-1]
    assert evaluated[-1]["val_loss"] < evaluated[1]["val_loss"] < evaluated[0]["val_loss"]
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000120", "step-00000240"]
    assert (out / "loss.png").stat().st_size > 1000 and (out / "config.yaml").is_file()
    # plain transformers loads the final folder; its loss on a window equals the logged validation loss recipe
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = tokenizer("今日は朝から雨が降っている。", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    assert model.config.vocab_size == len(tokenizer) and model.config.eos_token_id == tokenizer.eos_token_id


def test_exact_resume_after_kill_9(tmp_path, tokenizer_dir, project_corpus):
    """An uninterrupted run and a run killed with SIGKILL then resumed log the same loss at every later step."""
    steps = ["train.steps=40", "train.save_every=4", "train.eval_every=0", "train.keep_checkpoints=0"]
    straight = tmp_path / "straight"
    subprocess.run(_command(_overrides(straight, tokenizer_dir, project_corpus, *steps)), env=_env(), check=True,
                   capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(_overrides(killed, tokenizer_dir, project_corpus, *steps)), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(checkpoint_dirs(killed)) < 2 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    resumed_from = int(checkpoint_dirs(killed)[-1].name.split("-")[1])
    assert 0 < resumed_from < 40
    result = subprocess.run(_command(_overrides(killed, tokenizer_dir, project_corpus, *steps)), env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming from {checkpoint_dirs(killed)[0].parent}" in result.stdout + result.stderr
    reference, after = _losses(straight), _losses(killed)
    assert sorted(after) == list(range(1, 41))
    for step in range(resumed_from + 1, 41):
        assert abs(after[step] - reference[step]) <= 1e-5, (step, after[step], reference[step])


def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path, tokenizer_dir, project_corpus):
    out = tmp_path / "run"
    overrides = _overrides(out, tokenizer_dir, project_corpus, "train.steps=100000", "train.save_every=0",
                           "train.eval_every=0")
    process = subprocess.Popen(_command(overrides), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_metrics(out / "metrics.jsonl") if (out / "metrics.jsonl").exists()
                                         else []) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    saved = checkpoint_dirs(out)
    assert len(saved) == 1 and "stopped by SIGINT" in stderr and str(saved[0]) in stderr
    state = json.loads((saved[0] / "trainer_state.json").read_text())
    assert state["step"] == max(_losses(out))


def test_bad_corpus_and_preset_are_named(tmp_path, tokenizer_dir, project_corpus):
    from chowa.errors import ChowaError

    with pytest.raises(ChowaError, match="no such file: .*missing.txt"):
        pretrain(load_config(PretrainConfig, overrides=_overrides(tmp_path / "a", tokenizer_dir,
                                                                  [tmp_path / "missing.txt"])))
    with pytest.raises(ChowaError, match="fewer than one window"):
        pretrain(load_config(PretrainConfig, overrides=_overrides(tmp_path / "b", tokenizer_dir, project_corpus,
                                                                  "data.seq_len=100000")))


@pytest.mark.dist
@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is of CPU processes")
@pytest.mark.parametrize(("sharding", "cpu", "said"), [
    ("fsdp", "false", "each process training alone: add runtime.cpu=true"),
    ("zero3", "true", "DDP over gloo: leave runtime.cpu=false")])
def test_cpu_launches_accelerate_would_run_as_something_else_are_refused(tmp_path, tokenizer_dir, project_corpus,
                                                                        sharding, cpu, said):
    """FSDP without runtime.cpu=true would start each process as its own single-process run, all writing the same
    folder; DeepSpeed with it would run DDP: chowa says so at start instead of training something else."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
               *LAUNCH_FLAGS[sharding], "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "0", "-m", "chowa", "pretrain",
               *_overrides(tmp_path / "run", tokenizer_dir, project_corpus, "train.steps=2"), f"runtime.cpu={cpu}"]
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"the launch asks for {'FSDP' if sharding == 'fsdp' else 'DeepSpeed'}, but accelerate" in result.stderr
    assert said in result.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_sharding_asked_of_an_unlaunched_process_is_refused(tmp_path, tokenizer_dir, project_corpus):
    """ACCELERATE_USE_DEEPSPEED=true without `accelerate launch`: said at start, not a DeepSpeed traceback."""
    command = _command(_overrides(tmp_path / "run", tokenizer_dir, project_corpus, "train.steps=2",
                                  "runtime.cpu=false"))
    result = subprocess.run(command, env={**_env(), "ACCELERATE_USE_DEEPSPEED": "true", "CUDA_VISIBLE_DEVICES": ""},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "asks for DeepSpeed (ACCELERATE_USE_DEEPSPEED=true), but this process was not started by" in result.stderr


@pytest.mark.dist
@pytest.mark.parametrize(("sharding", "shard"), [("fsdp", "pytorch_model_fsdp_0/__0_0.distcp"),
                                                 ("zero2", "pytorch_model/zero_pp_rank_1_mp_rank_00_optim_states.pt"),
                                                 ("zero3", "pytorch_model/zero_pp_rank_1_mp_rank_00_model_states.pt")])
def test_sharded_runs_match_one_process_and_resume_bit_exactly(tmp_path, tokenizer_dir, project_corpus, sharding,
                                                               shard):
    """FSDP2 (full shard), ZeRO-2 and ZeRO-3 on two CPU processes give one process's loss curve with the same global
    batch; their checkpoints hold sharded state (torch.distributed.checkpoint; DeepSpeed's per-rank files), a run
    resumed from one continues bit-exactly, and the final folder is a plain HF folder with the same weights.

    All runs continue from one model folder: ZeRO-3 builds a fresh model under deepspeed.zero.Init, which draws its
    random weights in another order than one process does."""
    start = tmp_path / "start"
    build_model(build_config("tiny", tokenizer=AutoTokenizer.from_pretrained(str(tokenizer_dir)),
                             **{k.split("=")[0].removeprefix("model_config."): int(k.split("=")[1]) for k in TINY}),
                seed=0).save_pretrained(str(start))

    def overrides(out: Path, *extra: str) -> list[str]:
        return [o for o in _overrides(out, tokenizer_dir, project_corpus, *extra) if o not in TINY] + [f"model={start}"]

    steps = ["train.steps=8", "train.save_every=4", "train.eval_every=4", "train.keep_checkpoints=0"]
    single, sharded = tmp_path / "single", tmp_path / sharding
    subprocess.run(_command(overrides(single, *steps)), env=_env(), check=True, capture_output=True)
    result = launch_two_processes("pretrain", overrides(sharded, *steps, "train.batch_size=2"), sharding=sharding)
    assert result.stdout.count(f"wrote {sharded}") == 2  # really two processes
    one, two = _losses(single), _losses(sharded)
    assert sorted(two) == list(range(1, 9))
    for step in one:
        assert abs(one[step] - two[step]) <= 1e-4, (step, one[step], two[step])
    held_one, held_two = ({r["step"]: r["val_loss"] for r in read_metrics(out / "metrics.jsonl") if "val_loss" in r}
                          for out in (single, sharded))
    assert sorted(held_one) == sorted(held_two) == [0, 4, 8]
    assert all(abs(held_one[s] - held_two[s]) <= 1e-4 for s in held_one)
    assert (checkpoint_dirs(sharded)[0] / "state" / shard).is_file()
    plain = AutoModelForCausalLM.from_pretrained(str(sharded))  # the final folder, without chowa, FSDP or DeepSpeed
    assert plain.config.architectures == ["GPTNeoXForCausalLM"]
    assert plain.gpt_neox.layers[0].attention.query_key_value.weight.shape[0] == 3 * 32  # whole, not a shard

    resumed = tmp_path / "resumed"
    shutil.copytree(sharded, resumed, ignore=shutil.ignore_patterns("step-00000008"))
    (resumed / "model.safetensors").unlink()
    result = launch_two_processes("pretrain", overrides(resumed, *steps, "train.batch_size=2"), sharding=sharding)
    assert "resuming from" in result.stdout + result.stderr
    assert _losses(resumed) == two  # steps 5 to 8 again, to the last bit
    final, again = load_file(sharded / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert final.keys() == again.keys() and all(torch.equal(final[name], again[name]) for name in final)


@pytest.mark.dist
def test_two_processes_match_one(tmp_path, tokenizer_dir, project_corpus):
    """Two processes on the CPU (gloo) with the same global batch give the same loss curve as one."""
    steps = ["train.steps=8", "train.save_every=0", "train.eval_every=0"]
    single = tmp_path / "single"
    subprocess.run(_command(_overrides(single, tokenizer_dir, project_corpus, *steps)), env=_env(), check=True,
                   capture_output=True)
    double = tmp_path / "double"
    result = launch_two_processes("pretrain", _overrides(double, tokenizer_dir, project_corpus, *steps,
                                                         "train.batch_size=2"))
    assert result.stdout.count(f"wrote {double}") == 2  # really two processes
    one, two = _losses(single), _losses(double)
    assert sorted(two) == list(range(1, 9))
    # gloo all-reduce sums in another order than one process's batch mean: agreement to float32 rounding
    for step in one:
        assert abs(one[step] - two[step]) <= 1e-4, (step, one[step], two[step])


def test_no_heldout_split_trains_without_validation(tmp_path, tokenizer_dir, project_corpus):
    out = tmp_path / "run"
    pretrain(load_config(PretrainConfig, overrides=_overrides(out, tokenizer_dir, project_corpus, "train.steps=3",
                                                              "data.val_fraction=0")))
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3] and not any("val_loss" in r for r in records)
