"""The CLI end to end with a fake `zfs` on PATH (unit level: no replication here)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.support.fake_zfs import (
    BACKUP_ROW,
    LIST,
    REPO,
    SEND_GET,
    answer,
    fake_zfs,
    zmake,
)
from zmake.cli.main import build_parser
from zmake.core.token import ResumeToken
from zmake.core.token import encode as encode_token


def test_generate_reads_zfs_once_each_whatever_the_dataset_count(tmp_path: Path) -> None:
    many = "".join(f"tank/d{i}\tfilesystem\t{i + 10}\t5\t1\t1\t0\t-\n" for i in range(500))
    env, log = fake_zfs(tmp_path, LIST + many)
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "backup/tank"], env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert [call.split()[0] for call in calls] == ["list", "get"]
    assert "-H -p" in calls[0] and "-r tank" in calls[0]
    recipes = [line for line in done.stdout.splitlines() if " send --stamp " in line]
    sent = [name for line in recipes for name in shlex.split(line.partition(" -- ")[2])]
    datasets = [row.split("\t")[0] for row in (LIST + many).splitlines()]
    assert sorted(sent) == sorted(name for name in datasets if "@" not in name)
    assert len(recipes) < 100  # the 500 small siblings go in batches


def test_generate_quotes_names_for_make_and_shell(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "backup/tank"], env)
    assert "--failures '$(FAILED)' -- 'tank/my data'" in done.stdout
    assert "\nsend/tank/vm+3Adisk0: $(STAMPS)/tank/vm+3Adisk0@13\n" in done.stdout
    makefile = tmp_path / "Makefile"
    makefile.write_text(done.stdout)
    dry = subprocess.run(
        ["make", "-n", "-f", str(makefile)], capture_output=True, text=True, check=True, env=env
    )
    lines = [shlex.split(line) for line in dry.stdout.splitlines()[:-1]]  # not `all`'s report
    # SOURCE empty, REMOTE=nas, DEST=backup/tank
    stamps = tmp_path / "run" / "stamps" / "_0" / "nas" / "backup_ltank"
    umount_stamp = re.escape(f"{stamps}/umount@") + "[0-9a-f]{16}"
    assert lines[0][-3:-1] == ["umount", "--stamp"] and re.fullmatch(umount_stamp, lines[0][-1])
    failed = lines[1][-3]
    assert re.fullmatch(re.escape(f"{stamps}/failed-") + "[0-9a-f]{16}", failed)
    assert [line[-7:] for line in lines[1:]] == [
        ["send", "--stamp", f"{stamps}/tank/my+20data@12", "--failures", failed, "--",
         "tank/my data"],  # larger first
        ["send", "--stamp", f"{stamps}/tank/vm+3Adisk0@13", "--failures", failed, "--",
         "tank/vm:disk0"],
        ["send", "--stamp", f"{stamps}/tank@11", "--failures", failed, "--", "tank"],
    ]  # fmt: skip
    assert not (tmp_path / "run").exists()  # generate and make -n write nothing there


def test_generate_refuses_a_run_dir_make_cannot_name(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    env["ZMAKE_RUN_DIR"] = str(tmp_path / "my run")
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "backup/tank"], env)
    assert done.returncode == 2 and done.stdout == ""
    assert "run directory" in done.stderr and "Traceback" not in done.stderr


def test_output_file_is_written_atomically_and_not_on_error(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    target = tmp_path / "Makefile"
    target.write_text("old")
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "b/t", "-o", str(target)], env)
    assert done.returncode == 0 and done.stdout == ""
    assert "' -- 'tank/my data'" in target.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".Makefile")] == []
    args = ["--remote", "nas", "--dest", "b/t", "-o", str(target)]
    failed = zmake(["generate", "nosuch", *args], env)
    assert failed.returncode == 2 and failed.stdout == ""
    assert "' -- 'tank/my data'" in target.read_text()


@pytest.mark.parametrize(
    ("fail", "code", "message"),
    [
        ("The ZFS modules cannot be auto-loaded.", 4, "ZFS is not usable here"),
        ("cannot open 'tank': dataset does not exist", 5, "cannot open 'tank'"),
    ],
)
def test_zfs_errors_are_one_line_with_exit_codes(
    tmp_path: Path, fail: str, code: int, message: str
) -> None:
    env, _ = fake_zfs(tmp_path, fail=fail)
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "backup/tank"], env)
    assert done.returncode == code
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_zfs_binary_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMAKE_")}
    env["PATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "zmake", "generate", "tank", "--remote", "x"],
        env=env, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 4
    # zmake also looks in the sbin directories a user's PATH may lack: where zfs is installed
    # there but its module is not loaded (this machine), that is what it says.
    assert re.fullmatch(
        r"zmake: (zfs: command not found.*|ZFS is not usable here: .*)\n", done.stderr
    ), done.stderr


def test_malformed_zfs_output_names_the_line(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path, "tank\tfilesystem\tnot-a-number\t1\t1\t1\t0\t-\n")
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "backup/tank"], env)
    assert done.returncode == 3
    assert "not-a-number" in done.stderr


def test_local_receive_into_the_source_pool_is_refused(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    done = zmake(["generate", "tank"], env)
    assert done.returncode == 2
    assert "--dest" in done.stderr


def test_config_file_and_command_line_precedence(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    config = tmp_path / "zmake.toml"
    config.write_text(
        'remote = "from-config"\ncompress = "zstd"\nexclude = ["tank/vm*"]\ndest = "b/t"\n'
    )
    done = zmake(["generate", "tank", "-c", str(config), "--remote", "from-cli"], env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^REMOTE = from-cli$", done.stdout, re.MULTILINE)
    assert re.search(r"^COMPRESS = zstd$", done.stdout, re.MULTILINE)
    assert " -- 'tank/my data'" in done.stdout and " -- tank/vm:disk0" not in done.stdout
    assert '"exclude": ["tank/vm*"]' in done.stdout  # exported for zmake send and umount
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "blue"\n')
    refused = zmake(["generate", "tank", "-c", str(bad)], env)
    assert refused.returncode == 2 and "unknown key 'colour'" in refused.stderr


def test_every_command_has_help_and_an_example() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    choices = subparsers.choices
    assert isinstance(choices, dict) and choices
    for name, sub in choices.items():
        assert isinstance(sub, argparse.ArgumentParser)
        text = sub.format_help()
        assert sub.description, name
        assert "example:" in text and f"zmake {name}" in text, name


def test_send_dry_run_prints_the_pipeline(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    answer(tmp_path, "datasets.txt", BACKUP_ROW.format(name="backup", referenced=1, token="-",
                                                       mark="-"))  # fmt: skip
    done = zmake(["send", "tank/my data", "--dest", "backup", "-n", "--compress", "zstd"], env)
    assert done.returncode == 0, done.stderr
    assert "set -o pipefail; zfs send -L -c 'tank/my data@s1' | zfs recv" in done.stdout
    assert "-o mountpoint=/data -o readonly=on 'backup/my data'" in done.stdout
    assert "zstd" not in done.stdout  # no compression without a network hop
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls == ["get", "list", "list"]  # the dataset, its backup, the backup's parents
    assert "-d 0 backup" in log.read_text().splitlines()[-1]


def up_to_date_zfs(tmp_path: Path, backup_answers: bool = True) -> None:
    """`zfs get` describes tank/my data (newest snapshot guid 12); `zfs list` of the backup
    shows that snapshot received, so `zmake send` has nothing to do (or, if the backup does
    not answer, fails)."""
    answer(tmp_path, "send-get.txt", SEND_GET)
    if not backup_answers:
        (tmp_path / "answers" / "backup.txt").unlink()
        answer(tmp_path, "fail-list", "")
        return
    answer(tmp_path, "backup.txt", UP_TO_DATE)


UP_TO_DATE = (
    BACKUP_ROW.format(name="backup/my data", referenced=200, token="-", mark="-")
    + "backup/my data@s1\tsnapshot\t12\t6\t200\t200\t-\toff\t-\t-\t-\t-\t-\n"
)


def test_send_writes_its_stamp_only_when_up_to_date(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    up_to_date_zfs(tmp_path)
    stamp = tmp_path / "stamps" / "_0" / "backup" / "tank" / "my+20data@12"
    args = ["send", "tank/my data", "--dest", "backup", "--stamp", str(stamp)]
    dry = zmake([*args, "-n"], env)
    assert dry.returncode == 0, dry.stderr
    assert not stamp.parent.exists()  # a dry run stamps nothing
    done = zmake(args, env)
    assert done.returncode == 0, done.stderr
    assert stamp.read_text() == "tank/my data\tup to date (@s1)\n"
    assert [p.name for p in stamp.parent.iterdir()] == [stamp.name]  # no temp file left
    stamp.unlink()
    failing = {**env, "FAKE_FAIL": "cannot open 'backup/my data': permission denied"}
    failed = zmake(args, failing)
    assert failed.returncode == 5, failed.stderr
    assert not stamp.exists()


def test_a_failed_send_under_make_records_why_and_exits_0(tmp_path: Path) -> None:
    """`--failures DIR`: the reason goes to DIR (make's `all` lists it), the report gets a
    failed line, exit 0 so make goes on; the next success removes the reason."""
    env, _ = fake_zfs(tmp_path)
    up_to_date_zfs(tmp_path)
    failures = tmp_path / "stamps" / "failed-0123456789abcdef"
    report = tmp_path / "report.jsonl"
    args = ["send", "tank/my data", "--dest", "backup", "--failures", str(failures)]
    failing = {**env, "FAKE_FAIL": "cannot open 'backup/my data': permission denied",
               "ZMAKE_REPORT": str(report)}  # fmt: skip
    done = zmake(args, failing)
    assert done.returncode == 0, done.stderr
    why = failures / "tank" / "my+20data.failed"
    assert why.read_text() == (
        "tank/my data: zfs get failed (exit 1): cannot open 'backup/my data': permission denied\n"
    )
    assert "zmake: zfs get failed" in done.stderr
    assert "NOT up to date" in done.stdout
    record = json.loads(report.read_text())
    assert (record["result"], record["error"]) == ("failed", why.read_text().split(": ", 1)[1][:-1])
    again = zmake(args, env)
    assert again.returncode == 0 and not why.exists()


def test_umount_unmounts_only_this_sources_backups(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "mounted.txt", "b/t\tyes\nb/t/own\tyes\nb/t/my data\tyes\nb/t/vm\tno\n")
    stamp = tmp_path / "stamps" / "_0" / "backup" / "umount@0123456789abcdef"
    args = ["umount", "tank", "--dest", "b/t", "--stamp", str(stamp)]
    done = zmake(args, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "unmounted b/t/my data\nunmounted b/t\n"  # children first
    unmounts = [line for line in log.read_text().splitlines() if line.startswith("unmount")]
    assert unmounts == ["unmount b/t/my data", "unmount b/t"]  # never b/t/own: not ours
    assert stamp.read_text() == "unmounted\n"
    stamp.unlink()
    answer(tmp_path, "mounted.txt", "")
    assert zmake(args, env).stdout == "b/t: none of this source's backups is mounted\n"
    stamp.unlink()
    (tmp_path / "answers" / "mounted.txt").unlink()  # the receiving pool does not exist
    refused = zmake(["umount", "tank/my data", "--dest", "backup", "--stamp", str(stamp)], env)
    assert refused.returncode == 7, refused.stderr
    assert not stamp.exists()


def resume_over_placeholder_zfs(tmp_path: Path, *, marked: bool) -> None:
    """The backup's `my data` has no snapshot and holds a resume token of a full stream; like
    ZFS, `zfs recv` refuses to resume that without -F. `marked`: zmake made it."""
    answer(tmp_path, "send-get.txt", SEND_GET)
    mark = "backup/my data" if marked else "-"
    row = BACKUP_ROW.format(name="backup/my data", referenced=1000, token=TOKEN, mark=mark)
    answer(tmp_path, "backup.txt", row)
    answer(
        tmp_path,
        "recv-error",
        "cannot receive resume stream: Resuming recv on existing destination 'backup/my data'\n",
    )


# A token of a full stream of snapshot guid 12 (tank/my data@s1's), as zfs writes one.
TOKEN = encode_token(ResumeToken(toguid=12, toname="tank/my data@s1"))


def test_a_resume_over_a_placeholder_is_retried_with_force_receive(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    resume_over_placeholder_zfs(tmp_path, marked=True)
    done = zmake(["send", "tank/my data", "--dest", "backup"], {
        **env, "FAKE_COMPLETES": "tank/my data@s1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tank/my data: resume, ~4.0 KiB"), done.stdout
    receives = [line for line in log.read_text().splitlines() if line.startswith("recv")]
    assert len(receives) == 2 and "-F" not in receives[0].split() and "-F" in receives[1].split()


def test_a_resume_that_would_replace_a_dataset_zmake_did_not_make_is_refused(
    tmp_path: Path,
) -> None:
    env, log = fake_zfs(tmp_path)
    resume_over_placeholder_zfs(tmp_path, marked=False)
    done = zmake(["send", "tank/my data", "--dest", "backup"], env)
    assert done.returncode == 9, done.stderr
    assert "which zmake did not create; --force aborts it" in done.stderr
    assert all("-F" not in line.split() for line in log.read_text().splitlines())


def test_backup_unmounts_once_itself_and_make_skips_the_umount_target(tmp_path: Path) -> None:
    """zmake backup unmounts the backup pool in-process (make's umount target is stamped
    done) before make starts any send; a re-run of the same snapshots does not unmount again."""
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    args = ["backup", "tank", "--dest", "backup/tank", "-j", "2", "--yes"]
    first = zmake(args, env)
    lines = log.read_text().splitlines()
    unmounts = [i for i, line in enumerate(lines) if "-o name,mounted" in line]
    sends = [i for i, line in enumerate(lines) if line.startswith("get") and "-d 1" in line]
    assert len(unmounts) == 1 and sends and unmounts[0] < min(sends), first.stdout + first.stderr
    assert "backup: backup/tank: none of this source's backups is mounted" in first.stdout
    assert " umount --stamp " not in first.stdout  # make did not run the umount recipe
    stamps = list((tmp_path / "run").glob("backup-*/stamps/umount@*"))
    assert len(stamps) == 1 and stamps[0].read_text() == "unmounted\n"
    log.write_text("")
    zmake(args, env)
    assert "-o name,mounted" not in log.read_text()


def test_a_kept_makefile_remakes_itself_when_the_pools_change(tmp_path: Path) -> None:
    """The Makefile is a target of its own: `make` regenerates it from the recorded command
    (and ZMAKE_* environment) when the pools changed, and leaves it alone otherwise."""
    env, log = fake_zfs(tmp_path)
    makefile = tmp_path / "Makefile"
    env["ZMAKE_COMPRESS"] = "zstd"  # recorded: the remade Makefile keeps it
    done = zmake(["generate", "tank", "--remote", "nas", "--dest", "b/t", "-o", str(makefile)],
                 env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = makefile.read_text()
    assert "# zmake-generate: {" in text
    old = os.stat(makefile).st_mtime_ns - 10**9
    os.utime(makefile, ns=(old, old))
    run = {k: v for k, v in env.items() if k != "ZMAKE_COMPRESS"}
    dry = subprocess.run(["make", "-n", "-f", str(makefile), "REMOTE=elsewhere"], env=run,
                         capture_output=True, text=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert os.stat(makefile).st_mtime_ns == old  # unchanged pools: not rewritten
    assert "ZMAKE_COMPRESS" not in run
    # a new snapshot and a new dataset
    answer(tmp_path, "list.txt", LIST + "tank/new\tfilesystem\t4\t9\t1\t1\t0\t-\n"
           "tank/my data@s2\tsnapshot\t42\t9\t0\t200\t5\t-\n")  # fmt: skip
    dry = subprocess.run(["make", "-n", "-f", str(makefile), "REMOTE=elsewhere"], env=run,
                         capture_output=True, text=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    remade = makefile.read_text()
    assert remade != text and "/tank/my+20data@42" in dry.stdout and "-- tank/new" in dry.stdout
    assert "\nCOMPRESS = zstd\n" in remade and "\nREMOTE = nas\n" in remade  # as generated
    assert dry.stdout.count(" send --stamp ") == 4
    broken = tmp_path / "not-ours.mk"
    broken.write_text("all:\n")
    refused = zmake(["generate", "--update", str(broken)], env)
    assert refused.returncode == 2 and "not a Makefile zmake can update" in refused.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["list", "get"] * 3  # each time, two calls


@pytest.mark.parametrize("force", [False, True])
def test_a_stale_token_is_aborted_only_with_force(tmp_path: Path, force: bool) -> None:
    """The token's snapshot (guid 99) is gone from the source: refused, or with --force
    aborted (zfs recv -A) and sent afresh."""
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    stale = encode_token(ResumeToken(toguid=99, toname="tank/my data@gone"))
    answer(
        tmp_path,
        "backup.txt",
        BACKUP_ROW.format(name="backup/my data", referenced=1, token=stale, mark="-"),
    )
    answer(
        tmp_path,
        "datasets.txt",
        BACKUP_ROW.format(name="backup", referenced=1, token="-", mark="-"),
    )
    answer(tmp_path, "received.txt", UP_TO_DATE)  # what a receive leaves
    done = zmake(["send", "tank/my data", "--dest", "backup", *(["--force"] if force else [])],
                 env)  # fmt: skip
    aborts = [line for line in log.read_text().splitlines() if line.startswith("recv -A")]
    if force:
        assert done.returncode == 0, done.stderr
        assert aborts == ["recv -A backup/my data"]
        assert done.stdout.startswith("tank/my data: aborted stale partial receive + full @s1")
    else:
        assert done.returncode == 9 and "no longer has" in done.stderr and aborts == []


def test_a_token_whose_check_fails_for_another_reason_is_never_aborted(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "send-get.txt", SEND_GET)
    token = encode_token(ResumeToken(toguid=12, toname="tank/my data@s1"))
    answer(
        tmp_path,
        "backup.txt",
        BACKUP_ROW.format(name="backup/my data", referenced=1, token=token, mark="-"),
    )
    env["FAKE_ESTIMATE_ERROR"] = "internal error: Interrupted"  # the dry run itself fails
    done = zmake(["send", "tank/my data", "--dest", "backup", "--force"], env)
    assert done.returncode == 8, done.stderr
    assert "cannot check the resume token (internal error: Interrupted)" in done.stderr
    assert not [line for line in log.read_text().splitlines() if line.startswith("recv")]


def test_a_directory_target_makefile_exports_it_and_keys_its_stamps(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    done = zmake(["generate", "tank", "--to-dir", "/mnt/usb disk/zmake", "--full-every", "7",
                  "--recovery", "5%"], env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "TO_DIR = /mnt/usb disk/zmake\n" in text and "export ZMAKE_TO_DIR = $(TO_DIR)" in text
    assert "FULL_EVERY = 7\n" in text and "RECOVERY = 5\n" in text
    assert "/$(call zmake_safe,$(TO_DIR))" in text
    both = zmake(["generate", "tank", "--to-dir", "/x", "--dest", "backup/t"], env)
    assert both.returncode == 2 and "not both" in both.stderr
