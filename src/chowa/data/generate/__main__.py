"""Regenerate chowa's built-in data files byte-identically.

Run as:
    python -m chowa.data.generate [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chowa.data.generate import write_all
from chowa.data.text import BUILTIN_DIR


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chowa.data.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUILTIN_DIR, help="folder to write into (default: the package's)")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(f"{path.stat().st_size:>9,d}  {path}")


if __name__ == "__main__":
    main()
