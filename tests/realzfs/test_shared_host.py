"""A backup host that is not ours alone (issue 13): an encrypted parent, datasets of its own
beside the backups, a user's dataset where a backup would go, a --dest inside the source."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.realzfs.support import exists, fill, make, prop, snapshot_guids, zfs

TREE = ("home", "home/alice", "home/bob smith", "vm:disks")


def tree(pools) -> list[str]:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    names = [f"{pools.src}/{name}" for name in TREE]
    for name in names:
        zfs("create", name)
        fill(name, 0.2)
    zfs("snapshot", "-r", f"{pools.src}@one")
    return [pools.src, *names]


def test_plain_source_into_an_encrypted_backup_parent(pools, zm, tmp_path) -> None:
    """`--dest dst/vault/laptop` under an encrypted `dst/vault`: the backups are encrypted
    at rest by the backup host's key, plain streams go in, the first run and the next
    incremental both work, and the vault's key status is untouched."""
    key = tmp_path / "vault.key"
    key.write_text("backup host passphrase")
    vault = f"{pools.dst}/vault"
    zfs("create", "-o", "encryption=on", "-o", "keyformat=passphrase",
        "-o", f"keylocation=file://{key}", vault)  # fmt: skip
    names = tree(pools)
    dest = f"{vault}/laptop"
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "--dest", dest, "-o", str(makefile))
    first = make(makefile, zm.env())
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_guids(dest) == snapshot_guids(pools.src)
    for name in names:
        backup = dest + name[len(pools.src) :]
        assert prop(backup, "encryptionroot") == vault, backup
    fill(names[2], 0.1)
    zfs("snapshot", "-r", f"{pools.src}@two")
    second = make(makefile, zm.env())
    assert second.returncode == 0, second.stdout + second.stderr
    assert snapshot_guids(dest) == snapshot_guids(pools.src)
    assert prop(vault, "keystatus") == "available"


def mounted_busy(dataset: str, mountpoint: str) -> subprocess.Popen[bytes]:
    zfs("create", "-o", f"mountpoint={mountpoint}", dataset)
    Path(mountpoint, "file").write_bytes(b"the backup host's own\n")
    return subprocess.Popen(["sleep", "600"], cwd=mountpoint)


def test_the_backup_hosts_own_busy_dataset_is_never_touched(pools, zm, tmp_path) -> None:
    names = tree(pools)
    own = f"{pools.dst}/media"
    busy = mounted_busy(own, f"/tmp/{pools.dst}-media")
    try:
        # --dest a dataset below the pool, the whole source pool
        done = zm("backup", pools.src, *zm.target_args(), "-j", "4", "--yes", check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)
        # --dest the pool itself is fine for a subtree: its root is not the pool's
        home = names[1]
        done = zm("backup", home, *zm.target_args(), "--dest", pools.dst, "-j", "4", "--yes",
                  check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert snapshot_guids(f"{pools.dst}/home") == snapshot_guids(home)
        # … but would replace the pool's own root for the whole source pool: refused
        refused = zm("backup", pools.src, *zm.target_args(), "--dest", pools.dst, "--yes",
                     check=False)  # fmt: skip
        assert refused.returncode == 2 and "is a pool" in refused.stderr
        assert prop(own, "mounted") == "yes"
        assert Path(f"/tmp/{pools.dst}-media/file").read_bytes() == b"the backup host's own\n"
    finally:
        busy.kill()
        busy.wait()


def test_a_users_dataset_where_a_backup_would_go_is_never_replaced(pools, zm, tmp_path) -> None:
    names = tree(pools)
    zm.send(names[-1])  # zmake makes --dest (a placeholder for the pool's root)
    docs = f"{pools.backup}/home"  # where src/home's backup would go: the user's own
    zfs("create", "-o", f"mountpoint=/tmp/{pools.dst}-docs", docs)
    Path(f"/tmp/{pools.dst}-docs/letter").write_bytes(b"x" * 100 * 1024)
    zfs("unmount", docs)  # as `zmake backup` would leave it
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "-o", str(makefile))
    done = make(makefile, zm.env())
    assert done.returncode != 0
    report = done.stderr.split("zmake: not up to date", 1)[1].splitlines()[1:]
    lines = [line for line in report if line and not line.startswith("make")]
    assert len(lines) == 1, report  # only that one
    assert lines[0].startswith(f"{names[1]}: {docs} exists on the backup without a snapshot")
    zfs("mount", docs)
    assert Path(f"/tmp/{pools.dst}-docs/letter").read_bytes() == b"x" * 100 * 1024
    zfs("unmount", docs)
    assert not [s for s in snapshot_guids(docs) if s.startswith("@")]
    for name in (names[0], *names[2:]):  # everything else, the children of home too
        backup = pools.mirror(name)
        assert snapshot_guids(backup)["@one"] == snapshot_guids(name)["@one"], name
    forced = zm("send", names[1], *zm.target_args(), "--force", check=False)
    assert forced.returncode == 9 and "did not create it" in forced.stderr  # --force neither
    zfs("mount", docs)
    assert Path(f"/tmp/{pools.dst}-docs/letter").read_bytes() == b"x" * 100 * 1024


def test_a_local_dest_inside_or_above_the_source_is_refused(pools, zm) -> None:
    tree(pools)
    for dest, roots in (
        (f"{pools.src}/backup", [pools.src]),
        (f"{pools.src}/home/b", [f"{pools.src}/home"]),
        (pools.src, [f"{pools.src}/home"]),
    ):
        for command in ("generate", "backup", "send"):
            done = zm(command, *roots, "--dest", dest, check=False)
            assert done.returncode == 2, (command, dest, done.stderr)
            assert "overlaps the source" in done.stderr or "is a pool" in done.stderr
    assert not exists(f"{pools.src}/backup") and not exists(f"{pools.src}/home/b")
