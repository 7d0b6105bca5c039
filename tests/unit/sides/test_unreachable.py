"""A host found unreachable in a run fails the rest of that run's sends to it at once, each
once, with the first reason: no ssh timeout per dataset. Without the run's folder (a send by
hand) nothing is marked or refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.support.fake_zfs import fake_zfs, install, zmake
from zmake.core.errors import RemoteUnreachable, TransferFailed
from zmake.sides import unreachable
from zmake.sides.side import Side
from zmake.sides.stderr_errors import ssh_failure

HOST = "zsend@nas one"
SIDE = Side(HOST, "ssh -p 2201")


def failing(calls: list[str], error: Exception):
    def send(name: str) -> str:
        calls.append(name)
        raise error

    return send


def test_the_first_failure_marks_the_host_and_the_rest_fail_untried(tmp_path: Path) -> None:
    calls: list[str] = []
    lost = RemoteUnreachable(f"cannot reach {HOST} over ssh: Connection refused", HOST)
    send = unreachable.guarded(failing(calls, lost), [SIDE], str(tmp_path))
    with pytest.raises(RemoteUnreachable):
        send("tank/a")
    for name in ("tank/b", "tank/c"):
        with pytest.raises(RemoteUnreachable) as later:
            send(name)
        assert str(later.value) == (
            f"{name}: not tried: earlier in this run, cannot reach {HOST} over ssh: "
            "Connection refused"
        )
    assert calls == ["tank/a"]
    other: list[str] = []
    behind_another_port = Side(HOST, "ssh -p 2202")  # the same name, another machine
    elsewhere = unreachable.guarded(lambda name: other.append(name) or "sent",
                                    [behind_another_port], str(tmp_path))  # fmt: skip
    assert elsewhere("tank/d") == "sent" and other == ["tank/d"]


@pytest.mark.parametrize(
    "error",
    [
        TransferFailed("tank/a: the stream stalled"),
        RemoteUnreachable("cannot reach x", "x"),
        ssh_failure(HOST, ""),
    ],
    ids=["another failure", "another host", "ssh without a word"],
)
def test_only_the_hosts_own_unreachability_marks_it(tmp_path: Path, error: Exception) -> None:
    calls: list[str] = []
    send = unreachable.guarded(failing(calls, error), [SIDE], str(tmp_path))
    for name in ("tank/a", "tank/b"):
        with pytest.raises(type(error)):
            send(name)
    assert calls == ["tank/a", "tank/b"] and not list(tmp_path.iterdir())


def test_without_the_runs_folder_nothing_is_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(unreachable.ENV, raising=False)
    calls: list[str] = []
    send = unreachable.guarded(failing(calls, RemoteUnreachable("gone", HOST)), [SIDE])
    for name in ("tank/a", "tank/b"):
        with pytest.raises(RemoteUnreachable):
            send(name)
    assert calls == ["tank/a", "tank/b"]


@pytest.mark.parametrize(
    ("stderr", "lost"),
    [
        ("ssh: connect to host nas port 22: Connection refused\n", True),
        ("ssh: connect to host nas port 22: Connection timed out\n", True),
        ("zsend@nas: Permission denied (publickey).\n", True),
        ("Connection to nas closed by remote host.\n", True),
        ("client_loop: send disconnect: Broken pipe\n", True),
        ("", False),  # a remote command killed by a broken pipe: ssh has nothing to say
        ("cannot receive: destination has been modified\n", False),
    ],
)
def test_only_ssh_saying_its_connection_failed_names_the_host_lost(stderr: str, lost: bool) -> None:
    error = ssh_failure(HOST, stderr)
    assert error.lost == (HOST if lost else None)
    assert str(error).startswith(f"cannot reach {HOST} over ssh: ")


SSH_REFUSED = """#!/bin/sh
echo ssh >> "$FAKE_SSH_LOG"
echo "ssh: connect to host nas port 22: Connection refused" >&2
exit 255
"""


def test_zmake_send_under_a_run_tries_an_unreachable_host_once(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    install(tmp_path / "bin", "ssh", SSH_REFUSED)
    attempts, marks, failures = tmp_path / "ssh.log", tmp_path / "marks", tmp_path / "failed"
    marks.mkdir()
    env = {**env, "PATH": f"{tmp_path / 'bin'}:{env['PATH']}", "FAKE_SSH_LOG": str(attempts),
           unreachable.ENV: str(marks), "ZMAKE_RUN_DIR": str(tmp_path / "run")}  # fmt: skip
    report = tmp_path / "report.jsonl"
    env["ZMAKE_REPORT"] = str(report)
    send = ["send", "--failures", str(failures), "--source", "zsend@nas", "--dest", "backup/nas",
            "-c", "/dev/null", "--"]  # fmt: skip
    for name in ("tank/my data", "tank/vm:disk0", "tank"):
        done = zmake([*send, name], env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr  # recorded, as under make
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["result"] for r in records] == ["failed"] * 3
    assert records[0]["error"].startswith("cannot reach zsend@nas over ssh"), records[0]
    assert all("not tried: earlier in this run, cannot reach zsend@nas" in r["error"]
               for r in records[1:]), records  # fmt: skip
    tried = len(attempts.read_text().splitlines())
    env.pop(unreachable.ENV)  # the control: by hand, every send tries again
    zmake([*send, "tank"], env, cwd=tmp_path)
    assert len(attempts.read_text().splitlines()) > tried
