"""`zmake send` and `zmake umount` against real OpenZFS, through a real ssh."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

from tests.realzfs.support import (
    crawling_ssh,
    execute,
    exists,
    fill,
    partial_receive,
    prop,
    snapshot_guids,
    source_of,
    wait_for_bytes,
    zfs,
)


def make_fs(name: str, mountpoint: str | None = None, *options: str) -> None:
    args = ["create", *options]
    if mountpoint:
        args += ["-o", f"mountpoint={mountpoint}"]
    zfs(*args, name)


def mirror_of(pools, name: str) -> str:
    return pools.mirror(name)


def assert_replicated(pools, dataset: str) -> None:
    source = snapshot_guids(dataset)
    assert source, f"{dataset} has no snapshots"
    assert snapshot_guids(mirror_of(pools, dataset)) == source


def test_full_then_incremental_then_noop(pools, zm, sshd_connections, tmp_path) -> None:
    ds = f"{pools.src}/my data"
    make_fs(ds, f"/tmp/{pools.src}-data")
    for n in range(3):
        fill(ds, 0.3)
        zfs("snapshot", f"{ds}@s{n}")

    first = zm.send(ds)
    assert "full @s0 + incremental @s0..@s2" in first.stdout
    assert_replicated(pools, ds)

    for n in range(3, 5):
        fill(ds, 0.2)
        zfs("snapshot", f"{ds}@s{n}")
    before = sshd_connections()
    second = zm.send(ds)
    assert "incremental @s2..@s4" in second.stdout
    assert sshd_connections() - before == 2  # one query, one stream
    assert_replicated(pools, ds)

    before = sshd_connections()
    third = zm.send(ds)
    assert "up to date (@s4)" in third.stdout
    assert sshd_connections() - before == 1  # the query only
    assert_replicated(pools, ds)
    reports = zm.reports()
    assert [r["result"] for r in reports] == ["sent", "sent", "up to date (@s4)"]
    assert reports[0]["bytes"] > 900_000


def test_children_first_over_placeholders_keeps_children(pools, zm) -> None:
    home = f"{pools.src}/home"
    make_fs(home, f"/tmp/{pools.src}-home")
    for child in ("alice", "bob:2024"):
        make_fs(f"{home}/{child}")
        fill(f"{home}/{child}", 0.2)
    fill(home, 0.1)
    zfs("snapshot", "-r", f"{pools.src}@one")

    for child in ("alice", "bob:2024"):
        zm.send(f"{home}/{child}")
    placeholder = mirror_of(pools, home)
    assert exists(placeholder)
    assert not [snap for snap in snapshot_guids(placeholder) if snap.startswith("home@")]
    result = zm.send(home)
    assert "full over placeholder @one" in result.stdout
    zm.send(pools.src)  # the pool root over the backup pool's root
    for name in (pools.src, home, f"{home}/alice", f"{home}/bob:2024"):
        assert_replicated(pools, name)


def test_mountpoints_local_vs_inherited_and_never_mounted(pools, zm) -> None:
    parent = f"{pools.src}/srv"
    make_fs(parent, f"/tmp/{pools.src}-srv")
    make_fs(f"{parent}/inherits")
    zfs("snapshot", "-r", f"{parent}@m1")
    zm.send(f"{parent}/inherits")
    zm.send(parent)
    backup = mirror_of(pools, parent)
    assert prop(backup, "mountpoint") == f"/tmp/{pools.src}-srv"
    assert source_of(backup, "mountpoint") == "local"
    assert source_of(f"{backup}/inherits", "mountpoint").startswith("inherited from")
    for name in (backup, f"{backup}/inherits"):
        assert prop(name, "mounted") == "no"
        assert prop(name, "canmount") == "noauto"


def test_zvol_with_colon(pools, zm) -> None:
    vol = f"{pools.src}/vm:disk0"
    zfs("create", "-V", "8M", vol)
    execute("udevadm", "settle", check=False)
    zfs("snapshot", f"{vol}@v1")
    zfs("snapshot", f"{vol}@v2")
    zm.send(vol)
    assert_replicated(pools, vol)
    assert prop(mirror_of(pools, vol), "type") == "volume"


def test_encrypted_dataset_is_sent_raw(pools, zm, tmp_path) -> None:
    key = tmp_path / "key"
    key.write_text("correct horse battery staple")
    secret = f"{pools.src}/secret stuff"
    make_fs(
        secret,
        f"/tmp/{pools.src}-secret",
        "-o", "encryption=aes-256-gcm", "-o", "keyformat=passphrase",
        "-o", f"keylocation=file://{key}",
    )  # fmt: skip
    fill(secret, 0.2)
    zfs("snapshot", f"{secret}@e1")
    fill(secret, 0.1)
    zfs("snapshot", f"{secret}@e2")
    zm.send(secret)
    backup = mirror_of(pools, secret)
    assert_replicated(pools, secret)
    assert prop(backup, "encryption") == "aes-256-gcm"
    assert prop(backup, "keystatus") == "unavailable"


def test_refuses_to_mix_raw_and_plain_on_one_target(pools, zm, tmp_path) -> None:
    key = tmp_path / "key"
    key.write_text("correct horse battery staple")
    name = f"{pools.src}/mixed"
    make_fs(name, None, "-o", "encryption=on", "-o", "keyformat=passphrase",
            "-o", f"keylocation=file://{key}")  # fmt: skip
    zfs("snapshot", f"{name}@a")
    zfs("create", "-p", f"{pools.backup}/mixed")  # plain dataset already on the backup
    zfs("snapshot", f"{pools.backup}/mixed@x")
    result = zm.send(name, check=False)
    assert result.returncode == 9
    assert "raw and non-raw" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert exists(f"{pools.backup}/mixed@x")


def test_resume_then_rest_of_range(pools, zm) -> None:
    ds = f"{pools.src}/big one"
    make_fs(ds, f"/tmp/{pools.src}-big")
    fill(ds, 2)
    zfs("snapshot", f"{ds}@r1")
    zm.send(ds)
    fill(ds, 3)
    zfs("snapshot", f"{ds}@r2")
    fill(ds, 0.5)
    zfs("snapshot", f"{ds}@r3")
    partial_receive(f"{ds}@r2", mirror_of(pools, ds), f"{ds}@r1")
    backup = mirror_of(pools, ds)
    token = prop(backup, "receive_resume_token")
    assert token.startswith("1-")

    result = zm.send(ds)
    assert "resume + incremental @r2..@r3" in result.stdout
    assert_replicated(pools, ds)
    resumed = zm.reports()[-1]
    full_increment = int(
        zfs("send", "-nvP", "-L", "-c", "-i", f"{ds}@r1", f"{ds}@r2").split("size\t")[-1]
    )
    # the resumed part did not send again what the interrupted run delivered
    assert resumed["bytes"] < full_increment + 1_000_000


def test_interrupted_full_receive_over_a_placeholder_resumes(pools, zm) -> None:
    """Children first: `home`'s backup starts as the placeholder its child's receive created,
    and `home` itself arrives as a full stream over it (-F). Cut off, ZFS keeps that partial
    state beside the placeholder and resumes it only with -F again."""
    home = f"{pools.src}/home"
    make_fs(home, f"/tmp/{pools.src}-home-resume")
    make_fs(f"{home}/kid")
    fill(f"{home}/kid", 0.2)
    fill(home, 2)
    zfs("snapshot", "-r", f"{home}@p1")
    zm.send(f"{home}/kid")
    partial_receive(f"{home}@p1", mirror_of(pools, home), force=True)
    backup = mirror_of(pools, home)
    assert prop(backup, "receive_resume_token").startswith("1-")
    assert not [snap for snap in snapshot_guids(backup) if snap.startswith("home@")]

    result = zm.send(home)
    assert f"{home}: resume" in result.stdout, result.stdout
    for name in (home, f"{home}/kid"):
        assert_replicated(pools, name)


def test_interrupted_by_sigkill_then_rerun_finishes(pools, zm, ssh_config, tmp_path) -> None:
    ds = f"{pools.src}/slow"
    make_fs(ds, f"/tmp/{pools.src}-slow")
    fill(ds, 4)
    zfs("snapshot", f"{ds}@k1")
    slow = crawling_ssh(tmp_path / "slowssh", f"ssh -F {ssh_config}", "400k")
    argv = ["python3", "-m", "zmake", "send", ds, "--remote", zm.remote, "--ssh", slow,
            "--dest", pools.backup]  # fmt: skip
    proc = subprocess.Popen(argv, env=zm.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    backup = mirror_of(pools, ds)
    wait_for_bytes(slow, 1536 * 1024, proc)  # of the 4 MiB: 4 s at 400 KiB/s
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while prop(backup, "receive_resume_token") in ("-", "") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert prop(backup, "receive_resume_token").startswith("1-")
    result = zm.send(ds)
    assert result.stdout.startswith(f"{ds}: resume")
    assert_replicated(pools, ds)


def test_diverged_backup_is_refused_then_forced(pools, zm) -> None:
    ds = f"{pools.src}/div"
    make_fs(ds)
    zfs("snapshot", f"{ds}@d1")
    zm.send(ds)
    backup = mirror_of(pools, ds)
    zfs("snapshot", f"{backup}@theirs")
    zfs("snapshot", f"{ds}@d2")
    refused = zm.send(ds, check=False)
    assert refused.returncode == 9
    assert "@theirs" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert exists(f"{backup}@theirs")  # nothing destroyed
    forced = zm.send(ds, "--force")
    assert "rolled back" in forced.stdout
    assert_replicated(pools, ds)
    assert not exists(f"{backup}@theirs")


def test_no_common_snapshot_is_refused_even_with_force(pools, zm) -> None:
    ds = f"{pools.src}/nocommon"
    make_fs(ds)
    zfs("snapshot", f"{ds}@a")
    zfs("create", "-p", f"{pools.backup}/nocommon")
    zfs("snapshot", f"{pools.backup}/nocommon@other")
    for extra in ([], ["--force"]):
        refused = zm.send(ds, *extra, check=False)
        assert refused.returncode == 9, refused.stderr
        assert "no common snapshot" in refused.stderr
    assert exists(f"{pools.backup}/nocommon@other")


def test_stale_token_reported_then_aborted_with_force(pools, zm) -> None:
    ds = f"{pools.src}/stale"
    make_fs(ds, f"/tmp/{pools.src}-stale")
    fill(ds, 1.5)
    zfs("snapshot", f"{ds}@t1")
    partial_receive(f"{ds}@t1", mirror_of(pools, ds))
    zfs("destroy", f"{ds}@t1")
    zfs("snapshot", f"{ds}@t2")
    refused = zm.send(ds, check=False)
    assert refused.returncode == 9
    assert "cannot be resumed" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    forced = zm.send(ds, "--force")
    assert "aborted stale partial receive" in forced.stdout
    assert_replicated(pools, ds)


def test_unreachable_remote_and_missing_pool(pools, zm) -> None:
    ds = f"{pools.src}/x"
    make_fs(ds)
    zfs("snapshot", f"{ds}@a")
    unreachable = zm("send", ds, "--remote", "nobody@127.0.0.1", "--ssh",
                     "ssh -p 1 -o BatchMode=yes -o ConnectTimeout=5", "--dest", pools.backup,
                     check=False)  # fmt: skip
    assert unreachable.returncode == 6
    assert unreachable.stderr.startswith("zmake: cannot reach nobody@127.0.0.1")
    assert len(unreachable.stderr.strip().splitlines()) == 1

    missing = zm("send", ds, "--remote", zm.remote, "--ssh", zm.ssh, "--dest", "nosuchpool",
                 check=False)  # fmt: skip
    assert missing.returncode == 7, missing.stderr
    assert "nosuchpool" in missing.stderr
    umount = zm("umount", ds, "--remote", zm.remote, "--ssh", zm.ssh, "--dest",
                "nosuchpool", check=False)  # fmt: skip
    assert umount.returncode == 7


def test_a_host_that_ssh_would_take_for_an_option_is_refused(pools, zm, tmp_path) -> None:
    """Issue 23, hole 8: a `--remote`/`ZMAKE_REMOTE` of `-oProxyCommand=…` reaches ssh as an
    option, and ssh runs the command (the control); zmake refuses it in one line, exit 2, and
    neither ssh nor zfs runs."""
    ds = f"{pools.src}/x"
    make_fs(ds)
    zfs("snapshot", f"{ds}@a")
    planted = tmp_path / "proxy-ran"
    evil = f"-oProxyCommand=touch {planted}"
    control = subprocess.run([*shlex.split(zm.ssh), evil, "true"], capture_output=True,
                             timeout=60)  # fmt: skip
    assert planted.exists(), control.stderr
    planted.unlink()
    before = snapshot_guids(pools.dst)
    for how in (["--remote", evil], []):
        env = {**zm.env(), "ZMAKE_REMOTE": evil} if not how else zm.env()
        done = execute(*zm.argv("send", ds, *how, "--ssh", zm.ssh, "--dest", pools.backup),
                       check=False, env=env)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "[USER@]HOST" in done.stderr
        assert not planted.exists()
    assert snapshot_guids(pools.dst) == before


def test_failing_zfs_send_fails_the_pipeline(pools, zm, tmp_path) -> None:
    ds = f"{pools.src}/fails"
    make_fs(ds)
    zfs("snapshot", f"{ds}@a")
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    real = execute("sh", "-c", "command -v zfs").stdout.strip()
    fake = wrappers / "zfs"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = send ] && [ "$2" != -n ]; then echo "simulated failure" >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    fake.chmod(0o755)
    env = zm.env()
    env["PATH"] = f"{wrappers}:{env['PATH']}"
    done = subprocess.run(
        ["python3", "-m", "zmake", "send", ds, *zm.target_args()],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 8
    assert "zfs send failed" in done.stderr and "simulated failure" in done.stderr
    assert not exists(mirror_of(pools, ds)) or not snapshot_guids(mirror_of(pools, ds))


def test_concurrent_send_of_one_dataset_is_locked(pools, zm, ssh_config, tmp_path) -> None:
    ds = f"{pools.src}/locked"
    make_fs(ds, f"/tmp/{pools.src}-locked")
    fill(ds, 2)
    zfs("snapshot", f"{ds}@l1")
    slow = crawling_ssh(tmp_path / "slowssh", f"ssh -F {ssh_config}", "500k")
    argv = ["python3", "-m", "zmake", "send", ds, "--remote", zm.remote, "--ssh", slow,
            "--dest", pools.backup]  # fmt: skip
    first = subprocess.Popen(argv, env=zm.env(), stdout=subprocess.PIPE, text=True)
    wait_for_bytes(slow, 256 * 1024, first)  # its stream flows: it holds the lock
    second = zm.send(ds, "--no-wait", check=False)
    assert second.returncode == 10 and "lock" in second.stderr
    assert first.wait(timeout=120) == 0
    assert_replicated(pools, ds)


def test_umount_unmounts_only_this_sources_backups(pools, zm) -> None:
    """The backup host's own dataset beside the backups, mounted and busy, is never touched;
    our backups, mounted by hand, are unmounted (children first)."""
    home = f"{pools.src}/home"
    make_fs(home)
    make_fs(f"{home}/kid")
    zfs("snapshot", "-r", f"{pools.src}@u1")
    for name in (f"{home}/kid", home, pools.src):
        zm.send(name)
    own = f"{pools.dst}/own"  # the backup host's, beside the backups
    make_fs(own, f"/tmp/{pools.dst}-own")
    busy = subprocess.Popen(["sleep", "600"], cwd=f"/tmp/{pools.dst}-own")
    try:
        for name in (pools.backup, f"{pools.backup}/home", f"{pools.backup}/home/kid"):
            zfs("set", f"mountpoint=/tmp/{pools.dst}-m/{name.rpartition('/')[2]}", name)
            zfs("mount", name)
        done = zm("umount", pools.src, *zm.target_args())
        assert done.stdout.splitlines() == [
            f"unmounted {pools.backup}/home/kid",
            f"unmounted {pools.backup}/home",
            f"unmounted {pools.backup}",
        ], done.stdout + done.stderr
        assert prop(own, "mounted") == "yes"
        again = zm("umount", pools.src, *zm.target_args())
        assert "none of this source's backups is mounted" in again.stdout
    finally:
        busy.kill()
        busy.wait()
