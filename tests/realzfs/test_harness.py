"""Proof that the guest harness is real: pools, a real ssh remote, names with ' ' and ':'."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import (
    PipelineFailed,
    Pools,
    pipe,
    run,
    snapshot_guids,
    ssh_argv,
    sshd_connection_count,
    write_random,
    write_random_zvol,
    zfs,
)


def recv_stage(dst_pool: str) -> list[str]:
    return ssh_argv(["zfs", "recv", "-u", "-d", dst_pool])


def make_source_tree(pools: Pools) -> list[str]:
    """src/my data (a filesystem) and src/vm:disk0 (a zvol), each with data and @s1."""
    fs = f"{pools.src}/my data"
    vol = f"{pools.src}/vm:disk0"
    zfs("create", "-o", f"mountpoint={pools.mountpoint(fs)}", fs)
    write_random(pools.mountpoint(fs), 2)
    zfs("create", "-V", "16M", vol)
    write_random_zvol(vol, 1)
    zfs("snapshot", "-r", f"{pools.src}@s1")
    return [fs, vol]


def test_send_over_ssh_keeps_names_with_space_and_colon(pools: Pools) -> None:
    datasets = make_source_tree(pools)
    for ds in datasets:
        pipe(["zfs", "send", f"{ds}@s1"], recv_stage(pools.dst))

    local = snapshot_guids(pools.src)
    assert set(local) == {"@s1", "my data@s1", "vm:disk0@s1"}
    received = snapshot_guids(pools.dst)
    assert {k: local[k] for k in ("my data@s1", "vm:disk0@s1")} == received
    # The same names, read back through the remote shell.
    listing = run(
        ssh_argv(["zfs", "list", "-H", "-p", "-o", "name,type", "-t", "all", "-r", pools.dst])
    )
    assert f"{pools.dst}/my data\tfilesystem" in listing.splitlines()
    assert f"{pools.dst}/vm:disk0@s1\tsnapshot" in listing.splitlines()


def test_each_ssh_connection_is_counted_once() -> None:
    before = sshd_connection_count()
    run(ssh_argv(["true"]))
    assert sshd_connection_count() - before == 1


def test_failed_send_fails_the_pipeline(pools: Pools) -> None:
    with pytest.raises(PipelineFailed) as failed:
        pipe(["zfs", "send", f"{pools.src}@missing"], recv_stage(pools.dst))

    send, recv = failed.value.result.stages
    assert send.returncode != 0
    assert "does not exist" in send.stderr
    assert recv.returncode != 0  # recv saw an empty stream and refused it
    assert snapshot_guids(pools.dst) == {}


def test_pipefail_blames_the_sender_even_when_the_receiver_succeeds(pools: Pools) -> None:
    result = pipe(["zfs", "send", f"{pools.src}@missing"], ["cat"], check=False)

    assert result.returncodes[0] != 0
    assert result.returncodes[1] == 0
    assert not result.ok


def test_pools_are_fresh_and_file_backed(pools: Pools) -> None:
    out = run(["zpool", "list", "-H", "-v", "-P", "-o", "name", pools.src])
    assert f"/tmp/zmake-pools/{pools.src}.img" in out
    assert zfs("list", "-H", "-o", "name", "-r", pools.dst).split("\n")[0] == pools.dst
    assert snapshot_guids(pools.src) == {}
    assert not Path(f"/tmp/zmake-mnt/{pools.src}").exists()
