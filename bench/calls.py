"""What a night costs per dataset, counted: zfs calls on each side, ssh sessions, and zmake
processes, for `zmake backup` over N small datasets with one new snapshot each, and for the
no-op run after it. No ZFS needed: the unit tier's fake zfs and ssh answer (tests/unit/
support/night.py), so the counts are exact and the same on every machine; the seconds are
the fakes' as much as zmake's and are printed only as a hint.

    .venv/bin/python bench/calls.py                       # 100 and 1000 datasets
    .venv/bin/python bench/calls.py 100 --python /tmp/before-venv/bin/python   # another zmake

`--python` runs the zmake installed for that interpreter (e.g. an older commit installed in
a venv of its own) against the same fakes: the before-and-after table in bench/README.md."""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.unit.support.night import (  # noqa: E402  (the repository root is not installed)
    DEST,
    POOL,
    REMOTE,
    Calls,
    calls_in,
    environment,
)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def backup(python: str, env: dict[str, str], log: Path) -> tuple[Calls, int, float, float]:
    """(calls, zmake processes, wall seconds, CPU seconds of every process) of one run."""
    log.unlink(missing_ok=True)
    cpu, started = children_cpu(), time.monotonic()
    done = subprocess.run([python, "-m", "zmake", "backup", POOL, "--remote", REMOTE, "--dest",
                           DEST, "-j", "8", "--yes"], env=env, cwd="/", capture_output=True,
                          text=True)  # fmt: skip
    wall, cpu = time.monotonic() - started, children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"zmake backup failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    sends = sum(" send --stamp " in line for line in done.stdout.splitlines())
    return calls_in(log), 1 + sends, wall, cpu


def row(label: str, datasets: int, figures: tuple[Calls, int, float, float]) -> str:
    calls, processes, wall, cpu = figures
    local, remote = sum(calls.local.values()), sum(calls.remote.values())
    per = [n / datasets for n in (local, remote, calls.ssh, processes)]
    kinds = " ".join(f"{k}:{v}" for k, v in sorted((calls.local + calls.remote).items()))
    return (f"| {label} | {datasets} | {per[0]:.2f} | {per[1]:.2f} | {per[2]:.2f} | "
            f"{per[3]:.2f} | {wall:.1f} | {cpu / datasets * 1000:.0f} | {kinds} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[100, 1000],
                        help="datasets below the pool (default: 100 1000)")  # fmt: skip
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose zmake runs")
    args = parser.parse_args()
    print(
        "| run | datasets | zfs calls, source, per dataset | zfs calls, backup side | "
        "ssh sessions | zmake processes | wall s | CPU ms per dataset | zfs calls by kind |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for count in args.counts:
        with tempfile.TemporaryDirectory(prefix="zmake-calls-") as work:
            env, log, datasets = environment(Path(work), count)
            night = backup(args.python, env, log)
            print(row("the night", len(datasets), night), flush=True)
            print(row("no change (stamps)", len(datasets), backup(args.python, env, log)),
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
