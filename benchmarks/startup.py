"""Start-up time of the `chowa` command: `chowa --help`, `chowa sft --help` and `chowa --version`, this tree against
an earlier commit, as whole processes run in turn (A B A B ...), with the ratio taken pair by pair.

The earlier commit is checked out into a temporary git worktree and run with the same interpreter through
PYTHONPATH, so only chowa's own code differs. Also reports which heavy modules each command imported.

Run as:
    python benchmarks/startup.py --before b36e5c5 --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [["--help"], ["sft", "--help"], ["--version"]]
HEAVY = ("torch", "transformers", "accelerate", "datasets")
PROBE = ("import runpy, sys, json\nsys.argv = ['chowa', *json.loads(sys.argv[1])]\ntry:\n"
         "    runpy.run_module('chowa', run_name='__main__')\nexcept SystemExit:\n    pass\n"
         f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")


def run_once(src: Path, argv: list[str]) -> tuple[float, list[str]]:
    """Wall seconds of one `python -m chowa ARGV` process, and the heavy modules it imported."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, json.loads(result.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="b36e5c5", help="earlier commit to compare against")
    parser.add_argument("--runs", type=int, default=10, help="timed pairs per command (after one warm-up pair)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        try:
            print("| command | before (s) | after (s) | after / before | before imports | after imports |")
            print("|---|---|---|---|---|---|")
            for argv in COMMANDS:
                pairs, imported = [], {}
                for index in range(args.runs + 1):
                    a, imported["after"] = run_once(REPO / "src", argv)
                    b, imported["before"] = run_once(before / "src", argv)
                    if index:  # the first pair warms the file cache
                        pairs.append((a, b))
                after, earlier = (statistics.median(p[i] for p in pairs) for i in (0, 1))
                ratio = statistics.median(a / b for a, b in pairs)
                print(f"| `chowa {' '.join(argv)}` | {earlier:.3f} | {after:.3f} | {ratio:.3f} | "
                      f"{', '.join(imported['before']) or 'none'} | {', '.join(imported['after']) or 'none'} |")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)


if __name__ == "__main__":
    main()
