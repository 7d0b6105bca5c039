"""Where commands run. Pure: nothing here starts a process.

A `Side` is one end of a replication: this machine, or another reached over ssh (through a
slot's master, see sides/slots.py; or a restricted key whose forced command is `zmake serve`, which
accepts exactly the commands built here and in sides/zfs_argv.py). A `Route` is two sides and the
receiving dataset: push (source here, backup remote), pull (source remote, backup here), a
third machine driving both, or both on one machine.

Quoting happens exactly once, where a command crosses the ssh boundary (`ssh_argv`);
everything else stays an argv list."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from zmake.core.hosts import ssh_destination, ssh_words
from zmake.core.model import Argv
from zmake.sides.zfs_argv import COMPRESSORS

# A slot's master stays up this long when idle, for the sends that take the slot next.
MASTER_PERSIST_SECONDS = 120
# A peer that died (or a link that dropped) is noticed in 3 minutes, not at TCP's hours: the
# stream's ssh exits 255, the run goes on, the next one resumes. --ssh's own -o wins.
KEEPALIVE = ["-o", "ServerAliveInterval=30", "-o", "ServerAliveCountMax=6"]


@dataclass(frozen=True)
class Side:
    host: str | None = None  # [USER@]HOST; None: this machine
    ssh: str = "ssh"
    socket: str | None = None  # this send's own ssh master (see sides/slots.py)

    @property
    def is_local(self) -> bool:
        return self.host is None

    @property
    def key(self) -> str:
        """Names this side's slots and remembered answers in the run directory."""
        return hashlib.sha256(f"{self.ssh}\0{self.host}".encode()).hexdigest()[:12]

    def where(self) -> str:
        return f" on {self.host}" if self.host else ""

    def control(self, argv: Argv) -> Argv:
        """A control command (list, get, snapshot, destroy …) as run on this side."""
        if self.host is None:
            return argv
        return ssh_argv(self.ssh, self.host, [argv], socket=self.socket)

    def stream(self, stages: Sequence[Argv]) -> list[Argv]:
        """Stages of a data pipeline that run on this side, as stages of our pipeline: as
        they are here, or one ssh that runs them there on a connection of its own."""
        if self.host is None:
            return list(stages)
        return [ssh_argv(self.ssh, self.host, stages, own_connection=True, socket=self.socket)]


@dataclass(frozen=True)
class Route:
    source: Side
    target: Side
    dest: str  # the receiving dataset: `zfs recv -d DEST`
    compress: str = "none"
    readonly: bool = True  # receive backups with readonly=on
    to_dir: bool = False  # dest is a directory of stream files, not a dataset

    @property
    def compressing(self) -> bool:
        """Compress only what crosses a network, on the sending side."""
        crosses = not (self.source.is_local and self.target.is_local)
        return crosses and self.compress != "none"

    @property
    def remote_hosts(self) -> list[Side]:
        return [side for side in (self.source, self.target) if not side.is_local]

    def restoring(self, into: str, *, on_backup: bool) -> Route:
        """The way back, for restore and drill: the backup side sends, into `into` on the
        source (default) or on the backup host itself."""
        back_to = self.target if on_backup else self.source
        return Route(self.target, back_to, into, compress=self.compress)

    def pipeline(self, send: Argv, recv: Argv, progress: Argv | None = None) -> list[Argv]:
        """`zfs send | [compress] | … | [decompress] | zfs recv`, each part on its side;
        a progress meter (pv) where the stream passes through this machine."""
        compressor, decompressor = COMPRESSORS.get(self.compress, ([], []))
        sending = [send, *([compressor] if self.compressing else [])]
        receiving = [*([decompressor] if self.compressing else []), recv]
        meter = [progress] if progress else []
        if self.source.is_local:
            # Measure the stream before it is compressed: sizes are estimated uncompressed.
            return [send, *meter, *sending[1:], *self.target.stream(receiving)]
        if self.target.is_local:
            return [*self.source.stream(sending), *receiving[:-1], *meter, recv]
        return [*self.source.stream(sending), *meter, *self.target.stream(receiving)]


def ssh_prefix(ssh: str) -> Argv:
    return ssh_words(ssh)


def socket_options(socket: str | None, *, own_connection: bool = False) -> Argv:
    """Through a slot's master when there is one (the slot lock makes it this send's alone).
    A control command starts that master if it is not up (ControlMaster=auto: one process
    checks, replaces a stale socket and connects); a data stream only ever uses it. Without
    a slot, a data stream (`own_connection`) opts out of any multiplexing the user's ssh set
    up, as parallel TCP streams are the point. -S wins over any -o ControlPath in --ssh."""
    if socket is None:
        return ["-S", "none"] if own_connection else []
    if own_connection:
        return ["-S", socket, "-o", "ControlMaster=no"]
    return [
        "-S", socket, "-o", "ControlMaster=auto",
        "-o", f"ControlPersist={MASTER_PERSIST_SECONDS}",
    ]  # fmt: skip


def ssh_argv(
    ssh: str,
    remote: str,
    remote_pipeline: Sequence[Argv],
    *,
    own_connection: bool = False,
    socket: str | None = None,
) -> Argv:
    """ssh running `remote_pipeline` (stages joined by |) on `remote`, quoted once. `--`
    ends ssh's options: the host is never read as one, nor is anything after it."""
    text = " | ".join(shlex.join(stage) for stage in remote_pipeline)
    options = socket_options(socket, own_connection=own_connection)
    return [*ssh_prefix(ssh), *options, *KEEPALIVE, "--", ssh_destination(remote), text]


def master_control_argv(ssh: str, remote: str, socket: str, command: str) -> Argv:
    """`ssh -O exit` (or check) for a slot's master (no new connection)."""
    return [*ssh_prefix(ssh), "-S", socket, "-O", command, "--", ssh_destination(remote)]


def ssh_config_argv(ssh: str, remote: str) -> Argv:
    """`ssh -G`: the configuration ssh would use, without connecting."""
    return [*ssh_prefix(ssh), "-G", "--", ssh_destination(remote)]
