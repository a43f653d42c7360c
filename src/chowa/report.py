"""The pipeline's report: what ran, how long, the curves, and how the pretrained, SFT and PPO models compare.

Built from the files the stages leave in the pipeline's output folder (pipeline_state.json, each stage's
config.yaml, metrics.jsonl and PNGs, eval/heldout.json, compare/summary.json), written as `report.md` (images
linked) and `report.html` (one self-contained page, images inlined).

Run as (from Python):
    report = write_report("runs/demo"); print(report.summary)
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from chowa.files import atomic_write_text
from chowa.tables import Block, heldout_tables, judge_line, markdown_table, number, percent, win_tie_loss_block
from chowa.training.plots import read_metrics


@dataclass
class Report:
    markdown: Path
    html: Path
    summary: str


def write_report(out_dir: str | os.PathLike, ran_now: list[str] | None = None) -> Report:
    """The report of the pipeline in `out_dir`; `ran_now` names the stages this invocation ran (the rest were
    finished before), so the summary says how long this run took as well as the whole job."""
    out = Path(out_dir)
    blocks, summary = _blocks(out, ran_now)
    atomic_write_text(out / "report.md", _markdown(blocks, out))
    atomic_write_text(out / "report.html", _html(blocks))
    summary += (f"\nreport: {out / 'report.md'} (and report.html)"
                f"\nchat with the result: chowa chat --model {out / 'ppo'}")
    return Report(out / "report.md", out / "report.html", summary)


def _blocks(out: Path, ran_now: list[str] | None) -> tuple[list[Block], str]:
    state = _json(out / "pipeline_state.json")
    heldout = _json(out / "eval" / "heldout.json")
    compare = _json(out / "compare" / "summary.json")
    blocks: list[Block] = [("h1", f"chowa pipeline report: {out}")]
    total = sum(s.get("seconds", 0) for s in state.values())
    blocks += [("h2", "What ran"), ("table", ["stage", "seconds", "finished", "config"],
                [[name, f"{s.get('seconds', 0):.0f}", s.get("finished", ""),
                  f"{name}/config.yaml" if (out / name / "config.yaml").is_file() else "—"]
                 for name, s in state.items()]), ("p", f"Total: {total / 60:.1f} minutes.")]
    blocks += _training_section(out)
    models = heldout.get("models", {})
    if models:
        blocks += [("h2", "Held-out checked answers and reward"),
                   ("p", f"{heldout.get('prompts')} held-out prompts ({heldout.get('checkable')} with a checkable "
                         "answer), greedy replies, scored by the pipeline's reward model. Preferred style: the share "
                         "of number/weekday/date answers given in the asker's language, politely if Japanese (what "
                         "the built-in preference pairs prefer)."),
                   *heldout_tables(models)]
    if compare:
        judge = "LLM" if str(compare.get("judge", "")).startswith("llm:") else "reward-model"
        blocks += [("h2", f"PPO vs SFT ({judge} judge, both orders)"), ("p", judge_line(compare)),
                   win_tie_loss_block(compare)]
    jglue = heldout.get("jglue", {})
    if jglue:
        averages = sorted({key for entry in jglue.values() for key in (entry.get("averages") or {})})
        blocks += [("h2", "JGLUE-format scores on chowa's built-in fixtures"),
                   ("p", "Invented data in the real file formats (builtin:jglue): a check that the harness runs "
                         "end to end, not a benchmark result."),
                   ("table", ["model", *averages], [[name, *(_avg(entry["averages"].get(k)) for k in averages)]
                                                    for name, entry in jglue.items()])]
    blocks += _samples_section(models)
    return blocks, _summary(models, compare, state, ran_now)


def _training_section(out: Path) -> list[Block]:
    blocks: list[Block] = [("h2", "Training")]
    pretrain = _evals(out / "pretrain")
    if pretrain:
        first, last = pretrain[0], pretrain[-1]
        blocks.append(("p", f"Pretraining: validation loss {first['val_loss']:.3f} → {last['val_loss']:.3f} nats "
                            f"(perplexity {last['val_ppl']:.1f}); a context-free unigram model scores "
                            f"{last.get('unigram_entropy', float('nan')):.3f}."))
        blocks.append(("img", out / "pretrain" / "loss.png", "pretraining loss"))
    sft = _evals(out / "sft")
    if sft:
        blocks.append(("p", f"SFT: held-out reply loss {sft[0]['val_loss']:.3f} → {sft[-1]['val_loss']:.3f}."))
        blocks.append(("img", out / "sft" / "loss.png", "SFT loss"))
    reward = [r for r in _evals(out / "reward") if "val_accuracy" in r]
    if reward:
        kinds = {k.removeprefix("val_accuracy_"): v for k, v in reward[-1].items() if k.startswith("val_accuracy_")}
        detail = ", ".join(f"{kind} {percent(value)}" for kind, value in sorted(kinds.items()))
        blocks.append(("p", f"Reward model: held-out pairwise accuracy {percent(reward[0]['val_accuracy'])} → "
                            f"{percent(reward[-1]['val_accuracy'])} ({detail})."))
        blocks.append(("img", out / "reward" / "loss.png", "reward model"))
    metrics = read_metrics(out / "ppo" / "metrics.jsonl") if (out / "ppo" / "metrics.jsonl").exists() else []
    evals = [r for r in metrics if "heldout_score" in r]
    if evals:
        first, last = evals[0], evals[-1]
        parts = [f"PPO: held-out score {first['heldout_score']:.3f} → {last['heldout_score']:.3f}"]
        if "heldout_score_sampled" in first:
            parts.append(f" (sampled replies {first['heldout_score_sampled']:.3f} → "
                         f"{last['heldout_score_sampled']:.3f})")
        if "heldout_accuracy" in first:
            parts.append(f", accuracy {percent(first['heldout_accuracy'])} → {percent(last['heldout_accuracy'])}")
        kl = [r["kl_k1"] for r in metrics if "kl_k1" in r]
        parts.append(f"; KL (k1, nats per reply) to the SFT policy at the end {kl[-1]:.3f}." if kl else ".")
        blocks.append(("p", "".join(parts)))
        blocks.append(("img", out / "ppo" / "ppo.png", "PPO reward and KL"))
    return blocks


def _samples_section(models: dict) -> list[Block]:
    names = [name for name in ("sft", "ppo") if name in models] or list(models)
    if not names:
        return []
    blocks: list[Block] = [("h2", "Sample conversations")]
    for index, sample in enumerate(models[names[0]].get("samples", [])[:4]):
        lines = [f"ユーザー / user: {sample['prompt']}"]
        for name in names:
            reply = models[name]["samples"][index]
            mark = {True: " ✓", False: " ✗"}.get(reply.get("correct"), "")
            lines.append(f"{name}: {reply['reply']}{mark}")
        blocks.append(("pre", "\n".join(lines)))
    return blocks


def _summary(models: dict, compare: dict, state: dict, ran_now: list[str] | None) -> str:
    total = sum(s.get("seconds", 0) for s in state.values())
    if ran_now is None or set(ran_now) == set(state):
        lines = [f"pipeline finished in {total / 60:.1f} min"]
    else:
        now = sum(s.get("seconds", 0) for name, s in state.items() if name in ran_now)
        ran = f"ran {', '.join(ran_now)} in {now / 60:.1f} min" if ran_now else "every stage was already done"
        lines = [f"pipeline finished: {ran} (all stages together took {total / 60:.1f} min)"]
    for name, m in models.items():
        lines.append(f"  {name:<10} accuracy {percent(m.get('accuracy')):>7}   preferred style "
                     f"{percent(m.get('preferred_style')):>7}   mean reward {number(m.get('mean_reward'))}")
    if compare:
        lines.append(markdown_table(*win_tie_loss_block(compare)[1:]).splitlines()[-1])
    return "\n".join(lines)


def _evals(stage_dir: Path) -> list[dict]:
    path = stage_dir / "metrics.jsonl"
    return [r for r in read_metrics(path) if "val_loss" in r or "val_accuracy" in r] if path.exists() else []


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _avg(value) -> str:
    if isinstance(value, dict):
        value = value.get("value")
    return f"{value:.2f}" if isinstance(value, int | float) else "—"


def _markdown(blocks: list[Block], out: Path) -> str:
    parts = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            parts.append(("# " if kind == "h1" else "## ") + rest[0])
        elif kind == "p":
            parts.append(rest[0])
        elif kind == "pre":
            parts.append("```\n" + rest[0] + "\n```")
        elif kind == "img" and rest[0].is_file():
            parts.append(f"![{rest[1]}]({rest[0].relative_to(out)})")
        elif kind == "table":
            parts.append(markdown_table(*rest))
    return "\n\n".join(parts) + "\n"


def _html(blocks: list[Block]) -> str:
    parts = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(rest[0])}</pre>")
        elif kind == "img" and rest[0].is_file():
            data = base64.b64encode(rest[0].read_bytes()).decode()
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(rest[1])}">'
                         f"<figcaption>{html.escape(rest[1])}</figcaption></figure>")
        elif kind == "table":
            headers, rows = rest
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    # Japanese text needs a font that has it: the usual CJK families of each system before the generic one.
    fonts = ('system-ui,-apple-system,"Segoe UI","Hiragino Sans","Hiragino Kaku Gothic ProN","Yu Gothic","Meiryo",'
             '"Noto Sans CJK JP","Noto Sans JP","IPAexGothic","IPAPGothic","IPAGothic","Source Han Sans JP",sans-serif')
    style = (f"body{{font-family:{fonts};max-width:60em;margin:2em auto;line-height:1.5}}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}"
             "img{max-width:100%}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>chowa report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")
