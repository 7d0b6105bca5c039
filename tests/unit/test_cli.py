"""The CLI end to end with a fake `zfs` on PATH (unit level: no replication here)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from zmake.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
LIST = (
    "tank\tfilesystem\t1\t1\t300\t100\t0\n"
    "tank/my data\tfilesystem\t2\t5\t200\t200\t0\n"
    "tank/vm:disk0\tvolume\t3\t6\t100\t100\t0\n"
    "tank@s1\tsnapshot\t11\t7\t0\t100\t100\n"
    "tank/my data@s1\tsnapshot\t12\t7\t0\t200\t200\n"
    "tank/vm:disk0@s1\tsnapshot\t13\t7\t0\t100\t100\n"
)
GET = (
    "tank\tmountpoint\t/tank\tdefault\n"
    "tank\tencryption\toff\tdefault\n"
    "tank/my data\tmountpoint\t/data\tlocal\n"
    "tank/my data\tencryption\toff\tdefault\n"
    "tank/vm:disk0\tmountpoint\t-\t-\n"
    "tank/vm:disk0\tencryption\toff\tdefault\n"
)

# What `zfs get` prints for the one dataset `zmake send` reads.
SEND_GET = (
    "tank/my data\ttype\tfilesystem\t-\n"
    "tank/my data\tguid\t2\t-\n"
    "tank/my data\tcreatetxg\t5\t-\n"
    "tank/my data\twritten\t0\t-\n"
    "tank/my data\treferenced\t200\t-\n"
    "tank/my data\tused\t200\t-\n"
    "tank/my data\tmountpoint\t/data\tlocal\n"
    "tank/my data\tencryption\toff\tdefault\n"
    "tank/my data@s1\ttype\tsnapshot\t-\n"
    "tank/my data@s1\tguid\t12\t-\n"
    "tank/my data@s1\tcreatetxg\t7\t-\n"
    "tank/my data@s1\twritten\t200\t-\n"
    "tank/my data@s1\treferenced\t200\t-\n"
    "tank/my data@s1\tused\t0\t-\n"
    "tank/my data@s1\tmountpoint\t-\t-\n"
    "tank/my data@s1\tencryption\toff\tdefault\n"
)


def fake_zfs(
    tmp_path: Path, list_output: str = LIST, fail: str = ""
) -> tuple[dict[str, str], Path]:
    """A PATH with a `zfs` that logs its argv and prints canned -H -p output."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (tmp_path / "list.txt").write_text(list_output)
    (tmp_path / "get.txt").write_text(GET)
    log = tmp_path / "calls.log"
    script = folder / "zfs"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        f'[ -n "{fail}" ] && {{ echo "{fail}" >&2; exit 1; }}\n'
        f'case "$1" in list) cat {tmp_path}/list.txt;; get) cat {tmp_path}/get.txt;; esac\n'
    )
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith(("ZMAKE_", "MAKE"))}
    env["ZMAKE_RUN_DIR"] = str(tmp_path / "run")  # never /run: stamps, locks, sockets
    return env, log


def zmake(
    args: list[str], env: dict[str, str], cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zmake", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


def test_generate_reads_zfs_once_each_whatever_the_dataset_count(tmp_path: Path) -> None:
    many = "".join(f"tank/d{i}\tfilesystem\t{i + 10}\t5\t1\t1\t0\n" for i in range(500))
    env, log = fake_zfs(tmp_path, LIST + many)
    done = zmake(["generate", "tank", "--remote", "nas"], env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert [call.split()[0] for call in calls] == ["list", "get"]
    assert "-H -p" in calls[0] and "-r tank" in calls[0]
    assert done.stdout.count(" send --stamp ") == 503


def test_generate_quotes_names_for_make_and_shell(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    done = zmake(["generate", "tank", "--remote", "nas"], env)
    assert "--stamp '$@' -- 'tank/my data'" in done.stdout
    assert "\nsend/tank/vm+3Adisk0: $(STAMPS)/tank/vm+3Adisk0@13\n" in done.stdout
    makefile = tmp_path / "Makefile"
    makefile.write_text(done.stdout)
    dry = subprocess.run(
        ["make", "-n", "-f", str(makefile)], capture_output=True, text=True, check=True, env=env
    )
    lines = [shlex.split(line)[-5:] for line in dry.stdout.splitlines()]
    stamps = tmp_path / "run" / "stamps" / "nas" / "_0"  # REMOTE=nas, DEST empty
    umount_stamp = re.escape(f"{stamps}/umount@") + "[0-9a-f]{16}"
    assert lines[0][:2] == ["umount", "--stamp"] and re.fullmatch(umount_stamp, lines[0][2])
    assert lines[0][3:] == ["--", "tank"]
    assert lines[1:] == [
        ["send", "--stamp", f"{stamps}/tank/my+20data@12", "--", "tank/my data"],  # larger first
        ["send", "--stamp", f"{stamps}/tank/vm+3Adisk0@13", "--", "tank/vm:disk0"],
        ["send", "--stamp", f"{stamps}/tank@11", "--", "tank"],
    ]
    assert not (tmp_path / "run").exists()  # generate and make -n write nothing there


def test_generate_refuses_a_run_dir_make_cannot_name(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    env["ZMAKE_RUN_DIR"] = str(tmp_path / "my run")
    done = zmake(["generate", "tank", "--remote", "nas"], env)
    assert done.returncode == 2 and done.stdout == ""
    assert "run directory" in done.stderr and "Traceback" not in done.stderr


def test_output_file_is_written_atomically_and_not_on_error(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    target = tmp_path / "Makefile"
    target.write_text("old")
    done = zmake(["generate", "tank", "--remote", "nas", "-o", str(target)], env)
    assert done.returncode == 0 and done.stdout == ""
    assert "' -- 'tank/my data'" in target.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".Makefile")] == []
    failed = zmake(["generate", "nosuch", "--remote", "nas", "-o", str(target)], env)
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
    done = zmake(["generate", "tank", "--remote", "nas"], env)
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
    assert "zfs: command not found" in done.stderr


def test_malformed_zfs_output_names_the_line(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path, "tank\tfilesystem\tnot-a-number\t1\t1\t1\t0\n")
    done = zmake(["generate", "tank", "--remote", "nas"], env)
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
    config.write_text('remote = "from-config"\ncompress = "zstd"\nexclude = ["tank/vm*"]\n')
    done = zmake(["generate", "tank", "-c", str(config), "--remote", "from-cli"], env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^REMOTE = from-cli$", done.stdout, re.MULTILINE)
    assert re.search(r"^COMPRESS = zstd$", done.stdout, re.MULTILINE)
    assert "vm:disk0" not in done.stdout.split("umount --")[1]
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
    (tmp_path / "bin" / "zfs").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        "  list) echo \"cannot open 'backup/my data': dataset does not exist\" >&2; exit 1;;\n"
        f"  get) cat {tmp_path}/get.txt;;\n"
        "  send) printf 'full\\tx\\t4096\\nsize\\t4096\\n';;\n"
        "esac\n"
    )
    (tmp_path / "get.txt").write_text(SEND_GET)
    done = zmake(["send", "tank/my data", "--dest", "backup", "-n", "--compress", "zstd"], env)
    assert done.returncode == 0, done.stderr
    assert "set -o pipefail; zfs send -L -c 'tank/my data@s1' | zfs recv" in done.stdout
    assert "-o mountpoint=/data -d backup" in done.stdout
    assert "zstd" not in done.stdout  # no compression without a network hop
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls == ["get", "list"]  # one read per side; sizes come from the get


def up_to_date_zfs(tmp_path: Path, log: Path, backup_answers: bool = True) -> None:
    """`zfs get` describes tank/my data (newest snapshot guid 12); `zfs list` of the backup
    shows that snapshot received, so `zmake send` has nothing to do (or, if the backup does
    not answer, fails)."""
    listing = f"cat {tmp_path}/remote.txt" if backup_answers else "echo 'no answer' >&2; exit 1"
    (tmp_path / "bin" / "zfs").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        f"  get) cat {tmp_path}/get.txt;;\n"
        f"  list) {listing};;\n"
        "  *) exit 1;;\n"
        "esac\n"
    )
    (tmp_path / "get.txt").write_text(SEND_GET)
    (tmp_path / "remote.txt").write_text(
        "backup/my data\tfilesystem\t900\t5\t200\t0\t-\toff\n"
        "backup/my data@s1\tsnapshot\t12\t6\t200\t200\t-\toff\n"
    )


def test_send_writes_its_stamp_only_when_up_to_date(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    up_to_date_zfs(tmp_path, log)
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
    up_to_date_zfs(tmp_path, log, backup_answers=False)
    failed = zmake(args, env)
    assert failed.returncode == 5, failed.stderr
    assert not stamp.exists()


def test_umount_writes_its_stamp_only_when_done(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    stamp = tmp_path / "stamps" / "_0" / "backup" / "umount@0123456789abcdef"
    args = ["umount", "tank", "--dest", "backup", "--stamp", str(stamp)]
    done = zmake(args, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "backup: nothing mounted\n"
    assert stamp.read_text() == "unmounted\n"
    stamp.unlink()
    (tmp_path / "missing").mkdir()
    missing, _ = fake_zfs(tmp_path / "missing", fail="cannot open 'backup': no such pool")
    refused = zmake(args, missing)
    assert refused.returncode == 7, refused.stderr
    assert not stamp.exists()


def resume_over_placeholder_zfs(tmp_path: Path, log: Path, backup_referenced: int) -> None:
    """The backup's `my data` is a placeholder (no snapshot) holding a resume token of a full
    stream; like ZFS, `zfs recv` refuses to resume that without -F."""
    (tmp_path / "get.txt").write_text(SEND_GET)
    (tmp_path / "bin" / "zfs").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1 $2" in\n'
        f"  get*) cat {tmp_path}/get.txt;;\n"
        "  list*) printf 'backup/my data\\tfilesystem\\t99\\t3\\t"
        f"{backup_referenced}\\t0\\t1-abc\\toff\\n';;\n"
        "  'send -n') printf 'full\\ttank/my data@s1\\t4096\\nsize\\t4096\\n';;\n"
        "  send*) echo stream;;\n"
        "  recv*) cat > /dev/null\n"
        '    case " $* " in *" -F "*) exit 0;; esac\n'
        '    echo "cannot receive resume stream: Resuming recv on existing destination '
        "'backup/my data'\" >&2; exit 1;;\n"
        "esac\n"
    )


def test_a_resume_over_a_placeholder_is_retried_with_force_receive(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    resume_over_placeholder_zfs(tmp_path, log, backup_referenced=1000)
    done = zmake(["send", "tank/my data", "--dest", "backup"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tank/my data: resume, ~4.0 KiB"), done.stdout
    receives = [line for line in log.read_text().splitlines() if line.startswith("recv")]
    assert len(receives) == 2 and "-F" not in receives[0].split() and "-F" in receives[1].split()


def test_a_resume_that_would_replace_real_data_is_refused(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    resume_over_placeholder_zfs(tmp_path, log, backup_referenced=50 * 2**20)
    done = zmake(["send", "tank/my data", "--dest", "backup"], env)
    assert done.returncode == 9, done.stderr
    assert "holds data of its own; --force aborts it" in done.stderr
    assert all("-F" not in line.split() for line in log.read_text().splitlines())


def test_backup_unmounts_once_itself_and_make_skips_the_umount_target(tmp_path: Path) -> None:
    """zmake backup unmounts the backup pool in-process (make's umount target is stamped
    done) before make starts any send; a re-run of the same snapshots does not unmount again."""
    env, log = fake_zfs(tmp_path)
    args = ["backup", "tank", "--dest", "backup", "-j", "2", "--yes"]
    first = zmake(args, env)
    lines = log.read_text().splitlines()
    unmounts = [i for i, line in enumerate(lines) if "-o mounted,name" in line]
    sends = [i for i, line in enumerate(lines) if line.startswith("get") and "-d 1" in line]
    assert len(unmounts) == 1 and sends and unmounts[0] < min(sends), first.stdout + first.stderr
    assert "backup: backup: nothing mounted" in first.stdout
    assert " umount --stamp " not in first.stdout  # make did not run the umount recipe
    stamps = list((tmp_path / "run").glob("backup-tank/stamps/*/umount@*"))
    assert len(stamps) == 1 and stamps[0].read_text() == "unmounted\n"
    log.write_text("")
    zmake(args, env)
    assert "-o mounted,name" not in log.read_text()
