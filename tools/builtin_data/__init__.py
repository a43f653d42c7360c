"""Generators for the data shipped inside chowa (`src/chowa/data/builtin/`): corpus, SFT tasks, preference pairs,
PPO prompts, answer checking, a JGLUE data root.

Every file is a pure function of this code (fixed seeds, sorted orders), so regenerating gives identical bytes
and a test can prove the shipped files are what the code says.

Run as:
    python -m tools.builtin_data              # rewrite src/chowa/data/builtin/
    python -m tools.builtin_data --out DIR    # write the same files under DIR
"""

from __future__ import annotations

from pathlib import Path

from tools.builtin_data.corpus import build_corpus
from tools.builtin_data.jglue import build_jglue
from tools.builtin_data.preferences import build_preferences
from tools.builtin_data.prompts import build_prompts
from tools.builtin_data.sft import build_sft


def build_all() -> dict[str, str]:
    """Every built-in file's path relative to the builtin folder, and its exact text."""
    return {**build_corpus(), **build_sft(), **build_preferences(), **build_prompts(), **build_jglue()}


def write_all(root: Path) -> list[Path]:
    """Write every built-in file under `root` (UTF-8, LF line ends); return the paths written."""
    written = []
    for relative, text in sorted(build_all().items()):
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written
