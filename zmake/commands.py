"""Build the argv lists zmake runs. Pure: nothing here starts a process.

Quoting happens exactly once, where a command crosses the ssh boundary (`ssh_argv`);
everything else stays an argv list."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from zmake.decide import Action, Step
from zmake.errors import UsageError
from zmake.model import FILESYSTEM, Dataset
from zmake.parse import REMOTE_LIST_PROPS, SOURCE_GET_PROPS, SOURCE_LIST_PROPS

Argv = list[str]
# A slot's master stays up this long when idle, for the sends that take the slot next.
MASTER_PERSIST_SECONDS = 120

# compressor name → (compress argv, decompress argv)
COMPRESSORS: dict[str, tuple[Argv, Argv]] = {
    "zstd": (["zstd", "-q", "-c", "-T0"], ["zstd", "-q", "-d", "-c"]),
    "lz4": (["lz4", "-q", "-c"], ["lz4", "-q", "-d", "-c"]),
    "gzip": (["gzip", "-c"], ["gzip", "-d", "-c"]),
    "bzip2": (["bzip2", "-c"], ["bzip2", "-d", "-c"]),
}
COMPRESS_CHOICES = ("none", *COMPRESSORS)
LOCAL_GET_PROPS = ("type", "guid", "createtxg", "written", "referenced", "used", *SOURCE_GET_PROPS)


@dataclass(frozen=True)
class Target:
    """Where streams are received: a pool on this machine (remote=None) or over ssh."""

    dest_pool: str
    remote: str | None = None
    ssh: str = "ssh"
    slot_socket: str | None = None  # this send's own ssh master (see zmake/slots.py)

    def wrap(self, argv: Argv) -> Argv:
        """A control command as run on the receiving side."""
        if self.remote is None:
            return argv
        return ssh_argv(self.ssh, self.remote, [argv], socket=self.slot_socket)

    def wrap_script(self, script: str) -> Argv:
        """Shell text run by the receiving side's shell (or `sh -c` locally)."""
        if self.remote is None:
            return ["sh", "-c", script]
        return [*ssh_prefix(self.ssh), *socket_options(self.slot_socket), self.remote, script]


def ssh_prefix(ssh: str) -> Argv:
    try:
        prefix = shlex.split(ssh)
    except ValueError as exc:
        raise UsageError(f"--ssh {ssh!r}: {exc}") from None
    if not prefix:
        raise UsageError("--ssh must not be empty")
    return prefix


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
    """ssh running `remote_pipeline` (stages joined by |) on `remote`, quoted once."""
    text = " | ".join(shlex.join(stage) for stage in remote_pipeline)
    options = socket_options(socket, own_connection=own_connection)
    return [*ssh_prefix(ssh), *options, remote, text]


def master_control_argv(ssh: str, remote: str, socket: str, command: str) -> Argv:
    """`ssh -O exit` (or check) for a slot's master (no new connection)."""
    return [*ssh_prefix(ssh), "-S", socket, "-O", command, remote]


def ssh_config_argv(ssh: str, remote: str) -> Argv:
    """`ssh -G`: the configuration ssh would use, without connecting."""
    return [*ssh_prefix(ssh), "-G", remote]


def source_list_argv(pools: Sequence[str]) -> Argv:
    return [
        "zfs", "list", "-H", "-p", "-o", ",".join(SOURCE_LIST_PROPS),
        "-t", "filesystem,volume,snapshot", "-s", "createtxg", "-r", *pools,
    ]  # fmt: skip


def source_get_argv(pools: Sequence[str]) -> Argv:
    return [
        "zfs", "get", "-H", "-p", "-o", "name,property,value,source",
        "-t", "filesystem,volume", "-r", ",".join(SOURCE_GET_PROPS), *pools,
    ]  # fmt: skip


def local_dataset_argv(name: str) -> Argv:
    """One zfs call: the dataset's properties and its snapshots' guid/createtxg/written."""
    return [
        "zfs", "get", "-H", "-p", "-o", "name,property,value,source",
        "-t", "filesystem,volume,snapshot", "-d", "1", ",".join(LOCAL_GET_PROPS), name,
    ]  # fmt: skip


def remote_dataset_argv(name: str) -> Argv:
    return [
        "zfs", "list", "-H", "-p", "-o", ",".join(REMOTE_LIST_PROPS),
        "-t", "filesystem,volume,snapshot", "-d", "1", name,
    ]  # fmt: skip


def remote_tree_argv(name: str) -> Argv:
    return [
        "zfs", "list", "-H", "-p", "-o", ",".join(REMOTE_LIST_PROPS),
        "-t", "filesystem,volume,snapshot", "-r", name,
    ]  # fmt: skip


def send_argv(step: Step, dataset: Dataset) -> Argv:
    if step.action is Action.RESUME:
        assert step.token is not None
        return ["zfs", "send", "-t", step.token]
    assert step.to_snapshot is not None
    flags = ["-w"] if dataset.encrypted else ["-L", "-c"]
    if step.from_snapshot is not None:
        return ["zfs", "send", *flags, "-I", step.from_snapshot.name, step.to_snapshot.name]
    return ["zfs", "send", *flags, step.to_snapshot.name]


def estimate_argv(send: Argv) -> Argv:
    """`zfs send -nvP …`: a dry run that prints the stream size (and checks a token)."""
    return ["zfs", "send", "-n", "-v", "-P", *send[2:]]


def recv_argv(step: Step, dataset: Dataset, dest_pool: str) -> Argv:
    options = ["-u", "-s"]
    if (
        step.action is Action.FULL_OVER_PLACEHOLDER
        or step.rollback_to is not None
        or step.force_receive
    ):
        options.append("-F")
    if dataset.kind == FILESYSTEM:
        # A backup must not mount itself over the backup host's own paths at boot.
        options += ["-o", "canmount=noauto"]
        if dataset.mountpoint_is_local and dataset.mountpoint:
            options += ["-o", f"mountpoint={dataset.mountpoint}"]
    return ["zfs", "recv", *options, "-d", dest_pool]


def rollback_argv(snapshot_name: str) -> Argv:
    return ["zfs", "rollback", "-r", snapshot_name]


def abort_resume_argv(name: str) -> Argv:
    return ["zfs", "recv", "-A", name]


def data_pipeline(
    send: Argv, recv: Argv, target: Target, compress: str, progress: Argv | None = None
) -> list[Argv]:
    """The stages of `zfs send | [pv] | [compress] | ssh … '[decompress |] zfs recv …'`."""
    stages = [send]
    if progress:
        stages.append(progress)
    if target.remote is None:
        return [*stages, recv]
    if compress != "none":
        compressor, decompressor = COMPRESSORS[compress]
        remote = ssh_argv(
            target.ssh,
            target.remote,
            [decompressor, recv],
            own_connection=True,
            socket=target.slot_socket,
        )
        return [*stages, compressor, remote]
    remote = ssh_argv(
        target.ssh, target.remote, [recv], own_connection=True, socket=target.slot_socket
    )
    return [*stages, remote]


def pipeline_text(stages: Sequence[Argv]) -> str:
    """The pipeline as copy-pastable shell text."""
    return "set -o pipefail; " + " | ".join(shlex.join(stage) for stage in stages)


UMOUNT_NO_POOL = 7


def umount_script(dest_pool: str) -> str:
    """Shell text for the receiving side: unmount every mounted dataset of dest_pool,
    deepest first (reverse name order puts children before their parents)."""
    pool = shlex.quote(dest_pool)
    return (
        f"zfs list -H -o name -t filesystem -r {pool} >/dev/null || exit {UMOUNT_NO_POOL}; "
        f"zfs list -H -o mounted,name -t filesystem -r {pool} | LC_ALL=C sort -r -t '\t' -k 2 | "
        "while IFS='\t' read -r mounted name; do "
        '[ "$mounted" = yes ] || continue; echo "unmounting $name" >&2; '
        'zfs unmount "$name" || exit 1; done'
    )
