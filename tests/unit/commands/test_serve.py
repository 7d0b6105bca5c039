"""serve's receive pipeline on the host, with a fake `zfs` on PATH that keeps what it is given:
the stream's head is read by serve and handed on, the rest copied by cat — every byte arrives,
in order, compressed or not; a stream that fails its head never starts `zfs recv`. (The real-ZFS
tier runs the same through sshd and real streams.)"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.support.fake_zfs import install, on_path
from tests.unit.support.streams import NVLIST, begin, compound
from zmake.guard.stream import PACKAGE_REFUSED
from zmake.sides import zfs_argv
from zmake.sides.side import ssh_argv

ROOT = "backup/lap top:1"


def serve(tmp_path: Path, stages: list[list[str]], stream: bytes) -> tuple[int, str, Path]:
    received = tmp_path / "received"
    install(tmp_path / "bin")
    env = {**os.environ, "PATH": on_path(tmp_path / "bin"), "FAKE_RECEIVED": str(received),
           "SSH_ORIGINAL_COMMAND": ssh_argv("ssh", "host", stages)[-1]}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "zmake", "serve", "--receive-into", ROOT],
                          input=stream, capture_output=True, env=env, timeout=60)  # fmt: skip
    return done.returncode, done.stderr.decode(), received


RECV = zfs_argv.receive_argv(f"{ROOT}/a")
BODY = os.urandom(300_000)


@pytest.mark.parametrize("stream", [begin() + BODY, begin(fromguid=7) + BODY, begin()])
def test_every_byte_arrives_in_order(tmp_path: Path, stream: bytes) -> None:
    code, stderr, received = serve(tmp_path, [RECV], stream)
    assert code == 0, stderr
    assert received.read_bytes() == stream


def test_through_the_decompressor_too(tmp_path: Path) -> None:
    stream = begin() + BODY
    gunzip = zfs_argv.COMPRESSORS["gzip"][1]
    code, stderr, received = serve(tmp_path, [gunzip, RECV], gzip.compress(stream))
    assert code == 0, stderr
    assert received.read_bytes() == stream


@pytest.mark.parametrize(
    "stream, why",
    [
        (compound(begin(), NVLIST) + BODY, PACKAGE_REFUSED),  # send -p, -R
        (compound(begin(fromguid=7)) + BODY, PACKAGE_REFUSED),  # send -I: pool send falls back
        (begin(objset=3) + BODY, "volume stream into a receive for a filesystem"),
        (b"not a stream at all" * 20, "not a zfs send stream"),
    ],
)
def test_a_stream_that_fails_its_head_never_reaches_zfs_recv(
    tmp_path: Path, stream: bytes, why: str
) -> None:
    code, stderr, received = serve(tmp_path, [RECV], stream)
    assert code == 9 and stderr.startswith("zmake serve: refused: the stream:"), stderr
    assert why in stderr
    assert not received.exists()


def test_a_refusal_is_one_line_whatever_the_client_named(tmp_path: Path) -> None:
    """A token's name may hold any byte; serve's refusal prints it escaped, on one line."""
    from zmake.core.token import ResumeToken, encode

    token = encode(ResumeToken(7, "tank/x\n@evil\x1b[2J", 0))
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": f"zfs send -t {token}"}
    done = subprocess.run([sys.executable, "-m", "zmake", "serve", "--send-from", "tank/a"],
                          capture_output=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 9
    assert done.stderr.decode().count("\n") == 1 and "\\x0a" in done.stderr.decode()
    assert "\x1b" not in done.stderr.decode()
