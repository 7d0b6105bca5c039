"""ssh slots: control cost O(jobs), not O(datasets).

A run with N parallel jobs keeps up to N ssh masters, one per slot, each its own TCP
connection. A send takes a free slot (an flock), runs its query and its one data stream
through that slot's master, and gives the slot back; so at most one stream uses a
connection at a time and N slots are still N independent flows.

A slot's master is started by the first control command that finds it down (ssh's
ControlMaster=auto, which also replaces the stale socket of a killed run), so a send costs no
extra ssh process to check or start it.

If the user's own ssh configuration sets a ControlPath, zmake does not override it: control
queries go through the user's multiplexing and each data stream gets its own connection
(`-S none`). Whether it does (`ssh -G`) is asked once and remembered in the socket folder
until an ssh configuration file changes or `zmake backup` ends."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from zmake.core.errors import UsageError
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side, master_control_argv, ssh_config_argv, ssh_prefix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

# sockaddr_un holds 108 bytes; keep well below with the socket's own name appended.
MAX_SOCKET_DIR = 70
MAKE_JOBS = re.compile(r"(?:^|\s)-[a-zA-Z]*j(\d*)")
UNLIMITED_JOBS_SLOTS = 8
# Masters of one host open gradually: slot i's first connection waits i times this, so a run's
# K connections to a host never arrive in the same instant (sshd's MaxStartups counts the
# connections still authenticating, whoever's they are).
MASTER_STAGGER = 0.25
MOST_STAGGERED = 8  # a -j32 run's last masters wait 2 s, not 8


def jobs_from_makeflags(makeflags: str | None) -> int | None:
    """N of `make -jN` as make passes it to recipes in MAKEFLAGS (` -j8 --jobserver-…`)."""
    if not makeflags:
        return None
    flags = re.split(r"(?:^|\s)--(?:\s|$)", makeflags, maxsplit=1)[0]  # not the variables
    match = MAKE_JOBS.search(flags)
    if match is None:
        return None
    return int(match.group(1)) if match.group(1) else UNLIMITED_JOBS_SLOTS


def socket_dir(run_dir: Path) -> Path:
    """`run_dir/ssh`, or a short private directory under /tmp when that path is too long
    (in bytes) for a Unix socket, or holds a `%` (ssh expands %-tokens in socket paths)."""
    preferred = run_dir / "ssh"
    if len(os.fsencode(preferred)) <= MAX_SOCKET_DIR and "%" not in str(preferred):
        folder = preferred
    else:
        digest = hashlib.sha256(os.fsencode(run_dir.resolve())).hexdigest()[:10]
        folder = Path(f"/tmp/zmake-{os.geteuid()}-{digest}")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:  # a file or a dangling symlink is in the way
        reason = "not a directory of ours (a file or dangling symlink); remove it"
        raise UsageError(f"{folder}: {reason}") from None
    return private_directory(folder)


def private_directory(folder: Path) -> Path:
    """Refuse a folder someone else could have planted (a symlink, another owner), then
    make sure only we can use it."""
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise UsageError(f"{folder}: not a directory of ours (symlink or other owner); remove it")
    os.chmod(folder, 0o700, follow_symlinks=False)
    return folder


def user_multiplexes(runner: Runner, side: Side, folder: Path) -> bool:
    """Does the user's ssh config set its own ControlPath for this ssh command and host?"""
    assert side.host is not None
    remembered = mux_answer(folder, side)
    if answer_is_current(remembered, ssh_config_files(side.ssh)):
        return remembered.read_text() == "user"
    result = runner.run(ssh_config_argv(side.ssh, side.host))
    if result.returncode != 0:  # let the real command report what is wrong
        return False
    multiplexes = any(
        key == "controlpath" and value.strip() not in ("", "none")
        for key, _, value in (line.partition(" ") for line in result.stdout.splitlines())
    )
    remembered.write_text("user" if multiplexes else "zmake")
    return multiplexes


def mux_answer(folder: Path, side: Side) -> Path:
    """Where user_multiplexes remembers its answer for this ssh command and host."""
    return folder / f"mux-{side.key}"


def ssh_config_files(ssh: str) -> list[Path]:
    """The files ssh reads its configuration from: -F FILE, or the user's and the system's."""
    words = ssh_prefix(ssh)
    for index, word in enumerate(words):
        if word == "-F" and index + 1 < len(words):
            return [Path(words[index + 1]).expanduser()]
        if word.startswith("-F") and len(word) > 2:
            return [Path(word[2:]).expanduser()]
    system = Path("/etc/ssh")
    return [Path("~/.ssh/config").expanduser(), system / "ssh_config", system / "ssh_config.d"]


def answer_is_current(remembered: Path, sources: list[Path]) -> bool:
    try:
        written = remembered.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    for source in sources:
        try:
            if source.stat().st_mtime_ns >= written:
                return False
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


@contextmanager
def take_slot(folder: Path, key: str, slots: int) -> Iterator[int]:
    """Hold one of `slots` slot locks for `key`; wait while every slot is busy.

    All busy only when another make shares this run directory. Of the sends waiting, one
    polls the slots; the others sleep in flock on the queue lock (polling costs CPU)."""
    handles = []
    try:
        for number in range(slots):
            handles.append(open(folder / f"s{number}-{key}.lock", "w"))  # noqa: SIM115
        index = first_free(handles)
        if index is None:
            with open(folder / f"queue-{key}.lock", "w") as queue:
                fcntl.flock(queue, fcntl.LOCK_EX)
                while (index := first_free(handles)) is None:
                    time.sleep(0.2)
        yield index
    finally:
        for handle in handles:
            handle.close()


def first_free(handles: Sequence[IO[str]]) -> int | None:
    """Lock the first free slot; its index, or None when all are busy."""
    for index, handle in enumerate(handles):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        return index
    return None


@contextmanager
def ssh_slot(runner: Runner, run_dir: Path, side: Side, slots: int) -> Iterator[Side]:
    """The side to use while holding a slot (unchanged for this machine, which takes no
    slot, or when the user's own ssh config multiplexes)."""
    if side.host is None or slots < 1 or side.socket is not None:  # socket: holds one already
        yield side
        return
    folder = socket_dir(run_dir)
    own_masters = not user_multiplexes(runner, side, folder)
    # The slot limits the streams to `slots` even when the user's master carries them all.
    with take_slot(folder, side.key, slots) as index:
        if not own_masters:
            yield side
            return
        socket = folder / f"s{index}-{side.key}"
        if not socket.exists():  # its master is down: this send's first command opens it
            time.sleep(min(index, MOST_STAGGERED) * MASTER_STAGGER)
        yield replace(side, socket=str(socket))


@contextmanager
def route_slots(runner: Runner, run_dir: Path, route: Route, slots: int) -> Iterator[Route]:
    """A slot on each remote side of the route (the source's first, in every send, so two
    sends never wait for each other's)."""
    with (
        ssh_slot(runner, run_dir, route.source, slots) as source,
        ssh_slot(runner, run_dir, route.target, slots) as target,
    ):
        yield replace(route, source=source, target=target)


def close_masters(runner: Runner, run_dir: Path, side: Side) -> int:
    """Close every slot master of `side` (end of `zmake backup`). Returns how many."""
    if side.host is None:
        return 0
    folder = socket_dir(run_dir)
    mux_answer(folder, side).unlink(missing_ok=True)
    sockets = [s for s in sorted(folder.glob(f"s*-{side.key}")) if s.suffix != ".lock"]
    exits = [master_control_argv(side.ssh, side.host, str(s), "exit") for s in sockets]
    results = runner.run_all(exits)  # side by side: each is a whole ssh start
    for socket in sockets:
        socket.unlink(missing_ok=True)
    return sum(result.returncode == 0 for result in results)
