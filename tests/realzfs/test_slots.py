"""Control cost O(jobs), not O(datasets): ssh slot masters and stamp files (real sshd)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realzfs.support import crawling_ssh, exists, fill, snapshot_guids, wait_for_bytes, zfs
from zmake.sides.slots import socket_dir

DATASETS = 16
JOBS = 4


@pytest.fixture
def flat16(pools) -> list[str]:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    names = [f"{pools.src}/d{n:02d}{' x' if n % 5 == 0 else ''}" for n in range(DATASETS)]
    for name in names:
        zfs("create", name)
        fill(name, 0.1)
    zfs("snapshot", "-r", f"{pools.src}@flat")
    return names


def masters(run_dir: Path | None = None) -> list[tuple[int, str]]:
    """Live ssh master processes (ControlPersist masters retitle themselves `ssh: … [mux]`),
    of one run directory's slots when given (other tests' masters may still idle).

    Read /proc, not `ps`: without a terminal ps cuts arguments at 80 columns.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        ours = run_dir is None or f" {socket_dir(run_dir)}/" in title
        if title.startswith("ssh:") and "[mux]" in title and ours:
            found.append((int(entry.name), title.strip()))
    return found


@pytest.fixture(autouse=True)
def no_masters_left() -> Iterator[None]:
    """Masters idle up to ControlPersist after a plain make; end them between tests."""
    yield
    for pid, _ in masters():
        os.kill(pid, signal.SIGTERM)


def make(makefile: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", f"-j{JOBS}", "-f", str(makefile), *extra],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_sixteen_datasets_use_at_most_jobs_connections(
    pools, flat16, zm, sshd_connections, tmp_path
) -> None:
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "--run-dir", str(zm.run_dir), "-o", str(makefile))
    before = sshd_connections()
    first = make(makefile, zm.env())
    assert first.returncode == 0, first.stdout + first.stderr
    opened = sshd_connections() - before
    assert opened <= JOBS + 1, f"{opened} connections for {DATASETS} datasets at -j{JOBS}"
    assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)

    before = sshd_connections()
    again = make(makefile, zm.env())
    assert again.returncode == 0, again.stderr
    assert sshd_connections() - before == 0, again.stdout
    assert "send" not in again.stdout  # nothing ran: every target is a stamp that exists
    idle = masters(zm.run_dir)  # they wait for the next run (ControlPersist)
    assert 1 <= len(idle) <= JOBS, idle


def test_new_snapshot_is_never_mistaken_for_done(pools, flat16, zm, tmp_path) -> None:
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "--run-dir", str(zm.run_dir), "-o", str(makefile))
    assert make(makefile, zm.env()).returncode == 0
    fill(flat16[3], 0.1)
    zfs("snapshot", "-r", f"{pools.src}@second")
    zm("generate", pools.src, *zm.target_args(), "--run-dir", str(zm.run_dir), "-o", str(makefile))
    second = make(makefile, zm.env())
    assert second.returncode == 0, second.stderr
    assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)


def test_backup_killed_then_rerun_converges_and_leaves_no_masters(
    pools, flat16, zm, ssh_config, tmp_path
) -> None:
    # 24 siblings: a send per batch of two (core/batch.py), so the kill also lands mid-batch.
    more = [f"{pools.src}/d{n:02d}" for n in range(DATASETS, 24)]
    for name in more:
        zfs("create", name)
        fill(name, 0.1)
        zfs("snapshot", f"{name}@flat")
    # One ssh command for all three runs: it names the slots, so the rerun closes the masters
    # the killed run left behind.
    slow = crawling_ssh(tmp_path / "slowssh", f"ssh -F {ssh_config}", "30k")
    args = [pools.src, "--remote", zm.remote, "--ssh", slow, "--dest", pools.backup,
            "-j", str(JOBS), "--yes"]  # fmt: skip
    proc = subprocess.Popen(zm.argv("backup", *args), env=zm.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_bytes(slow, 50_000, proc)  # a stream half through, whatever the host's load
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    received = snapshot_guids(pools.backup) if exists(pools.backup) else {}
    assert received != snapshot_guids(pools.src)
    done = zm("backup", *args, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)
    assert masters(zm.run_dir) == []
    (makefile,) = zm.run_dir.glob("backup-*/Makefile")
    assert makefile.read_text().count("# A batch: 2 small datasets") == 12
    again = zm("backup", *args)
    assert again.stdout.count("(stamp)") == len(flat16 + more) + 1
    assert masters(zm.run_dir) == []
