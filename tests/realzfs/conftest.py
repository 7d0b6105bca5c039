"""Wiring for the real-OpenZFS tier: these tests only run inside the guest of guest.py.

Outside the guest every test fails (with how to run it), unless ZMAKE_SKIP_REALZFS=1, the
documented opt-out, skips them. Inside, the fixtures give each test a fresh pair of
file-backed pools and a loopback ssh "remote". Tests import the helpers with
`from .conftest import ...`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.realzfs.support import Zmake

IN_GUEST = os.environ.get("ZMAKE_GUEST") == "1"
SKIP_REQUESTED = os.environ.get("ZMAKE_SKIP_REALZFS") == "1"
NOT_IN_GUEST = "real-ZFS tests run inside the QEMU guest: python tests/realzfs/guest.py"
SKIP_REASON = "ZMAKE_SKIP_REALZFS=1: real-ZFS tests opted out (they need root and QEMU)"

POOL_DIR = Path("/tmp/zmake-pools")
MOUNT_DIR = Path("/tmp/zmake-mnt")
POOL_SIZE = "512M"
MB = 1024 * 1024

_pool_numbers = itertools.count(1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: refuse to run outside the guest, loudly unless opted out."""
    if IN_GUEST:
        return
    if SKIP_REQUESTED:
        pytest.skip(SKIP_REASON)
    pytest.fail(NOT_IN_GUEST, pytrace=False)


# One test that hangs (a stalled pipe, a zfs that never returns) must fail alone, not take the
# whole tier to the guest's timeout with it: its fixtures and teardown count too. The longest
# scenario (test_restore's restore → verify → drill) took over 600 s on a loaded host.
TEST_LIMIT = int(os.environ.get("ZMAKE_REALZFS_TEST_LIMIT", "900"))


class TestTimedOut(Exception):
    pass


def _expired(signum: int, frame: object) -> None:
    raise TestTimedOut(f"over {TEST_LIMIT} s (ZMAKE_REALZFS_TEST_LIMIT)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(TEST_LIMIT)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- running commands -------------------------------------------------------------------


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{shlex.join(argv)} exited {returncode}: {stderr.strip()}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def run(argv: Sequence[str]) -> str:
    """Run argv (no shell) and return its stdout; raise CommandFailed with stderr otherwise."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr)
    return proc.stdout


def zfs(*args: str) -> str:
    return run(["zfs", *args])


def zpool(*args: str) -> str:
    return run(["zpool", *args])


# --- pipelines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    argv: list[str]
    returncode: int
    stderr: str


@dataclass(frozen=True)
class PipeResult:
    stages: list[Stage]

    @property
    def ok(self) -> bool:
        """pipefail: the pipeline succeeds only if every stage does."""
        return all(stage.returncode == 0 for stage in self.stages)

    @property
    def returncodes(self) -> list[int]:
        return [stage.returncode for stage in self.stages]

    def describe(self) -> str:
        lines = [shell_text([s.argv for s in self.stages])]
        lines += [f"  [{s.returncode}] {s.argv[0]}: {s.stderr.strip()}" for s in self.stages]
        return "\n".join(lines)


class PipelineFailed(Exception):
    def __init__(self, result: PipeResult) -> None:
        super().__init__(result.describe())
        self.result = result


def shell_text(stages: Sequence[Sequence[str]]) -> str:
    """The pipeline as copy-pastable shell text."""
    return " | ".join(shlex.join(argv) for argv in stages)


def pipe(*stages: Sequence[str], check: bool = True) -> PipeResult:
    """Run argv stages as an OS pipeline, fd to fd (no byte through Python), pipefail-style.

    The last stage's stdout is discarded. With check, raise PipelineFailed if any stage failed.
    """
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        errs = [stack.enter_context(tempfile.TemporaryFile()) for _ in stages]
        try:
            _start_stages(stages, errs, procs)
            done = zip(procs, stages, errs, strict=True)
            result = PipeResult([_finish(p, argv, e) for p, argv, e in done])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    if check and not result.ok:
        raise PipelineFailed(result)
    return result


def _start_stages(
    stages: Sequence[Sequence[str]], errs: Sequence[IO[bytes]], procs: list[subprocess.Popen[bytes]]
) -> None:
    upstream: IO[bytes] | None = None
    try:
        for i, argv in enumerate(stages):
            last = i == len(stages) - 1
            proc = subprocess.Popen(
                list(argv),
                stdin=upstream if upstream is not None else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                stderr=errs[i],
            )
            procs.append(proc)
            if upstream is not None:
                upstream.close()  # only the child holds it now, so EOF and SIGPIPE propagate
            upstream = proc.stdout
    finally:
        if upstream is not None:
            upstream.close()


def _finish(proc: subprocess.Popen[bytes], argv: Sequence[str], err: IO[bytes]) -> Stage:
    returncode = proc.wait()
    err.seek(0)
    return Stage(list(argv), returncode, err.read().decode(errors="replace"))


# --- the ssh "remote" ---------------------------------------------------------------------


def ssh_config_path() -> Path:
    return Path(os.environ["ZMAKE_SSH_CONFIG"])


def remote_name() -> str:
    return os.environ.get("ZMAKE_TEST_REMOTE", "backup")


def ssh_argv(remote_argv: Sequence[str]) -> list[str]:
    """ssh to the remote running remote_argv, quoted once for the remote shell."""
    return ["ssh", "-F", str(ssh_config_path()), remote_name(), shlex.join(remote_argv)]


def sshd_connection_count() -> int:
    """Accepted ssh connections so far; take a before/after difference to count a step's."""
    log = Path(os.environ["ZMAKE_SSHD_LOG"]).read_text(errors="replace")
    return sum(1 for line in log.splitlines() if line.startswith("Accepted publickey for "))


# --- data and snapshots -------------------------------------------------------------------


def write_random(directory: Path, mb: int, name: str = "random.bin") -> Path:
    """Write `mb` MiB of random bytes to directory/name (a mounted dataset under /tmp)."""
    path = directory / name
    with path.open("wb") as out:
        for _ in range(mb):
            out.write(os.urandom(MB))
    return path


def zvol_device(dataset: str, timeout: float = 20.0) -> Path:
    """/dev/zvol/<dataset>, once udev has created it."""
    device = Path("/dev/zvol") / dataset
    deadline = time.monotonic() + timeout
    while not device.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{device} did not appear within {timeout:.0f}s")
        subprocess.run(["udevadm", "settle", "--timeout=5"], check=False)
        time.sleep(0.2)
    return device


def write_random_zvol(dataset: str, mb: int) -> None:
    """Write `mb` MiB of random bytes at the start of zvol `dataset`."""
    with zvol_device(dataset).open("r+b") as dev:
        for _ in range(mb):
            dev.write(os.urandom(MB))
        dev.flush()
        os.fsync(dev.fileno())


def snapshot_guids(root: str) -> dict[str, int]:
    """Snapshots of the tree at `root`, keyed by name relative to root, valued by guid.

    `root`'s own snapshots are keyed "@s1", a child's "child@s1", so trees received
    elsewhere (recv -d) compare equal with ==.
    """
    guids: dict[str, int] = {}
    out = zfs("list", "-H", "-p", "-o", "name,guid", "-t", "snapshot", "-r", root)
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"zfs list: expected 2 fields, got {len(fields)}: {line!r}")
        name, guid = fields
        guids[name[len(root) :].lstrip("/")] = int(guid)
    return guids


# --- fixtures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pools:
    src: str
    dst: str

    @property
    def backup(self) -> str:
        """The --dest the tests give zmake: a dataset below the backup pool (zmake makes it)."""
        return f"{self.dst}/backup"

    def mirror(self, name: str) -> str:
        """Where the backup of source dataset `name` lives."""
        return self.backup + name[len(self.src) :]

    def mountpoint(self, dataset: str) -> Path:
        """Where to mount `dataset` (the guest's root is read-only; /tmp is writable)."""
        return MOUNT_DIR / dataset


def _free_pool_number() -> int:
    existing = set(zpool("list", "-H", "-o", "name").split())
    for n in _pool_numbers:
        if f"src{n}" not in existing and f"dst{n}" not in existing:
            return n
    raise AssertionError("unreachable")


def _create_pool(name: str) -> None:
    image = POOL_DIR / f"{name}.img"
    run(["truncate", "-s", POOL_SIZE, str(image)])
    zpool("create", "-o", "cachefile=none", "-m", "none", name, str(image))


def _destroy_pool(name: str) -> list[str]:
    errors = []
    try:
        zpool("destroy", "-f", name)
    except CommandFailed as exc:
        if "no such pool" not in exc.stderr:
            errors.append(str(exc))
    (POOL_DIR / f"{name}.img").unlink(missing_ok=True)
    shutil.rmtree(MOUNT_DIR / name, ignore_errors=True)
    return errors


@pytest.fixture
def pools() -> Iterator[Pools]:
    """A fresh pair of empty pools for one test (modules that share theirs call fresh_pools)."""
    with fresh_pools() as made:
        yield made


@contextmanager
def fresh_pools() -> Iterator[Pools]:
    """A fresh pair of empty pools (`-m none`), destroyed afterwards even on a failure."""
    POOL_DIR.mkdir(parents=True, exist_ok=True)
    MOUNT_DIR.mkdir(parents=True, exist_ok=True)
    n = _free_pool_number()
    made = Pools(src=f"src{n}", dst=f"dst{n}")
    try:
        _create_pool(made.src)
        _create_pool(made.dst)
        yield made
    finally:
        errors = _destroy_pool(made.src) + _destroy_pool(made.dst)
        if errors:
            raise RuntimeError("pool teardown failed:\n" + "\n".join(errors))


@pytest.fixture(scope="session")
def ssh_config() -> Path:
    path = ssh_config_path()
    assert path.is_file(), f"{path} missing: guest-init.sh did not set up ssh"
    return path


@pytest.fixture(scope="session")
def remote() -> str:
    return remote_name()


@pytest.fixture
def sshd_connections() -> Callable[[], int]:
    """The sshd_connection_count function: `before = sshd_connections()` ... difference."""
    return sshd_connection_count


@pytest.fixture
def zm(pools: Pools, ssh_config: Path, remote: str, tmp_path: Path) -> Zmake:
    """zmake itself, run as a user runs it, against this test's pools over the real ssh."""
    from tests.realzfs.support import Zmake as ZmakeRunner  # support imports this module

    return ZmakeRunner(tmp_path / "run", str(ssh_config), remote, pools.backup)
