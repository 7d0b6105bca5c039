"""Retention by age and calendar, restore, content verification and the drill (issue 18), on
real OpenZFS through the loopback sshd.

Snapshot ages are real: the guest's clock is moved forward between snapshots (only ever
forward, so nothing later in the session sees time run backwards)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realzfs.conftest import POOL_DIR, _create_pool, _destroy_pool, write_random_zvol
from tests.realzfs.support import (
    crawling_ssh,
    encrypted_tree,
    exists,
    fill,
    prop,
    prop_or_none,
    wait_for_bytes,
    zfs,
)

DAY, HOUR = 86400, 3600


def snapshots_of(dataset: str) -> list[str]:
    out = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-d", "1", dataset)
    return [line.partition("@")[2] for line in out.splitlines()]


def guids(root: str) -> dict[str, str]:
    """Every snapshot below `root` by its name relative to `root`, with its GUID."""
    out = zfs("list", "-H", "-p", "-o", "name,guid", "-t", "snapshot", "-r", root)
    return {n[len(root) :]: g for n, g in (line.split("\t") for line in out.splitlines())}


def set_clock(epoch: int) -> None:
    assert epoch > time.time(), "the clock only moves forward here"
    subprocess.run(["date", "-u", "-s", f"@{epoch}"], check=True, capture_output=True)


def test_retention_keeps_what_each_sides_policy_says_and_never_the_base(pools, zm) -> None:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    data = f"{pools.src}/data"
    zfs("create", data)
    # Day 0 … 9 at noon (UTC), and a second snapshot on day 9 an hour later.
    noon = (int(time.time()) // DAY + 1) * DAY + 12 * HOUR
    for day in range(10):
        set_clock(noon + day * DAY)
        fill(data, 0.02)
        zfs("snapshot", f"{data}@zmake-d{day}")
        if day == 1:
            zfs("snapshot", f"{data}@mine")  # not zmake's: never pruned
    set_clock(noon + 9 * DAY + HOUR)
    zfs("snapshot", f"{data}@zmake-d9b")
    zm("backup", data, *zm.target_args(), "--yes")
    backup = pools.mirror(data)
    zfs("hold", "keep-me", f"{backup}@zmake-d2")  # held on the backup: never pruned
    set_clock(noon + 10 * DAY)
    zfs("snapshot", f"{data}@zmake-d10")  # not sent yet: @zmake-d9b stays the base
    policy = ["--keep-source", "within=2d", "--keep-backup", "daily=4", "--remote-side"]

    dry = zm("prune", data, *zm.target_args(), *policy, "--dry-run")
    lines = dry.stdout.splitlines()
    print(dry.stdout)  # shown when an assertion fails
    assert f"prune: source: keep    {data}@zmake-d10 (the newest)" in lines
    assert f"prune: source: keep    {data}@zmake-d9b (the next incremental's base)" in lines
    assert f"prune: source: keep    {data}@zmake-d9 (within=2d)" in lines
    assert f"prune: source: keep    {data}@mine (not zmake's)" in lines
    assert f"prune: source: destroy {data}@zmake-d8 (no rule of within=2d keeps it)" in lines
    assert any(f"keep    {backup}@zmake-d2 (held)" in line for line in lines)
    assert any(f"keep    {backup}@zmake-d7 (daily " in line for line in lines)
    assert any(f"destroy {backup}@zmake-d9 (no rule of daily=4" in line for line in lines)
    assert "prune: nothing destroyed" in lines
    assert "zmake-d0" in snapshots_of(data) and "zmake-d0" in snapshots_of(backup)

    zm("prune", data, *zm.target_args(), *policy, "--yes")
    assert snapshots_of(data) == ["mine", "zmake-d9", "zmake-d9b", "zmake-d10"]
    # Backup, daily=4: the newest of days 9, 8, 7, 6 (@zmake-d9 is not its day's newest),
    # the held one, and nothing else.
    assert snapshots_of(backup) == [
        "mine", "zmake-d2", "zmake-d6", "zmake-d7", "zmake-d8", "zmake-d9b",
    ]  # fmt: skip
    again = zm("backup", data, *zm.target_args(), "--yes")
    assert "incremental" in again.stdout and "full @" not in again.stdout
    assert guids(backup)["@zmake-d10"] == guids(data)["@zmake-d10"]
    zfs("release", "keep-me", f"{backup}@zmake-d2")


@pytest.fixture
def rescue(pools) -> Iterator[str]:
    """A fresh, empty pool to restore into (mounted under /tmp)."""
    name = pools.src.replace("src", "rescue")
    _create_pool(name)
    zfs("set", f"mountpoint=/tmp/{name}", name)
    yield name
    _destroy_pool(name)


def files(mountpoint: str, *children: str) -> dict[str, bytes]:
    """Every file below `mountpoint` but in the mounted `children` (datasets of their own)."""
    root = Path(mountpoint)
    found = {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}
    return {
        name: path.read_bytes()
        for name, path in found.items()
        if not any(name.startswith(f"{child}/") for child in children)
    }


def snapshot_files(dataset: str, short: str) -> dict[str, bytes]:
    return files(f"{prop(dataset, 'mountpoint')}/.zfs/snapshot/{short}")


def flip_a_byte_on_disk(pool: str, marker: bytes) -> None:
    """Silent corruption: change the byte after `marker` in the pool's image while exported
    (the backup was received with checksum=off, so ZFS cannot notice)."""
    zfs_pool_export = ["zpool", "export", pool]
    subprocess.run(zfs_pool_export, check=True)
    image = POOL_DIR / f"{pool}.img"
    with open(image, "r+b") as handle:
        content = handle.read()
        offset = content.find(marker)
        assert offset >= 0 and content.find(marker, offset + 1) < 0, "marker not found once"
        handle.seek(offset + len(marker))
        handle.write(bytes([content[offset + len(marker)] ^ 0xFF]))
    subprocess.run(["zpool", "import", "-d", str(POOL_DIR), pool], check=True)


def test_restore_verify_and_drill(pools, zm, rescue, tmp_path) -> None:
    src = pools.src
    *plain, secret = encrypted_tree(src, tmp_path / "key", ["home", "home/my docs:1", "big"])
    home, docs, big = plain
    fill(big, 3)
    zfs("create", "-V", "4M", f"{src}/vm:disk0")
    write_random_zvol(f"{src}/vm:disk0", 1)
    zfs("snapshot", "-r", f"{src}@zmake-1")
    fill(home, 0.1)
    zfs("snapshot", "-r", f"{src}@zmake-2")
    zm("backup", src, *zm.target_args(), "--yes")
    backup_guids = guids(pools.backup)

    # verify: a good backup is the same; a raw one without its key is not verifiable here.
    good = zm("verify", home, f"{src}/vm:disk0", secret, *zm.target_args(), check=False)
    assert good.returncode == 3, good.stdout + good.stderr  # all the same, one not verifiable
    assert f"{home} @zmake-2: same content (" in good.stdout
    assert f"{docs} @zmake-2: same content (" in good.stdout
    assert f"{src}/vm:disk0 @zmake-2: same content (1 files or chunks)" in good.stdout
    assert f"{secret} @zmake-2: NOT VERIFIABLE HERE: " in good.stdout
    assert "key is not loaded" in good.stdout and "DIFFERS" not in good.stdout
    assert f"pool {pools.dst} on {zm.remote}: healthy; last scan: " in good.stdout
    assert prop(f"{pools.mirror(home)}", "mounted") == "no"  # read without mounting it

    # restore: a subtree pulled back into a fresh pool, parents first; GUIDs and files equal.
    plan = zm("restore", home, "--into", f"{rescue}/home", *zm.target_args(), "-n")
    assert plan.stdout.count("restore: ") == 2 and not exists(f"{rescue}/home")
    zm("restore", home, "--into", f"{rescue}/home", *zm.target_args())
    assert guids(f"{rescue}/home") == {k: v for k, v in guids(home).items() if "zmake-2" in k}
    zfs("mount", "-a")
    assert files(f"/tmp/{rescue}/home", "my docs:1") == snapshot_files(home, "zmake-2")
    assert files(f"/tmp/{rescue}/home/my docs:1") == snapshot_files(docs, "zmake-2")
    before = guids(rescue)
    again = zm("restore", home, "--into", f"{rescue}/home", *zm.target_args())
    assert "already holds @zmake-2" in again.stdout and guids(rescue) == before
    # One older snapshot of one dataset, and the refusal over an existing dataset.
    zm("restore", f"{home}@zmake-1", "--into", f"{rescue}/old", "--no-children",
       *zm.target_args())  # fmt: skip
    assert guids(f"{rescue}/old") == {"@zmake-1": guids(home)["@zmake-1"]}
    # --force: only over a dataset that shares a snapshot, rolled forward from it.
    newer = ["--into", f"{rescue}/old", "--no-children", *zm.target_args()]
    assert zm("restore", home, *newer, check=False).returncode == 9
    zm("restore", home, *newer, "--force")
    assert guids(f"{rescue}/old") == {k: v for k, v in guids(home).items() if "/" not in k}
    zfs("create", f"{rescue}/taken")
    refused = zm("restore", home, "--into", f"{rescue}/taken", *zm.target_args(), "--force",
                 check=False)  # fmt: skip
    assert refused.returncode == 9 and "shares no snapshot" in refused.stderr
    assert snapshots_of(f"{rescue}/taken") == []
    # Raw stays raw: received without the key, readable once it is loaded.
    zm("restore", secret, "--into", f"{rescue}/secret", *zm.target_args())
    assert prop(f"{rescue}/secret", "encryptionroot") == f"{rescue}/secret"
    assert prop(f"{rescue}/secret", "keystatus") == "unavailable"
    zfs("load-key", "-L", f"file://{tmp_path / 'key'}", f"{rescue}/secret")
    zfs("mount", f"{rescue}/secret")
    assert files(f"/tmp/{rescue}/secret") == snapshot_files(secret, "zmake-2")
    # From the backup host's side (zmake there, the source over ssh): it sends back.
    zm("restore", docs, "--into", f"{rescue}/sent back", "--source", zm.remote, "--ssh", zm.ssh,
       "--dest", zm.dest)  # fmt: skip
    assert guids(f"{rescue}/sent back") == {"@zmake-2": guids(docs)["@zmake-2"]}

    # Interrupted and run again: carried on from the resume token.
    crawl = crawling_ssh(tmp_path / "slowssh", zm.ssh, "150k", pull=True)
    slow = ["--remote", zm.remote, "--ssh", crawl, "--dest", zm.dest]
    argv = [sys.executable, "-m", "zmake", "restore", big, "--into", f"{rescue}/big", *slow]
    proc = subprocess.Popen(argv, env=zm.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_bytes(crawl, 1024 * 1024, proc)  # of the 3 MiB: 20 s at this pace
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while not (prop_or_none(f"{rescue}/big", "receive_resume_token") or "").startswith("1-"):
        assert time.monotonic() < deadline, "no partial receive"
        time.sleep(0.5)
    resumed = zm("restore", big, "--into", f"{rescue}/big", *zm.target_args())
    assert "resume" in resumed.stdout
    assert guids(f"{rescue}/big") == {"@zmake-2": guids(big)["@zmake-2"]}

    # drill: restored on the backup host, compared, removed — the pool as it was.
    drilled = zm("drill", home, *zm.target_args(), "--sample", "50%", check=False)
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    assert "same content" in drilled.stdout and "removed" in drilled.stdout
    raw_drill = zm("drill", secret, *zm.target_args(), check=False)
    assert raw_drill.returncode == 3 and "NOT VERIFIABLE HERE" in raw_drill.stdout
    assert guids(pools.dst) == {f"/backup{k}": v for k, v in backup_guids.items()}
    assert "zmake-drill" not in zfs("list", "-H", "-o", "name", "-r", pools.dst)

    # Silent corruption of one byte on the backup's disk: verify names the file. A backup of
    # its own, below a dataset of the backup host with checksum=off (ZFS cannot notice it),
    # holding the only copy of the marked block in that pool.
    marker = b"ZMAKE-MARKER-" + os.urandom(8).hex().encode()
    (Path(prop(docs, "mountpoint")) / "victim file").write_bytes(marker + os.urandom(200_000))
    zfs("snapshot", f"{docs}@zmake-3")
    zfs("create", "-o", "checksum=off", f"{pools.dst}/nocsum")
    fragile = ["--remote", zm.remote, "--ssh", zm.ssh, "--dest", f"{pools.dst}/nocsum/b"]
    zm("backup", docs, *fragile, "--yes")
    assert zm("verify", docs, *fragile).returncode == 0
    flip_a_byte_on_disk(pools.dst, marker)
    subprocess.run(["zpool", "scrub", "-w", pools.dst], check=True)  # it cannot see this
    bad = zm("verify", docs, *fragile, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"{docs} @zmake-3: DIFFERS: victim file differs" in bad.stdout
    told = f"pool {pools.dst} on {zm.remote}: healthy; last scan: scrub repaired 0B"
    assert told in bad.stdout and "with 0 errors" in bad.stdout
