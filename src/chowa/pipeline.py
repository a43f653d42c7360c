"""The main job: tokenizer → pretrain → sft → reward → ppo → eval → compare as one resumable run, then a report.

Each stage runs in `OUT/<stage>/` with its own config: the pipeline YAML holds one section per stage (the same
keys as that stage's own YAML; `${out}` is the pipeline's output folder) and the pipeline fills in the paths
that join the stages. `OUT/pipeline_state.json` records a fingerprint of every stage's resolved config chained
with the stages before it:

- a finished stage whose fingerprint is unchanged is not redone;
- an interrupted stage is run again and resumes from its own checkpoints;
- a stage whose config (or an earlier stage's) changed is rerun from scratch, and so is every stage after it.

At the end `OUT/report.md` and `OUT/report.html` (self-contained) describe the run (see `chowa.report`).

Run as:
    chowa pipeline --config configs/tiny/pipeline.yaml --out runs/demo
    chowa pipeline --config configs/tiny/pipeline.yaml --out runs/demo --from sft --until ppo
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chowa.config import load_config, save_config, to_yaml
from chowa.config.pipeline import PipelineConfig
from chowa.errors import ChowaError
from chowa.files import atomic_write_text, check_writable

STATE_FILE = "pipeline_state.json"


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: a command run in `OUT/<name>/`, with the keys the pipeline sets to join it to the others.
    The stages are listed in `chowa.commands.PIPELINE`."""

    name: str
    schema: type
    run: Callable[[Any], Any]
    wiring: Callable[[Path, PipelineConfig], dict]
    """The keys the pipeline sets, from its output folder and config."""


def resolve_stage_configs(cfg: PipelineConfig, stages: Sequence[Stage]) -> dict[str, Any]:
    """Every stage's validated config, before any work (a bad key anywhere stops the run, naming it)."""
    out = Path(cfg.out)
    configs = {}
    for stage in stages:
        injected = _as_strings(stage.wiring(out, cfg))
        try:
            configs[stage.name] = load_config(stage.schema, flags=_merge(getattr(cfg, stage.name), injected),
                                              flags_source="the pipeline config")
        except ChowaError as exc:
            raise ChowaError(f"pipeline section {stage.name!r}: {exc}") from None
    return configs


def fingerprints(configs: dict[str, Any]) -> dict[str, str]:
    """Per stage, a hash of its resolved config chained with the previous stage's hash."""
    chained, previous = {}, ""
    for name, stage_cfg in configs.items():
        previous = hashlib.sha256((previous + to_yaml(stage_cfg)).encode()).hexdigest()[:16]
        chained[name] = previous
    return chained


def main(cfg: PipelineConfig, stages: Sequence[Stage]) -> Path:
    """Run `stages` (chowa.commands.PIPELINE) as the module docstring says; returns the output folder."""
    names = [stage.name for stage in stages]
    out = Path(cfg.out)
    check_writable(out, "out", folder=True)
    configs = resolve_stage_configs(cfg, stages)
    hashes = fingerprints(configs)
    state = _read_state(out)
    save_config(cfg, out, "pipeline.yaml")
    rerun, ran_now = False, []
    for stage in stages:
        name = stage.name
        record = state.get(name, {})
        changed = record.get("fingerprint") not in (None, hashes[name])
        rerun = rerun or name == cfg.from_stage or changed
        if record.get("done") and not rerun:
            print(f"pipeline: {name}: done in an earlier run ({record['seconds']:.0f} s), skipped", flush=True)
        else:
            if changed or record.get("done"):
                shutil.rmtree(out / name, ignore_errors=True)  # results of another config: start clean
            state[name] = {"fingerprint": hashes[name], "done": False}
            _write_state(out, state)
            print(f"pipeline: {name}: running", flush=True)
            started = time.perf_counter()
            stage.run(configs[name])
            ran_now.append(name)
            state[name] = {"fingerprint": hashes[name], "done": True,
                           "seconds": round(time.perf_counter() - started, 2),
                           "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            _write_state(out, state)
            rerun = True  # every later stage sees new inputs
        if name == cfg.until:
            break
    if all(state.get(name, {}).get("done") for name in names):
        from chowa.report import write_report

        report = write_report(out, ran_now)
        print(report.summary)
    return out


def _merge(section: dict, injected: dict) -> dict:
    merged = dict(section)
    for key, value in injected.items():
        merged[key] = _merge(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def _as_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_strings(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def _read_state(out: Path) -> dict:
    path = out / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}  # a torn state file: every stage is checked again (finished ones resume from checkpoints)


def _write_state(out: Path, state: dict) -> None:
    atomic_write_text(out / STATE_FILE, json.dumps(state, indent=2) + "\n")
