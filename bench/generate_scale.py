"""Benchmark: `zmake generate --from-file` on the 10,000-dataset capture.

Prints wall seconds (best of N runs, each a fresh process, as a user runs it) and peak RSS,
against the targets (< 2 s, < 200 MB). Not a pass/fail test.

    .venv/bin/python bench/generate_scale.py [CAPTURE] [--runs 5]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0
TARGET_RSS_MB = 200.0
# What is timed, as a user runs it (a push to `nas`; --dest is required).
GENERATE = [sys.executable, "-m", "zmake", "generate", "--remote", "nas", "--dest", "backup/large"]


def one_run(capture: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, the Makefile's `zmake send` recipes) of one run."""
    started = time.perf_counter()
    done = subprocess.run(
        [*GENERATE, "--from-file", str(capture)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(
            f"generate_scale.py: zmake generate exited {done.returncode} on {capture}:\n"
            f"{done.stderr.strip()}"
        )
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, usage.ru_maxrss / 1024, done.stdout.count(" send --stamp ")


def datasets_in(capture: Path) -> int:
    """The capture's datasets (a recipe may send several: small siblings go in batches)."""
    from zmake.core.parse import parse_capture, parse_source

    parsed = parse_capture(capture.read_text(encoding="utf-8"), str(capture))
    return len(parse_source(parsed.list_output, parsed.get_output).datasets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("capture", nargs="?", default=str(REPO / "sample-pools" / "large-10k.zcap"))
    parser.add_argument("--runs", type=int, default=5, help="fresh processes to time (best of)")
    args = parser.parse_args()
    results = [one_run(Path(args.capture)) for _ in range(args.runs)]
    best = min(r[0] for r in results)
    rss = max(r[1] for r in results)
    recipes = results[0][2]
    if recipes == 0:
        sys.exit("generate_scale.py: the Makefile has no `send --stamp` line: nothing was timed")
    print(f"generate: {datasets_in(Path(args.capture))} datasets, {recipes} send recipes")
    print(
        f"  wall seconds, best of {args.runs}: {best:.3f}  (target < {TARGET_SECONDS} s, "
        f"ratio {best / TARGET_SECONDS:.2f})"
    )
    print(
        f"  peak RSS: {rss:.1f} MB  (target < {TARGET_RSS_MB:.0f} MB, "
        f"ratio {rss / TARGET_RSS_MB:.2f})"
    )


if __name__ == "__main__":
    main()
