"""Runs that finish: a kept Makefile, a refused child, prune against a partial receive,
several targets, a snapshot that cannot be destroyed (issue 12), on real ZFS through sshd."""

from __future__ import annotations

from tests.realzfs.support import (
    exists,
    fill,
    make,
    partial_receive,
    prop,
    snapshot_guids,
    zfs,
)


def snapshot_names(dataset: str) -> list[str]:
    out = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-d", "1", dataset)
    return [line.split("@", 1)[1] for line in out.splitlines()]


def test_a_kept_makefile_sends_new_snapshots_and_new_datasets(pools, zm, tmp_path) -> None:
    """`generate -o Makefile` once, then only `make`: a snapshot and a dataset made later
    are sent by the next `make`, never reported as done."""
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    for name in ("docs", "docs/letters"):
        zfs("create", f"{pools.src}/{name}")
        fill(f"{pools.src}/{name}", 0.2)
    zfs("snapshot", "-r", f"{pools.src}@one")
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "-o", str(makefile))
    first = make(makefile, zm.env())
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)

    zfs("create", f"{pools.src}/new one")
    fill(f"{pools.src}/new one", 0.2)
    fill(f"{pools.src}/docs", 0.1)
    zfs("snapshot", "-r", f"{pools.src}@two")
    written = makefile.stat().st_mtime_ns
    second = make(makefile, zm.env())
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Nothing to be done" not in second.stdout
    assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)
    assert "new one@two" in snapshot_guids(pools.backup)
    assert makefile.stat().st_mtime_ns != written  # it remade itself
    unchanged = makefile.stat().st_mtime_ns
    third = make(makefile, zm.env())
    assert third.returncode == 0 and "send" not in third.stdout, third.stdout
    assert makefile.stat().st_mtime_ns == unchanged  # nothing changed: not rewritten


def test_a_diverged_leaf_holds_back_neither_parent_nor_grandparent(pools, zm, tmp_path) -> None:
    names = [pools.src, f"{pools.src}/a", f"{pools.src}/a/b", f"{pools.src}/a/b/leaf"]
    for name in names[1:]:
        zfs("create", name)
    zfs("snapshot", "-r", f"{pools.src}@one")
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "-o", str(makefile))
    assert make(makefile, zm.env()).returncode == 0
    leaf = pools.mirror(names[-1])
    zfs("snapshot", f"{leaf}@theirs")  # the leaf's backup diverged
    zfs("snapshot", "-r", f"{pools.src}@two")
    done = make(makefile, zm.env(), "-k")
    assert done.returncode != 0
    failed = done.stderr.split("zmake: not up to date", 1)[1]
    assert f"{names[-1]}: backup {leaf} has snapshots newer than the common @one" in failed
    for name in names[:-1]:
        assert "two" in snapshot_names(pools.mirror(name)), name
    assert snapshot_names(leaf) == ["one", "theirs"]  # refused: nothing of it destroyed


def test_prune_keeps_what_a_partial_receive_needs_and_backup_converges(pools, zm) -> None:
    """Killed mid-incremental (a resume token for @zmake-r1), then the nightly job with
    --prune --keep 1: @zmake-r1 is kept for the resume, and the run finishes."""
    ds = f"{pools.src}/big"
    zfs("create", "-o", f"mountpoint=/tmp/{pools.src}-big", ds)
    fill(ds, 0.5)
    zfs("snapshot", f"{ds}@zmake-r0")
    zm.send(ds)
    fill(ds, 2)
    zfs("snapshot", f"{ds}@zmake-r1")
    partial_receive(f"{ds}@zmake-r1", pools.mirror(ds), f"{ds}@zmake-r0")
    assert prop(pools.mirror(ds), "receive_resume_token").startswith("1-")
    args = ["backup", ds, *zm.target_args(), "--snapshot", "--prune", "--keep", "1", "--yes"]
    done = zm(*args, "--name", "zmake-n1-%H%M%S", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resume" in done.stdout
    assert "prune: nothing to destroy" in done.stdout  # r0 the base, r1 the resume's
    assert snapshot_guids(pools.mirror(ds)) == snapshot_guids(ds)
    assert len(snapshot_names(ds)) == 3
    again = zm(*args, "--name", "zmake-n2-%H%M%S", check=False)  # now r0 and r1 may go
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot_guids(pools.mirror(ds)) == snapshot_guids(ds)
    assert [name.split("-")[1] for name in snapshot_names(ds)] == ["n1", "n2"]


def test_two_targets_with_alternating_pruning_stay_incremental(pools, zm) -> None:
    """Each target's last snapshot is bookmarked on the source: pruning for one never
    leaves the other without an incremental base, and no full stream is sent again."""
    ds = f"{pools.src}/data"
    zfs("create", "-o", f"mountpoint=/tmp/{pools.src}-data", ds)
    one, two = f"{pools.dst}/one", f"{pools.dst}/two"
    for cycle in range(4):
        dest = (one, two)[cycle % 2]
        fill(ds, 0.2)
        args = ["backup", ds, *zm.target_args(), "--dest", dest, "--snapshot", "--name",
                f"zmake-c{cycle}-%H%M%S", "--prune", "--keep", "1", "--yes"]  # fmt: skip
        done = zm(*args, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        # each target gets one full stream, its first; never again
        assert ("full @" in done.stdout) == (cycle < 2), done.stdout
        backup = dest + ds[len(pools.src) :]
        assert snapshot_names(backup)[-1] == snapshot_names(ds)[-1]
        assert (
            snapshot_guids(backup)[f"@{snapshot_names(ds)[-1]}"]
            == snapshot_guids(ds)[f"@{snapshot_names(ds)[-1]}"]
        )
        if cycle >= 2:
            assert "incremental #zmake-" in done.stdout, done.stdout
    marks = zfs("list", "-H", "-o", "name", "-t", "bookmark", ds).split()
    assert len(marks) == 2 and all("#zmake-" in m for m in marks)  # one per target


def test_a_snapshot_that_cannot_be_destroyed_is_reported_and_the_backup_sent(pools, zm) -> None:
    ds = f"{pools.src}/cloned"
    zfs("create", ds)
    for n in range(3):
        zfs("snapshot", f"{ds}@zmake-0{n}")
    zm.send(ds)
    zfs("clone", f"{ds}@zmake-00", f"{pools.src}/a clone")
    zfs("snapshot", f"{ds}@zmake-03")
    done = zm("backup", ds, *zm.target_args(), "--prune", "--keep", "1", "--yes", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cannot destroy {ds}@zmake-00" in done.stdout
    assert exists(f"{ds}@zmake-00")  # the clone's origin
    assert not exists(f"{ds}@zmake-01")  # the others went
    assert snapshot_names(pools.mirror(ds))[-1] == "zmake-03"
