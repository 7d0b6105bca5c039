"""The one fake `zfs` of the unit tier (a program put first on PATH), and the fake `ssh` and
compressors that stand beside it. Never proof that replication works: the real-ZFS tier is.

What it does, by the environment the test sets:
- FAKE_LOG: every call is appended, as its words joined by spaces, or, with
  FAKE_LOG_FORMAT=json, as a JSON record (prog, side, argv, and a receive's stdin);
- FAKE_FAIL: every call fails with this message;
- FAKE_RECEIVED: a receiving host for serve: `zfs recv` keeps its stdin in this file, and
  every other call fails (fail closed);
- FAKE_DIR: each kind of read zmake makes is answered from a file of the test's (absent:
  "dataset does not exist", as zfs says); a receive consumes its stream; a dry-run send
  (`send -n`) says FAKE_COMPLETES is sent, or fails with FAKE_ESTIMATE_ERROR;
- otherwise each call prints its argv as JSON (a send: `STREAM <argv>`, FAKE_SEND_EXIT)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PYTHON = f"#!{sys.executable} -SI\n"
ZFS = (
    PYTHON
    + r"""import fnmatch, json, os, shutil, sys
argv = sys.argv[1:]
line = " ".join(argv)
side = os.environ.get("FAKE_SIDE", "local")
env = os.environ.get
stdin = None
if argv[:1] == ["recv"] and env("FAKE_LOG_FORMAT") == "json":
    stdin = sys.stdin.read()
if env("FAKE_LOG"):
    with open(env("FAKE_LOG"), "a", encoding="utf-8") as log:
        if env("FAKE_LOG_FORMAT") == "json":
            record = {"prog": "zfs", "side": side, "argv": argv}
            if stdin is not None:
                record["stdin"] = stdin
            log.write(json.dumps(record) + "\n")
        else:
            log.write(line + "\n")
if env("FAKE_FAIL"):
    sys.exit(env("FAKE_FAIL"))
if env("FAKE_RECEIVED"):
    if argv[:1] != ["recv"]:
        sys.exit(1)
    with open(env("FAKE_RECEIVED"), "wb") as kept:
        shutil.copyfileobj(sys.stdin.buffer, kept)
    sys.exit(0)
if env("FAKE_DIR"):
    folder = env("FAKE_DIR")
    def answer(name):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            sys.exit(f"cannot open '{argv[-1]}': dataset does not exist")
        with open(path, encoding="utf-8") as found:
            sys.stdout.write(found.read())
    READS = [
        ("*-o name,type,guid,createtxg,used,referenced,written,creation *", "list.txt"),
        ("get -H -p -o name,property,value,source -t filesystem,volume -r *", "get.txt"),
        ("get *-d 1 *", "send-get.txt"),
        ("list -H -o name -t filesystem,volume -r *", "names.txt"),
        ("list -H -o name,mounted *", "mounted.txt"),
        ("list *-d 0 *", "datasets.txt"),
        ("list *-d 1 *", "backup.txt"),
        ("list *-r *", "tree.txt"),
    ]
    for pattern, name in READS:
        if fnmatch.fnmatchcase(line, pattern):
            answer(name)
            sys.exit(0)
    if line.startswith("send -n ") and env("FAKE_ESTIMATE_ERROR"):
        sys.exit(env("FAKE_ESTIMATE_ERROR"))
    elif line.startswith("send -n "):
        sys.stdout.write(f"full\t{env('FAKE_COMPLETES', '')}\t4096\nsize\t4096\n")
    elif line.startswith("send "):
        print("stream")
    elif line.startswith("recv -A "):
        if os.path.exists(os.path.join(folder, "backup.txt")):
            os.remove(os.path.join(folder, "backup.txt"))
    elif line.startswith("recv "):
        sys.stdin.buffer.read()
        error = os.path.join(folder, "recv-error")
        if "-F" not in argv and os.path.exists(error):
            with open(error, encoding="utf-8") as text:
                sys.exit(text.read().rstrip("\n"))
        received = os.path.join(folder, "received.txt")
        if os.path.exists(received):
            shutil.copyfile(received, os.path.join(folder, "backup.txt"))
    sys.exit(0)
if argv[:1] == ["send"]:
    sys.stdout.write("STREAM " + json.dumps(argv) + "\n")
    sys.exit(int(env("FAKE_SEND_EXIT", "0")))
elif argv[:1] == ["recv"]:
    pass
elif argv[:1] == ["list"] and "FAKE_POOL_MISSING" in os.environ:
    sys.exit(f"cannot open '{argv[-1]}': dataset does not exist")
elif argv[:1] == ["list"] and "mounted,name" in argv:
    sys.stdout.write(env("FAKE_MOUNTED", ""))
else:
    sys.stdout.write(json.dumps(argv) + "\n")
"""
)
# "Compresses" by wrapping the stream in markers that name the side it ran on; the
# decompressor checks and removes them, and says where each half ran.
COMPRESSOR = (
    PYTHON
    + r"""import os, re, sys
side = os.environ.get("FAKE_SIDE", "local")
data = sys.stdin.read()
name = os.path.basename(sys.argv[0])
if "-d" in sys.argv[1:]:
    found = re.fullmatch(rf"<{name} on (\w+)>(.*)</{name}>", data, re.DOTALL)
    if not found:
        sys.exit(f"fake {name}: not a fake {name} stream: {data!r}")
    sys.stdout.write(f"[{name}: {found[1]} -> {side}]" + found[2])
else:
    sys.stdout.write(f"<{name} on {side}>" + data + f"</{name}>")
"""
)
# Like ssh: options (with their arguments) skipped up to `--`, then the host, then the words
# joined by single spaces and run by the remote user's shell.
SSH = (
    PYTHON
    + r"""import json, os, sys
WITH_ARGUMENT = set("BbcDEeFIiJLlmOopQRSWw")
args = sys.argv[1:]
options = []
while args and args[0].startswith("-") and len(args[0]) > 1:
    flag = args.pop(0)
    if flag == "--":
        break
    options.append(flag)
    if flag[-1] in WITH_ARGUMENT and len(flag) == 2:
        options.append(args.pop(0))
host, words = args[0], args[1:]
if "FAKE_LOG" in os.environ:
    with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as f:
        record = {"prog": "ssh", "options": options, "host": host, "words": words}
        f.write(json.dumps(record) + "\n")
os.environ["FAKE_SIDE"] = host.rpartition("@")[2]
os.execvp("sh", ["sh", "-c", " ".join(words)])
"""
)


def install(folder: Path, name: str = "zfs", text: str = ZFS) -> Path:
    """Write a fake program into `folder` (to be put first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def on_path(folder: Path) -> str:
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"


REPO = Path(__file__).resolve().parents[3]
# A source pool as `zfs list`/`zfs get` print it for generate: names with a space and a `:`.
LIST = (
    "tank\tfilesystem\t1\t1\t300\t100\t0\t1780000000\n"
    "tank/my data\tfilesystem\t2\t5\t200\t200\t0\t1780000000\n"
    "tank/vm:disk0\tvolume\t3\t6\t100\t100\t0\t1780000000\n"
    "tank@s1\tsnapshot\t11\t7\t0\t100\t100\t1780000000\n"
    "tank/my data@s1\tsnapshot\t12\t7\t0\t200\t200\t1780000000\n"
    "tank/vm:disk0@s1\tsnapshot\t13\t7\t0\t100\t100\t1780000000\n"
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
    "tank/my data\tcreation\t1780000000\t-\n"
    "tank/my data\tmountpoint\t/data\tlocal\n"
    "tank/my data\tencryption\toff\tdefault\n"
    "tank/my data@s1\ttype\tsnapshot\t-\n"
    "tank/my data@s1\tguid\t12\t-\n"
    "tank/my data@s1\tcreatetxg\t7\t-\n"
    "tank/my data@s1\twritten\t200\t-\n"
    "tank/my data@s1\treferenced\t200\t-\n"
    "tank/my data@s1\tused\t0\t-\n"
    "tank/my data@s1\tcreation\t1780000420\t-\n"
    "tank/my data@s1\tmountpoint\t-\t-\n"
    "tank/my data@s1\tencryption\toff\tdefault\n"
)
BACKUP_ROW = "{name}\tfilesystem\t900\t5\t{referenced}\t0\t{token}\toff\t-\t{mark}\tno\ton\t-\n"


def fake_zfs(
    tmp_path: Path, list_output: str = LIST, fail: str = ""
) -> tuple[dict[str, str], Path]:
    """An environment whose PATH has the fake `zfs` answering generate's list and get from
    LIST/GET and, where a test writes them (`answer`), the other reads; and its call log."""
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "list.txt").write_text(list_output)
    (answers / "get.txt").write_text(GET)
    names = [line.split("\t")[0] for line in list_output.splitlines()]
    (answers / "names.txt").write_text("".join(n + "\n" for n in names if "@" not in n))
    (answers / "mounted.txt").write_text("")
    log = tmp_path / "calls.log"
    folder = tmp_path / "bin"
    install(folder)
    env = {**os.environ, "PATH": on_path(folder)}
    env = {k: v for k, v in env.items() if not k.startswith(("ZMAKE_", "MAKE", "FAKE_"))}
    env["ZMAKE_RUN_DIR"] = str(tmp_path / "run")  # never /run: stamps, locks, sockets
    env.update(FAKE_LOG=str(log), FAKE_DIR=str(answers), FAKE_FAIL=fail)
    return env, log


def answer(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "answers" / name).write_text(text)


def zmake(
    args: list[str], env: dict[str, str], cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zmake", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
