"""PNG curves from a run's metrics.jsonl, for people who would rather look than read.

Run as (from Python):
    plot_metrics("runs/x/metrics.jsonl", "runs/x/loss.png", [("train_loss", "val_loss")], title="pretrain")
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics JSONL file; a torn last line (a crash mid-write) is ignored."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_metrics(metrics_path: str | os.PathLike, png_path: str | os.PathLike, panels: list[tuple[str, ...]],
                 title: str = "", x_key: str = "step", columns: int = 2) -> Path | None:
    """One panel per tuple of metric names, each plotted against `x_key`, in rows of at most `columns` panels (a
    single row of five is too wide to read in a report); None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    panels = [keys for keys in panels if any(key in r for r in records for key in keys)]
    if not panels:
        return None
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, keys in zip(axes.flat, panels, strict=False):
        for key in keys:
            points = [(r[x_key], r[key]) for r in records if key in r and x_key in r and r[key] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=key)
        axis.set_xlabel(x_key)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path
