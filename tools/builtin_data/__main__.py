"""Regenerate chowa's built-in data files byte-identically.

Run as:
    python -m tools.builtin_data [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chowa.data.text import BUILTIN_DIR
from tools.builtin_data import write_all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.builtin_data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUILTIN_DIR, help="folder to write into (default: the package's)")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(f"{path.stat().st_size:>9,d}  {path}")


if __name__ == "__main__":
    main()
