"""zmake/sides/zfs_argv.py: the argv lists zmake runs, and quoting across the ssh boundary.

Quoting is checked by running the commands: a fake `ssh` hands its command to `sh -c` the
way sshd hands it to the remote login shell (options skipped, the words after the host
joined by spaces), and a fake `zfs` reports the argv it received as JSON."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support import fake_zfs
from tests.unit.support.zfsgen import GenTree, components, trees
from zmake.core.decide import Action, Step
from zmake.core.errors import UsageError, ZfsUnavailable
from zmake.core.model import FILESYSTEM, VOLUME, Dataset, Snapshot
from zmake.sides.runner import Runner
from zmake.sides.side import KEEPALIVE, Route, Side, ssh_argv, ssh_prefix
from zmake.sides.zfs_argv import (
    COMPRESSORS,
    abort_resume_argv,
    create_placeholder_argv,
    estimate_argv,
    local_dataset_argv,
    pipeline_text,
    recv_argv,
    remote_dataset_argv,
    remote_tree_argv,
    rollback_argv,
    send_argv,
)

OWN_CONNECTION = ["-S", "none"]  # what data streams add to the user's ssh
NASTY_NAMES = (
    "tank/my data",
    "tank/vm:disk0",
    "tank/50%/x y",
    "tank/it's",
    "tank/$HOME and $(id) `id`",
    'tank/"quoted" \\ back',
    "tank/a;b|c&d>e<f",
    "tank/ lead/trail ",
    "tank/-x/--force",
    "tank/*?[a]",
    "tank/tab\there",
    "tank/new\nline",
)


@dataclass(frozen=True)
class Fakes:
    bin: Path

    def env(self, log: Path, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "FAKE_LOG": str(log),
            "FAKE_LOG_FORMAT": "json",
            "LC_ALL": "C",
            **extra,
        }


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Fakes:
    folder = tmp_path_factory.mktemp("fakebin")
    scripts = {"zfs": fake_zfs.ZFS, "ssh": fake_zfs.SSH}
    for compressor, decompressor in COMPRESSORS.values():
        assert compressor[0] == decompressor[0]
        scripts[compressor[0]] = fake_zfs.COMPRESSOR
    for name, text in scripts.items():
        fake_zfs.install(folder, name, text)
    return Fakes(folder)


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def snapshot(dataset: str, short: str, guid: int, txg: int) -> Snapshot:
    return Snapshot(f"{dataset}@{short}", guid, txg)


def filesystem(
    name: str = "tank/my data",
    *,
    mountpoint: str | None = "/srv/my data",
    source: str = "local",
    encryption: str = "off",
    kind: str = FILESYSTEM,
) -> Dataset:
    return Dataset(
        name=name,
        kind=kind,
        mountpoint=None if kind == VOLUME else mountpoint,
        mountpoint_source="-" if kind == VOLUME else source,
        encryption=encryption,
        snapshots=(snapshot(name, "a", 1, 10), snapshot(name, "b", 2, 20)),
    )


def full(ds: Dataset) -> Step:
    return Step(Action.FULL, to_snapshot=ds.snapshots[0])


def incremental(ds: Dataset, rollback: bool = False) -> Step:
    return Step(
        Action.INCREMENTAL,
        to_snapshot=ds.snapshots[-1],
        from_snapshot=ds.snapshots[0],
        rollback_to=ds.snapshots[0] if rollback else None,
    )


# --- quoting across ssh ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_remote_shell_receives_each_argument_intact(
    fakes: Fakes, tmp_path: Path, name: str
) -> None:
    argv = ssh_argv("ssh", "backup", [remote_dataset_argv(name)])
    assert argv[:-1] == ["ssh", *KEEPALIVE, "--", "backup"]  # one word after the host
    done = run(["sh", "-c", argv[-1]], fakes.env(tmp_path / "log"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == remote_dataset_argv(name)[1:]
    assert json.loads(done.stdout)[-1] == name


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), min_size=1))
def test_any_name_survives_the_fake_ssh(fakes: Fakes, name: str) -> None:
    side = Side("me@backup", ssh="ssh -p 2222 -F 'my cfg'")
    argv = side.control(remote_tree_argv(name))
    done = run(argv, fakes.env(Path(os.devnull)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == remote_tree_argv(name)[1:]


@settings(max_examples=15, deadline=None)
@given(components(), components())
def test_remote_pipeline_stages_survive(fakes: Fakes, first: str, second: str) -> None:
    """Several stages joined by `|` on the remote side: every stage's argv is intact."""
    name = f"tank/{first}/{second}"
    argv = ssh_argv("ssh", "host", [["zfs", "get", name], ["zfs", "list", name]])
    done = run(argv, fakes.env(Path(os.devnull)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["list", name]


def test_ssh_prefix_is_split_like_a_shell() -> None:
    side = Side("me@host", ssh="ssh -F 'my cfg' -p 2222 -o X=y")
    argv = side.control(["zfs", "list", "b/my data"])
    assert argv[:7] == ["ssh", "-F", "my cfg", "-p", "2222", "-o", "X=y"]
    assert argv[7:] == [*KEEPALIVE, "--", "me@host", "zfs list 'b/my data'"]


@pytest.mark.parametrize("bad", ["", "   ", "ssh -F 'unclosed"])
def test_ssh_prefix_rejects_nonsense(bad: str) -> None:
    with pytest.raises(UsageError, match="--ssh"):
        ssh_prefix(bad)


def test_this_machine_runs_commands_directly() -> None:
    side = Side()
    assert side.control(["zfs", "list", "x y"]) == ["zfs", "list", "x y"]
    assert side.stream([["a"], ["b c"]]) == [["a"], ["b c"]]


def test_control_commands_keep_names_as_single_arguments() -> None:
    name = "backup/my data:v1"
    assert rollback_argv(f"{name}@s 1") == ["zfs", "rollback", "-r", f"{name}@s 1"]
    assert abort_resume_argv(name) == ["zfs", "recv", "-A", name]
    assert local_dataset_argv(name)[-1] == name
    assert remote_dataset_argv(name)[-3:] == ["-d", "1", name]
    assert remote_tree_argv(name)[-2:] == ["-r", name]
    assert create_placeholder_argv(name)[-3:] == ["-o", f"zmake:placeholder={name}", name]


# --- zfs recv options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "mountpoint_option"),
    [
        (filesystem(source="local"), "mountpoint=/srv/my data"),
        (filesystem(source="received"), "mountpoint=/srv/my data"),
        (filesystem(mountpoint="none", source="local"), "mountpoint=none"),
        (filesystem(source="default"), None),
        (filesystem(source="inherited from tank"), None),
        (filesystem(source="-"), None),
        (filesystem(mountpoint=None, source="local"), None),
    ],
    ids=["local", "received", "none", "default", "inherited", "dash", "unknown"],
)
def test_recv_mountpoint_only_when_set_on_the_filesystem(
    dataset: Dataset, mountpoint_option: str | None
) -> None:
    argv = recv_argv(full(dataset), dataset, "backup/my data")
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    mountpoints = [o for o in options if o.startswith("mountpoint=")]
    assert mountpoints == ([mountpoint_option] if mountpoint_option else [])
    assert "canmount=noauto" in options and "readonly=on" in options
    assert argv[:2] == ["zfs", "recv"] and argv[-1] == "backup/my data"
    assert "-d" not in argv  # into the exact name: zmake makes the parents itself
    assert {"-u", "-s"} <= set(argv)


@pytest.mark.parametrize("source", ["local", "received", "default", "-"])
def test_recv_never_sets_properties_on_volumes(source: str) -> None:
    volume = Dataset(
        name="tank/vm:disk0",
        kind=VOLUME,
        mountpoint="/should/not/matter",
        mountpoint_source=source,
        snapshots=(snapshot("tank/vm:disk0", "a", 1, 1),),
    )
    argv = recv_argv(full(volume), volume, "backup/vm:disk0", readonly=False)
    keep_mark_out = ["-x", "zmake:placeholder"]  # never a property the stream sets
    assert argv == ["zfs", "recv", "-u", "-s", *keep_mark_out, "backup/vm:disk0"]
    readonly = recv_argv(full(volume), volume, "backup/vm:disk0")
    assert readonly == ["zfs", "recv", "-u", "-s", *keep_mark_out, "-o", "readonly=on",
                        "backup/vm:disk0"]  # fmt: skip


@pytest.mark.parametrize(
    ("action", "rollback", "forced"),
    [
        (Action.FULL, False, False),
        (Action.FULL_OVER_PLACEHOLDER, False, True),
        (Action.INCREMENTAL, False, False),
        (Action.INCREMENTAL, True, False),  # rolled back by `zfs rollback` first
        (Action.RESUME, False, False),
    ],
)
def test_recv_force_flag_only_over_a_placeholder(
    action: Action, rollback: bool, forced: bool
) -> None:
    ds = filesystem()
    step = Step(
        action,
        to_snapshot=ds.snapshots[-1] if action is not Action.RESUME else None,
        from_snapshot=ds.snapshots[0] if action is Action.INCREMENTAL else None,
        rollback_to=ds.snapshots[0] if rollback else None,
        token="1-t" if action is Action.RESUME else None,
    )
    assert ("-F" in recv_argv(step, ds, "backup")) == forced
    assert "-F" in recv_argv(replace(step, force_receive=True), ds, "backup")


@settings(max_examples=60, deadline=None)
@given(trees(max_datasets=6), st.data())
def test_recv_options_on_generated_datasets(tree: GenTree, data: st.DataObject) -> None:
    ds = tree.by_name(data.draw(st.sampled_from(tree.names))).model()
    step = data.draw(
        st.sampled_from(
            [
                Step(Action.FULL, to_snapshot=Snapshot(f"{ds.name}@x", 1, 1)),
                Step(Action.FULL_OVER_PLACEHOLDER, to_snapshot=Snapshot(f"{ds.name}@x", 1, 1)),
            ]
        )
    )
    argv = recv_argv(step, ds, "backup")
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    if ds.kind == VOLUME:
        assert options == ["readonly=on"]
    elif ds.mountpoint_source == "local":
        assert options == ["canmount=noauto", f"mountpoint={ds.mountpoint}", "readonly=on"]
    else:
        assert options == ["canmount=noauto", "readonly=on"]
    assert ("-F" in argv) == (step.action is Action.FULL_OVER_PLACEHOLDER)


# --- zfs send ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["off", "aes-256-gcm"])
def test_send_flags_raw_for_encrypted(encryption: str) -> None:
    ds = filesystem(encryption=encryption)
    for step in (full(ds), incremental(ds)):
        argv = send_argv(step, ds)
        flags = argv[2 : argv.index("-i")] if "-i" in argv else argv[2:-1]
        assert flags == (["-w"] if encryption != "off" else ["-L", "-c"])


def test_send_full_and_incremental_name_the_snapshots() -> None:
    ds = filesystem(name="tank/vm:disk0 x")
    assert send_argv(full(ds), ds) == ["zfs", "send", "-L", "-c", "tank/vm:disk0 x@a"]
    # one snapshot carried: a plain `-i` stream, which a restricted key's serve takes
    assert send_argv(incremental(ds), ds) == [
        "zfs", "send", "-L", "-c", "-i", "tank/vm:disk0 x@a", "tank/vm:disk0 x@b"]  # fmt: skip


def test_a_range_of_several_snapshots_is_one_package() -> None:
    ds = filesystem(name="tank/vm:disk0 x")
    later = Snapshot("tank/vm:disk0 x@c", 3, 30)
    ds = Dataset(**{**ds.__dict__, "snapshots": (*ds.snapshots, later)})
    step = Step(Action.INCREMENTAL, to_snapshot=later, from_snapshot=ds.snapshots[0])
    assert send_argv(step, ds)[4:] == ["-I", "tank/vm:disk0 x@a", "tank/vm:disk0 x@c"]
    from_mark = Step(Action.INCREMENTAL, to_snapshot=later,
                     from_snapshot=Snapshot("tank/vm:disk0 x#m", 1, 1))  # fmt: skip
    assert send_argv(from_mark, ds)[4] == "-i"


@pytest.mark.parametrize("encryption", ["off", "aes-256-gcm"])
def test_send_resume_uses_only_the_token(encryption: str) -> None:
    ds = filesystem(encryption=encryption)
    token = "1-e604ea4bf-e0-789c63a2"
    assert send_argv(Step(Action.RESUME, token=token), ds) == ["zfs", "send", "-t", token]
    assert estimate_argv(send_argv(Step(Action.RESUME, token=token), ds)) == [
        "zfs",
        "send",
        "-n",
        "-v",
        "-P",
        "-t",
        token,
    ]


def test_estimate_is_a_dry_run_of_the_same_send() -> None:
    ds = filesystem(encryption="aes-256-gcm")
    send = send_argv(incremental(ds), ds)
    assert estimate_argv(send) == ["zfs", "send", "-n", "-v", "-P", *send[2:]]


# --- the data pipeline -----------------------------------------------------------------------


def push(compress: str = "none", ssh: str = "ssh") -> Route:
    return Route(Side(), Side("me@host", ssh), "backup", compress)


def pull(compress: str = "none") -> Route:
    return Route(Side("me@laptop"), Side(), "backup", compress)


def relay(compress: str = "none") -> Route:
    return Route(Side("me@laptop"), Side("me@host"), "backup", compress)


def test_local_pipeline_has_no_ssh_and_no_compression() -> None:
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    for compress in ("none", *COMPRESSORS):
        assert Route(Side(), Side(), "backup", compress).pipeline(send, recv) == [send, recv]
    progress = ["pv", "-f"]
    local = Route(Side(), Side(), "backup", "zstd")
    assert local.pipeline(send, recv, progress) == [send, progress, recv]


@pytest.mark.parametrize("compress", sorted(COMPRESSORS))
def test_push_compresses_here_and_decompresses_on_the_backup(compress: str) -> None:
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    stages = push(compress, "ssh -p 22").pipeline(send, recv, ["pv", "-f"])
    compressor, decompressor = COMPRESSORS[compress]
    assert stages[:3] == [send, ["pv", "-f"], compressor]
    remote_text = f"{shlex.join(decompressor)} | {shlex.join(recv)}"
    assert stages[3:] == [
        ["ssh", "-p", "22", *OWN_CONNECTION, *KEEPALIVE, "--", "me@host", remote_text]
    ]


@pytest.mark.parametrize("compress", sorted(COMPRESSORS))
def test_pull_compresses_on_the_source_and_meters_after_decompressing(compress: str) -> None:
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    stages = pull(compress).pipeline(send, recv, ["pv", "-f"])
    compressor, decompressor = COMPRESSORS[compress]
    remote_text = f"{shlex.join(send)} | {shlex.join(compressor)}"
    assert stages == [
        ["ssh", *OWN_CONNECTION, *KEEPALIVE, "--", "me@laptop", remote_text],
        decompressor,
        ["pv", "-f"],
        recv,
    ]


def test_relay_passes_the_compressed_stream_through_this_machine() -> None:
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    compressor, decompressor = COMPRESSORS["zstd"]
    sending = f"{shlex.join(send)} | {shlex.join(compressor)}"
    receiving = f"{shlex.join(decompressor)} | {shlex.join(recv)}"
    assert relay("zstd").pipeline(send, recv, ["pv"]) == [
        ["ssh", *OWN_CONNECTION, *KEEPALIVE, "--", "me@laptop", sending],
        ["pv"],
        ["ssh", *OWN_CONNECTION, *KEEPALIVE, "--", "me@host", receiving],
    ]


def test_uncompressed_remote_pipeline() -> None:
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    stages = Route(Side(), Side("host"), "backup").pipeline(send, recv)
    assert stages == [send, ["ssh", *OWN_CONNECTION, *KEEPALIVE, "--", "host", shlex.join(recv)]]


def test_only_data_streams_opt_out_of_connection_sharing() -> None:
    """Control commands may share a multiplexed connection; data streams get their own."""
    side = Side("me@host", ssh="ssh -p 22")
    assert side.control(["zfs", "list"]) == [
        "ssh", "-p", "22", *KEEPALIVE, "--", "me@host", "zfs list"
    ]  # fmt: skip
    assert ssh_argv("ssh -p 22", "me@host", [["zfs", "list"]]) == side.control(["zfs", "list"])
    stream = ssh_argv("ssh -p 22", "me@host", [["a"], ["b"]], own_connection=True)
    assert stream == ["ssh", "-p", "22", *OWN_CONNECTION, *KEEPALIVE, "--", "me@host", "a | b"]
    assert side.stream([["a"], ["b"]]) == [stream]


@pytest.mark.parametrize("route", [push, pull, relay], ids=["push", "pull", "relay"])
@pytest.mark.parametrize("compress", ["none", "zstd", "gzip"])
@pytest.mark.parametrize("name", ["tank/my data", "tank/it's $HOME", "tank/vm:disk0 50%"])
def test_pipeline_runs_end_to_end(
    fakes: Fakes, tmp_path: Path, route: Any, compress: str, name: str
) -> None:
    """pipeline_text through bash with fake zfs/ssh/compressors: the stream arrives intact,
    compressed where it is sent and decompressed where it is received, and send and recv
    run on their own sides with their exact argv."""
    ds = filesystem(name=name, mountpoint=f"/srv/{name} 'q'")
    step = incremental(ds, rollback=True)
    the_route: Route = route(compress)
    send, recv = send_argv(step, ds), recv_argv(step, ds, "backup/x y")
    log = tmp_path / "log"
    done = run(["bash", "-c", pipeline_text(the_route.pipeline(send, recv))], fakes.env(log))
    assert done.returncode == 0, done.stderr
    records = read_log(log)
    sender = next(r for r in records if r["prog"] == "zfs" and r["argv"][0] == "send")
    received = [r for r in records if r["prog"] == "zfs" and r["argv"][0] == "recv"]
    source_host = (the_route.source.host or "local").rpartition("@")[2]
    target_host = (the_route.target.host or "local").rpartition("@")[2]
    assert sender["side"] == source_host and sender["argv"] == send[1:]
    assert len(received) == 1
    assert received[0]["side"] == target_host and received[0]["argv"] == recv[1:]
    stream = "STREAM " + json.dumps(send[1:]) + "\n"
    if compress == "none":
        assert received[0]["stdin"] == stream
    else:
        program = COMPRESSORS[compress][0][0]
        assert received[0]["stdin"] == f"[{program}: {source_host} -> {target_host}]{stream}"
    ssh_calls = [r for r in records if r["prog"] == "ssh"]
    assert len(ssh_calls) == len(the_route.remote_hosts)
    assert all(call["options"] == [*OWN_CONNECTION, *KEEPALIVE] for call in ssh_calls)
    assert all(len(call["words"]) == 1 for call in ssh_calls)


def test_local_pipeline_runs_end_to_end(fakes: Fakes, tmp_path: Path) -> None:
    ds = filesystem(name="tank/it's my data")
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    log = tmp_path / "log"
    route = Route(Side(), Side(), "backup", "zstd")
    done = run(["bash", "-c", pipeline_text(route.pipeline(send, recv))], fakes.env(log))
    assert done.returncode == 0, done.stderr
    records = read_log(log)
    assert [r["prog"] for r in records] == ["zfs", "zfs"]
    assert records[1]["argv"] == recv[1:] and records[1]["side"] == "local"
    assert records[1]["stdin"] == "STREAM " + json.dumps(send[1:]) + "\n"


def test_pipeline_text_fails_when_send_fails(fakes: Fakes, tmp_path: Path) -> None:
    """pipefail: `zfs recv` succeeding must not hide a failed `zfs send`. (On another
    machine the sending stages run in the login shell, which may lack pipefail; there
    `zfs recv` itself refuses the cut stream, see refine.transfer_error.)"""
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    text = pipeline_text(push("zstd").pipeline(send, recv))
    done = run(["bash", "-c", text], fakes.env(tmp_path / "log", FAKE_SEND_EXIT="3"))
    assert done.returncode == 3


def effective_ssh_options(argv: list[str]) -> dict[str, str]:
    """What OpenSSH would use for this command line (`ssh -G` resolves options, no network).
    `-F /dev/null` in the tests' SSH keeps the machine's own ssh_config out of it."""
    done = subprocess.run(
        [argv[0], "-G", *argv[1:]], capture_output=True, text=True, timeout=30, check=True
    )
    return dict(line.partition(" ")[::2] for line in done.stdout.splitlines())


def data_stream_ssh(ssh: str) -> list[str]:
    ds = filesystem()
    send, recv = send_argv(full(ds), ds), recv_argv(full(ds), ds, "backup")
    return push(ssh=ssh).pipeline(send, recv)[-1]


needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh -G")


def test_data_stream_ssh_opts_out_of_connection_sharing() -> None:
    ssh = data_stream_ssh("ssh")
    assert ssh[: ssh.index("me@host")] == ["ssh", *OWN_CONNECTION, *KEEPALIVE, "--"]


@needs_ssh
@pytest.mark.parametrize(
    "ssh",
    [
        "ssh -F /dev/null",
        "ssh -F /dev/null -o ControlMaster=auto",
        "ssh -F /dev/null -p 2222 -o ControlMaster=auto -o ControlPersist=60",
    ],
)
def test_data_stream_ssh_has_no_control_path(ssh: str) -> None:
    options = effective_ssh_options(data_stream_ssh(ssh))
    assert (options["user"], options["hostname"]) == ("me", "host")
    assert "controlpath" not in options, options


@needs_ssh
@pytest.mark.parametrize(
    "ssh",
    [
        "ssh -F /dev/null -o ControlMaster=auto -o ControlPath=/tmp/zmake-cm-%C",
        "ssh -F /dev/null -o ControlMaster=auto -S /tmp/zmake-cm-%C",
    ],
)
def test_data_stream_ssh_overrides_a_control_path_given_in_ssh(ssh: str) -> None:
    options = effective_ssh_options(data_stream_ssh(ssh))
    assert "controlpath" not in options, options


# --- the runner ----------------------------------------------------------------------------


def test_runner_run_all_runs_the_commands_side_by_side(tmp_path: Path) -> None:
    """Each command waits until every one has started: this passes only if they overlap."""
    names = ["a", "b", "c"]
    wait_for_all = " && ".join(f"[ -e {tmp_path}/{n} ]" for n in names)
    argvs = [
        ["sh", "-c", f"touch {tmp_path}/{n}; i=0; until {wait_for_all}; do "
         f"i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.1; done; echo {n}; echo e{n} >&2"]
        for n in names
    ]  # fmt: skip
    results = Runner().run_all(argvs)
    assert [(r.returncode, r.stdout, r.stderr) for r in results] == [
        (0, f"{n}\n", f"e{n}\n") for n in names
    ]
    assert Runner().run_all([]) == []


def test_runner_run_all_names_a_missing_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ZfsUnavailable, match="zmake-no-such-command: command not found"):
        Runner().run_all([["sh", "-c", f"touch {marker}"], ["zmake-no-such-command"]])
    assert marker.exists()  # the one that started was waited for
