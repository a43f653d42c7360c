"""Configs of `chowa model list` and `chowa model info`.

Run as:
    chowa model info --preset rinna-ja-3.6b
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import REQUIRED, option


@dataclass
class ModelListConfig:
    """No options: every preset with its size and a one-line summary."""


@dataclass
class ModelInfoConfig:
    preset: str = option(REQUIRED, "Preset name or a folder with config.json.", metavar="NAME|DIR")
    vocab_size: int | None = option(None, "Vocabulary size (default: the preset's).", metavar="N", minimum=1)
    json: bool = option(False, "Print JSON instead of a table.")
