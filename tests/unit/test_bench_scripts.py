"""The benchmark scripts still run: bench/make_large_capture.py writes a capture zmake accepts,
and bench/generate_scale.py times `zmake generate` on it. Each at a tiny size, in its own
process as a user runs it, so a change to the capture format or to generate's options fails
here instead of leaving the benchmarks broken until someone next runs them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from zmake.core.parse import parse_capture, parse_source

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
DATASETS = 40


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *map(str, argv)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = run(BENCH / "make_large_capture.py", str(DATASETS))
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("bench") / "large.zcap"
    path.write_text(done.stdout)
    return path


@pytest.mark.parametrize("script", ["make_large_capture.py", "generate_scale.py"])
def test_help(script: str) -> None:
    done = run(BENCH / script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")


def test_the_capture_parses_with_every_dataset(capture: Path) -> None:
    parsed = parse_capture(capture.read_text(), str(capture))
    inventory = parse_source(parsed.list_output, parsed.get_output)
    assert parsed.pools == ("big",)
    assert len(inventory.datasets) == DATASETS
    assert all(len(ds.snapshots) == 3 for ds in inventory.datasets.values())
    assert all(s.creation > 0 for ds in inventory.datasets.values() for s in ds.snapshots)
    encrypted = [ds for ds in inventory.datasets.values() if ds.encryption != "off"]
    assert encrypted and all(ds.encryption_root for ds in encrypted)


def test_zmake_generate_accepts_the_capture(capture: Path) -> None:
    done = run("-m", "zmake", "generate", "--from-file", capture,
               "--remote", "nas", "--dest", "backup/large")  # fmt: skip
    assert done.returncode == 0, done.stderr
    recipes = [line for line in done.stdout.split("\n") if " send --stamp " in line]
    # every dataset is sent by one recipe, alone or in a batch of small siblings
    sent = [name for line in recipes for name in shlex.split(line.partition(" -- ")[2])]
    assert len(sent) == len(set(sent)) == DATASETS


def test_the_same_seed_writes_the_same_capture(capture: Path) -> None:
    again = run(BENCH / "make_large_capture.py", str(DATASETS))
    assert again.stdout == capture.read_text()


def test_generate_scale_times_the_capture(capture: Path) -> None:
    done = run(BENCH / "generate_scale.py", capture, "--runs", "1")
    assert done.returncode == 0, done.stderr
    assert f"generate: {DATASETS} datasets, " in done.stdout
    assert "wall seconds, best of 1:" in done.stdout


def test_generate_scale_says_why_zmake_refused(tmp_path: Path) -> None:
    """The control: a capture zmake refuses makes the benchmark fail with zmake's message."""
    refused = tmp_path / "old.zcap"
    refused.write_text("# zmake capture v1\n### zfs list\nbig\tfilesystem\t1\t2\t3\n### zfs get\n")
    done = run(BENCH / "generate_scale.py", refused, "--runs", "1")
    assert done.returncode != 0
    assert "zmake generate exited 3" in done.stderr and "expected 8" in done.stderr
