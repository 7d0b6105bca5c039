"""`zmake restore DIR [DATASET…] --into POOL[/PATH]`: replay stream-file chains into a pool.

Per dataset, parents before children, the newest whole chain (the rules of
targets/directory/verify.py), file by file, each through its own decompressor (the manifest
says which, per file): each file's SHA-256 and name are checked where it lies *before* a byte
reaches `zfs recv`, so a damaged file is refused instead of failing a receive halfway. A file
whose snapshot the target already holds is skipped, and a partial receive is aborted and its
file replayed: run it again after an interruption and it carries on. Names map as zmake
names backups: the source's pool is replaced by --into (`tank/home` → `POOL/PATH/home`)."""

from __future__ import annotations

from collections.abc import Sequence

from zmake.core.chain import Chain, compressor_problems, newest_restorable
from zmake.core.errors import Refused, TransferFailed
from zmake.core.model import Argv, dest_name, is_within, parent_of
from zmake.sides import zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Side
from zmake.sides.zfs_argv import COMPRESSORS, abort_resume_argv
from zmake.targets.directory.send import chain_path, read_chains
from zmake.targets.directory.verify import checksums


def selected(chains: Sequence[Chain], wanted: Sequence[str]) -> list[str]:
    names = {c.dataset for c in chains}
    chosen = [n for n in names if not wanted or any(is_within(n, w) for w in wanted)]
    return sorted(chosen, key=lambda n: n.split("/"))  # parents before children


def restore(
    runner: Runner,
    side: Side,
    directory: str,
    wanted: Sequence[str],
    into: str,
    *,
    dry_run: bool,
) -> int:
    chains = read_chains(runner, side, directory, None)
    names = selected(chains, wanted)
    if not names:
        raise Refused(f"no chain under {directory}{side.where()} for {' '.join(wanted) or 'any'}")
    plan = []
    for name in names:
        chain = newest_restorable(chains, name)
        if chain is None:
            raise Refused(f"{name}: no whole chain under {directory} (see zmake verify)")
        plan.append((chain, dest_name(name, into)))
    if not dry_run:  # every file, once, first: a damaged one stops the restore before any receive
        for chain, _ in plan:
            check_files(runner, side, directory, chain)
    for chain, target in plan:
        restore_chain(runner, side, directory, chain, target, dry_run=dry_run)
    return 0


def check_files(runner: Runner, side: Side, directory: str, chain: Chain) -> None:
    folder = chain_path(directory, chain)
    misnamed = compressor_problems(chain)
    if misnamed:
        raise Refused(f"{folder}{side.where()}: {misnamed[0]}: nothing was received "
                      "(see zmake verify)")  # fmt: skip
    paths = {f"{folder}/{f.name}": f.sha256 for f in chain.files}
    found = checksums(runner, side, list(paths))
    for path, expected in paths.items():
        if path not in found:
            raise Refused(f"{path}{side.where()} is missing: nothing was received")
        if found[path] != expected:
            raise Refused(
                f"{path}{side.where()} is damaged (SHA-256 differs from the manifest): nothing "
                "was received; zmake verify --repair restores it from par2 data, if made"
            )


def restore_chain(
    runner: Runner, side: Side, directory: str, chain: Chain, target: str, *, dry_run: bool
) -> None:
    local = Side()
    existing = zfs_calls.read_backup(runner, local, target)
    held = {s.guid for s in existing.snapshots} if existing else set()
    if existing is not None and existing.snapshots and not held & chain.guids:
        raise Refused(f"{target} exists with snapshots of its own: not restoring over it")
    folder = chain_path(directory, chain)
    for index, stream in enumerate(chain.files):
        if stream.to_guid in held:
            continue
        path = f"{folder}/{stream.name}"
        if dry_run:
            print(f"restore: {path} → {target} (@{stream.snapshots[-1][0]})")
            continue
        if existing is not None and existing.resume_token:
            ours_partial(existing.resume_token, chain, target)
            zfs_calls.control(runner, local, abort_resume_argv(target))  # replayed whole below
        if index == 0 and existing is None:
            parent = parent_of(target)
            if parent is not None and not zfs_calls.read_datasets(runner, local, [parent]):
                zfs_calls.control(runner, local, ["zfs", "create", "-p", parent])
        receive(runner, side, path, chain.compressor_of(stream), target)
        print(f"restore: {chain.dataset}: {stream.name} → {target}@{stream.snapshots[-1][0]}")
        existing = zfs_calls.read_backup(runner, local, target)


def ours_partial(token: str, chain: Chain, target: str) -> None:
    """Only a partial receive of this chain's own snapshot is thrown away (`zfs recv -A`):
    one of anything else is somebody's interrupted transfer, and is left alone."""
    from zmake.targets.pool.restore import resumes_to

    if resumes_to(token) not in chain.guids:
        raise Refused(f"{target} holds a partial receive that is not from {chain.folder}: "
                      "not aborting it (zfs recv -A it yourself if it is unwanted)")  # fmt: skip


def receive(runner: Runner, side: Side, path: str, compressor: str, target: str) -> None:
    reading: list[Argv] = [["dd", f"if={path}", "bs=1M", "status=none"]]
    decompress = [COMPRESSORS[compressor][1]] if compressor != "none" else []
    stages = [*side.stream(reading), *decompress, ["zfs", "recv", "-u", "-s", target]]
    result = runner.pipeline(stages)
    if not result.ok:
        culprit = next((s for s in result.stages if s.returncode != 0), result.stages[-1])
        raise TransferFailed(f"{target}: receiving {path} failed: {culprit.stderr.strip()} "
                             "(run zmake restore again to carry on)")  # fmt: skip
