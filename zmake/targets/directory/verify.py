"""`zmake verify DIR`: is every chain of a directory target whole and restorable?

Per chain: each file's SHA-256 (computed where the files are) against the manifest, its name
against the compressor the manifest says it was written with, and the chain's continuity (a
full stream first, each incremental from the snapshot the file before it ends with); `--deep`
also reads each stream whole and checks its own records and checksums (stream_check.py), and
`--repair` rebuilds a damaged file from its par2 recovery data before judging it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from zmake.core.chain import Chain, StreamFile, compressor_problem, continuity
from zmake.reports.send import human
from zmake.sides import zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Side
from zmake.targets.directory.send import chain_path, read_chains
from zmake.targets.directory.stream_check import stream_problem


@dataclass(frozen=True)
class ChainVerdict:
    chain: Chain
    problems: tuple[str, ...]
    repaired: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        c = self.chain
        size = human(sum(f.size for f in c.files))
        first = c.files[0].snapshots[0][0] if c.files else "-"
        last = c.files[-1].snapshots[-1][0] if c.files else "-"
        head = f"{c.dataset} {c.folder}: {len(c.files)} files, {size}, @{first}..@{last}"
        if self.ok:
            fixed = f" (repaired: {', '.join(self.repaired)})" if self.repaired else ""
            return f"OK {head}{fixed}"
        return f"BAD {head}: {'; '.join(self.problems)}"


def checksums(runner: Runner, side: Side, paths: Sequence[str]) -> dict[str, str]:
    """`sha256sum` of the files that exist (one command); a missing file is left out."""
    if not paths:
        return {}
    result = zfs_calls.run(runner, side, ["sha256sum", *paths])
    found = {}
    for line in result.stdout.splitlines():
        digest, _, path = line.partition("  ")
        found[path] = digest
    return found


def verify_chain(
    runner: Runner, side: Side, directory: str, chain: Chain, *, deep: bool, repair: bool
) -> ChainVerdict:
    folder = chain_path(directory, chain)
    paths = [f"{folder}/{f.name}" for f in chain.files]
    sums = checksums(runner, side, paths)
    repaired = []
    if repair:
        for f, path in zip(chain.files, paths, strict=True):
            if sums.get(path) != f.sha256 and par2_repair(runner, side, path):
                repaired.append(f.name)
        if repaired:
            sums = checksums(runner, side, paths)
    problems = list(continuity(chain))
    for f, path in zip(chain.files, paths, strict=True):
        problems += file_problems(runner, side, chain, f, path, sums.get(path), deep=deep)
    return ChainVerdict(chain, tuple(problems), tuple(repaired))


def file_problems(
    runner: Runner, side: Side, chain: Chain, stream: StreamFile, path: str,
    digest: str | None, *, deep: bool,
) -> list[str]:  # fmt: skip
    """One file: named as its compressor names files, there, the bytes the manifest says
    (`digest`: their SHA-256 as found), and with --deep, a whole stream."""
    misnamed = compressor_problem(chain, stream)
    problems = [] if misnamed is None else [misnamed]
    if digest is None:
        return [*problems, f"{stream.name}: missing"]
    if digest != stream.sha256:
        return [*problems, f"{stream.name}: SHA-256 differs from the manifest (damaged)"]
    if deep and not problems:
        why = stream_problem(runner, side, path, chain.compressor_of(stream))
        problems += [] if why is None else [f"{stream.name}: {why}"]
    return problems


def par2_repair(runner: Runner, side: Side, path: str) -> bool:
    result = zfs_calls.run(runner, side, ["par2", "repair", "-q", "-q", f"{path}.par2", path])
    if result.returncode == 0:
        zfs_calls.run(runner, side, ["rm", "-f", f"{path}.1"])  # par2 keeps the damaged copy
    return result.returncode == 0


def verify(
    runner: Runner, side: Side, directory: str, *, deep: bool, repair: bool, as_json: bool
) -> int:
    chains = sorted(read_chains(runner, side, directory, None),
                    key=lambda c: (c.dataset, c.sequence))  # fmt: skip
    verdicts = [verify_chain(runner, side, directory, c, deep=deep, repair=repair)
                for c in chains]  # fmt: skip
    bad = [v for v in verdicts if not v.ok]
    if as_json:
        print(json.dumps({"version": 1, "ok": not bad and bool(verdicts), "chains": [
            {"dataset": v.chain.dataset, "chain": v.chain.folder, "files": len(v.chain.files),
             "bytes": sum(f.size for f in v.chain.files), "ok": v.ok,
             "problems": list(v.problems), "repaired": list(v.repaired)}
            for v in verdicts]}, indent=2))  # fmt: skip
    else:
        for v in verdicts:
            print(v.line())
        if not verdicts:
            print(f"no chain under {directory}{side.where()}")
    return 1 if bad or not verdicts else 0
