"""The main job end to end on a micro config: every stage runs, the report says what happened, reruns skip."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from chowa.commands import COMMAND, PIPELINE
from chowa.config import load_config
from chowa.config.pipeline import PipelineConfig
from chowa.data.text import BUILTIN_DIR
from chowa.errors import ChowaError

REPO = Path(__file__).resolve().parents[1]
STAGES = [stage.name for stage in PIPELINE]
pipeline = COMMAND["pipeline"].run
MICRO = [
    "tokenizer.vocab_size=1000",
    "pretrain.model_config.hidden_size=32", "pretrain.model_config.num_hidden_layers=2",
    "pretrain.model_config.num_attention_heads=2", "pretrain.model_config.intermediate_size=64",
    "pretrain.data.seq_len=64", "pretrain.train.steps=12", "pretrain.train.eval_every=6",
    "pretrain.train.batch_size=8", "pretrain.train.save_every=6",
    "sft.train.steps=8", "sft.train.batch_size=8", "sft.train.eval_every=4", "sft.data.max_length=96",
    "reward.train.steps=8", "reward.train.batch_size=8", "reward.train.eval_every=4",
    "ppo.train.steps=2", "ppo.method.num_rollouts=8", "ppo.method.chunk_size=8", "ppo.method.batch_size=8",
    "ppo.method.ppo_epochs=1", "ppo.data.heldout_size=6", "ppo.generation.max_new_tokens=8", "ppo.train.eval_every=1",
    "eval.max_new_tokens=8", "eval.jglue_limit=2", "compare.max_new_tokens=8",
]


def _prompts(tmp_path: Path) -> Path:
    """The first held-out prompts of each family, so the micro run still has checkable answers of every kind."""
    seen, lines = set(), []
    for line in (BUILTIN_DIR / "prompts" / "heldout.jsonl").read_text(encoding="utf-8").splitlines():
        family = json.loads(line)["family"]
        if family not in seen:
            seen.add(family)
            lines.append(line)
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config(out: Path, prompts: Path, *extra: str) -> PipelineConfig:
    overrides = [*MICRO, f"eval.prompts={prompts}", f"compare.prompts={prompts}", *extra]
    return load_config(PipelineConfig, REPO / "configs" / "tiny" / "pipeline.yaml", overrides, flags={"out": str(out)})


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("pipeline")
    prompts = _prompts(tmp)
    out = tmp / "run"
    pipeline(_config(out, prompts))
    return out, prompts


def test_every_stage_ran_and_the_report_shows_the_figures(micro_run):
    out, _ = micro_run
    state = json.loads((out / "pipeline_state.json").read_text())
    assert list(state) == list(STAGES) and all(s["done"] for s in state.values())
    heldout = json.loads((out / "eval" / "heldout.json").read_text())
    assert list(heldout["models"]) == ["pretrained", "sft", "ppo"]
    report = (out / "report.md").read_text(encoding="utf-8")
    for name in STAGES:
        assert re.search(rf"^\| {name} \| \d+ \|", report, re.M), name
    for name, model in heldout["models"].items():  # the table holds the measured numbers, not placeholders
        style = "—" if model["preferred_style"] is None else f"{100 * model['preferred_style']:.1f}%"
        low, high = model["accuracy_ci"]  # each share with its 95% interval (#13)
        assert (f"| {name} | {100 * model['accuracy']:.1f}% | {100 * low:.1f}–{100 * high:.1f}% | {style} | "
                in report) and f" | {model['mean_reward']:.3f} |" in report
    summary = json.loads((out / "compare" / "summary.json").read_text())
    assert summary["win"] + summary["tie"] + summary["loss"] == heldout["prompts"]
    assert f"{summary['win']} (" in report and "PPO vs SFT" in report
    assert "Pretraining: validation loss" in report and "SFT: held-out reply loss" in report
    assert "Reward model: held-out pairwise accuracy" in report and "PPO: held-out score" in report
    assert "JGLUE-format scores" in report and "avg8" in report and "Sample conversations" in report
    for png in ("pretrain/loss.png", "sft/loss.png", "reward/loss.png", "ppo/ppo.png"):
        assert f"]({png})" in report and (out / png).is_file()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page


def test_the_report_reads_well(micro_run):
    """What a reader of the report sees: a readable PPO figure, the comparison as a table, config links that lead
    somewhere, and fonts for Japanese text."""
    out, _ = micro_run
    page = (out / "report.html").read_text(encoding="utf-8")
    width, height = struct.unpack(">II", (out / "ppo" / "ppo.png").read_bytes()[16:24])
    assert width / height < 2.5, (width, height)  # panels in rows, not five in a line
    assert "<th>comparison</th>" in page and "| comparison |" not in page
    for link in re.findall(r"<td>(\w+/config\.yaml)</td>", page):
        assert (out / link).is_file(), link
    assert "eval/config.yaml" in page and "compare/config.yaml" in page
    assert '"Noto Sans CJK JP"' in page and '"Hiragino Sans"' in page


def test_the_report_renders_in_a_browser(micro_run, tmp_path):
    """The self-contained page in headless Chromium (installed by `make test` on Debian): it renders, with its
    images and tables, to a screenshot that is not blank."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs it on Debian: apt-get install chromium)")
    out, _ = micro_run
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", "--hide-scrollbars"]
    url = (out / "report.html").resolve().as_uri()
    subprocess.run([browser, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert dom.count("<table>") >= 5 and dom.count("<img ") == 4 and "chowa pipeline report" in dom
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])
    assert (width, height) == (1200, 2400)
    colors = zlib.decompress(b"".join(_png_chunks(shot.read_bytes(), b"IDAT")))
    assert len(set(colors[i:i + 3] for i in range(0, min(len(colors), 3_000_000), 997))) > 20  # not a blank page


def _png_chunks(data: bytes, kind: bytes) -> list[bytes]:
    chunks, position = [], 8
    while position < len(data):
        length, name = struct.unpack(">I4s", data[position:position + 8])
        if name == kind:
            chunks.append(data[position + 8:position + 8 + length])
        position += 12 + length
    return chunks


def test_rerun_skips_finished_stages_and_a_changed_stage_reruns_what_follows(micro_run, capsys):
    out, prompts = micro_run
    before = json.loads((out / "pipeline_state.json").read_text())
    pipeline(_config(out, prompts))
    text = capsys.readouterr().out
    assert all(f"pipeline: {name}: done in an earlier run" in text for name in STAGES)
    assert json.loads((out / "pipeline_state.json").read_text()) == before
    pipeline(_config(out, prompts, "ppo.train.steps=3"))
    after = json.loads((out / "pipeline_state.json").read_text())
    assert [name for name in STAGES if after[name]["finished"] != before[name]["finished"]] == ["ppo", "eval",
                                                                                               "compare"]


def test_killed_pipeline_finishes_without_redoing_completed_stages(tmp_path):
    prompts = _prompts(tmp_path)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "chowa", "pipeline", "--out", str(out), *MICRO, f"eval.prompts={prompts}",
               f"compare.prompts={prompts}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = out / "pipeline_state.json"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if state.get("sft", {}).get("done") is False:  # killed in the middle of SFT
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    finished = {name: s["finished"] for name, s in json.loads(state_file.read_text()).items() if s.get("done")}
    assert set(finished) == {"tokenizer", "pretrain"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pipeline: tokenizer: done in an earlier run" in result.stdout
    assert "pipeline: pretrain: done in an earlier run" in result.stdout
    state = json.loads(state_file.read_text())
    assert all(state[name]["finished"] == stamp for name, stamp in finished.items())
    assert all(s["done"] for s in state.values()) and (out / "report.html").is_file()
    assert "chowa chat --model" in result.stdout


def test_bad_section_key_stops_before_any_work(tmp_path):
    with pytest.raises(ChowaError, match="pipeline section 'sft': .*unknown key 'train.stepz'"):
        pipeline(_config(tmp_path / "run", _prompts(tmp_path), "sft.train.stepz=3"))
    assert not (tmp_path / "run" / "tokenizer").exists()
