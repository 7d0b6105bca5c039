"""Helpers for the real-ZFS tests that drive zmake itself (run inside the guest)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.realzfs.conftest import snapshot_guids, zfs
from zmake.core.model import parent_of
from zmake.guard.probe import REFUSED

__all__ = ["Zmake", "execute", "exists", "fill", "prop", "snapshot_guids", "source_of", "zfs"]

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 600


def execute(
    *argv: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command and return its result; with `check`, a failure raises with its stderr.
    A command still running after COMMAND_TIMEOUT fails the test (and shows what it did)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=COMMAND_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired as hung:
        print(subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout)
        raise AssertionError(f"{argv} hung: {hung.stdout!r} {hung.stderr!r}") from None
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}: {done.stderr.strip()}")
    return done


def exists(name: str) -> bool:
    return execute("zfs", "list", "-H", "-o", "name", name, check=False).returncode == 0


def prop(name: str, prop_name: str) -> str:
    return zfs("get", "-H", "-p", "-o", "value", prop_name, name).strip()


def source_of(name: str, prop_name: str) -> str:
    return zfs("get", "-H", "-o", "source", prop_name, name).strip()


def fill(dataset: str, megabytes: float, label: str = "data") -> None:
    """Write random bytes into a mounted filesystem (mountpoints live under /tmp)."""
    path = Path(prop(dataset, "mountpoint")) / f"{label}-{os.urandom(4).hex()}.bin"
    path.write_bytes(os.urandom(int(megabytes * 1024 * 1024)))


class Zmake:
    """Runs `python -m zmake` with a private run directory and the guest's ssh config."""

    def __init__(self, run_dir: Path, ssh_config: str, remote: str, dest: str) -> None:
        self.run_dir = run_dir
        self.ssh = f"ssh -F {ssh_config}"
        self.remote = remote
        self.dest = dest
        self.report = run_dir / "report.jsonl"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZMAKE_")}
        env.update(
            ZMAKE_RUN_DIR=str(self.run_dir),
            ZMAKE_REPORT=str(self.report),
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def target_args(self) -> list[str]:
        return ["--remote", self.remote, "--ssh", self.ssh, "--dest", self.dest]

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "zmake", *args]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return execute(*self.argv(*args), check=check, env=self.env())

    def send(
        self, dataset: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("send", dataset, *self.target_args(), *extra, check=check)

    def reports(self) -> list[dict[str, object]]:
        if not self.report.exists():
            return []
        return [json.loads(line) for line in self.report.read_text().splitlines()]


USERS_DIR = Path(os.environ.get("ZMAKE_USERS_DIR", "/tmp/zmake-users"))
USERS_HOST = "users"  # any name: the users' ssh configs send every host to 127.0.0.2


class AsUser:
    """zmake run by an unprivileged user of the guest (guest-init.sh made zsrc and zrecv),
    with a run directory and HOME of its own, and its own ssh key and config."""

    def __init__(self, user: str, name: str) -> None:
        self.user = user
        self.home = USERS_DIR / user
        self.run_dir = self.home / "runs" / name
        self.ssh = f"ssh -F {self.home}/.ssh/config"
        subprocess.run(["runuser", "-u", user, "--", "mkdir", "-p", str(self.run_dir)],
                       check=True)  # fmt: skip

    def env(self, **extra: str) -> list[str]:
        values = {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "PATH": "/usr/local/bin:/usr/bin:/bin",  # no sbin: what a user's login gets
            "ZMAKE_RUN_DIR": str(self.run_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            **extra,
        }
        return ["env", "-i", *(f"{k}={v}" for k, v in values.items())]

    def argv(self, *args: str, **extra: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *self.env(**extra), sys.executable, "-m",
                "zmake", *args]  # fmt: skip

    def __call__(
        self, *args: str, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return execute(*self.argv(*args, **extra), check=check)


def allow(*args: str) -> str:
    """`zmake allow … --apply`, as root: the setup a user's side gets, from zmake itself."""
    done = execute(sys.executable, "-m", "zmake", "allow", *args, "--apply")
    return done.stdout


def encrypted_tree(src: str, key: Path, children: Sequence[str]) -> list[str]:
    """`src` mounted under /tmp, `children` (names below it) made and filled with 0.3 MiB
    each, and `src/secret stuff` encrypted by a passphrase in `key` (0.2 MiB): the datasets,
    the encrypted one last."""
    zfs("set", f"mountpoint=/tmp/{src}", src)
    key.write_text("correct horse battery staple")
    names = [f"{src}/{child}" for child in children]
    for name in names:
        zfs("create", name)
        fill(name, 0.3)
    secret = f"{src}/secret stuff"
    zfs("create", "-o", "encryption=on", "-o", "keyformat=passphrase",
        "-o", f"keylocation=file://{key}", secret)  # fmt: skip
    fill(secret, 0.2)
    return [*names, secret]


def full_then_incremental(
    user: AsUser, src: str, dest: str, args: Sequence[str], changed: Sequence[str], *more: str
) -> subprocess.CompletedProcess[str]:
    """`zmake backup` by `user` twice at -j4: every snapshot GUID equal after the first (the
    encrypted dataset received raw, its key unavailable there), then, after `changed` got
    new data, `--snapshot` (and `more`) sends incrementals only. The second run's result."""
    first = user("backup", src, *args, "-j", "4", "--yes", check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_guids(dest) == snapshot_guids(src)
    secret = f"{dest}/secret stuff"
    assert prop(secret, "encryptionroot") == secret and prop(secret, "keystatus") == "unavailable"
    for name in changed:
        fill(name, 0.1)
    again = user("backup", src, *args, "-j", "4", "--snapshot", *more, "--yes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "incremental" in again.stdout and "full @" not in again.stdout
    return again


def crawling_ssh(path: Path, ssh: str, rate: str, *, pull: bool = False) -> str:
    """Write an ssh at `path` whose data crawls at `rate` (pv -L): pushed before ssh, or
    pulled after it. The bytes that have passed are counted for `wait_for_bytes`."""
    counter = bytes_counter(str(path))
    counter.unlink(missing_ok=True)
    meter = f"pv -L {rate} -n -b -i 0.5 2>>{shlex.quote(str(counter))}"
    data_path = f'{ssh} "$@" | {meter}' if pull else f'{meter} | {ssh} "$@"'
    path.write_text(f"#!/bin/bash\nset -o pipefail\n{data_path}\n")
    path.chmod(0o755)
    return str(path)


def bytes_counter(wrapper: str) -> Path:
    return Path(f"{wrapper}.bytes")


def wait_for_bytes(
    wrapper: str, at_least: int, proc: subprocess.Popen[Any], seconds: float = 240
) -> None:
    """Until `at_least` bytes have passed the crawling ssh `wrapper`, with `proc` (what uses
    it) still running: on a loaded emulated host a fixed sleep may end before the first byte."""
    counter, deadline = bytes_counter(wrapper), time.monotonic() + seconds
    while (moved := bytes_moved(counter)) < at_least:
        assert proc.poll() is None, f"it ended after {moved} bytes, before it could be killed"
        assert time.monotonic() < deadline, f"only {moved} bytes in {seconds} s"
        time.sleep(0.5)


def bytes_moved(counter: Path) -> int:
    """The most any pv behind the wrapper has counted (probes run through it too)."""
    if not counter.exists():
        return 0
    counts = [int(line) for line in counter.read_text().split() if line.isdigit()]
    return max(counts, default=0)


def slow_ssh(user: AsUser) -> str:
    """An ssh for `user` whose data streams crawl (150 kB/s), to be killed halfway."""
    path = crawling_ssh(user.home / "slowssh", user.ssh, "150k")
    subprocess.run(["chown", f"{user.user}:{user.user}", path], check=True)
    return path


def prop_or_none(name: str, prop_name: str) -> str | None:
    value = subprocess.run(["zfs", "get", "-H", "-o", "value", prop_name, name],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return None if value in ("", "-") else value


def interrupted_send(user: AsUser, dataset: str, backup: str, *target: str) -> None:
    """`zmake send DATASET` by `user` over a crawling ssh, killed once some of the stream is
    in: `backup` is left with a resume token (asserted), as by a dropped link."""
    log = user.home / "killed.log"
    wrapper = slow_ssh(user)
    with open(log, "w") as output:
        proc = subprocess.Popen(user.argv("send", dataset, *target, "--ssh", wrapper),
                                start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=output, stderr=output)  # fmt: skip
    try:
        wait_for_bytes(wrapper, 1024 * 1024, proc)  # of a 3 MiB stream: 20 s at this pace
    except AssertionError as why:
        raise AssertionError(f"{why}: {log.read_text()}") from None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while not (prop_or_none(backup, "receive_resume_token") or "").startswith("1-"):
        listing = zfs("list", "-H", "-o", "name,receive_resume_token", "-t", "all", "-r",
                      parent_of(backup))  # fmt: skip
        assert time.monotonic() < deadline, f"no partial receive: {listing} {log.read_text()}"
        time.sleep(0.5)


def sshd_logins(user: str) -> int:
    """Logins accepted so far by the users' sshd for `user`."""
    log = Path(os.environ.get("ZMAKE_USERS_SSHD_LOG", USERS_DIR / "sshd.log")).read_text()
    return sum(1 for line in log.splitlines() if f"Accepted publickey for {user} " in line)


# --- restricted keys: `zmake serve` as the forced command of the users' sshd -------------------


def forced_command(allow_output: str, options: str = "") -> str:
    """The `command="…zmake serve …",restrict` part of the authorized_keys line `zmake allow`
    printed (its `# command=…` line, without the key), `options` (e.g. `--allow-prune`)
    added after `serve` as an admin would."""
    line = next(x[2:] for x in allow_output.splitlines() if x.startswith("# command="))
    line = line.rsplit(" ", 1)[0]
    assert line.startswith('command="') and line.endswith(",restrict"), line
    return line.replace(" serve ", f" serve {options} ", 1) if options else line


@contextmanager
def authorized(host_user: str, lines: Sequence[str]) -> Iterator[None]:
    """`host_user`'s root-owned keys file holds only `lines` (`command=… KEY`), then again
    what it held."""
    keys = USERS_DIR / "keys" / host_user
    saved = keys.read_text()
    keys.write_text("".join(f"{line}\n" for line in lines))
    try:
        yield
    finally:
        keys.write_text(saved)


@contextmanager
def restricted_key(host_user: str, client_user: str, allow_output: str) -> Iterator[str]:
    """Only `client_user`'s key may log in as `host_user`, with the forced command that
    `zmake allow` printed (its `# command=…` line), or the `command=…` line given."""
    if not allow_output.startswith('command="'):
        allow_output = forced_command(allow_output)
    restricted = f"{allow_output} {Identity(client_user).public}"
    with authorized(host_user, [restricted]):
        yield restricted


class Identity:
    """An ssh key of a test user with an ssh config that offers only it: guest-init.sh's
    `id_ed25519`, or another one made here (a second key of the same user, restricted to
    another forced command)."""

    def __init__(self, user: str, name: str = "id_ed25519") -> None:
        self.user = user
        ssh_dir = USERS_DIR / user / ".ssh"
        self.key = ssh_dir / name
        self.config = ssh_dir / ("config" if name == "id_ed25519" else f"config-{name}")
        if not self.key.exists():
            subprocess.run(["runuser", "-u", user, "--", "ssh-keygen", "-q", "-t", "ed25519",
                            "-N", "", "-C", f"{user}-{name}", "-f", str(self.key)],
                           check=True)  # fmt: skip
        if not self.config.exists():
            default = (ssh_dir / "config").read_text()
            self.config.write_text(default.replace(str(ssh_dir / "id_ed25519"), str(self.key)))
            subprocess.run(["chown", f"{user}:{user}", str(self.config)], check=True)
        self.public = " ".join((ssh_dir / f"{name}.pub").read_text().split()[:2])

    def line(self, forced: str) -> str:
        """An authorized_keys line: this key, restricted to `forced` (a `command=…` part)."""
        return f"{forced} {self.public}"


class KeySessions:
    """Sessions of one restricted key (`identity` logging in as `host_user` on the users'
    sshd) over one ssh connection: a ControlMaster started on entry and stopped on exit. sshd
    runs the key's forced command for every session of the connection, each with its own
    SSH_ORIGINAL_COMMAND, as for separate logins (~0.5 s a session instead of ~2.5 s)."""

    def __init__(self, identity: Identity, host_user: str) -> None:
        self.identity, self.host = identity, f"{host_user}@{USERS_HOST}"
        socket_path = USERS_DIR / identity.user / ".ssh" / f"cm-{host_user}-{identity.key.name}"
        self.ssh = ["ssh", "-F", str(identity.config), "-o", f"ControlPath={socket_path}"]
        self.commands: list[str] = []

    def as_user(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.identity.user, "--", *argv]

    def __enter__(self) -> KeySessions:
        master = [*self.ssh, "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-N", "-f"]
        subprocess.run(self.as_user(*master, self.host), check=True, timeout=120,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(self.as_user(*self.ssh, "-O", "exit", self.host), check=False,
                       capture_output=True, timeout=60)  # fmt: skip

    def run(self, command: str, stdin: Path | None = None,
            stdout: Path | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        """`command` as the client sends it (one string, as ssh does): its exit status,
        stdout (unless written to `stdout`) and stderr."""
        self.commands.append(command)
        argv = self.as_user(*self.ssh, "-o", "ControlMaster=no", self.host, command)
        with open(stdin or os.devnull, "rb") as data:
            if stdout is None:
                return subprocess.run(argv, stdin=data, capture_output=True, timeout=300)
            with open(stdout, "wb") as out:
                return subprocess.run(argv, stdin=data, stdout=out, stderr=subprocess.PIPE,
                                      timeout=300)  # fmt: skip

    def passes(self, command: str, stdin: Path | None = None,
               stdout: Path | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        done = self.run(command, stdin, stdout)
        assert done.returncode == 0, (command, done.returncode, done.stderr.decode())
        return done

    def refused(self, command: str, stdin: Path | None = None) -> str:
        """`command` must be refused by serve (exit 9, its one line, nothing on stdout — not
        a byte of a stream, not a traceback): that line."""
        done = self.run(command, stdin)
        said = done.stderr.decode(errors="replace")
        assert done.returncode == REFUSED, (command, done.returncode, said, done.stdout[:200])
        assert said.startswith("zmake serve: refused: ") and said.count("\n") == 1, said
        assert done.stdout == b"", done.stdout[:200]
        return said


def wire(argv: Sequence[str]) -> str:
    """A command as zmake puts it on the ssh command line (quoted once)."""
    return shlex.join(argv)


def pool_state(pool: str) -> tuple[dict[str, int], str, str]:
    """Every snapshot GUID of the pool, every bookmark's, and every dataset's
    mountpoint/readonly/canmount."""
    props = zfs("get", "-H", "-o", "name,property,value", "-r",
                "mountpoint,readonly,canmount,mounted", pool)  # fmt: skip
    bookmarks = zfs("list", "-H", "-p", "-o", "name,guid", "-t", "bookmark", "-r", pool)
    return snapshot_guids(pool), bookmarks, props


class SyslogListener:
    """/dev/log, where syslog(3) writes (the guest runs no syslog daemon), read by a thread so
    that no sender ever blocks on a full queue."""

    def __init__(self) -> None:
        self.log, self.aside = Path("/dev/log"), Path("/dev/log.zmake-aside")
        if self.log.exists() or self.log.is_symlink():
            self.log.rename(self.aside)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.log))
        self.log.chmod(0o666)
        self.socket.settimeout(0.2)
        self.lines: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        while self.running:
            try:
                self.lines.append(self.socket.recv(65536).decode(errors="replace"))
            except TimeoutError:
                continue

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.socket.close()
        self.log.unlink()
        if self.aside.exists() or self.aside.is_symlink():
            self.aside.rename(self.log)

    def refusals(self, user: str, settle: float = 0.3) -> list[str]:
        """The `zmake-serve` refusal lines logged for `user` so far (serve logs before it
        exits: what it sent is in the socket's queue, read within the thread's 0.2 s)."""
        time.sleep(settle)
        return [x for x in self.lines if "zmake-serve" in x and f"refused for {user} " in x]


def partial_receive(
    source_snapshot: str, target: str, from_snapshot: str | None = None, force: bool = False
) -> None:
    """An interrupted transfer, exactly as a dropped link leaves it: a truncated stream
    received with -s into `target` (and -F, as zmake receives a full stream over a
    placeholder). The target's parents are made if missing, as by hand."""
    send = ["zfs", "send", "-L", "-c"] + (["-i", from_snapshot] if from_snapshot else [])
    send.append(source_snapshot)
    if "/" in target and not exists(target.rpartition("/")[0]):
        zfs("create", "-p", target.rpartition("/")[0])
    receive = ["zfs", "recv", "-u", "-s", *(["-F"] if force else []), target]
    pipeline = f"{shlex.join(send)} | head -c 400000 | {shlex.join(receive)}"
    done = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True)
    assert done.returncode != 0, done.stderr
    assert "A resuming stream can be generated" in done.stderr, done.stderr


def make(makefile: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """`make -j4` of a generated Makefile, to completion (a hung one fails after 15 min)."""
    return subprocess.run(
        ["make", "-j4", "-f", str(makefile), *extra],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
