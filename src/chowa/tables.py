"""The results tables commands print and the pipeline report shows: Markdown tables and their cells, the held-out
tables of `chowa eval heldout`, and the win/tie/loss table of `chowa compare`, each share with its 95% interval
(Wilson's, which stays inside 0-100% and is honest for small counts, as lm-eval reports a stderr beside every
score). Below both `chowa.eval` and `chowa.report`, so neither imports the other.

Run as (from Python):
    print(markdown_table(["model", "accuracy"], [["sft", percent(0.058)]]))
"""

from __future__ import annotations

import math

Block = tuple  # ("h2", text) | ("p", text) | ("table", headers, rows) | ("img", path, caption) | ("pre", text)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table."""
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)])


def percent(value: float | None) -> str:
    """A share as "12.5%", or "—" when there is none."""
    return "—" if value is None else f"{100 * value:.1f}%"


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> list[float] | None:
    """The Wilson score interval of a share (95% for z = 1.96), or None for no trials."""
    if trials <= 0:
        return None
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]  # a list, as JSON keeps it


def interval(bounds: list[float] | None) -> str:
    """A 95% interval of a share as "8.1–18.3%", or "—"."""
    return "—" if not bounds else f"{100 * bounds[0]:.1f}–{100 * bounds[1]:.1f}%"


def number(value: float | None) -> str:
    """A score to three decimals, or "—"."""
    return "—" if value is None else f"{value:.3f}"


def heldout_tables(models: dict[str, dict]) -> list[Block]:
    """The held-out table blocks of `chowa.eval.heldout` results: one row per model, then accuracy per family."""
    families = sorted({family for m in models.values() for family in m.get("by_family", {})})
    return [("table", ["model", "checked-answer accuracy", "95% CI", "preferred style", "95% CI", "mean reward"],
             [[name, percent(m.get("accuracy")), interval(m.get("accuracy_ci")), percent(m.get("preferred_style")),
               interval(m.get("preferred_style_ci")), number(m.get("mean_reward"))] for name, m in models.items()]),
            ("table", ["family", *models], [[family, *(percent(m["by_family"].get(family)) for m in models.values())]
                                            for family in families])]


def heldout_markdown(models: dict[str, dict]) -> str:
    """The held-out tables as Markdown, as `chowa eval heldout` prints them."""
    return "\n\n".join(markdown_table(*rest) for _, *rest in heldout_tables(models))


def win_tie_loss_block(summary: dict) -> Block:
    """A `chowa compare` summary as a table in the shape of the rinna card's PPO vs SFT comparison, each count with its
    share and 95% interval."""
    intervals = summary.get("interval", {})
    cells = [f"{summary[k]} ({summary['percent'][k]:.1f}%" + (
        f" [{100 * intervals[k][0]:.1f}–{100 * intervals[k][1]:.1f}])" if intervals.get(k) else ")")
        for k in ("win", "tie", "loss")]
    return ("table", ["comparison", "win", "tie", "loss"], [[f"A ({summary['a']}) vs B ({summary['b']})", *cells]])


def judge_line(summary: dict) -> str:
    return f"judge: {summary['judge']}, {summary['prompts']} prompts (95% intervals in brackets)"


def win_tie_loss_table(summary: dict) -> str:
    """The judge and the win/tie/loss table in Markdown, as `chowa compare` prints it."""
    _, headers, rows = win_tie_loss_block(summary)
    return f"{judge_line(summary)}\n\n{markdown_table(headers, rows)}"
