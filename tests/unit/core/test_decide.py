"""The pure send decision (zmake/core/decide.py): a table of every Action, then properties of
repeatedly deciding and applying over random snapshot histories."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.unit.support.zfsgen import History, histories
from zmake.core.decide import (
    PLACEHOLDER_MAX_REFERENCED,
    Action,
    Step,
    apply,
    decide,
    incremental_base,
    is_placeholder,
    step_bytes,
)
from zmake.core.model import FILESYSTEM, VOLUME, BackupDataset, Dataset, Snapshot
from zmake.core.plan import expected_bytes

SOURCE = "tank/my data:v1"
BACKUP = "backup/my data:v1"
DEST = "backup"
TRANSFERS = (Action.FULL, Action.FULL_OVER_PLACEHOLDER, Action.INCREMENTAL)


def snaps(*shorts: str, base_txg: int = 100) -> tuple[Snapshot, ...]:
    """Local snapshots: guid derived from the short name, createtxg increasing."""
    return tuple(
        Snapshot(f"{SOURCE}@{short}", guid_of(short), base_txg + 10 * i, written=1000 * (i + 1))
        for i, short in enumerate(shorts)
    )


def guid_of(short: str) -> int:
    return 0x1000 + sum(ord(c) << (8 * i) for i, c in enumerate(short))


def local(
    *shorts: str, encryption: str = "off", kind: str = FILESYSTEM, marks: tuple[str, ...] = ()
) -> Dataset:
    """The source: snapshots `shorts`; `marks` are bookmarks of snapshots that were pruned
    (named as snapshots, with the guid and txg they had), so they sort into the history."""
    everything = snaps(*sorted({*shorts, *marks}))  # the tables name snapshots in order
    return Dataset(
        name=SOURCE,
        kind=kind,
        encryption=encryption,
        encryption_root=SOURCE if encryption != "off" else None,
        snapshots=tuple(s for s in everything if s.short in shorts),
        bookmarks=tuple(
            Snapshot(f"{SOURCE}#zmake-{s.short}", s.guid, s.createtxg)
            for s in everything
            if s.short in marks
        ),
    )


def remote(
    *shorts: str,
    referenced: int = 0,
    written: int = 0,
    token: str | None = None,
    encryption: str = "off",
    kind: str = FILESYSTEM,
    base_txg: int = 90_000,
    root: str | None = None,
    placeholder: bool = False,
) -> BackupDataset:
    """The backup's state: snapshots with the same guids but the backup's own createtxg
    (deliberately far from the source's). Encrypted, it was received raw (its own encryption
    root) unless `root` names a parent on the backup side."""
    return BackupDataset(
        name=BACKUP,
        kind=kind,
        referenced=referenced,
        written=written,
        resume_token=token,
        encryption=encryption,
        encryption_root=(root or BACKUP) if encryption != "off" else None,
        placeholder=placeholder,
        guid=77,
        snapshots=tuple(
            Snapshot(f"{BACKUP}@{short}", guid_of(short), base_txg + 7 * i)
            for i, short in enumerate(shorts)
        ),
    )


def local_snap(short: str, ds: Dataset) -> Snapshot:
    return next(s for s in ds.snapshots if s.short == short)


def remote_snap(short: str, rd: BackupDataset) -> Snapshot:
    return next(s for s in rd.snapshots if s.short == short)


@dataclass(frozen=True)
class Case:
    id: str
    local: Dataset
    remote: BackupDataset | None
    action: Action
    to: str | None = None  # short name of to_snapshot
    source: str | None = None  # short name of from_snapshot
    rollback_to: str | None = None
    token: str | None = None
    force: bool = False
    reason_has: tuple[str, ...] = field(default=())


CASES = [
    Case("nothing: no local snapshot, no remote", local(), None, Action.NOTHING_TO_SEND),
    Case(
        "nothing: no local snapshot, remote has some",
        local(),
        remote("a"),
        Action.NOTHING_TO_SEND,
        reason_has=(SOURCE,),
    ),
    Case("up to date", local("a", "b"), remote("a", "b"), Action.UP_TO_DATE, to="b"),
    Case(
        "up to date: backup pruned old ones",
        local("a", "b", "c"),
        remote("c"),
        Action.UP_TO_DATE,
        to="c",
    ),
    Case(
        "up to date: remote-only older snapshots do not matter",
        local("b", "c"),
        remote("a", "b", "c"),
        Action.UP_TO_DATE,
        to="c",
    ),
    Case(
        "resume token wins over incremental",
        local("a", "b", "c"),
        remote("a", token="1-tok"),
        Action.RESUME,
        token="1-tok",
    ),
    Case(
        "resume token wins over up to date",
        local("a", "b"),
        remote("a", "b", token="1-tok"),
        Action.RESUME,
        token="1-tok",
    ),
    Case(
        "resume token wins over a placeholder",
        local("a"),
        remote(token="1-first", referenced=10**9),
        Action.RESUME,
        token="1-first",
    ),
    Case(
        "resume token wins over divergence",
        local("a", "b"),
        remote("x", written=5, token="1-tok"),
        Action.RESUME,
        token="1-tok",
    ),
    Case("full of the oldest when remote absent", local("a", "b", "c"), None, Action.FULL, to="a"),
    Case("full: single snapshot", local("only"), None, Action.FULL, to="only"),
    Case(
        "full: encrypted, remote absent",
        local("a", "b", encryption="aes-256-gcm"),
        None,
        Action.FULL,
        to="a",
    ),
    Case(
        "full over an empty placeholder",
        local("a", "b"),
        remote(referenced=0, placeholder=True),
        Action.FULL_OVER_PLACEHOLDER,
        to="a",
    ),
    Case(
        "full over a placeholder at the limit",
        local("a", "b"),
        remote(referenced=PLACEHOLDER_MAX_REFERENCED, placeholder=True),
        Action.FULL_OVER_PLACEHOLDER,
        to="a",
    ),
    Case(
        "full over a volume placeholder",
        local("a", kind=VOLUME),
        remote(kind=VOLUME, referenced=4096, placeholder=True),
        Action.FULL_OVER_PLACEHOLDER,
        to="a",
    ),
    Case(
        "diverged: an empty dataset zmake did not create is never replaced",
        local("a"),
        remote(referenced=0),
        Action.DIVERGED,
        reason_has=(BACKUP, "did not create it", f"zfs set zmake:placeholder={BACKUP} {BACKUP}"),
    ),
    Case(
        "diverged: nor with --force",
        local("a", "b"),
        remote(referenced=4096),
        Action.DIVERGED,
        force=True,
        reason_has=(BACKUP, "4096 bytes"),
    ),
    Case(
        "diverged: placeholder holds data",
        local("a"),
        remote(referenced=PLACEHOLDER_MAX_REFERENCED + 1, placeholder=True),
        Action.DIVERGED,
        reason_has=(BACKUP, str(PLACEHOLDER_MAX_REFERENCED + 1)),
    ),
    Case(
        "diverged: placeholder of another kind",
        local("a", kind=VOLUME),
        remote(kind=FILESYSTEM, referenced=0, placeholder=True),
        Action.DIVERGED,
    ),
    Case(
        "diverged: ZFS never replaces an encrypted placeholder",
        local("a"),
        remote(referenced=0, placeholder=True, encryption="aes-256-gcm", root="backup"),
        Action.DIVERGED,
        reason_has=("encrypted", "backup"),
    ),
    Case(
        "incremental from the only common snapshot",
        local("a", "b", "c"),
        remote("a"),
        Action.INCREMENTAL,
        to="c",
        source="a",
    ),
    Case(
        "incremental from the newest common snapshot",
        local("a", "b", "c", "d"),
        remote("a", "b"),
        Action.INCREMENTAL,
        to="d",
        source="b",
    ),
    Case(
        "incremental: source pruned the backup's oldest",
        local("b", "c", "d"),
        remote("a", "b"),
        Action.INCREMENTAL,
        to="d",
        source="b",
    ),
    Case(
        "incremental: backup pruned some in the middle",
        local("a", "b", "c", "d"),
        remote("a", "c"),
        Action.INCREMENTAL,
        to="d",
        source="c",
    ),
    Case(
        "diverged: no common snapshot names both sides",
        local("n1", "n2", "n3", "n4"),
        remote("o1", "o2"),
        Action.DIVERGED,
        reason_has=("no common snapshot", BACKUP, "@o1", "@o2", "@n2", "@n3", "@n4"),
    ),
    Case(
        "diverged: no common snapshot, even with force",
        local("n1"),
        remote("o1"),
        Action.DIVERGED,
        force=True,
    ),
    Case(
        "diverged: backup has newer snapshots",
        local("a", "b", "c"),
        remote("a", "b", "x", "y"),
        Action.DIVERGED,
        reason_has=("@b", "@x", "@y", "--force"),
    ),
    Case(
        "force: roll back the backup's newer snapshots",
        local("a", "b", "c"),
        remote("a", "b", "x", "y"),
        Action.INCREMENTAL,
        to="c",
        source="b",
        rollback_to="b",
        force=True,
    ),
    Case(
        "diverged: backup modified since the common snapshot",
        local("a", "b"),
        remote("a", written=8192),
        Action.DIVERGED,
        reason_has=(BACKUP, "8192", "@a", "--force"),
    ),
    Case(
        "force: discard the backup's modifications",
        local("a", "b"),
        remote("a", written=8192),
        Action.INCREMENTAL,
        to="b",
        source="a",
        rollback_to="a",
        force=True,
    ),
    Case(
        "up to date although modified: nothing to send",
        local("a", "b"),
        remote("a", "b", written=8192),
        Action.UP_TO_DATE,
        to="b",
    ),
    Case(
        "raw mismatch: encrypted source, plain backup",
        local("a", "b", encryption="aes-256-gcm"),
        remote("a"),
        Action.RAW_MISMATCH,
        reason_has=(BACKUP, SOURCE, "raw"),
    ),
    Case(
        "raw mismatch: encrypted source, backup encrypted by its parent (not received raw)",
        local("a", "b", encryption="aes-256-gcm"),
        remote("a", encryption="aes-256-gcm", root="backup"),
        Action.RAW_MISMATCH,
        reason_has=(BACKUP, "backup", "not received raw"),
    ),
    Case(
        "plain source into a backup encrypted at rest by its parent: plain incremental",
        local("a", "b"),
        remote("a", encryption="aes-128-ccm", root="backup"),
        Action.INCREMENTAL,
        to="b",
        source="a",
    ),
    Case(
        "plain source over a placeholder encrypted by its parent: ZFS cannot replace it",
        local("a", "b"),
        remote(encryption="aes-256-gcm", root="backup", placeholder=True),
        Action.DIVERGED,
        reason_has=("encrypted",),
    ),
    Case(
        "raw mismatch beats a placeholder",
        local("a", encryption="aes-256-gcm"),
        remote(referenced=0, placeholder=True),
        Action.RAW_MISMATCH,
    ),
    Case(
        "raw mismatch beats up to date, even with force",
        local("a", encryption="aes-256-gcm"),
        remote("a"),
        Action.RAW_MISMATCH,
        force=True,
    ),
    Case(
        "incremental: both encrypted",
        local("a", "b", encryption="aes-256-gcm"),
        remote("a", encryption="aes-256-gcm"),
        Action.INCREMENTAL,
        to="b",
        source="a",
    ),
    Case(
        "bookmark: the common snapshot was pruned, its bookmark is the base (-i, one step)",
        local("c", "d", marks=("b",)),
        remote("a", "b"),
        Action.INCREMENTAL,
        to="c",
        source="zmake-b",
    ),
    Case(
        "bookmark: a newer bookmark beats an older common snapshot",
        local("a", "c", "d", marks=("b",)),
        remote("a", "b"),
        Action.INCREMENTAL,
        to="c",
        source="zmake-b",
    ),
    Case(
        "bookmark: a snapshot beats its own bookmark (-I sends the range at once)",
        local("b", "c", "d", marks=("b",)),
        remote("a", "b"),
        Action.INCREMENTAL,
        to="d",
        source="b",
    ),
    Case(
        "bookmark: backup newer than the bookmark is diverged",
        local("c", marks=("b",)),
        remote("b", "x"),
        Action.DIVERGED,
        reason_has=("#zmake-b", "@x"),
    ),
    Case(
        "bookmark: force rolls back to the bookmark's snapshot",
        local("c", marks=("b",)),
        remote("b", "x"),
        Action.INCREMENTAL,
        to="c",
        source="zmake-b",
        rollback_to="b",
        force=True,
    ),
    Case(
        "bookmark newer than every snapshot the source still has: nothing newer to send",
        local("a", marks=("b",)),
        remote("b"),
        Action.DIVERGED,
        reason_has=("nothing newer",),
    ),
]


def short(snapshot: Snapshot | None) -> str | None:
    return snapshot.short if snapshot else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide_table(case: Case) -> None:
    step = decide(case.local, case.remote, DEST, force=case.force)
    assert step.action is case.action, step.reason
    assert short(step.to_snapshot) == case.to
    assert short(step.from_snapshot) == case.source
    assert short(step.rollback_to) == case.rollback_to
    assert step.token == case.token
    for text in case.reason_has:
        assert text in step.reason
    assert step.transfers == (case.action in (*TRANSFERS, Action.RESUME))


def test_force_changes_only_what_it_says() -> None:
    """--force turns a refusal into a rollback, and changes nothing else."""
    for case in CASES:
        plain = decide(case.local, case.remote, DEST, force=False)
        forced = decide(case.local, case.remote, DEST, force=True)
        if plain != forced:
            assert plain.action is Action.DIVERGED, case.id
            assert forced.rollback_to is not None, case.id


def test_rollback_target_is_the_backups_own_snapshot() -> None:
    """`zfs rollback` runs on the backup: roll back to its snapshot (its name, its txg)."""
    rd = remote("a", "b", "x")
    step = decide(local("a", "b", "c"), rd, DEST, force=True)
    assert step.rollback_to == remote_snap("b", rd)
    assert step.from_snapshot == local_snap("b", local("a", "b", "c"))


def test_diverged_names_only_the_last_three_snapshots() -> None:
    step = decide(local("n1", "n2", "n3", "n4", "n5"), remote("o1", "o2", "o3", "o4"), DEST)
    assert step.action is Action.DIVERGED
    assert "@n1" not in step.reason and "@o1" not in step.reason
    assert "@n5" in step.reason and "@o4" in step.reason


# --- apply ---------------------------------------------------------------------------------


def test_apply_full_then_incremental_keeps_every_snapshot() -> None:
    ds = local("a", "b", "c")
    first = decide(ds, None, DEST)
    state = apply(first, None, ds, DEST)
    assert state is not None and [s.guid for s in state.snapshots] == [guid_of("a")]
    second = decide(ds, state, DEST)
    assert (second.action, second.from_snapshot, second.to_snapshot) == (
        Action.INCREMENTAL,
        local_snap("a", ds),
        local_snap("c", ds),
    )
    state = apply(second, state, ds, DEST)
    assert state is not None
    assert [s.short for s in state.snapshots] == ["a", "b", "c"]
    assert decide(ds, state, DEST).action is Action.UP_TO_DATE


def test_apply_resume_and_refusals_leave_the_state_alone() -> None:
    ds = local("a", "b")
    rd = remote("a", token="1-tok")
    for step in (
        Step(Action.RESUME, token="1-tok"),
        Step(Action.DIVERGED),
        Step(Action.RAW_MISMATCH),
        Step(Action.UP_TO_DATE, to_snapshot=local_snap("b", ds)),
        Step(Action.NOTHING_TO_SEND),
    ):
        assert apply(step, rd, ds, DEST) == rd


def test_apply_rollback_drops_only_newer_backup_snapshots() -> None:
    ds = local("a", "b", "c")
    rd = remote("a", "b", "x", "y")
    step = decide(ds, rd, DEST, force=True)
    state = apply(step, rd, ds, DEST)
    assert state is not None
    assert [s.short for s in state.snapshots] == ["a", "b", "c"]
    assert state.written == 0 and state.resume_token is None


def test_apply_placeholder_keeps_name_and_kind() -> None:
    ds = local("a", "b", kind=VOLUME)
    rd = remote(kind=VOLUME, referenced=4096, placeholder=True)
    state = apply(decide(ds, rd, DEST), rd, ds, DEST)
    assert state is not None
    assert (state.name, state.kind, [s.short for s in state.snapshots]) == (BACKUP, VOLUME, ["a"])


def test_after_a_resume_the_rest_of_the_range_is_sent() -> None:
    """targets/pool/send.py: RESUME finishes one snapshot,
    `remote.with_snapshot(completed)` records it, and the next decision must be the rest of the -I
    range (issue 4, step 4)."""
    ds = local("a", "b", "c")  # source txgs 100, 110, 120
    rd = remote("a", token="1-tok", base_txg=90_000)  # backup txgs are far larger
    assert decide(ds, rd, DEST).action is Action.RESUME
    after_resume = rd.with_snapshot(local_snap("b", ds))  # exactly what Sender.resume does
    step = decide(ds, after_resume, DEST)
    assert (step.action, step.from_snapshot, step.to_snapshot) == (
        Action.INCREMENTAL,
        local_snap("b", ds),
        local_snap("c", ds),
    ), step.reason


def test_after_a_resume_with_small_backup_txgs_the_rest_is_sent() -> None:
    """The same as above when the backup's txgs happen to be smaller than the source's."""
    ds = local("a", "b", "c")
    rd = remote("a", token="1-tok", base_txg=1)
    step = decide(ds, rd.with_snapshot(local_snap("b", ds)), DEST)
    assert (step.action, step.from_snapshot) == (Action.INCREMENTAL, local_snap("b", ds))


# --- properties -------------------------------------------------------------------------------


def guids(state: BackupDataset | None) -> set[int]:
    return {s.guid for s in state.snapshots} if state else set()


@settings(max_examples=300)
@given(histories())
def test_decide_then_apply_converges(history: History) -> None:
    ds, state, force, dest = history.local, history.remote, history.force, history.dest
    assume(decide(ds, state, dest, force=force).action in TRANSFERS)
    start = incremental_base(ds, guids(state)) or ds.snapshots[0]
    for _ in range(4):
        step = decide(ds, state, dest, force=force)
        if step.action is Action.UP_TO_DATE:
            break
        assert step.action in TRANSFERS, (step.action, step.reason)
        if step.action is Action.INCREMENTAL:
            base = incremental_base(ds, guids(state))
            assert step.from_snapshot == base and base is not None
            later = [s for s in ds.snapshots if s.createtxg > base.createtxg]
            assert step.to_snapshot == (later[0] if base.is_bookmark else ds.newest)
        else:
            assert step.to_snapshot == ds.snapshots[0]
            assert not guids(state)
        if step.rollback_to is not None:
            assert force
        new_state = apply(step, state, ds, dest)
        lost = guids(state) - guids(new_state)
        if step.rollback_to is None:
            assert not lost
        else:
            # Only what the backup has beyond the common snapshot, none of the source's.
            assert not lost & {s.guid for s in ds.snapshots}
        state = new_state
    else:
        pytest.fail(f"not up to date after 4 steps: {state}")
    assert ds.newest is not None and ds.newest.guid in guids(state)
    # The backup keeps the history from where it started: nothing in the range is skipped.
    assert {s.guid for s in ds.snapshots if s.createtxg >= start.createtxg} <= guids(state)


@given(st.integers(2, 9), st.data())
def test_one_by_one_sends_each_snapshot_of_the_range_as_its_own_step(
    count: int, data: st.DataObject
) -> None:
    """Through a restricted key (no package of streams) every incremental step carries one
    snapshot — from a snapshot or from a bookmark — and the backup ends with all of them."""
    shorts = [f"s{i}" for i in range(count)]
    held = data.draw(st.integers(1, count - 1), label="snapshots the backup holds")
    pruned = data.draw(st.booleans(), label="the base is a bookmark")
    ds = local(*shorts[held:], marks=(shorts[held - 1],)) if pruned else local(*shorts)
    state: BackupDataset | None = remote(*shorts[:held])
    for _ in range(count + 1):
        step = decide(ds, state, DEST, one_by_one=True)
        if step.action is Action.UP_TO_DATE:
            break
        assert step.action is Action.INCREMENTAL and step.from_snapshot is not None
        later = [s for s in ds.snapshots if s.createtxg > step.from_snapshot.createtxg]
        assert step.to_snapshot == later[0]
        state = apply(step, state, ds, DEST)
    else:
        pytest.fail(f"not up to date one by one: {state}")
    assert guids(state) >= {s.guid for s in ds.snapshots}


@settings(max_examples=300)
@given(histories())
def test_decide_is_total_and_consistent(history: History) -> None:
    ds, rd, force = history.local, history.remote, history.force
    step = decide(ds, rd, history.dest, force=force)
    raw_ok = rd is not None and rd.encrypted and rd.encryption_root == rd.name
    if not ds.snapshots:
        assert step.action is Action.NOTHING_TO_SEND
    elif rd is not None and rd.resume_token:
        assert step.action is Action.RESUME and step.token == rd.resume_token
    elif rd is None:
        assert step.action is Action.FULL
    elif ds.encrypted and not (rd.snapshots and raw_ok):
        assert step.action is Action.RAW_MISMATCH
    if step.action is Action.DIVERGED:
        assert step.reason
        assert rd is not None
    if step.rollback_to is not None:
        assert force and rd is not None and step.rollback_to in rd.snapshots
    if step.action is Action.FULL_OVER_PLACEHOLDER:
        assert rd is not None and not rd.snapshots and rd.placeholder
        assert rd.referenced <= PLACEHOLDER_MAX_REFERENCED and not rd.encrypted
    if not force:
        assert step.rollback_to is None
    if step.action is Action.UP_TO_DATE:
        assert ds.newest is not None and ds.newest.guid in guids(rd)


@settings(max_examples=200)
@given(histories())
def test_force_only_turns_divergence_into_rollback(history: History) -> None:
    ds, rd, dest = history.local, history.remote, history.dest
    plain, forced = decide(ds, rd, dest, force=False), decide(ds, rd, dest, force=True)
    if forced.rollback_to is None:
        assert plain == forced
    else:
        assert plain.action is Action.DIVERGED
        assert replace(forced, rollback_to=None, reason="") == Step(
            Action.INCREMENTAL, to_snapshot=forced.to_snapshot, from_snapshot=forced.from_snapshot
        )


@given(histories())
def test_step_sizes_add_up_to_the_plans_estimate(history: History) -> None:
    """The size each send reports (no `zfs send -nv`) sums, over the steps that bring the
    backup up to date, to what generate expected for the dataset."""
    ds, state, dest = history.local, history.remote, history.dest
    assume(state is None or not state.resume_token)
    expected, total = expected_bytes(ds, state), 0
    for _ in range(4):
        step = decide(ds, state, dest)
        if step.action not in TRANSFERS:
            break
        total += step_bytes(step, ds)
        state = apply(step, state, ds, dest)
    assume(decide(ds, state, dest).action is Action.UP_TO_DATE)
    assert total == expected


def test_step_bytes_of_full_incremental_and_other_steps() -> None:
    ds = replace(local("a", "b", "c"), snapshots=tuple(
        replace(s, referenced=50_000 * (i + 1)) for i, s in enumerate(snaps("a", "b", "c"))
    ))  # fmt: skip
    a, b, c = ds.snapshots
    assert step_bytes(Step(Action.FULL, to_snapshot=a), ds) == 50_000
    assert step_bytes(Step(Action.FULL_OVER_PLACEHOLDER, to_snapshot=b), ds) == 100_000
    assert step_bytes(Step(Action.INCREMENTAL, to_snapshot=c, from_snapshot=a), ds) == 2000 + 3000
    assert step_bytes(Step(Action.INCREMENTAL, to_snapshot=b, from_snapshot=a), ds) == 2000
    stranger = Snapshot(f"{SOURCE}@gone", 7, 1)
    assert step_bytes(Step(Action.INCREMENTAL, to_snapshot=c, from_snapshot=stranger), ds) == 0
    assert step_bytes(Step(Action.RESUME, token="1-abc"), ds) == 0
    assert step_bytes(Step(Action.UP_TO_DATE), ds) == 0


def test_is_placeholder_only_for_a_marked_empty_snapshotless_dataset_of_the_same_kind() -> None:
    ds = local("a")
    assert is_placeholder(ds, remote(referenced=PLACEHOLDER_MAX_REFERENCED, placeholder=True))
    assert not is_placeholder(ds, remote(referenced=0))  # not marked by zmake
    assert not is_placeholder(
        ds, remote(referenced=PLACEHOLDER_MAX_REFERENCED + 1, placeholder=True)
    )
    assert not is_placeholder(ds, remote("a", placeholder=True))  # has a snapshot
    assert not is_placeholder(ds, remote(kind=VOLUME, placeholder=True))
    assert not is_placeholder(ds, None)
