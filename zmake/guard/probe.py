"""What `zmake serve` asks ZFS on its own side before it lets a command through: the client's
word is never taken for what a dataset is (encrypted, a placeholder) or for what a token or a
snapshot name stands for. Fails closed: a question ZFS does not answer, or answers with
nothing, is a refusal (the reader raises Refusal when zfs fails; tests inject a fake)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zmake.core.errors import ParseError, ZmakeError
from zmake.core.model import PLACEHOLDER_PROPERTY, Argv
from zmake.sides import zfs_argv
from zmake.sides.stderr_errors import SERVE_REFUSED

REFUSED = SERVE_REFUSED  # serve's exit status when it refuses
PLAIN = "off"


class Refusal(ZmakeError):
    exit_code = REFUSED


def require(condition: bool, why: str) -> None:
    if not condition:
        raise Refusal(why)


@dataclass(frozen=True)
class Point:
    """A snapshot or a bookmark of the dataset."""

    name: str
    guid: int
    createtxg: int
    userrefs: int = 0


@dataclass(frozen=True)
class Facts:
    """One dataset as ZFS sees it: its kind, encryption, partial receive, snapshots (oldest
    first) and bookmarks."""

    name: str
    kind: str
    encryption: str
    token: str | None
    snapshots: list[Point] = field(default_factory=list)
    bookmarks: list[Point] = field(default_factory=list)

    @property
    def encrypted(self) -> bool:
        return self.encryption != PLAIN

    def snapshot(self, name: str) -> Point | None:
        return next((s for s in self.snapshots if s.name == name), None)


def parse_facts(dataset: str, text: str) -> Facts:
    """`zfs list -H -p -o FACTS_PROPS -t all -d 1 DATASET` → Facts; anything unexpected is a
    refusal, as is a dataset that is not listed."""
    own: list[list[str]] = []
    for line in text.splitlines():
        row = line.split("\t")
        require(len(row) == len(zfs_argv.FACTS_PROPS), f"zfs answered {line!r} about {dataset}")
        if (
            row[0] == dataset
            or row[0].partition("@")[0] == dataset
            or (row[0].partition("#")[0] == dataset)
        ):
            own.append(row)
    head = [row for row in own if row[0] == dataset]
    require(len(head) == 1, f"zfs does not list {dataset}")
    _, kind, _, _, _, encryption, token = head[0]
    require(kind in ("filesystem", "volume") and encryption not in ("", "-"),
            f"zfs answered {head[0]!r} about {dataset}")  # fmt: skip
    facts = Facts(dataset, kind, encryption, None if token in ("-", "") else token)
    for name, kind, guid, createtxg, userrefs, _, _ in own:
        if name == dataset:
            continue
        try:
            point = Point(name, int(guid), int(createtxg), 0 if userrefs == "-" else int(userrefs))
        except ValueError:
            raise Refusal(f"zfs answered {name} {guid} {createtxg} {userrefs}") from None
        (facts.snapshots if kind == "snapshot" else facts.bookmarks).append(point)
    facts.snapshots.sort(key=lambda s: s.createtxg)
    return facts


class Probe:
    def __init__(self, zfs: Callable[[Argv], str]) -> None:
        self.zfs = zfs

    def facts(self, dataset: str) -> Facts:
        return parse_facts(dataset, self.zfs(zfs_argv.facts_argv(dataset)))

    def placeholder(self, dataset: str) -> bool:
        """An empty placeholder zmake made — the only dataset `-F` may replace: a filesystem
        without snapshots, whose mark names itself and was set on it (`local`: neither
        inherited nor received from a stream), holding next to nothing."""
        from zmake.core.decide import PLACEHOLDER_MAX_REFERENCED

        facts = self.facts(dataset)
        if facts.kind != "filesystem" or facts.snapshots:
            return False
        values = {}
        for line in self.zfs(zfs_argv.mark_argv(dataset)).splitlines():
            row = line.split("\t")
            require(len(row) == 3, f"zfs answered {line!r} about {dataset}")
            values[row[0]] = (row[1], row[2])
        mark, referenced = values.get(PLACEHOLDER_PROPERTY), values.get("referenced")
        require(mark is not None and referenced is not None, f"zfs did not answer for {dataset}")
        assert mark is not None and referenced is not None
        return (
            mark == (dataset, "local")
            and referenced[0].isdigit()
            and int(referenced[0]) <= PLACEHOLDER_MAX_REFERENCED
        )

    def sent_by(self, token: str) -> str:
        """The snapshot `zfs send -t TOKEN` sends, as ZFS resolves it (by the token's guid,
        anywhere in the pool `toname` names): its own dry run says."""
        from zmake.core.parse import parse_estimate

        _, name = parse_estimate(self.zfs(zfs_argv.estimate_argv(zfs_argv.resume_argv(token))))
        require(name is not None, "zfs did not say what the token sends")
        assert name is not None
        return name

    def needed_by_token(self, facts: Facts) -> set[int]:
        """The guids a partial receive into the dataset needs to be resumed."""
        if facts.token is None:
            return set()
        from zmake.core.token import decode

        try:
            return decode(facts.token).needed_guids
        except ParseError:
            raise Refusal(f"{facts.name} has a resume token serve cannot read") from None
