"""zmake's bookmarks on the source: for each target, the last snapshot sent there.

A bookmark keeps a snapshot's guid and txg after the snapshot is destroyed, and `zfs send -i
#bookmark` can start an incremental from it. After every send that leaves a backup up to date,
zmake bookmarks the newest snapshot as `DATASET#zmake-<key>-<createtxg>`, where the key is the
backup dataset's own guid: two targets never share or destroy each other's bookmarks, and
pruning the source for one target can no longer leave another without an incremental base
(decide.incremental_base uses any bookmark whose guid the backup holds). The target's older
zmake bookmarks are destroyed as it advances, so there is one per target and dataset.

Through a pull key, `zmake serve` makes the bookmark as `#zmake-<label>.<key>-<createtxg>`
(the key's `--target` label: a pull key reaches only its own target's bookmarks), so a target's
bookmarks are recognised with or without a label, and the newest is matched by guid."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zmake.core.model import BOOKMARK_PREFIX, BackupDataset, Dataset, Snapshot
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Side

# sessions through one ssh master at once: below sshd's default MaxSessions (10)
SIDE_BY_SIDE = 8


def target_key(backup: BackupDataset) -> str:
    return f"{backup.guid:016x}"


def bookmark_name(dataset: str, key: str, snapshot: Snapshot) -> str:
    return f"{dataset}#{BOOKMARK_PREFIX}{key}-{snapshot.createtxg}"


def target_bookmarks(local: Dataset, key: str, *, labelled: bool = False) -> list[Snapshot]:
    """This target's bookmarks: `zmake-KEY-TXG`, and with `labelled` (a pull: the source may
    be reached through a pull key) `zmake-LABEL.KEY-TXG` as that key's serve makes them —
    serve refuses a key that another label or a push already uses. A push never counts a
    labelled one: a pull key could have planted it under the push's key."""
    found = []
    for mark in local.bookmarks:
        rest = mark.short.removeprefix(BOOKMARK_PREFIX)
        label, dot, mark_key = rest.rpartition("-")[0].rpartition(".")
        if rest != mark.short and mark_key == key and (not dot or (labelled and label)):
            found.append(mark)
    return found


def plan_bookmarks(
    local: Dataset, backup: BackupDataset, *, labelled: bool = False
) -> tuple[str | None, list[str]]:
    """(bookmark to create or None, bookmarks of this target to destroy once it exists), for a
    backup that holds `local`'s newest snapshot. Pure."""
    newest = local.newest
    if newest is None or backup.guid == 0:
        return None, []
    key = target_key(backup)
    wanted = bookmark_name(local.name, key, newest)
    mine = target_bookmarks(local, key, labelled=labelled)
    create = None if any(mark.guid == newest.guid for mark in mine) else wanted
    return create, [mark.name for mark in mine if mark.guid != newest.guid]


def keep_bookmarks(
    runner: Runner, side: Side, sent: Sequence[tuple[Dataset, BackupDataset]]
) -> None:
    """Bookmark each newest snapshot for its target, then drop the target's older ones, side
    by side (at most SIDE_BY_SIDE at once). A failure (e.g. no `bookmark` permission) is
    reported and the send still counts as done; an old bookmark is never dropped without the
    new one."""
    plans = [(local, *plan_bookmarks(local, backup, labelled=not side.is_local))
             for local, backup in sent]  # fmt: skip
    creates = []
    for local, create, _ in plans:
        if create is not None and local.newest is not None:
            creates.append((local, zfs_argv.bookmark_argv(local.newest.name, create)))
    refused = {local.name for local in run_reported(runner, side, creates)}
    destroys = [(local, zfs_argv.destroy_bookmark_argv(name))
                for local, _, stale in plans if local.name not in refused
                for name in stale]  # fmt: skip
    run_reported(runner, side, destroys)


def run_reported(
    runner: Runner, side: Side, commands: Sequence[tuple[Dataset, list[str]]]
) -> list[Dataset]:
    """Run each (dataset, argv); report and return the datasets whose command failed."""
    failed = []
    for start in range(0, len(commands), SIDE_BY_SIDE):
        chunk = commands[start : start + SIDE_BY_SIDE]
        results = zfs_calls.run_each(runner, side, [argv for _, argv in chunk])
        for (local, argv), result in zip(chunk, results, strict=True):
            if result.returncode != 0:
                failed.append(local)
                print(
                    f"zmake: {local.name}: {' '.join(argv[:2])} failed: "
                    f"{stderr_errors.first_line(result.stderr)} (the backup itself is up to date)",
                    file=sys.stderr,
                )
    return failed
