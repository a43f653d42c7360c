"""Throwaway Python environments beside the project's venv, for code whose pins must never touch chowa's: old
transformers releases (tests/test_compat.py) and TRL's last PPO (benchmarks/ppo_vs_trl.py).

Each is a venv under `<this venv>/<name>`, built once: the given packages are installed there without their
dependencies, and a .pth file (read after its own packages) lends it this venv's torch, transformers and the rest.

Run as (from Python):
    python = side_python("trl-1.12.0", ["trl==1.12.0"])
    subprocess.run([str(python), "-c", "import trl"], check=True)
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def side_python(name: str, packages: list[str]) -> Path:
    """The interpreter of the environment `name` holding `packages`, built on first use."""
    root = Path(sys.prefix) / name
    python = root / "bin" / "python"
    if (root / ".complete").is_file():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_chowa_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after its own packages
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                             *packages], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"could not build the environment {name} ({' '.join(packages)}):\n{result.stderr[-2000:]}")
    (root / ".complete").write_text("\n".join(packages) + "\n")
    return python
