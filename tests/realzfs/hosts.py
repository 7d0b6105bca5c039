"""Several "hosts" inside the one guest, for fleet tests: extra sshds of root's on their own
loopback addresses (127.0.0.0/8 is all local), and an ssh config that names each one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

NOTHING_LISTENS = "127.0.0.9"  # connection refused: an unreachable host


def root_ssh_dir() -> Path:
    return Path(os.environ["ZMAKE_SSH_CONFIG"]).parent  # guest-init.sh's SSH_DIR


@contextmanager
def sshds(addresses: list[str], folder: Path) -> Iterator[dict[str, Path]]:
    """An sshd per address (root's main sshd's config, its address and pid file changed);
    yields address → its log (LogLevel VERBOSE: a line per accepted login)."""
    base = (root_ssh_dir() / "sshd_config").read_text().splitlines()
    kept = [line for line in base if not line.startswith(("ListenAddress", "PidFile"))]
    pids, logs = [], {}
    try:
        for address in addresses:
            config, log = folder / f"sshd-{address}.conf", folder / f"sshd-{address}.log"
            pid_file = folder / f"sshd-{address}.pid"
            config.write_text("\n".join([f"ListenAddress {address}", f"PidFile {pid_file}",
                                         *kept]) + "\n")  # fmt: skip
            subprocess.run(["/usr/sbin/sshd", "-f", str(config), "-E", str(log)], check=True)
            deadline = time.monotonic() + 30
            while not (pid_file.exists() and pid_file.read_text().strip().isdigit()):
                assert time.monotonic() < deadline, log.read_text()  # written, not yet full
                time.sleep(0.2)
            pids.append(int(pid_file.read_text()))
            logs[address] = log
        yield logs
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # killed already (kill_host)
                os.kill(pid, signal.SIGTERM)


def kill_host(folder: Path, address: str) -> None:
    """The host gone mid-run: SIGKILL the sshd that `sshds` started for `address` in
    `folder`, and every session it forked (with what they run)."""
    listener = int((folder / f"sshd-{address}.pid").read_text())
    for pid in [listener, *descendants(listener)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def ssh_config(names: Mapping[str, str], path: Path) -> Path:
    """A client config whose Host NAME goes to its address, with root's key and options."""
    options = [
        line
        for line in (root_ssh_dir() / "config").read_text().splitlines()
        if line.startswith((" ", "\t")) and not line.strip().startswith("HostName")
    ]
    blocks = [f"Host {name}\n    HostName {address}\n" + "\n".join(options) + "\n"
              for name, address in names.items()]  # fmt: skip
    path.write_text("".join(blocks))
    return path


def logins(log: Path) -> int:
    return sum("Accepted publickey for " in line for line in log.read_text().splitlines())
