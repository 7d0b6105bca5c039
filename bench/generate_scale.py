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


def one_run(capture: Path) -> tuple[float, float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zmake",
            "generate",
            "--from-file",
            str(capture),
            "--remote",
            "nas",
            "--dest",
            "backup/large",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, usage.ru_maxrss / 1024, done.stdout.count(" send --stamp ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("capture", nargs="?", default=str(REPO / "sample-pools" / "large-10k.zcap"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = [one_run(Path(args.capture)) for _ in range(args.runs)]
    best = min(r[0] for r in results)
    rss = max(r[1] for r in results)
    datasets = results[0][2]
    print(f"generate: {datasets} datasets")
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
