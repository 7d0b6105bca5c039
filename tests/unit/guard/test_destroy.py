"""What a restricted key may destroy or bookmark: exactly what `zmake prune` and zmake's
bookmarks would (guard/destroy.py) — each rule shown refusing what it must catch."""

from __future__ import annotations

import pytest

from tests.unit.support.probe_answers import ProbeAnswers, passes, refused, wire
from zmake.sides import zfs_argv

ROOT, SOURCE = "backup/lap top:1", "tank/da ta:x"
HISTORY = (("zmake-1", 5, 5, 0), ("mine", 6, 6, 0), ("zmake-2", 7, 7, 0), ("zmake-3", 8, 8, 0),
           ("zmake-held", 9, 9, 1), ("zmake-4", 10, 10, 0))  # fmt: skip


def prune(dataset: str, *shorts: str) -> list[list[str]]:
    return [zfs_argv.destroy_snapshots_argv(dataset, list(shorts))]


@pytest.mark.parametrize("role, root", [("receive", ROOT), ("send", SOURCE)])
def test_prune_takes_only_what_zmake_prune_would(role: str, root: str) -> None:
    from zmake.guard.pipeline import Policy

    policy = Policy(role, root, allow_prune=True, target="nas")
    zfs = ProbeAnswers(snapshots=HISTORY, bookmarks=())
    name = f"{root}/a"
    assert passes(policy, prune(name, "zmake-1", "zmake-2"), zfs)  # the control
    assert "range" in refused(policy, wire(prune(name, "zmake-1%zmake-3")), zfs)
    assert "not zmake's" in refused(policy, wire(prune(name, "mine")), zfs)
    assert "held" in refused(policy, wire(prune(name, "zmake-held")), zfs)
    assert "newest" in refused(policy, wire(prune(name, "zmake-4")), zfs)
    assert "does not exist" in refused(policy, wire(prune(name, "zmake-9")), zfs)
    assert "twice" in refused(policy, wire(prune(name, "zmake-1", "zmake-1")), zfs)
    assert "--allow-prune" in refused(Policy(role, root), wire(prune(name, "zmake-1")), zfs)


def test_a_range_of_every_snapshot_is_refused() -> None:
    from zmake.guard.pipeline import Policy

    policy = Policy("receive", ROOT, allow_prune=True)
    for text in (f"zfs destroy '{ROOT}/a@%'", f"zfs destroy '{ROOT}/a@zmake-1%'"):
        assert "range" in refused(policy, text, ProbeAnswers(snapshots=HISTORY))


def test_the_backups_newest_and_what_a_partial_receive_needs_stay() -> None:
    from zmake.core.token import ResumeToken, encode
    from zmake.guard.pipeline import Policy

    policy = Policy("receive", ROOT, allow_prune=True)
    foreign_newest = (*HISTORY, ("theirs", 11, 11, 0))
    assert "newest" in refused(
        policy, wire(prune(f"{ROOT}/a", "zmake-4")), ProbeAnswers(snapshots=foreign_newest)
    )
    partial = ProbeAnswers(snapshots=HISTORY, token=encode(ResumeToken(77, "tank/a@zmake-5", 8)))
    assert "partial receive" in refused(policy, wire(prune(f"{ROOT}/a", "zmake-3")), partial)
    assert passes(policy, prune(f"{ROOT}/a", "zmake-2"), partial)  # the control


def test_a_pull_key_keeps_its_own_targets_base() -> None:
    from zmake.guard.pipeline import Policy

    policy = Policy("send", SOURCE, allow_prune=True, target="nas")
    marks = (("zmake-nas.00ff-7", 7, 7), ("zmake-nas.00ff-5", 5, 5), ("zmake-other.00aa-8", 8, 8))
    zfs = ProbeAnswers(snapshots=HISTORY, bookmarks=marks)
    assert "incremental base" in refused(policy, wire(prune(f"{SOURCE}/a", "zmake-2")), zfs)
    assert passes(policy, prune(f"{SOURCE}/a", "zmake-1", "zmake-3"), zfs)  # older, another's


def test_a_pull_key_makes_and_destroys_only_its_own_bookmarks() -> None:
    from zmake.guard.pipeline import Policy

    name = f"{SOURCE}/a"
    policy = Policy("send", SOURCE, target="nas")
    create = [zfs_argv.bookmark_argv(f"{name}@zmake-2", f"{name}#zmake-00ff-7")]
    served = passes(policy, create)
    assert served == [zfs_argv.bookmark_argv(f"{name}@zmake-2", f"{name}#zmake-nas.00ff-7")]
    labelled = [zfs_argv.bookmark_argv(f"{name}@zmake-2", f"{name}#zmake-nas.00ff-7")]
    assert passes(policy, labelled) == labelled
    other = [zfs_argv.bookmark_argv(f"{name}@zmake-2", f"{name}#zmake-other.00ff-7")]
    assert "another target" in refused(policy, wire(other))
    assert "--target" in refused(Policy("send", SOURCE), wire(create))

    def destroy(short: str) -> str:
        return wire([zfs_argv.destroy_bookmark_argv(f"{name}#{short}")])

    marks = (("zmake-nas.00ff-5", 5, 5), ("zmake-nas.00ff-7", 7, 7), ("zmake-other.00ff-5", 5, 5),
             ("zmake-00ff-5", 5, 5))  # fmt: skip
    zfs = ProbeAnswers(bookmarks=marks)
    assert passes(policy, [zfs_argv.destroy_bookmark_argv(f"{name}#zmake-nas.00ff-5")], zfs)
    assert "newest" in refused(policy, destroy("zmake-nas.00ff-7"), zfs)
    assert "not this target's" in refused(policy, destroy("zmake-other.00ff-5"), zfs)
    assert "not this target's" in refused(policy, destroy("zmake-00ff-5"), zfs)
    assert "not a zmake bookmark" in refused(policy, destroy("mine"), zfs)


def test_a_pull_key_never_bookmarks_under_a_key_another_target_or_a_push_uses() -> None:
    """A push counts only unlabelled bookmarks as its own (targets/pool/bookmarks.py) and
    a pull only its label's: a key in use by another is refused, so one cannot plant the other's
    base."""
    from zmake.guard.pipeline import Policy

    name = f"{SOURCE}/a"
    policy = Policy("send", SOURCE, target="nas")
    create = [zfs_argv.bookmark_argv(f"{name}@zmake-2", f"{name}#zmake-00ff-7")]
    for short in ("zmake-00ff-5", "zmake-other.00ff-5"):
        zfs = ProbeAnswers(bookmarks=((short, 5, 5),))
        assert "another target's" in refused(policy, wire(create), zfs)
    assert passes(policy, create, ProbeAnswers(bookmarks=(("zmake-nas.00ff-5", 5, 5),)))  # control
