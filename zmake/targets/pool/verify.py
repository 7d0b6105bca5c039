"""`zmake verify DATASET… [--sample P%]`: does the backup hold the same content as the source?

Per dataset (and its children), the newest snapshot both sides hold (by GUID) is hashed on
each side where it lies (core/contents.py) — both at once — and the two listings compared: one
line per dataset, the first differing file or chunk named. A raw-encrypted backup whose
key is not loaded where it lies is "not verifiable here", never passed. The backup pool's
health (`zpool status -x`, the last scrub's errors) is part of the report."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from zmake.core.contents import compare, hash_argv, parse_hashes, snapshot_dir
from zmake.core.model import dest_name, is_within, pool_of
from zmake.core.parse import split_rows
from zmake.sides import zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side

SAME, DIFFERS, UNVERIFIABLE, NO_COMMON, FAILED = (
    "same", "differs", "not verifiable here", "no common snapshot", "failed",
)  # fmt: skip


@dataclass(frozen=True)
class Place:
    """One dataset as a content read needs it."""

    side: Side
    name: str
    kind: str
    mounted: bool
    mountpoint: str
    keystatus: str  # available, unavailable, or - (not encrypted)


@dataclass(frozen=True)
class ContentVerdict:
    dataset: str
    state: str
    snapshot: str = ""
    detail: str = ""
    compared: int = 0

    def line(self) -> str:
        at = f" @{self.snapshot}" if self.snapshot else ""
        if self.state == SAME:
            return f"{self.dataset}{at}: same content ({self.compared} files or chunks)"
        return f"{self.dataset}{at}: {self.state.upper()}{': ' if self.detail else ''}{self.detail}"


def read_places(runner: Runner, side: Side, root: str) -> dict[str, Place]:
    text = zfs_calls.control(runner, side, zfs_argv.content_list_argv(root))
    columns = ("name", "type", "mounted", "mountpoint", "keystatus")
    return {
        row[0]: Place(side, row[0], row[1], row[2] == "yes", row[3], row[4])
        for row in split_rows(text, columns, "zfs list (verify)")
    }


def compare_snapshot(
    runner: Runner, source: Place, backup: Place, short: str, every: int
) -> ContentVerdict:
    """Hash `short` on both places at once and compare."""
    for place in (source, backup):
        if place.keystatus == "unavailable":
            where = place.side.where() or " here"
            why = f"{place.name} is encrypted and its key is not loaded{where}"
            return ContentVerdict(source.name, UNVERIFIABLE, short, why)
    argvs = [
        p.side.control(hash_argv(p.kind, f"{p.name}@{short}",
                                 snapshot_dir(p.mountpoint, p.mounted, short), every))
        for p in (source, backup)
    ]  # fmt: skip
    results = runner.run_all(argvs)
    listings = [parse_hashes(r.stdout) if r.returncode == 0 else None for r in results]
    for place, result, listing in zip((source, backup), results, listings, strict=True):
        if listing is None:
            lines = result.stderr.strip().splitlines() or ["no listing"]
            told = f"reading {place.name}@{short}{place.side.where()}: {lines[-1]}"
            return ContentVerdict(source.name, FAILED, short, told)
    assert listings[0] is not None and listings[1] is not None
    found = compare(listings[0], listings[1])
    if found.same:
        return ContentVerdict(source.name, SAME, short, compared=found.compared)
    return ContentVerdict(source.name, DIFFERS, short, found.difference or "", found.compared)


def verify_pool(
    runner: Runner, route: Route, names: Sequence[str], every: int, *, as_json: bool
) -> int:
    """Exit 0 when every dataset is the same and the pool healthy, 1 on any difference or
    failure, 3 when nothing differed but something could not be verified here."""
    verdicts: list[ContentVerdict] = []
    for name in names:
        verdicts += verify_tree(runner, route, name, every)
    healthy, health = pool_health(runner, route.target, pool_of(route.dest))
    if as_json:
        print(json.dumps({"datasets": [asdict(v) for v in verdicts],
                          "pool": {"healthy": healthy, "report": health}}, indent=2))  # fmt: skip
    else:
        for verdict in verdicts:
            print(verdict.line())
        print(health)
    return exit_code({v.state for v in verdicts}, healthy=healthy)


def exit_code(states: set[str], *, healthy: bool = True) -> int:
    """0 all the same, 1 anything wrong, 3 nothing wrong but something not verifiable."""
    if states - {SAME, UNVERIFIABLE} or not healthy:
        return 1
    return 3 if UNVERIFIABLE in states else 0


def verify_tree(runner: Runner, route: Route, name: str, every: int) -> list[ContentVerdict]:
    root = dest_name(name, route.dest)
    source_tree = zfs_calls.read_backup_tree(runner, route.source, name)
    if name not in source_tree:
        return [ContentVerdict(name, FAILED, detail=f"no such dataset{route.source.where()}")]
    backup_tree = zfs_calls.read_backup_tree(runner, route.target, root)
    sources = read_places(runner, route.source, name)
    backups = read_places(runner, route.target, root) if backup_tree else {}
    verdicts = []
    for dataset in sorted(source_tree, key=lambda n: n.split("/")):
        if not is_within(dataset, name):
            continue
        image = dest_name(dataset, route.dest)
        backup = backup_tree.get(image)
        held = {s.guid: s.short for s in backup.snapshots} if backup else {}
        common = [s for s in source_tree[dataset].snapshots if s.guid in held]
        if not common:
            verdicts.append(
                ContentVerdict(dataset, NO_COMMON, detail=f"{image}{route.target.where()}")
            )
            continue
        short, backup_short = common[-1].short, held[common[-1].guid]
        if backup_short != short:
            verdicts.append(ContentVerdict(dataset, FAILED, short, f"named @{backup_short} there"))
            continue
        verdicts.append(compare_snapshot(runner, sources[dataset], backups[image], short, every))
    return verdicts


SCRUB = re.compile(r"scan:\s*(.*)")


def pool_health(runner: Runner, side: Side, pool: str) -> tuple[bool, str]:
    """(healthy, one line): `zpool status -x` and the last scrub, with its errors."""
    where = side.where()
    result = zfs_calls.run(runner, side, zfs_argv.pool_health_argv(pool))
    if result.returncode != 0:
        return False, f"pool {pool}{where}: cannot read its status: {result.stderr.strip()}"
    healthy = "is healthy" in result.stdout or "all pools are healthy" in result.stdout
    detail = zfs_calls.run(runner, side, zfs_argv.pool_status_argv(pool)).stdout
    match = SCRUB.search(detail)
    scan = match.group(1).strip() if match else "no scan on record"
    errors = re.search(r"with (\d+) errors", scan)
    if errors and int(errors.group(1)) > 0:
        healthy = False
    status = "healthy" if healthy else "NOT HEALTHY"
    first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    told = "" if healthy else f" ({first})"
    return healthy, f"pool {pool}{where}: {status}{told}; last scan: {scan}"
