"""`zmake backup`, `snapshot`, `prune` and `status` on real OpenZFS through a real ssh."""

from __future__ import annotations

import fcntl
import json
import subprocess

import jsonschema
import pytest

from tests.realzfs.support import REPO, exists, fill, snapshot_guids, zfs

SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text())


@pytest.fixture
def tree(pools) -> list[str]:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    names = [f"{pools.src}/{n}" for n in ("docs", "docs/old letters", "vm:images")]
    for name in names:
        zfs("create", name)
        fill(name, 0.3)
    return names


def snapshot_names(dataset: str) -> list[str]:
    out = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-d", "1", dataset)
    return [line.split("@", 1)[1] for line in out.splitlines()]


def test_three_backup_cycles_with_prune(pools, tree, zm) -> None:
    docs = f"{pools.src}/docs"
    zfs("snapshot", f"{docs}@manual-keep")  # not zmake's: never pruned
    runs = []
    for cycle in range(3):
        if cycle:
            for name in tree:
                fill(name, 0.1)
        done = zm(
            "backup", pools.src, *zm.target_args(), "--snapshot", "--name",
            f"zmake-cycle{cycle}-%Y%m%d%H%M%S", "--prune", "--keep", "2", "--yes", "-j", "4",
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        runs.append(done.stdout)
    assert "full @zmake-cycle0" in runs[0]
    for summary in runs[1:]:
        body = summary.split("action\n", 1)[1]
        assert "incremental" in body and "full" not in body, summary
    for name in [pools.src, *tree]:
        source_snaps = [s for s in snapshot_names(name) if s.startswith("zmake-")]
        backup = pools.mirror(name)
        backup_snaps = [s for s in snapshot_names(backup) if s.startswith("zmake-")]
        assert [s.split("-")[1] for s in source_snaps] == ["cycle1", "cycle2"], name
        # The backup was pruned before the newest snapshot arrived: keep 2, then +1.
        assert [s.split("-")[1] for s in backup_snaps] == ["cycle0", "cycle1", "cycle2"], name
        assert backup_snaps[-1] == source_snaps[-1]
    assert "manual-keep" in snapshot_names(docs)
    status = zm("status", pools.src, *zm.target_args(), "--json")
    document = json.loads(status.stdout)
    jsonschema.validate(document, SCHEMA)
    assert {row["state"] for row in document["datasets"]} == {"up to date"}


def test_prune_without_terminal_or_yes_refuses(pools, tree, zm) -> None:
    for n in range(3):
        zfs("snapshot", "-r", f"{pools.src}@zmake-2026010{n}-000000")
    before = snapshot_guids(pools.src)
    done = subprocess.run(
        ["python3", "-m", "zmake", "prune", pools.src, "--keep", "1", *zm.target_args()],
        env=zm.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 9
    assert "--yes" in done.stderr
    assert snapshot_guids(pools.src) == before


def test_prune_keeps_held_and_base_snapshots(pools, tree, zm) -> None:
    docs = f"{pools.src}/docs"
    for n in range(4):
        zfs("snapshot", f"{docs}@zmake-2026010{n}-000000")
    zm.send(docs)  # the backup now has all four; the newest common is ...03
    zfs("hold", "keepme", f"{docs}@zmake-20260100-000000")
    zfs("snapshot", f"{docs}@zmake-20260104-000000")
    zfs("snapshot", f"{docs}@zmake-20260105-000000")
    zm("prune", pools.src, "--keep", "1", "--yes", *zm.target_args())
    left = snapshot_names(docs)
    assert left == ["zmake-20260100-000000", "zmake-20260103-000000", "zmake-20260105-000000"]
    zfs("release", "keepme", f"{docs}@zmake-20260100-000000")


def test_second_backup_refuses_while_one_runs(pools, tree, zm) -> None:
    zm.run_dir.mkdir(parents=True, exist_ok=True)
    with open(zm.run_dir / "backup.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        done = zm("backup", pools.src, *zm.target_args(), "--yes", check=False)
    assert done.returncode == 10
    assert "another zmake backup is running" in done.stderr


def test_status_states(pools, tree, zm) -> None:
    zfs("snapshot", "-r", f"{pools.src}@zmake-a")
    zm.send(f"{pools.src}/docs/old letters")
    fill(f"{pools.src}/docs/old letters", 0.2)
    zfs("snapshot", "-r", f"{pools.src}@zmake-b")
    zm.send(f"{pools.src}/vm:images")
    done = zm("status", pools.src, *zm.target_args(), "--json")
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    states = {row["dataset"]: row["state"] for row in document["datasets"]}
    assert states[f"{pools.src}/vm:images"] == "up to date"
    assert states[f"{pools.src}/docs/old letters"] == "pending"
    assert states[f"{pools.src}/docs"] in ("missing on remote",)
    assert exists(f"{pools.backup}/docs")  # the placeholder made for the child
    pending = next(r for r in document["datasets"] if r["state"] == "pending")
    assert pending["pending_bytes"] > 0
    text = zm("status", pools.src, *zm.target_args())
    assert "pending" in text.stdout
