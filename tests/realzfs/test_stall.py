"""No stalled night (issue 26) on real OpenZFS: a stream frozen mid-way (its relay stopped,
as a hung peer or link looks from here) is stopped after --stall-timeout and left resumable;
the next run finishes it with every GUID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.realzfs.support import (
    crawling_ssh,
    fill,
    prop_or_none,
    snapshot_guids,
    wait_for_bytes,
    zfs,
)


def freeze_relay(session: int) -> list[int]:
    """SIGSTOP the crawling wrapper's pv: no byte moves on, nothing exits."""
    found = subprocess.run(["pgrep", "-s", str(session), "-x", "pv"], capture_output=True,
                           text=True, check=False).stdout.split()  # fmt: skip
    assert found, "no pv in the send's session"
    for pid in found:
        os.kill(int(pid), signal.SIGSTOP)
    return [int(pid) for pid in found]


def left_in_session(session: int) -> list[str]:
    """Processes of `session` still running or stopped (a zombie waiting to be reaped by an
    init that may never reap it counts as gone)."""
    deadline, left = time.monotonic() + 30, ["?"]
    while left and time.monotonic() < deadline:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, _, tail = stat.read_text().rpartition(")")
            except OSError:
                continue
            fields = tail.split()  # state, ppid, pgrp, session, …
            if int(fields[3]) == session and fields[0] not in ("Z", "X"):
                left.append(f"{head.split('(', 1)[-1]} ({fields[0]})")
        time.sleep(1)
    return left


def start_send(zm, dataset: str, target: list[str], log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen(zm.argv("send", dataset, *target, *extra), env=zm.env(),
                                start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=output, stderr=output)  # fmt: skip


def token(backup: str) -> str:
    return prop_or_none(backup, "receive_resume_token") or ""


def test_a_frozen_stream_is_stopped_resumable_and_the_next_run_finishes(
    pools, zm, ssh_config, tmp_path
):
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    big = f"{pools.src}/big"
    zfs("create", big)
    fill(big, 3)
    zfs("snapshot", f"{big}@zmake-a")
    backup = f"{pools.backup}/big"
    slow = crawling_ssh(tmp_path / "slowssh", f"ssh -F {ssh_config}", "100k")
    target = ["--remote", zm.remote, "--ssh", slow, "--dest", pools.backup]

    # The control: with no limit (0) the frozen stream only hangs — nothing would end it.
    hung = start_send(zm, big, target, tmp_path / "hung.log", "--stall-timeout", "0")
    wait_for_bytes(slow, 300_000, hung)
    freeze_relay(hung.pid)
    time.sleep(25)  # more than twice the limit the next run gets
    assert hung.poll() is None, (tmp_path / "hung.log").read_text()
    os.killpg(hung.pid, signal.SIGKILL)
    hung.wait()
    deadline = time.monotonic() + 60
    while not token(backup).startswith("1-"):  # the killed receive's partial state
        assert time.monotonic() < deadline, "no partial receive after the kill"
        time.sleep(0.5)
    first_token = token(backup)

    # zmake's watchdog: the resumed stream freezes too; it is stopped after 10 s, on its own.
    watched = start_send(zm, big, target, tmp_path / "watched.log", "--stall-timeout", "10s")
    wait_for_bytes(slow, 600_000, watched)
    frozen_at = time.monotonic()
    freeze_relay(watched.pid)
    code = watched.wait(timeout=120)
    said = (tmp_path / "watched.log").read_text()
    assert code == 8, said
    assert "big: stalled, no data moved for 10s: stopped" in said, said
    assert time.monotonic() - frozen_at < 60, "stopped, but long after the limit"
    assert left_in_session(watched.pid) == [], "the stopped stream left processes behind"
    deadline = time.monotonic() + 60
    while not (token(backup).startswith("1-") and token(backup) != first_token):
        assert time.monotonic() < deadline, "what arrived before the freeze was not kept"
        time.sleep(0.5)

    done = zm.send(big, check=False)  # the next run, a healthy link: resumes and finishes
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resum" in done.stdout, done.stdout
    assert snapshot_guids(backup) == snapshot_guids(big)
    assert token(backup) == ""
