"""Run the real-OpenZFS test tier (or one shell command) inside a virtme-ng guest.

Usage, from the repository root:

    .venv/bin/python tests/realzfs/guest.py                      # pytest tests/realzfs -v
    .venv/bin/python tests/realzfs/guest.py -- tests/realzfs -k ssh -x
    .venv/bin/python tests/realzfs/guest.py --exec 'zfs version'

Boots one guest with the Debian kernel that has a dkms-built zfs.ko, runs guest-init.sh in it
(zfs module, loopback sshd as the remote "backup"), streams the guest's output, and exits
with the status the guest wrote to the shared results directory (.realzfs/). Environment:
ZMAKE_VNG_VENV (virtme-ng venv, default /opt/zmake-vng), ZMAKE_GUEST_KERNEL (a vmlinuz path).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import runtime_pack

REPO = Path(__file__).resolve().parents[2]
INIT_SCRIPT = Path(__file__).resolve().with_name("guest-init.sh")
RESULTS_DIR = REPO / ".realzfs"
DEFAULT_PYTEST_ARGS = ["tests/realzfs", "-v"]
INSTALL_HINT = "run scripts/install-realzfs.sh (as root)"
TAIL_LINES = 25
CONTROL_FILES = ("mode", "command", "argv", "started", "status")
EXIT_NO_GUEST = 97
EXIT_NO_STATUS = 98
EXIT_TIMEOUT = 124


class GuestError(Exception):
    """The guest could not be started or did not report a status; the message says why."""

    def __init__(self, message: str, exit_code: int = EXIT_NO_GUEST) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Timings:
    start: float = field(default_factory=time.monotonic)
    booted: float | None = None
    ready: float | None = None
    end: float | None = None

    def summary(self) -> str:
        end = self.end if self.end is not None else time.monotonic()
        parts = []
        if self.booted is not None:
            parts.append(f"boot {self.booted - self.start:.1f}s")
        if self.booted is not None and self.ready is not None:
            parts.append(f"setup {self.ready - self.booted:.1f}s")
        if self.ready is not None:
            parts.append(f"run {end - self.ready:.1f}s")
        parts.append(f"total {end - self.start:.1f}s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Request:
    command: str | None
    pytest_args: list[str]
    timeout: float
    memory: str
    cpus: int


def parse_args(argv: list[str]) -> Request:
    own, pytest_args = split_at_double_dash(argv)
    parser = argparse.ArgumentParser(
        prog="guest.py",
        description="Run the real-ZFS tests (or --exec CMD) in one virtme-ng guest.",
        epilog="Arguments after -- go to pytest (default: tests/realzfs -v).",
    )
    parser.add_argument("--exec", dest="command", help="run this shell command instead of pytest")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds (default 3600)")
    parser.add_argument("--memory", default="3G", help="guest memory (default 3G)")
    parser.add_argument("--cpus", type=int, default=2, help="guest CPUs (default 2)")
    ns = parser.parse_args(own)
    if ns.command is not None and pytest_args:
        parser.error("--exec and pytest arguments after -- are exclusive")
    return Request(
        command=ns.command,
        pytest_args=pytest_args or list(DEFAULT_PYTEST_ARGS),
        timeout=ns.timeout,
        memory=ns.memory,
        cpus=ns.cpus,
    )


def split_at_double_dash(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def find_vng() -> Path:
    venv = Path(os.environ.get("ZMAKE_VNG_VENV", "/opt/zmake-vng"))
    vng = venv / "bin" / "vng"
    if not os.access(vng, os.X_OK):
        raise GuestError(f"virtme-ng not found at {vng}: {INSTALL_HINT}")
    return vng


def version_key(version: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+~-]", version)]


def find_kernel() -> Path:
    override = os.environ.get("ZMAKE_GUEST_KERNEL")
    if override:
        if not Path(override).is_file():
            raise GuestError(f"ZMAKE_GUEST_KERNEL={override} is not a file")
        return Path(override)
    candidates = [
        ver.name
        for ver in Path("/lib/modules").glob("*")
        if Path(f"/boot/vmlinuz-{ver.name}").is_file()
        and any((ver / "updates" / "dkms").glob("zfs.ko*"))
    ]
    if not candidates:
        raise GuestError(
            "no kernel with a dkms-built zfs.ko (/lib/modules/<ver>/updates/dkms/zfs.ko*"
            f" plus /boot/vmlinuz-<ver>): {INSTALL_HINT}"
        )
    return Path(f"/boot/vmlinuz-{max(candidates, key=version_key)}")


def prepare_run_dir(request: Request) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    run_dir = RESULTS_DIR / f"run-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    if request.command is not None:
        (run_dir / "mode").write_text("exec\n")
        (run_dir / "command").write_text(request.command)
    else:
        (run_dir / "mode").write_text("pytest\n")
        (run_dir / "argv").write_bytes(b"".join(a.encode() + b"\0" for a in request.pytest_args))
    return run_dir


def vng_argv(vng: Path, kernel: Path, run_dir: Path, request: Request) -> list[str]:
    guest_cmd = shlex.join(["bash", str(INIT_SCRIPT), str(run_dir)])
    return [
        str(vng),
        "--run",
        str(kernel),
        "--disable-kvm",
        "--memory",
        request.memory,
        "--cpus",
        str(request.cpus),
        "--rwdir",
        str(RESULTS_DIR),
        "--cwd",
        str(REPO),
        "--exec",
        guest_cmd,
    ]


def stream(proc: subprocess.Popen[bytes], timings: Timings, tail: collections.deque[str]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line.rstrip("\r\n"))
        if timings.booted is None and line.startswith("zmake-guest: booted"):
            timings.booted = time.monotonic()
        elif timings.ready is None and line.startswith("zmake-guest: ready"):
            timings.ready = time.monotonic()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def start_vng(argv: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)  # vng calls virtme-run from its own venv's bin
    env["PATH"] = f"{Path(argv[0]).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: vng, qemu and helpers die together
    )


def boot(argv: list[str], timeout: float, timings: Timings, tail: collections.deque[str]) -> int:
    """Run vng, streaming its output; return its exit status. Kills it after `timeout` s."""
    proc = start_vng(argv)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        kill_group(proc)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        stream(proc, timings, tail)
        rc = proc.wait()
    except BaseException:
        kill_group(proc)
        proc.wait()
        raise
    finally:
        timer.cancel()
    if expired.is_set():
        raise GuestError(f"timed out after {timeout:.0f}s; guest killed", EXIT_TIMEOUT)
    return rc


def read_status(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "status").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def missing_status_error(run_dir: Path, vng_rc: int, tail: collections.deque[str]) -> GuestError:
    lines = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
    if not (run_dir / "started").exists():
        what = f"the guest never ran guest-init.sh (vng exited {vng_rc}): boot failure"
        return GuestError(f"{what}; last lines of its output:\n{lines}", EXIT_NO_GUEST)
    what = f"the guest booted but wrote no status (vng exited {vng_rc}): crash or panic"
    return GuestError(f"{what}; last lines of its output:\n{lines}", EXIT_NO_STATUS)


def clean_run_dir(run_dir: Path) -> None:
    """Drop the control files; keep whatever the run left in $ZMAKE_RESULTS_DIR."""
    for name in (*CONTROL_FILES, runtime_pack.TAR, runtime_pack.MANIFEST):
        (run_dir / name).unlink(missing_ok=True)
    if any(run_dir.iterdir()):
        say(f"results kept in {run_dir}")
    else:
        run_dir.rmdir()


def say(message: str) -> None:
    print(f"realzfs: {message}", flush=True)


def precompile() -> None:
    """Write the repository's bytecode here, before booting: the guest reads the tree over a
    slow emulated share and must not write into it (it runs as root), so without this every
    `zmake` started in the guest would compile its modules again (seconds each, per dataset)."""
    folders = [str(REPO / name) for name in ("zmake", "tests", "bench")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *folders],
        check=False, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def pack_runtime(run_dir: Path) -> None:
    venv_python = REPO / ".venv" / "bin" / "python"
    if not venv_python.exists():
        return  # the guest then runs whatever python is on its PATH, from the share
    started = time.monotonic()
    size = runtime_pack.pack(venv_python, run_dir)
    say(f"packed the Python runtime for the guest's RAM: {size / 2**20:.0f} MiB"
        f" in {time.monotonic() - started:.1f}s")  # fmt: skip


def run(request: Request) -> int:
    timings = Timings()
    vng = find_vng()
    kernel = find_kernel()
    run_dir = prepare_run_dir(request)
    precompile()
    pack_runtime(run_dir)
    say(f"booting {kernel.name} (TCG, {request.cpus} cpus, {request.memory})")
    try:
        return boot_and_collect(vng_argv(vng, kernel, run_dir, request), run_dir, request, timings)
    finally:
        clean_run_dir(run_dir)


def boot_and_collect(argv: list[str], run_dir: Path, request: Request, timings: Timings) -> int:
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        vng_rc = boot(argv, request.timeout, timings, tail)
    finally:
        timings.end = time.monotonic()
        say(timings.summary())
    status = read_status(run_dir)
    if status is None:
        raise missing_status_error(run_dir, vng_rc, tail)
    if status == 0 and vng_rc != 0:
        say(f"guest reported status 0 but vng exited {vng_rc}")
        return vng_rc
    say(f"guest exit status {status}")
    return status


def main(argv: list[str] | None = None) -> int:
    request = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(request)
    except GuestError as exc:
        print(f"realzfs: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("realzfs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
