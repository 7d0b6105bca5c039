"""Build the zfs argv lists zmake runs. Pure: nothing here starts a process.

Each command zmake issues has its shape here and nowhere else: `zmake serve` checks what a
restricted key asks for against these same builders (commands/serve.py)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from zmake.core.decide import Action, Step, snapshot_in_range
from zmake.core.model import FILESYSTEM, PLACEHOLDER_PROPERTY, Argv, Dataset
from zmake.core.parse import BACKUP_LIST_PROPS, SOURCE_GET_PROPS, SOURCE_LIST_PROPS
from zmake.core.prunable import PRUNE_LIST_PROPS, PRUNE_TYPES

# compressor name → (compress argv, decompress argv)
COMPRESSORS: dict[str, tuple[Argv, Argv]] = {
    "zstd": (["zstd", "-q", "-c", "-T0"], ["zstd", "-q", "-d", "-c"]),
    "lz4": (["lz4", "-q", "-c"], ["lz4", "-q", "-d", "-c"]),
    "gzip": (["gzip", "-c"], ["gzip", "-d", "-c"]),
    "bzip2": (["bzip2", "-c"], ["bzip2", "-d", "-c"]),
}
COMPRESS_CHOICES = ("none", *COMPRESSORS)
LOCAL_GET_PROPS = (
    "type", "guid", "createtxg", "written", "referenced", "used", "creation", *SOURCE_GET_PROPS,
)  # fmt: skip
BACKUP_TYPES = "filesystem,volume,snapshot"
# Where zfs lives when a remote user's PATH lacks it (Debian's non-root PATH has no /usr/sbin).
ZFS_ELSEWHERE = ("/usr/sbin/zfs", "/sbin/zfs", "/usr/local/sbin/zfs")


def source_list_argv(roots: Sequence[str]) -> Argv:
    return [
        "zfs", "list", "-H", "-p", "-o", ",".join(SOURCE_LIST_PROPS),
        "-t", "filesystem,volume,snapshot,bookmark", "-s", "createtxg", "-r", *roots,
    ]  # fmt: skip


def source_get_argv(roots: Sequence[str]) -> Argv:
    return [
        "zfs", "get", "-H", "-p", "-o", "name,property,value,source",
        "-t", "filesystem,volume", "-r", ",".join(SOURCE_GET_PROPS), *roots,
    ]  # fmt: skip


def local_dataset_argv(name: str) -> Argv:
    return local_datasets_argv([name])


def local_datasets_argv(names: Sequence[str]) -> Argv:
    """One zfs call: the datasets' properties and their snapshots' and bookmarks' guid,
    createtxg, written."""
    return [
        "zfs", "get", "-H", "-p", "-o", "name,property,value,source",
        "-t", "filesystem,volume,snapshot,bookmark", "-d", "1", ",".join(LOCAL_GET_PROPS),
        *names,
    ]  # fmt: skip


def backup_list_argv(names: Sequence[str], *, depth: str = "1", types: str = BACKUP_TYPES) -> Argv:
    """The backup side's state: `-d 1` one dataset and its snapshots, `-r` a tree, `-d 0`
    with types filesystem,volume only the named datasets (missing ones are reported on
    stderr and the others still listed)."""
    walk = ["-r"] if depth == "r" else ["-d", depth]
    return ["zfs", "list", "-H", "-p", "-o", ",".join(BACKUP_LIST_PROPS), "-t", types, *walk,
            *names]  # fmt: skip


def remote_dataset_argv(name: str) -> Argv:
    return backups_argv([name])


def backups_argv(names: Sequence[str]) -> Argv:
    """Backups and their snapshots (`-d 1`); missing ones are reported on stderr."""
    return backup_list_argv(names)


def remote_tree_argv(name: str) -> Argv:
    return backup_list_argv([name], depth="r")


def datasets_argv(names: Sequence[str]) -> Argv:
    return backup_list_argv(names, depth="0", types="filesystem,volume")


def mounts_argv(root: str) -> Argv:
    return ["zfs", "list", "-H", "-o", "name,mounted", "-t", "filesystem", "-r", root]


def unmount_argv(name: str) -> Argv:
    return ["zfs", "unmount", name]


def create_placeholder_argv(name: str) -> Argv:
    """An empty parent for a backup received before its parent (children first). Never
    mounted, and marked with its own name (children inherit the property, but not a value
    naming them), so that `zfs recv -F` may later replace it and nothing else."""
    return ["zfs", "create", "-o", "canmount=off", "-o", f"{PLACEHOLDER_PROPERTY}={name}", name]


def unmark_placeholder_argv(name: str) -> Argv:
    return ["zfs", "inherit", PLACEHOLDER_PROPERTY, name]


def bookmark_argv(snapshot: str, bookmark: str) -> Argv:
    return ["zfs", "bookmark", snapshot, bookmark]


def destroy_bookmark_argv(bookmark: str) -> Argv:
    return ["zfs", "destroy", bookmark]


def stream_argv(snapshot: str, *, raw: bool, base: str | None = None, between: bool = True) -> Argv:
    """`zfs send` of `snapshot`: full, or incremental from `base` — a snapshot (`-I`: every
    snapshot in between, a package of streams) or, when there is none `between` or the base
    is a bookmark, `-i` (one plain stream, which a restricted key's serve can check). Raw
    (`-w`) for encrypted data."""
    flags = ["-w"] if raw else ["-L", "-c"]
    if base is None:
        return ["zfs", "send", *flags, snapshot]
    return ["zfs", "send", *flags, "-I" if between and "#" not in base else "-i", base, snapshot]


def resume_argv(token: str) -> Argv:
    return ["zfs", "send", "-t", token]


def send_argv(step: Step, dataset: Dataset) -> Argv:
    if step.action is Action.RESUME:
        assert step.token is not None
        return resume_argv(step.token)
    assert step.to_snapshot is not None
    base = step.from_snapshot.name if step.from_snapshot is not None else None
    carried = sum(1 for s in dataset.snapshots if snapshot_in_range(s, step))
    return stream_argv(step.to_snapshot.name, raw=dataset.encrypted, base=base,
                       between=carried > 1)  # fmt: skip


ESTIMATE = ["-n", "-v", "-P"]


def estimate_argv(send: Argv) -> Argv:
    """`zfs send -nvP …`: a dry run that prints the stream size (and checks a token)."""
    return ["zfs", "send", *ESTIMATE, *send[2:]]


def receive_argv(
    target: str,
    *,
    force: bool = False,
    filesystem: bool = True,
    mountpoint: str | None = None,
    readonly: bool = True,
) -> Argv:
    """Into the exact backup name, never `-d`: zmake creates the parents itself
    (targets/pool/parents.py), so nothing appears on the backup side that zmake did not decide, and
    `serve` can check the
    one dataset a receive may touch."""
    # A stream never sets zmake's own mark (`-x`): only zmake's `zfs create` does.
    options = ["-u", "-s", *(["-F"] if force else []), "-x", PLACEHOLDER_PROPERTY]
    if filesystem:
        # A backup must not mount itself over the backup host's own paths at boot.
        options += ["-o", "canmount=noauto"]
        if mountpoint:
            options += ["-o", f"mountpoint={mountpoint}"]
    if readonly:
        # Nobody writes into a backup, not even atime: "destination has been modified".
        options += ["-o", "readonly=on"]
    return ["zfs", "recv", *options, target]


def recv_argv(step: Step, dataset: Dataset, target: str, *, readonly: bool = True) -> Argv:
    local_mountpoint = dataset.mountpoint if dataset.mountpoint_is_local else None
    return receive_argv(
        target,
        force=step.action is Action.FULL_OVER_PLACEHOLDER or step.force_receive,
        filesystem=dataset.kind == FILESYSTEM,
        mountpoint=local_mountpoint,
        readonly=readonly,
    )


def restore_recv_argv(target: str, *, rollback: bool = False) -> Argv:
    """A restore's receive (targets/pool/restore.py): a plain dataset again — no readonly, no
    canmount=noauto —, not mounted yet, resumable; -F only to roll back to a shared snapshot."""
    return ["zfs", "recv", "-u", "-s", *(["-F"] if rollback else []), target]


def content_list_argv(root: str) -> Argv:
    """What reading a snapshot's content needs to know of each dataset (core/contents.py)."""
    return ["zfs", "list", "-H", "-p", "-o", "name,type,mounted,mountpoint,keystatus",
            "-t", "filesystem,volume", "-r", root]  # fmt: skip


def destroy_tree_argv(name: str) -> Argv:
    """A drill's own scratch copy, gone with its children (commands/drill.py): nothing
    else."""
    return ["zfs", "destroy", "-r", name]


def pool_health_argv(pool: str) -> Argv:
    return ["zpool", "status", "-x", pool]


def pool_status_argv(pool: str) -> Argv:
    return ["zpool", "status", pool]


def snapshot_argv(roots: Sequence[str], name: str) -> Argv:
    """One `zfs snapshot -r` of every root: all taken in one transaction."""
    return ["zfs", "snapshot", "-r", *(f"{root}@{name}" for root in roots)]


def destroy_snapshots_argv(dataset: str, shorts: Sequence[str]) -> Argv:
    """Several snapshots of one dataset in one call (ZFS destroys all or none)."""
    return ["zfs", "destroy", f"{dataset}@{','.join(shorts)}"]


def names_argv(roots: Sequence[str]) -> Argv:
    return ["zfs", "list", "-H", "-o", "name", "-t", "filesystem,volume", "-r", *roots]


def prune_list_argv(root: str) -> Argv:
    """Both sides' snapshots, bookmarks and resume tokens, for prune (core/prunable.py)."""
    return ["zfs", "list", "-H", "-p", "-o", ",".join(PRUNE_LIST_PROPS), "-t", PRUNE_TYPES,
            "-r", root]  # fmt: skip


def rollback_argv(snapshot_name: str) -> Argv:
    return ["zfs", "rollback", "-r", snapshot_name]


# What `zmake serve` asks of one dataset before it allows a command (guard/probe.py).
FACTS_PROPS = ("name", "type", "guid", "createtxg", "userrefs", "encryption",
               "receive_resume_token")  # fmt: skip


def facts_argv(name: str) -> Argv:
    return ["zfs", "list", "-H", "-p", "-o", ",".join(FACTS_PROPS),
            "-t", "filesystem,volume,snapshot,bookmark", "-d", "1", name]  # fmt: skip


def mark_argv(name: str) -> Argv:
    """The placeholder mark with its source (`local`, `received`, `inherited from …`)."""
    return ["zfs", "get", "-H", "-p", "-o", "property,value,source",
            f"{PLACEHOLDER_PROPERTY},referenced", name]  # fmt: skip


def abort_resume_argv(name: str) -> Argv:
    return ["zfs", "recv", "-A", name]


def pipeline_text(stages: Sequence[Argv]) -> str:
    """The pipeline as copy-pastable shell text."""
    return "set -o pipefail; " + " | ".join(shlex.join(stage) for stage in stages)
