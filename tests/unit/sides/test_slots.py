"""zmake/sides/slots.py and the ssh options of sides/zfs_argv.py that go with it.

A run with `make -jN` shares up to N ssh masters ("slots"): a send holds one slot's flock
while its control commands (`-S <socket> -o ControlMaster=auto`, which start the master when
it is down) and its one data stream (`-o ControlMaster=no`) go through that slot's master.
Without a slot, control commands add nothing to the
user's ssh and data streams opt out of any multiplexing (`-S none`).

The MAKEFLAGS shapes below are what GNU make 4.3 really hands to recipes (checked by running
make, see test_jobs_from_makeflags_under_gnu_make): single-letter flags without arguments in
the first word (no dash), then ` -jN`, then `--jobserver-auth=…`, then ` -- ` and the
command line's variable assignments."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from zmake.cli.arguments import slot_count
from zmake.cli.main import build_parser
from zmake.core.decide import Action, Step
from zmake.core.errors import UsageError
from zmake.core.model import FILESYSTEM, Dataset, Snapshot
from zmake.core.plan import Selection
from zmake.sides import slots
from zmake.sides.runner import Result, Runner
from zmake.sides.side import (
    KEEPALIVE,
    MASTER_PERSIST_SECONDS,
    Route,
    Side,
    master_control_argv,
    socket_options,
    ssh_config_argv,
)
from zmake.sides.slots import (
    MASTER_STAGGER,
    UNLIMITED_JOBS_SLOTS,
    close_masters,
    jobs_from_makeflags,
    socket_dir,
    ssh_slot,
    take_slot,
)
from zmake.sides.zfs_argv import recv_argv, send_argv
from zmake.targets.pool.send import Sender, SendOptions

SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes, the last one a NUL
SSH_TEMP_SUFFIX = 17  # an ssh master binds `<ControlPath>.<16 random chars>` first, then renames
KEY = "0123456789ab"
SOCKET = "/run/zmake/ssh/s3-0123456789ab"  # only a string here: nothing is created

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh -G")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


# --- make -jN → how many slots ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("makeflags", "jobs"),
    [
        (None, None),
        ("", None),
        ("s", None),  # make -s
        ("ks", None),  # make -k -s
        (" -j8 --jobserver-auth=3,4", 8),  # make -j8
        ("k -j4 --jobserver-auth=3,4", 4),  # make -kj4 (the k stays in the first word)
        ("ks -j3 --jobserver-auth=3,4", 3),  # make -ksj3
        ("is -j2 --jobserver-auth=3,4", 2),  # make -ij2 -s
        (" -j1", 1),  # make -j1: no jobserver
        (" -j", UNLIMITED_JOBS_SLOTS),  # make -j: no limit
        ("k -j", UNLIMITED_JOBS_SLOTS),  # make -kj
        (" -j3 -l2 --jobserver-auth=3,4", 3),  # make -l2 -j3
        (" -I/tmp -j2 --jobserver-auth=3,4", 2),  # make -j2 -I /tmp
        (" -j3 -Otarget --jobserver-auth=3,4", 3),  # make -Otarget -j3
        (" -j4 --jobserver-auth=fifo:/tmp/GMfifo1234", 4),  # GNU make 4.4
        (" -j3 --jobserver-auth=3,4 -- REMOTE=nas", 3),  # make -j3 REMOTE=nas
        (" -- REMOTE=nas", None),  # make REMOTE=nas
        (" -- SSH=ssh\\ -p\\ 2222", None),  # make SSH='ssh -p 2222'
        (" -- SSH=ssh\\ -ljdoe", None),  # make SSH='ssh -ljdoe': not -j of make
        ("k -- X=a\\ -j9", None),  # make -k X='a -j9'
        (" -j3 --jobserver-auth=3,4 -- X=a\\ -j9", 3),  # make -j3 X='a -j9'
        (" -j2 --jobserver-auth=3,4 -- X=a\\ --\\ -j9", 2),  # make -j2 X='a -- -j9'
        ("kj4", None),  # never written by make: -j takes an argument, so not in the first word
    ],
)
def test_jobs_from_makeflags(makeflags: str | None, jobs: int | None) -> None:
    assert jobs_from_makeflags(makeflags) == jobs


PROBE = """\
import json, os
from zmake.sides.slots import jobs_from_makeflags
print(json.dumps([os.environ.get("MAKEFLAGS"), jobs_from_makeflags(os.environ.get("MAKEFLAGS"))]))
"""


def under_make(tmp_path: Path, args: list[str]) -> tuple[str | None, int | None]:
    """(MAKEFLAGS, jobs_from_makeflags of it) as seen by a recipe of `make ARGS`."""
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "Makefile").write_text(f"all:\n\t@{sys.executable} probe.py\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(
        ["make", "-s", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    makeflags, jobs = json.loads(done.stdout)
    return makeflags, jobs


@pytest.mark.parametrize(
    ("args", "jobs"),
    [
        ([], None),
        (["-k"], None),
        (["-j"], UNLIMITED_JOBS_SLOTS),
        (["-j1"], 1),
        (["-j6"], 6),
        (["-kj4"], 4),
        (["-k", "-j", "4"], 4),
        (["--jobs=5"], 5),
        (["-l2", "-j3"], 3),
        (["-j2", "REMOTE=nas-j9", "DEST=x -j7"], 2),
        (["REMOTE=nas", "SSH=ssh -p 2222"], None),
        (["-j3", "X=a -- -j9"], 3),
    ],
)
def test_jobs_from_makeflags_under_gnu_make(
    tmp_path: Path, args: list[str], jobs: int | None
) -> None:
    makeflags, found = under_make(tmp_path, args)
    assert found == jobs, makeflags


@pytest.mark.parametrize("assignment", ["SSH=ssh -ljdoe", "X=a -j9", "X=a -- -j9"])
def test_variables_on_make_s_command_line_are_not_job_flags(
    tmp_path: Path, assignment: str
) -> None:
    makeflags, found = under_make(tmp_path, [assignment])  # a serial make: no slots
    assert makeflags is not None and " -- " in makeflags and "-j" not in makeflags.split(" -- ")[0]
    assert found is None, makeflags


@pytest.mark.parametrize(
    ("slots_option", "makeflags", "expected"),
    [
        (None, None, 0),
        (None, "k -j4 --jobserver-auth=3,4", 4),
        ("2", "k -j4 --jobserver-auth=3,4", 2),  # --slots wins
        ("0", " -j8 --jobserver-auth=3,4", 0),
    ],
)
def test_slot_count_from_the_option_or_make(
    monkeypatch: pytest.MonkeyPatch, slots_option: str | None, makeflags: str | None, expected: int
) -> None:
    if makeflags is None:
        monkeypatch.delenv("MAKEFLAGS", raising=False)
    else:
        monkeypatch.setenv("MAKEFLAGS", makeflags)
    argv = ["send", "tank"] + ([f"--slots={slots_option}"] if slots_option else [])
    assert slot_count(build_parser().parse_args(argv)) == expected


# --- where the sockets live ---------------------------------------------------------------------


@pytest.fixture
def fallbacks() -> Iterator[list[Path]]:
    """Folders socket_dir made outside the test's tmp dir (its /tmp fallback): removed after."""
    made: list[Path] = []
    yield made
    for folder in made:
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.exists():
            folder.chmod(0o700)
            shutil.rmtree(folder)


def assert_sockets_fit(folder: Path) -> None:
    """A slot socket (up to -j1000) and ssh's temporary name for it fit in sun_path, and the
    kernel agrees."""
    for name in (f"s0-{KEY}", f"s999-{KEY}"):
        path = folder / name
        assert len(os.fsencode(path)) + SSH_TEMP_SUFFIX <= SUN_PATH_MAX, path
        temp = os.fsencode(path) + b".0123456789abcdef"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(temp)
        os.unlink(temp)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_socket_dir_is_a_private_ssh_folder_in_the_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    folder = socket_dir(run_dir)
    assert folder == run_dir / "ssh"
    assert folder.is_dir() and not folder.is_symlink() and mode(folder) == 0o700
    assert_sockets_fit(folder)
    folder.chmod(0o755)  # already there, too open: made private again
    assert socket_dir(run_dir) == folder and mode(folder) == 0o700


@pytest.mark.parametrize("length", [150, 400])
def test_socket_dir_stays_short_for_a_long_run_dir(
    tmp_path: Path, fallbacks: list[Path], length: int
) -> None:
    run_dir = tmp_path / ("r" * (length - len(str(tmp_path)) - 1))
    assert len(str(run_dir)) == length
    folder = socket_dir(run_dir)
    fallbacks.append(folder)
    assert folder.is_dir() and not folder.is_symlink() and mode(folder) == 0o700
    assert folder.stat().st_uid == os.geteuid()
    assert_sockets_fit(folder)
    assert socket_dir(run_dir) == folder  # the same folder every time, for every send
    other = socket_dir(tmp_path / ("s" * (length - len(str(tmp_path)) - 1)))
    fallbacks.append(other)
    assert other != folder  # another run dir: other sockets


def test_socket_dir_threshold(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("b")
    for extra in (0, 1):  # run_dir/ssh of exactly 70 and 71 characters
        run_dir = base / ("x" * (70 + extra - len("/ssh") - len(str(base)) - 1))
        assert len(str(run_dir / "ssh")) == 70 + extra
        folder = socket_dir(run_dir)
        try:
            assert (folder == run_dir / "ssh") == (extra == 0)
            assert_sockets_fit(folder)
            assert mode(folder) == 0o700
        finally:
            if extra:
                shutil.rmtree(folder)


def test_socket_dir_counts_bytes_not_characters(
    tmp_path_factory: pytest.TempPathFactory, fallbacks: list[Path]
) -> None:
    base = tmp_path_factory.mktemp("u")
    run_dir = base / ("é" * (66 - len(str(base)) - 1))  # 70 characters with /ssh, more bytes
    assert len(str(run_dir / "ssh")) == 70 and len(os.fsencode(run_dir / "ssh")) > 90
    folder = socket_dir(run_dir)
    fallbacks.append(folder)
    assert_sockets_fit(folder)


def fallback_of(run_dir: Path, fallbacks: list[Path]) -> Path:
    """The /tmp folder socket_dir picks for `run_dir`, removed again."""
    folder = socket_dir(run_dir)
    assert not folder.is_relative_to(run_dir)
    shutil.rmtree(folder)
    fallbacks.append(folder)
    return folder


@pytest.mark.parametrize(
    "planted",
    [
        "symlink",
        pytest.param("other owner", marks=needs_root),
        "dangling symlink",
        "symlink to a file",
        "file",
    ],
)
def test_socket_dir_refuses_a_planted_fallback(
    tmp_path: Path, fallbacks: list[Path], planted: str
) -> None:
    """Someone else can create /tmp/zmake-<uid>-<digest> before us: socket_dir refuses it
    (UsageError) without touching what it points to."""
    run_dir = tmp_path / ("r" * 120)
    folder = fallback_of(run_dir, fallbacks)
    victim = tmp_path / "victim"
    if planted == "symlink to a file":
        victim.write_text("secret")
    else:
        victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    if planted == "other owner":
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)
        os.chown(folder, 65534, 65534)
    elif planted == "file":
        folder.write_text("planted")
    else:
        folder.symlink_to(tmp_path / "nowhere" if planted == "dangling symlink" else victim)
    with pytest.raises(UsageError, match="not a directory of ours"):
        socket_dir(run_dir)
    assert mode(victim) == 0o755 and not (tmp_path / "nowhere").exists()
    assert not victim.is_dir() or list(victim.iterdir()) == []
    assert folder.is_symlink() or planted in ("other owner", "file")  # left as it was
    if planted == "other owner":
        assert mode(folder) == 0o777 and folder.lstat().st_uid == 65534


# --- taking a slot ------------------------------------------------------------------------------


def test_take_slot_gives_distinct_slots_and_waits_when_all_are_busy(tmp_path: Path) -> None:
    folder = socket_dir(tmp_path / "run")
    count = 3
    taken: dict[int, threading.Event] = {}  # index → set to release that holder
    guard = threading.Lock()
    all_taken = threading.Barrier(count + 1)

    def hold() -> None:
        with take_slot(folder, KEY, count) as index:
            release = threading.Event()
            with guard:
                assert index not in taken
                taken[index] = release
            all_taken.wait(timeout=10)
            assert release.wait(timeout=10)

    holders = [threading.Thread(target=hold) for _ in range(count)]
    for thread in holders:
        thread.start()
    all_taken.wait(timeout=10)
    assert sorted(taken) == list(range(count))

    late: list[int] = []
    entered = threading.Event()

    def wait_for_one() -> None:
        with take_slot(folder, KEY, count) as index:
            late.append(index)
            entered.set()

    waiter = threading.Thread(target=wait_for_one)
    waiter.start()
    assert not entered.wait(timeout=0.6)  # every slot busy: it waits
    taken[1].set()  # slot 1 is given back: the waiter gets exactly that one
    assert entered.wait(timeout=5)
    waiter.join(timeout=5)
    assert late == [1]
    for release in taken.values():
        release.set()
    for thread in holders:
        thread.join(timeout=5)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"queue-{KEY}.lock", *(f"s{i}-{KEY}.lock" for i in range(count))]


def test_waiting_sends_queue_behind_one_poller(tmp_path: Path) -> None:
    """With the only slot busy, one waiter holds the queue lock and polls; the other sleeps in
    flock. Each gets the slot in turn."""
    folder = socket_dir(tmp_path / "run")
    entered: list[threading.Event] = [threading.Event(), threading.Event()]
    leave = threading.Event()

    def wait_for_the_slot(number: int) -> None:
        with take_slot(folder, KEY, 1) as index:
            assert index == 0
            entered[number].set()
            assert leave.wait(timeout=10)

    with take_slot(folder, KEY, 1):
        waiters = [threading.Thread(target=wait_for_the_slot, args=(n,)) for n in (0, 1)]
        for thread in waiters:
            thread.start()
        assert not any(e.wait(timeout=0.5) for e in entered)
        with open(folder / f"queue-{KEY}.lock", "w") as queue, pytest.raises(BlockingIOError):
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a waiter holds it
    first = 0 if entered[0].wait(timeout=5) else 1
    assert entered[first].is_set() and not entered[1 - first].wait(timeout=0.5)
    leave.set()
    assert entered[1 - first].wait(timeout=5)
    for thread in waiters:
        thread.join(timeout=5)


def test_take_slot_prefers_the_lowest_free_slot_and_gives_it_back(tmp_path: Path) -> None:
    folder = socket_dir(tmp_path / "run")
    with take_slot(folder, KEY, 4) as first, take_slot(folder, KEY, 4) as second:
        assert (first, second) == (0, 1)  # separate open()s conflict, even in one thread
        with take_slot(folder, "fedcba987654", 4) as other_key:
            assert other_key == 0  # another connection's slots are its own
    with take_slot(folder, KEY, 4) as again:
        assert again == 0
    with pytest.raises(RuntimeError), take_slot(folder, KEY, 4) as failing:
        assert failing == 0
        raise RuntimeError("a send fails while holding its slot")
    with take_slot(folder, KEY, 4) as after_failure:
        assert after_failure == 0  # released all the same


HOLDER = """\
import fcntl, sys
with open(sys.argv[1], "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()
"""


def test_take_slot_sees_slots_held_by_another_process(tmp_path: Path) -> None:
    folder = socket_dir(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder / f"s0-{KEY}.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with take_slot(folder, KEY, 2) as index:
            assert index == 1
    finally:
        holder.communicate(timeout=10)
    with take_slot(folder, KEY, 2) as index:
        assert index == 0
    # one slot, held elsewhere: wait until it is free
    with open(folder / f"s0-{KEY}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        timer = threading.Timer(0.5, handle.close)
        timer.start()
        with take_slot(folder, KEY, 1) as index:
            assert index == 0 and handle.closed
        timer.join()


# --- ssh_slot with a fake runner ---------------------------------------------------------------


class FakeRunner(Runner):
    """Answers ssh -G with `config`; every other command succeeds."""

    def __init__(self, *, config: str = "") -> None:
        super().__init__()
        self.config = config
        self.calls: list[list[str]] = []

    def run(self, argv: list[str]) -> Result:
        self.calls.append(argv)
        return Result(argv, 0, self.config if "-G" in argv else "", "")

    def run_all(self, argvs: Sequence[list[str]]) -> list[Result]:
        return [self.run(argv) for argv in argvs]


REMOTE = Side("me@nas", ssh="ssh -p 2222")
ASK_CONFIG = ssh_config_argv("ssh -p 2222", "me@nas")


def test_ssh_slot_is_not_used_without_a_remote_or_slots(tmp_path: Path) -> None:
    runner = FakeRunner()
    local = Side()
    with ssh_slot(runner, tmp_path, local, 4) as target:
        assert target == local
    with ssh_slot(runner, tmp_path, REMOTE, 0) as target:
        assert target == REMOTE
    assert runner.calls == [] and list(tmp_path.iterdir()) == []


def test_ssh_slot_leaves_the_users_own_multiplexing_alone(tmp_path: Path) -> None:
    runner = FakeRunner(config="user me\ncontrolpath /home/me/.ssh/cm-%C\ncontrolmaster auto\n")
    with ssh_slot(runner, tmp_path, REMOTE, 4) as target:
        assert target == REMOTE
    with ssh_slot(runner, tmp_path, REMOTE, 4) as target:
        assert target == REMOTE
    assert runner.calls == [ASK_CONFIG]  # asked once, then remembered


def test_ssh_slot_still_limits_the_streams_when_the_user_multiplexes(tmp_path: Path) -> None:
    """The user's master carries every query, but no more than `slots` sends at once (two
    makes may share a run directory)."""
    runner = FakeRunner(config="user me\ncontrolpath /home/me/.ssh/cm-%C\n")
    folder = socket_dir(tmp_path)
    key = REMOTE.key
    with ssh_slot(runner, tmp_path, REMOTE, 1) as target:
        assert target == REMOTE
        lock = open(folder / f"s0-{key}.lock", "w")  # noqa: SIM115
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.close()


def test_ssh_slot_hands_out_one_socket_per_slot_without_running_anything(tmp_path: Path) -> None:
    """Starting, checking or replacing a stale master is left to the first control command
    (ControlMaster=auto); the slot only names the socket."""
    runner = FakeRunner(config="user me\ncontrolpath none\n")
    folder = socket_dir(tmp_path)
    key = REMOTE.key
    with ssh_slot(runner, tmp_path, REMOTE, 4) as target:
        assert target == Side("me@nas", "ssh -p 2222", socket=f"{folder}/s0-{key}")
        with ssh_slot(runner, tmp_path, REMOTE, 4) as second:
            assert second.socket == str(folder / f"s1-{key}")
    with ssh_slot(runner, tmp_path, REMOTE, 4) as again:
        assert again.socket == str(folder / f"s0-{key}")  # given back, taken again
    assert runner.calls == [ASK_CONFIG]


def test_a_hosts_masters_open_gradually(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slot i's master, when down, waits i times MASTER_STAGGER before its first connection:
    K sends starting at once never knock on the host's sshd in the same instant. A master
    already up costs no wait."""
    waits: list[float] = []
    monkeypatch.setattr(slots.time, "sleep", waits.append)
    runner = FakeRunner(config="user me\ncontrolpath none\n")
    folder = socket_dir(tmp_path)
    with (
        ssh_slot(runner, tmp_path, REMOTE, 3),
        ssh_slot(runner, tmp_path, REMOTE, 3),
        ssh_slot(runner, tmp_path, REMOTE, 3) as third,
    ):
        assert waits == [0, MASTER_STAGGER, 2 * MASTER_STAGGER]
        Path(str(third.socket)).touch()  # its master now up
    (folder / f"s0-{REMOTE.key}").touch()
    waits.clear()
    with ssh_slot(runner, tmp_path, REMOTE, 3), ssh_slot(runner, tmp_path, REMOTE, 3):
        pass
    assert waits == [MASTER_STAGGER]  # slot 0 up, slot 1 down; slot 2 not needed
    waits.clear()
    multiplexing = FakeRunner(config="user me\ncontrolpath /home/me/.ssh/cm-%C\n")
    for _ in range(3):  # the user's own master: no socket of ours ever appears
        with (
            ssh_slot(multiplexing, tmp_path / "own", REMOTE, 3),
            ssh_slot(multiplexing, tmp_path / "own", REMOTE, 3),
        ):
            pass
    assert waits == []


def test_the_remembered_answer_is_asked_again_when_the_ssh_config_changes(
    tmp_path: Path,
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host nas\n")
    target = Side("me@nas", ssh=f"ssh -F '{config}'")
    runner = FakeRunner(config="controlpath none\n")
    with ssh_slot(runner, tmp_path, target, 2) as first:
        assert first.socket is not None
    remembered = socket_dir(tmp_path) / f"mux-{target.key}"
    old = remembered.stat().st_mtime_ns - 10**9
    os.utime(remembered, ns=(old, old))
    runner.config = "controlpath /home/me/.ssh/cm-%C\n"
    with ssh_slot(runner, tmp_path, target, 2) as second:
        assert second == target  # the user's ControlPath now wins
    assert len(runner.calls) == 2
    assert close_masters(runner, tmp_path, target) == 0
    assert not remembered.exists()  # forgotten at the end of a backup


@pytest.mark.parametrize(
    ("ssh", "files"),
    [
        ("ssh -F /etc/zmake/ssh.conf -p 2", ["/etc/zmake/ssh.conf"]),
        ("ssh -F/etc/zmake/ssh.conf", ["/etc/zmake/ssh.conf"]),
        ("ssh -p 2222", ["~/.ssh/config", "/etc/ssh/ssh_config", "/etc/ssh/ssh_config.d"]),
    ],
)
def test_ssh_config_files(ssh: str, files: list[str]) -> None:
    assert slots.ssh_config_files(ssh) == [Path(f).expanduser() for f in files]


def test_close_masters_closes_this_targets_sockets_only(tmp_path: Path) -> None:
    folder = socket_dir(tmp_path)
    key = REMOTE.key
    other = Side("other").key
    for name in (f"s0-{key}", f"s3-{key}", f"s0-{key}.lock", f"s0-{other}"):
        (folder / name).write_text("")
    runner = FakeRunner()
    assert close_masters(runner, tmp_path, REMOTE) == 2
    assert runner.calls == [
        master_control_argv("ssh -p 2222", "me@nas", str(folder / f"s{i}-{key}"), "exit")
        for i in (0, 3)
    ]
    assert {p.name for p in folder.iterdir()} == {f"s0-{key}.lock", f"s0-{other}"}
    assert close_masters(FakeRunner(), tmp_path, Side()) == 0


def test_connection_key_names_the_ssh_command_and_the_host() -> None:
    key = REMOTE.key
    assert len(key) == 12 and int(key, 16) >= 0
    assert Side("me@nas", "ssh -p 2222", socket="/elsewhere").key == key
    assert Side("me@nas", "ssh -p 22").key != key
    assert Side("you@nas", "ssh -p 2222").key != key


# --- ssh options of control commands and data streams -------------------------------------------


def dataset() -> Dataset:
    snapshots = (Snapshot("tank/my data@a", 1, 10),)
    return Dataset(name="tank/my data", kind=FILESYSTEM, snapshots=snapshots)


def stream_ssh(target: Side, compress: str) -> list[str]:
    ds = dataset()
    step = Step(Action.FULL, to_snapshot=ds.snapshots[0])
    route = Route(Side(), target, "backup", compress)
    return route.pipeline(send_argv(step, ds), recv_argv(step, ds, "backup"))[-1]


THROUGH_SLOT = ["-S", SOCKET, "-o", "ControlMaster=no"]
STARTS_SLOT = [
    "-S", SOCKET, "-o", "ControlMaster=auto", "-o", f"ControlPersist={MASTER_PERSIST_SECONDS}"
]  # fmt: skip


def test_socket_options() -> None:
    assert socket_options(SOCKET) == STARTS_SLOT
    assert socket_options(SOCKET, own_connection=True) == THROUGH_SLOT
    assert socket_options(None) == []
    assert socket_options(None, own_connection=True) == ["-S", "none"]


def test_control_commands_go_through_the_slot_master() -> None:
    target = Side("me@nas", ssh="ssh -p 2222", socket=SOCKET)
    assert target.control(["zfs", "list", "b/my data"]) == [
        "ssh", "-p", "2222", *STARTS_SLOT, *KEEPALIVE, "--", "me@nas", "zfs list 'b/my data'",
    ]  # fmt: skip


def test_without_a_slot_control_commands_add_nothing() -> None:
    target = Side("me@nas", ssh="ssh -p 2222")
    assert target.control(["zfs", "list"]) == [
        "ssh", "-p", "2222", *KEEPALIVE, "--", "me@nas", "zfs list"
    ]  # fmt: skip


@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_data_streams_go_through_the_slot_master(compress: str) -> None:
    ssh = stream_ssh(Side("me@nas", "ssh -p 2222", socket=SOCKET), compress)
    assert ssh[:-1] == ["ssh", "-p", "2222", *THROUGH_SLOT, *KEEPALIVE, "--", "me@nas"]
    assert "none" not in ssh[:-1]


@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_without_a_slot_data_streams_get_their_own_connection(compress: str) -> None:
    ssh = stream_ssh(Side("me@nas", "ssh -p 2222"), compress)
    assert ssh[:-1] == ["ssh", "-p", "2222", "-S", "none", *KEEPALIVE, "--", "me@nas"]


def test_this_machine_never_uses_ssh() -> None:
    target = Side(socket=SOCKET)
    assert target.control(["zfs", "list"]) == ["zfs", "list"]
    ds = dataset()
    step = Step(Action.FULL, to_snapshot=ds.snapshots[0])
    send, recv = send_argv(step, ds), recv_argv(step, ds, "backup")
    assert Route(Side(), target, "backup", "zstd").pipeline(send, recv) == [send, recv]


def test_master_commands() -> None:
    assert master_control_argv("ssh -p 2222", "me@nas", SOCKET, "check") == [
        "ssh", "-p", "2222", "-S", SOCKET, "-O", "check", "--", "me@nas",
    ]  # fmt: skip
    assert ssh_config_argv("ssh -p 2222", "me@nas") == ["ssh", "-p", "2222", "-G", "--", "me@nas"]


def effective_ssh_options(argv: list[str]) -> dict[str, str]:
    """What OpenSSH would use for this command line (`ssh -G`, no network)."""
    done = subprocess.run(
        [argv[0], "-G", *argv[1:]], capture_output=True, text=True, timeout=30, check=True
    )
    return dict(line.partition(" ")[::2] for line in done.stdout.splitlines())


@needs_ssh
@pytest.mark.parametrize(
    "ssh",
    ["ssh -F /dev/null", "ssh -F /dev/null -o ControlPath=/tmp/user-%C -S /tmp/user-s"],
)
def test_ssh_uses_the_slot_socket(ssh: str) -> None:
    """-S wins over a ControlPath in --ssh, for control commands (which may start the
    master) and for streams (which never do)."""
    target = Side("me@nas", ssh, socket=SOCKET)
    options = effective_ssh_options(stream_ssh(target, "none"))
    assert (options["controlpath"], options["controlmaster"]) == (SOCKET, "false")
    options = effective_ssh_options(target.control(["zfs", "list"]))
    assert (options["controlpath"], options["controlmaster"]) == (SOCKET, "auto")
    assert options["controlpersist"] == str(MASTER_PERSIST_SECONDS)


@needs_ssh
def test_a_run_dir_with_a_percent_sign_still_gives_usable_sockets(
    tmp_path_factory: pytest.TempPathFactory, fallbacks: list[Path]
) -> None:
    """ssh percent-expands -S: a run dir holding `%`, however short, gets the /tmp fallback."""
    run_dir = tmp_path_factory.mktemp("p") / "100%" / "run"
    assert len(os.fsencode(run_dir / "ssh")) <= slots.MAX_SOCKET_DIR  # short enough otherwise
    folder = socket_dir(run_dir)
    fallbacks.append(folder)
    assert not folder.is_relative_to(run_dir) and "%" not in str(folder)
    assert folder.is_dir() and not folder.is_symlink() and mode(folder) == 0o700
    assert socket_dir(run_dir) == folder
    assert_sockets_fit(folder)
    path = str(folder / f"s0-{KEY}")
    target = Side("me@nas", "ssh -F /dev/null", socket=path)
    done = subprocess.run(
        ["ssh", "-G", *target.control(["true"])[1:]], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert f"controlpath {path}\n" in done.stdout


def test_slots_module_constants_are_consistent() -> None:
    """The socket folder limit leaves room for the socket's name and ssh's temporary one."""
    longest = slots.MAX_SOCKET_DIR + len(f"/s999-{KEY}") + SSH_TEMP_SUFFIX
    assert longest <= SUN_PATH_MAX


# --- a send holds its slot only while the backup is involved -----------------------------------


def local_get(snapshot: bool) -> str:
    """`zfs get` of tank/d (type, guid, createtxg, written, referenced, used, creation,
    mountpoint, encryption), with one snapshot s1 (guid 12) or none."""
    values = ["filesystem", "2", "5", "0", "200", "200", "1780000000", "-", "off"]
    names = ["type", "guid", "createtxg", "written", "referenced", "used", "creation",
             "mountpoint"]  # fmt: skip
    props = [*names, "encryption"]
    text = "".join(f"tank/d\t{p}\t{v}\t-\n" for p, v in zip(props, values, strict=True))
    if snapshot:
        snap = ["snapshot", "12", "7", "200", "200", "0", "1780000420", "-", "off"]
        text += "".join(f"tank/d@s1\t{p}\t{v}\t-\n" for p, v in zip(props, snap, strict=True))
    return text


class SlotWatchingRunner(Runner):
    """Answers one up-to-date send; notes, for each command, whether slot 0 was held."""

    def __init__(self, lock: Path, *, snapshot: bool = True) -> None:
        super().__init__()
        self.lock, self.snapshot = lock, snapshot
        self.calls: list[tuple[str, bool]] = []

    def slot_held(self) -> bool:
        if not self.lock.exists():
            return False
        with self.lock.open("w") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False

    def run(self, argv: list[str]) -> Result:
        if "-G" in argv:
            return Result(argv, 0, "controlpath none\n", "")
        kind = {"get": "local get", "bookmark": "bookmark"}.get(argv[1], "remote")
        self.calls.append((kind, self.slot_held()))
        out = local_get(self.snapshot) if kind == "local get" else (
            "backup/d\tfilesystem\t900\t5\t200\t0\t-\toff\t-\t-\tno\ton\t-\n"
            "backup/d@s1\tsnapshot\t12\t6\t200\t200\t-\toff\t-\t-\t-\t-\t-\n"
        ) if kind == "remote" else ""  # fmt: skip
        return Result(argv, 0, out, "")

    def run_all(self, argvs: Sequence[list[str]]) -> list[Result]:
        return [self.run(argv) for argv in argvs]


def sender(runner: Runner, tmp_path: Path) -> Sender:
    options = SendOptions(Route(Side(), REMOTE, "backup"), Selection(("tank",)), slots=1)
    return Sender(runner, options, tmp_path)


def test_a_send_holds_its_slot_only_while_the_backup_is_involved(tmp_path: Path) -> None:
    """The source is read before, and zmake's bookmark made after, with the slot free."""
    lock = socket_dir(tmp_path) / f"s0-{REMOTE.key}.lock"
    runner = SlotWatchingRunner(lock)
    report = sender(runner, tmp_path).send("tank/d")
    assert report.result == "up to date (@s1)"
    assert runner.calls == [("local get", False), ("remote", True), ("bookmark", False)]


def test_a_dataset_without_snapshots_takes_no_slot(tmp_path: Path) -> None:
    lock = socket_dir(tmp_path) / f"s0-{REMOTE.key}.lock"
    runner = SlotWatchingRunner(lock, snapshot=False)
    report = sender(runner, tmp_path).send("tank/d")
    assert report.result == "no snapshot to send"
    assert runner.calls == [("local get", False)] and not lock.exists()


def test_a_negative_slot_count_is_refused_at_the_edge(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["send", "tank", "--slots=-3"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "zmake send: argument --slots: '-3': at least 0 (see zmake send --help)\n"
    )
