"""Backups are received read-only — and zmake checks that they are (issue 23).

zfs skips `recv -o readonly=on` without the `readonly` permission and still exits 0 (real
ZFS: test_least_privilege), so `zmake send` reads `readonly` back with the reads it makes
anyway: a writable backup is NOT up to date (exit 5, one line: cause and fix, no stamp), and
no send costs an extra zfs call unless its backup was writable. The shared fake zfs
answers the reads and stands in for the receive."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from tests.unit.support.fake_zfs import BACKUP_ROW, SEND_GET, answer, fake_zfs, zmake

ME = getpass.getuser()  # who receives into a local backup
SEND = ["send", "tank/my data", "--dest", "backup"]
# tank/my data with a second snapshot, @s2 (guid 14): an incremental from @s1.
SEND_GET_S2 = SEND_GET + "".join(
    f"tank/my data@s2\t{prop}\t{value}\t-\n"
    for prop, value in [("type", "snapshot"), ("guid", "14"), ("createtxg", "8"),
                        ("written", "100"), ("referenced", "300"), ("used", "0"),
                        ("creation", "1780000840"), ("mountpoint", "-")]
) + "tank/my data@s2\tencryption\toff\tdefault\n"  # fmt: skip


def backup(*snapshots: tuple[str, int], readonly: bool) -> str:
    """`zfs list` of backup/my data holding `snapshots` ((short, guid), oldest first)."""
    row = BACKUP_ROW.format(name="backup/my data", referenced=200, token="-", mark="-")
    text = row if readonly else row.replace("\ton\t-\n", "\toff\t-\n")
    for txg, (short, guid) in enumerate(snapshots, start=6):
        text += (
            f"backup/my data@{short}\tsnapshot\t{guid}\t{txg}\t200\t200\t-\toff\t-\t-\t-\t-\t-\n"
        )
    return text


def calls(log: Path) -> list[str]:
    """Each zfs call by kind: `list -d 1` reads the backup, `list -d 0` its parents; a
    pipeline's `send` and `recv` (which run side by side, logged in either order) `stream`."""
    kinds = []
    for line in log.read_text().splitlines():
        verb, *words = line.split()
        if verb == "list":
            verb += f" -d {words[words.index('-d') + 1]}"
        kinds.append("stream" if verb in ("send", "recv") else verb)
    return kinds


def hint_of(stderr: str) -> str:
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    return stderr.removeprefix("zmake: tank/my data: ").rstrip("\n")


@pytest.mark.parametrize("readonly", [True, False])
def test_an_up_to_date_backup_that_is_writable_is_not_up_to_date(
    tmp_path: Path, readonly: bool
) -> None:
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    answer(tmp_path, "backup.txt", backup(("s1", 12), readonly=readonly))
    stamp = tmp_path / "stamps" / "my+20data@12"
    done = zmake([*SEND, "--stamp", str(stamp)], env)
    assert calls(log) == ["get", "list -d 1", "bookmark"]  # the same reads either way
    if readonly:
        assert done.returncode == 0 and stamp.exists(), done.stderr
        return
    assert done.returncode == 5 and not stamp.exists()
    assert hint_of(done.stderr) == (
        "backup/my data is writable (readonly=off): received without the `readonly` "
        "permission, with --no-readonly, or changed since: zfs set readonly=on backup/my data "
        f"(and zfs allow -u {ME} readonly backup)"
    )
    opted_out = zmake([*SEND, "--stamp", str(stamp), "--no-readonly"], env)
    assert opted_out.returncode == 0 and stamp.exists(), opted_out.stderr


def test_under_make_a_writable_backup_is_a_failure_and_checked_again(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    answer(tmp_path, "backup.txt", backup(("s1", 12), readonly=False))
    failures, report = tmp_path / "failed", tmp_path / "report.jsonl"
    stamp = tmp_path / "stamps" / "my+20data@12"
    args = [*SEND, "--stamp", str(stamp), "--failures", str(failures)]
    done = zmake(args, {**env, "ZMAKE_REPORT": str(report)})
    assert done.returncode == 0, done.stderr  # make goes on; `all` lists the failure
    assert not stamp.exists()
    assert done.stdout.startswith("tank/my data: NOT up to date: backup/my data is writable")
    why = (failures / "tank" / "my+20data.failed").read_text()
    assert why.startswith("tank/my data: backup/my data is writable (readonly=off)")
    assert json.loads(report.read_text())["result"] == "failed"


@pytest.mark.parametrize("granted", [True, False])
def test_a_full_receive_is_checked_by_the_read_that_follows_it(
    tmp_path: Path, granted: bool
) -> None:
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    (tmp_path / "answers" / "backup.txt").unlink(missing_ok=True)
    answer(tmp_path, "datasets.txt", BACKUP_ROW.format(name="backup", referenced=1, token="-",
                                                       mark="-"))  # fmt: skip
    answer(tmp_path, "received.txt", backup(("s1", 12), readonly=granted))
    stamp = tmp_path / "stamps" / "my+20data@12"
    done = zmake([*SEND, "--stamp", str(stamp)], env)
    assert calls(log) == ["get", "list -d 1", "list -d 0", "stream", "stream", "list -d 1",
                          "bookmark"]  # fmt: skip
    if granted:
        assert done.returncode == 0 and stamp.exists(), done.stderr
        return
    assert done.returncode == 5 and not stamp.exists()
    assert hint_of(done.stderr) == (
        f"backup/my data was received writable (readonly=off): {ME} lacks the `readonly` "
        f"permission there: zfs allow -u {ME} readonly backup; the next receive sets it (or "
        "now: zfs set readonly=on backup/my data)"
    )


@pytest.mark.parametrize(
    ("before", "after", "reads", "code"),
    [
        (True, True, 1, 0),  # the usual case: derived, not asked again
        (False, True, 2, 0),  # granted since: this receive set it, as the read confirms
        (False, False, 2, 5),  # still without the permission
    ],
)
def test_after_an_incremental_only_a_writable_backup_is_asked_again(
    tmp_path: Path, before: bool, after: bool, reads: int, code: int
) -> None:
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET_S2)
    answer(tmp_path, "backup.txt", backup(("s1", 12), readonly=before))
    answer(tmp_path, "received.txt", backup(("s1", 12), ("s2", 14), readonly=after))
    done = zmake(SEND, env)
    assert done.returncode == code, done.stderr
    assert done.stdout.startswith("tank/my data: incremental @s1..@s2") == (code == 0)
    again = ["list -d 1"] * (reads - 1)
    assert calls(log) == ["get", "list -d 1", "stream", "stream", *again, "bookmark"]
    if code:
        assert "was received writable (readonly=off)" in hint_of(done.stderr)
