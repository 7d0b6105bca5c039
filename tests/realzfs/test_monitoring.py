"""Monitoring (issue 17) on real OpenZFS through a real ssh: `zmake check` levels and exit
codes, the metrics textfile and the JSON summary of a real `zmake backup`, `--quiet`.

Each test began with the same full backup of the same tree; the module makes it once (with
all that each test asked of it: `--quiet`, `--metrics`, `--summary-json`, `-j 4`, the default)
and puts both pools back as that backup left them after every test, so the tests need no
order: what a test adds (snapshots, zmake's bookmarks) is destroyed, a bookmark zmake moved
past is made again, and every snapshot, bookmark and local property is then checked equal."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from tests.realzfs.conftest import Pools, fresh_pools
from tests.realzfs.support import REPO, Zmake, fill, zfs

CHECK_SCHEMA = json.loads((REPO / "docs" / "check.schema.json").read_text())
SUMMARY_SCHEMA = json.loads((REPO / "docs" / "backup-summary.schema.json").read_text())
PROMTOOL = REPO / ".tools" / "bin" / "promtool"
HOUR = 3600


@pytest.fixture(scope="module")
def pools() -> Iterator[Pools]:
    """conftest's `pools`, made once for the module (see the module docstring)."""
    with fresh_pools() as made:
        yield made


@pytest.fixture(scope="module")
def tree(pools) -> list[str]:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    names = [f"{pools.src}/home", f"{pools.src}/home/my data:1", f"{pools.src}/vm"]
    for name in names:
        zfs("create", name)
        fill(name, 0.2)
    zfs("snapshot", "-r", f"{pools.src}@zmake-a")
    return [pools.src, *names]


@dataclass(frozen=True)
class FirstBackup:
    done: subprocess.CompletedProcess[str]
    started: float  # time.time() just before it
    metrics: Path
    summary: Path
    state: tuple[dict[str, int], str]  # both pools as it left them (pools_state)


def pools_state(pools: Pools) -> tuple[dict[str, int], str]:
    """Every snapshot and bookmark of both pools (name: guid), and every local property."""
    listed = zfs("list", "-H", "-p", "-o", "name,guid", "-t", "snapshot,bookmark", "-r",
                 pools.src, pools.dst)  # fmt: skip
    marks = {name: int(guid) for name, guid in (x.split("\t") for x in listed.splitlines())}
    props = zfs("get", "-H", "-p", "-s", "local", "-o", "name,property,value", "-r", "all",
                pools.src, pools.dst)  # fmt: skip
    return marks, props


@pytest.fixture(scope="module")
def first_backup(pools, tree, ssh_config, remote, tmp_path_factory) -> FirstBackup:
    """The full backup every test starts from, made once, by a zmake of its own."""
    folder = tmp_path_factory.mktemp("monitoring")
    zm = Zmake(folder / "run", str(ssh_config), remote, pools.backup)
    metrics, summary = folder / "zmake.prom", folder / "summary.json"
    started = time.time()
    done = zm("backup", pools.src, *zm.target_args(), "--yes", "--quiet", "-j", "4", "--metrics",
              str(metrics), "--summary-json", str(summary), check=False)  # fmt: skip
    return FirstBackup(done, started, metrics, summary, pools_state(pools))


@pytest.fixture(autouse=True)
def as_the_first_backup_left_it(pools, first_backup) -> Iterator[None]:
    """After each test, both pools as the first backup left them (see the module docstring)."""
    yield
    marks, _ = first_backup.state
    now, _ = pools_state(pools)
    for name in now.keys() - marks.keys():  # snapshots and bookmarks the test made
        zfs("destroy", name)
    for name in marks.keys() - now.keys():  # zmake's bookmark of a snapshot it moved past
        dataset = name.split("#")[0]
        snapshot = next(n for n, guid in now.items()
                        if n.startswith(f"{dataset}@") and guid == marks[name])  # fmt: skip
        zfs("bookmark", snapshot, name)
    assert pools_state(pools) == first_backup.state


def creation(snapshot: str) -> int:
    return int(zfs("get", "-H", "-p", "-o", "value", "creation", snapshot).strip())


def check(zm, pools, *extra: str) -> subprocess.CompletedProcess[str]:
    return zm("check", pools.src, *zm.target_args(), "--warn", "26h", "--crit", "50h", *extra,
              check=False)  # fmt: skip


def test_check_levels_on_real_backups(pools, tree, zm, first_backup) -> None:
    assert first_backup.done.returncode == 0, first_backup.done.stderr
    fresh = check(zm, pools)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.startswith("ZMAKE OK - 4 datasets, oldest backup ")
    assert fresh.stdout.count("\n") == 1

    # A snapshot the backup lacks: judged by the age of what the backup holds (@zmake-a).
    zfs("snapshot", f"{tree[1]}@zmake-b")
    held_at = creation(f"{tree[1]}@zmake-a")
    assert check(zm, pools, "--at", str(held_at + 2 * HOUR)).returncode == 0
    warned = check(zm, pools, "--at", str(held_at + 30 * HOUR))
    assert warned.returncode == 1, warned.stdout
    assert warned.stdout.startswith("ZMAKE WARNING - 4 datasets")
    assert f"{tree[1]}: newest backup @zmake-a is 1d6h old" in warned.stdout
    critical = check(zm, pools, "--at", str(held_at + 60 * HOUR), "--json")
    assert critical.returncode == 2
    document = json.loads(critical.stdout)
    jsonschema.validate(document, CHECK_SCHEMA)
    assert document["level"] == 2 and len(document["problems"]) == 4  # every dataset is old
    home = next(d for d in document["datasets"] if d["dataset"] == tree[1])
    assert home["state"] == "pending" and home["backed_up_at"] == held_at

    # Diverged: the backup holds a snapshot the source never had, and the source moved on.
    zm("backup", pools.src, *zm.target_args(), "--yes")
    zfs("snapshot", f"{pools.mirror(tree[3])}@foreign")
    zfs("snapshot", f"{tree[3]}@zmake-c")
    diverged = check(zm, pools)
    assert diverged.returncode == 2, diverged.stdout
    assert diverged.stdout.splitlines()[1].startswith(f"{tree[3]}: diverged")

    unreachable = zm("check", pools.src, "--remote", "nosuchhost.invalid", "--ssh", zm.ssh,
                     "--dest", zm.dest, check=False)  # fmt: skip
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr
    assert unreachable.stdout.startswith("ZMAKE UNKNOWN - ")


def test_metrics_and_summary_of_a_real_backup(pools, tree, zm, first_backup) -> None:
    metrics, summary = first_backup.metrics, first_backup.summary
    started, done = first_backup.started, first_backup.done  # its files: read here only
    assert done.returncode == 0, done.stdout + done.stderr
    checked = subprocess.run([str(PROMTOOL), "check", "metrics"], stdin=metrics.open(),
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = metrics.read_text()
    document = json.loads(summary.read_text())
    jsonschema.validate(document, SUMMARY_SCHEMA)
    assert document["result"] == "ok" and len(document["datasets"]) == 4
    sent = sum(d["bytes"] for d in document["datasets"])
    assert sent > 3 * 0.2 * 1024 * 1024 * 0.9  # three datasets hold 0.2 MiB each
    assert value(text, "zmake_run_bytes_sent_total") == sent
    assert value(text, "zmake_run_datasets_failed") == 0
    assert started <= value(text, "zmake_run_start_timestamp_seconds") <= time.time()
    for name in tree:
        labels = f'dataset="{name}",target="{zm.remote}:{zm.dest}"'
        assert value(text, "zmake_backup_up_to_date", labels) == 1
        assert value(text, "zmake_backup_pending_bytes", labels) == 0
        stamp = value(text, "zmake_backup_last_snapshot_timestamp_seconds", labels)
        assert stamp == creation(f"{name}@zmake-a")

    # A run that leaves a dataset behind: the files still say so.
    zfs("snapshot", "-r", f"{pools.src}@zmake-b")
    zfs("snapshot", f"{pools.mirror(tree[3])}@foreign")  # diverged: refused without --force
    failed = zm("backup", pools.src, *zm.target_args(), "--yes", "--metrics", str(metrics),
                "--summary-json", str(summary), check=False)  # fmt: skip
    assert failed.returncode != 0
    document = json.loads(summary.read_text())
    jsonschema.validate(document, SUMMARY_SCHEMA)
    assert document["result"] == "incomplete" and document["datasets_failed"] == 1
    vm = next(d for d in document["datasets"] if d["dataset"] == tree[3])
    assert vm["result"] == "failed" and vm["error"]
    text = metrics.read_text()
    assert value(text, "zmake_run_datasets_failed") == 1
    assert value(text, "zmake_run_success") == 0
    labels = f'dataset="{tree[3]}",target="{zm.remote}:{zm.dest}"'
    assert value(text, "zmake_backup_up_to_date", labels) == 0


def value(text: str, name: str, labels: str | None = None) -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else r"\{[^}]*\}")
    found = re.findall(rf"^{pattern} (\S+)$", text, flags=re.MULTILINE)
    assert len(found) == 1, (name, labels, text)
    return float(found[0])


def test_quiet_says_nothing_when_well_and_only_problems_otherwise(
    pools, tree, zm, first_backup
) -> None:
    first = first_backup.done  # made with --quiet
    assert first.returncode == 0 and first.stdout == "", first.stdout + first.stderr
    again = zm("backup", pools.src, *zm.target_args(), "--yes", "--quiet", "--snapshot",
               check=False)  # fmt: skip
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
    zfs("snapshot", "-r", f"{pools.src}@zmake-c")
    zfs("snapshot", f"{pools.mirror(tree[3])}@foreign")
    trouble = zm("backup", pools.src, *zm.target_args(), "--yes", "--quiet", check=False)
    assert trouble.returncode != 0
    lines = trouble.stdout.splitlines()
    assert lines[0].startswith(f"{tree[3]}: ") and "the whole run's output" in lines[-1]
    assert len(lines) == 2, trouble.stdout
