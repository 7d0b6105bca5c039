"""`zmake send DATASET --to-dir DIR`: the next stream files of one dataset's chain, in a
directory of any filesystem, on this machine or over ssh (core/chain.py says what and where).

Each file is one pipeline — `zfs send | zstd | dd of=NAME.part conv=fsync` (dd on the
directory's side, which fsyncs the file before it exits) — then `sha256sum` of what was
stored, a rename into place, optional `par2` recovery data, `sync DIR` (an fsync of the
directory: the rename is on disk), and the chain's manifest, written the same way: a .part
fsynced, renamed, its directory fsynced. A manifest never names a file a crash can take back.
Nothing but these argv commands runs on the directory's side: no zfs, no zmake, no shell
needed there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from zmake.core.chain import (
    MANIFEST,
    Chain,
    NextStream,
    StreamFile,
    dataset_folder,
    manifest_text,
    parse_manifests,
    plan_next,
)
from zmake.core.errors import TransferFailed
from zmake.core.model import Argv, Dataset
from zmake.reports.send import SendReport, human
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.locks import dataset_lock
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.sides.slots import route_slots
from zmake.sides.zfs_argv import COMPRESSORS

MAX_FILES = 3  # a first full, its incremental, and one spare: more is a bug


@dataclass(frozen=True)
class FileOptions:
    route: Route  # route.dest is the directory
    compressor: str = "zstd"
    full_every: int | None = None
    recovery: int | None = None  # percent of par2 recovery data per file
    wait_for_lock: bool = True
    slots: int = 0


def read_chains(runner: Runner, side: Side, directory: str, dataset: str | None) -> list[Chain]:
    """Every manifest under DIR (or one dataset's folder): one command, `find … -exec cat`."""
    root = directory if dataset is None else f"{directory}/{dataset_folder(dataset)}"
    argv = ["find", root, "-name", MANIFEST, "-exec", "cat", "{}", "+"]
    result = zfs_calls.run(runner, side, argv)
    if result.returncode != 0:
        ssh_failed = result.returncode == stderr_errors.SSH_FAILED
        if "No such file or directory" in result.stderr and not ssh_failed:
            return []
        raise zfs_calls.failure(side, argv, result)
    chains = parse_manifests(result.stdout, f"manifests under {root}{side.where()}")
    return [c for c in chains if dataset is None or c.dataset == dataset]


def chain_path(directory: str, chain: Chain) -> str:
    return f"{directory}/{dataset_folder(chain.dataset)}/{chain.folder}"


def write_text(runner: Runner, side: Side, path: str, text: str) -> None:
    """A small file (a manifest) written whole: NAME.part fsynced, renamed, its directory
    fsynced."""
    part = f"{path}.part"
    writing = [["dd", f"of={part}", "status=none", "conv=fsync"]]
    result = runner.pipeline([["printf", "%s", text], *side.stream(writing)])
    if not result.ok:
        raise TransferFailed(f"writing {part}{side.where()}: {result.stages[-1].stderr.strip()}")
    zfs_calls.control(runner, side, ["mv", "-f", part, path])
    sync(runner, side, [path.rsplit("/", 1)[0] or "/"])


def sync(runner: Runner, side: Side, paths: list[str]) -> None:
    """fsync of each path (GNU `sync FILE…`): of a directory, its entries (a rename) on disk."""
    zfs_calls.control(runner, side, ["sync", "--", *paths])


def folders(directory: str, chain: Chain) -> list[str]:
    """A chain's folder, each folder above it and DIR: the ones `mkdir -p` may have added to."""
    parts = chain_path("", chain).strip("/").split("/")
    return [f"{directory}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)] + [directory]


class FileSender:
    def __init__(self, runner: Runner, options: FileOptions, run_dir: Path) -> None:
        self.runner, self.options, self.run_dir = runner, options, run_dir
        self.route = options.route

    @property
    def directory(self) -> str:
        return self.route.dest

    def send(self, name: str) -> SendReport:
        host = self.route.source.host
        with dataset_lock(self.run_dir, name, wait=self.options.wait_for_lock, host=host):
            local = zfs_calls.read_source(self.runner, self.route.source, name)
            slots = self.options.slots if local.newest else 0
            with route_slots(self.runner, self.run_dir, self.route, slots) as route:
                self.route = route
                return self.replicate(local)

    def replicate(self, local: Dataset) -> SendReport:
        report = SendReport(local.name)
        if local.newest is None:
            report.result = "no snapshot to send"
            return report
        report.newest = local.newest.short
        started = time.monotonic()
        chains = read_chains(self.runner, self.route.target, self.directory, local.name)
        for _ in range(MAX_FILES):
            step = plan_next(local, chains, compressor=self.options.compressor,
                             full_every=self.options.full_every)  # fmt: skip
            if step is None:
                break
            chains = [c for c in chains if c.folder != step.chain.folder]
            chains.append(self.write(local, step, report))
        else:
            raise TransferFailed(f"{local.name}: still not written after {MAX_FILES} files")
        report.seconds = time.monotonic() - started
        report.result = "sent" if report.actions else f"up to date (@{local.newest.short})"
        return report

    def write(self, local: Dataset, step: NextStream, report: SendReport) -> Chain:
        side = self.route.target
        folder = chain_path(self.directory, step.chain)
        final = f"{folder}/{step.file}"
        part = f"{final}.part"
        zfs_calls.control(self.runner, side, ["mkdir", "-p", folder])
        send = zfs_argv.stream_argv(step.to.name, raw=local.encrypted,
                                    base=step.base.name if step.base else None)  # fmt: skip
        self.stream(send, part, local.name)
        digest = zfs_calls.control(self.runner, side, ["sha256sum", part]).split()[0]
        size = int(zfs_calls.control(self.runner, side, ["stat", "-c", "%s", part]).strip())
        zfs_calls.control(self.runner, side, ["mv", "-f", part, final])
        if self.options.recovery:
            zfs_calls.control(self.runner, side, par2_create(final, self.options.recovery))
        sync(self.runner, side, folders(self.directory, step.chain) if step.new_chain else [folder])
        carried = tuple((s.short, s.guid, s.createtxg) for s in step.carried)
        new = StreamFile(step.file, step.base.guid if step.base else None, carried, size, digest,
                         self.options.compressor)  # fmt: skip
        chain = step.chain.with_file(new)
        write_text(self.runner, side, f"{folder}/{MANIFEST}", manifest_text(chain))
        what = "full" if step.base is None else f"incremental {step.base.label}.."
        report.actions.append(f"{what}@{step.to.short} → {step.file} ({human(size)})")
        report.bytes += size
        return chain

    def stream(self, send: Argv, part: str, name: str) -> None:
        compressor = self.options.compressor
        sending = [send, *([COMPRESSORS[compressor][0]] if compressor != "none" else [])]
        writing = [["dd", f"of={part}", "bs=1M", "status=none", "conv=fsync"]]
        stages = [*self.route.source.stream(sending), *self.route.target.stream(writing)]
        result = self.runner.pipeline(stages)
        if not result.ok:
            outcomes = [
                stderr_errors.StageOutcome(s.argv, s.returncode, s.stderr) for s in result.stages
            ]
            raise stderr_errors.transfer_error(name, outcomes, route=self.route)


def par2_create(path: str, percent: int) -> Argv:
    return ["par2", "create", "-q", "-q", f"-r{percent}", "-n1", f"{path}.par2", path]


def drop_chains(
    runner: Runner, side: Side, directory: str, keep: int, *, assume_yes: bool, dry_run: bool
) -> int:
    """`zmake prune --to-dir DIR --keep-chains K`: delete, per dataset, the whole chains older
    than its newest K whole ones (chain.chains_to_drop): never the only restorable chain."""
    from zmake.confirm import confirm
    from zmake.core.chain import chains_to_drop

    doomed = chains_to_drop(read_chains(runner, side, directory, None), keep)
    if not doomed:
        print("prune: no chain to delete")
        return 0
    for chain in doomed:
        print(f"prune: {chain.dataset}: {chain.folder} ({len(chain.files)} files)")
    if dry_run or not confirm(f"delete these {len(doomed)} chains", assume_yes=assume_yes):
        print("prune: nothing deleted")
        return 0
    for chain in doomed:
        folder = chain_path(directory, chain)
        # The manifest first: a half-deleted chain is then no chain at all, never a short one.
        zfs_calls.control(runner, side, ["rm", "-f", f"{folder}/{MANIFEST}"])
        zfs_calls.control(runner, side, ["rm", "-rf", "--", folder])
    print(f"prune: deleted {len(doomed)} chains")
    return len(doomed)
