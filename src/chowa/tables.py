"""The results tables commands print and the pipeline report shows: Markdown tables and their cells, the held-out
tables of `chowa eval heldout`, and the win/tie/loss table of `chowa compare`. Below both `chowa.eval` and
`chowa.report`, so neither imports the other.

Run as (from Python):
    print(markdown_table(["model", "accuracy"], [["sft", percent(0.058)]]))
"""

from __future__ import annotations

Block = tuple  # ("h2", text) | ("p", text) | ("table", headers, rows) | ("img", path, caption) | ("pre", text)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table."""
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)])


def percent(value: float | None) -> str:
    """A share as "12.5%", or "—" when there is none."""
    return "—" if value is None else f"{100 * value:.1f}%"


def number(value: float | None) -> str:
    """A score to three decimals, or "—"."""
    return "—" if value is None else f"{value:.3f}"


def heldout_tables(models: dict[str, dict]) -> list[Block]:
    """The held-out table blocks of `chowa.eval.heldout` results: one row per model, then accuracy per family."""
    families = sorted({family for m in models.values() for family in m.get("by_family", {})})
    return [("table", ["model", "checked-answer accuracy", "preferred style", "mean reward"],
             [[name, percent(m.get("accuracy")), percent(m.get("preferred_style")), number(m.get("mean_reward"))]
              for name, m in models.items()]),
            ("table", ["family", *models], [[family, *(percent(m["by_family"].get(family)) for m in models.values())]
                                            for family in families])]


def heldout_markdown(models: dict[str, dict]) -> str:
    """The held-out tables as Markdown, as `chowa eval heldout` prints them."""
    return "\n\n".join(markdown_table(*rest) for _, *rest in heldout_tables(models))


def win_tie_loss_table(summary: dict) -> str:
    """A `chowa compare` summary as a Markdown table in the shape of the rinna card's PPO vs SFT comparison."""
    cells = [f"{summary[k]} ({summary['percent'][k]:.1f}%)" for k in ("win", "tie", "loss")]
    return "\n".join([f"judge: {summary['judge']}, {summary['prompts']} prompts", "",
                      "| comparison | win | tie | loss |", "|---|---|---|---|",
                      f"| A ({summary['a']}) vs B ({summary['b']}) | {' | '.join(cells)} |"])
