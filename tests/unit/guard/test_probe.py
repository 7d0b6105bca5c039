"""serve asks ZFS, not the client: what a resume token really sends (by guid), whether a
dataset is encrypted or a placeholder — and a question ZFS does not answer is a refusal."""

from __future__ import annotations

import pytest

from tests.unit.support.probe_answers import ProbeAnswers, passes, refused, wire
from zmake.core.token import ResumeToken, encode
from zmake.guard.pipeline import Policy, Probe, Refusal, check, parse
from zmake.sides import zfs_argv
from zmake.sides.zfs_argv import Argv

SOURCE = "tank/da ta:x"
PLAIN, SECRET = f"{SOURCE}/plain", f"{SOURCE}/secret"
SEND = Policy("send", SOURCE, target="nas")
RECEIVE = Policy("receive", "backup/lap top:1")


def resume(token: ResumeToken) -> str:
    return wire([zfs_argv.resume_argv(encode(token))])


def test_a_token_naming_a_plain_snapshot_with_an_encrypted_ones_guid_is_refused() -> None:
    """OpenZFS #14153: `send -t` sends the snapshot whose guid is `toguid`, found anywhere in
    the pool — as the fake's pool does here: guid 99 is the encrypted dataset's @zmake-3."""
    pool = {5: f"{PLAIN}@zmake-1", 7: f"{PLAIN}@zmake-2", 99: f"{SECRET}@zmake-3"}
    zfs = ProbeAnswers(encrypted={SECRET}, resolve=lambda token: pool.get(token.toguid, ""))
    honest = ResumeToken(7, f"{PLAIN}@zmake-2", 0)
    assert passes(SEND, [zfs_argv.resume_argv(encode(honest))], zfs)  # the control
    forged = ResumeToken(99, f"{PLAIN}@zmake-2", 0)
    assert "that sends" in refused(SEND, resume(forged), zfs)
    # ZFS's answer alone is not trusted either: the name's guid must be the token's
    agreeing = ProbeAnswers(encrypted={SECRET}, resolve=lambda token: token.toname)
    assert "guid is not" in refused(SEND, resume(forged), agreeing)
    secret = ProbeAnswers(encrypted={SECRET})
    assert "non-raw" in refused(SEND, resume(ResumeToken(7, f"{SECRET}@zmake-2", 0)), secret)
    raw = ResumeToken(7, f"{SECRET}@zmake-2", 0, raw=True)
    assert passes(SEND, [zfs_argv.resume_argv(encode(raw))], secret)


def test_a_token_for_a_dataset_or_snapshot_that_does_not_exist_is_refused() -> None:
    """ZFS accepts a token whose `toname` does not exist (it resolves the guid in the pool)."""
    elsewhere = ProbeAnswers(missing={f"{SOURCE}/gone"}, resolve=lambda token: f"{SECRET}@zmake-2")
    gone = ResumeToken(7, f"{SOURCE}/gone@zmake-2", 0)
    assert "that sends" in refused(SEND, resume(gone), elsewhere)
    honest_names = ProbeAnswers(missing={f"{SOURCE}/gone"}, resolve=lambda token: token.toname)
    assert "does not list" in refused(SEND, resume(gone), honest_names)
    nowhere = ProbeAnswers(resolve=lambda token: "")
    assert "did not say" in refused(SEND, resume(ResumeToken(7, f"{PLAIN}@nope", 0)), nowhere)
    assert "guid is not" in refused(SEND, resume(ResumeToken(7, f"{PLAIN}@nope", 0)),
                                    ProbeAnswers(resolve=lambda token: token.toname))  # fmt: skip


def test_a_token_from_a_guid_the_dataset_does_not_hold_or_with_other_flags_is_refused() -> None:
    assert passes(SEND, [zfs_argv.resume_argv(encode(ResumeToken(7, f"{PLAIN}@zmake-2", 5)))])
    assert "does not hold" in refused(SEND, resume(ResumeToken(7, f"{PLAIN}@zmake-2", 1234)))
    saved = ResumeToken(7, f"{PLAIN}@zmake-2", 0, flags=frozenset({"savedok"}))
    assert "savedok" in refused(SEND, resume(saved))
    # libzfs reads a flag by name whatever its type: `savedok` as a number counts as set
    typed = ResumeToken(7, f"{PLAIN}@zmake-2", 0, names=frozenset({"savedok"}))
    assert "savedok" in refused(SEND, resume(typed))


def test_every_probe_fails_closed() -> None:
    """A zfs that answers nothing, or fails (serve's reader raises), is a refusal — for the
    encryption of a send, a token, a placeholder under -F and a prune."""

    def failing(argv: Argv) -> str:
        raise Refusal("zfs did not answer")

    asks = [
        [zfs_argv.stream_argv(f"{PLAIN}@zmake-2", raw=False)],
        [zfs_argv.resume_argv(encode(ResumeToken(7, f"{PLAIN}@zmake-2", 0)))],
        [zfs_argv.destroy_snapshots_argv(PLAIN, ["zmake-1"])],
    ]
    policy = Policy("send", SOURCE, allow_prune=True, target="nas")
    for stages in asks:
        assert check(policy, parse(wire(stages)), Probe(ProbeAnswers()))  # the control: passes
        for zfs in (ProbeAnswers(missing={PLAIN}), failing, lambda argv: "garbage\n"):
            with pytest.raises(Refusal):
                check(policy, parse(wire(stages)), Probe(zfs))
    forced = [zfs_argv.receive_argv(f"{RECEIVE.root}/p", force=True)]
    for zfs in (ProbeAnswers(missing={f"{RECEIVE.root}/p"}), failing):
        with pytest.raises(Refusal):
            check(RECEIVE, parse(wire(forced)), Probe(zfs))


def test_force_needs_a_mark_set_on_the_dataset_itself() -> None:
    """A mark inherited or received from a stream (`send -p` can carry zmake:placeholder) is no
    placeholder; nor is one with snapshots."""
    name = f"{RECEIVE.root}/p"
    forced = [zfs_argv.receive_argv(name, force=True)]
    assert passes(RECEIVE, forced, ProbeAnswers(placeholders={name}))  # the control
    for source in ("received", "inherited from backup/lap top:1"):
        zfs = ProbeAnswers(placeholders={name}, mark_source=source)
        assert "not a placeholder" in refused(RECEIVE, wire(forced), zfs)
    assert "not a placeholder" in refused(RECEIVE, wire(forced), ProbeAnswers())


def test_every_receive_keeps_the_streams_own_mark_out() -> None:
    for fs in (True, False):
        argv = zfs_argv.receive_argv("backup/x", filesystem=fs)
        assert argv[argv.index("-x") + 1] == "zmake:placeholder"


@pytest.mark.parametrize("name", ["backup/lap top:1/../other", "backup/lap top:1/./a",
                                  "backup/lap top:1//a", "backup/lap top:1/a/.."])  # fmt: skip
def test_dot_components_are_refused(name: str) -> None:
    for argv in (zfs_argv.unmount_argv(name), zfs_argv.remote_dataset_argv(name),
                 zfs_argv.receive_argv(name)):  # fmt: skip
        refused(RECEIVE, wire([argv]))
