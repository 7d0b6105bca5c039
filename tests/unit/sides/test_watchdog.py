"""The stall watchdog on real processes: a pipeline that stops moving data is stopped; one
that keeps moving, however slowly above the floor, is left alone."""

from __future__ import annotations

import signal
import sys
import time

from zmake.core.errors import Stalled, TransferFailed
from zmake.sides import watchdog
from zmake.sides.runner import Runner

DRIP = (  # 256 KiB every 0.2 s for 3 s: slow, but far above the floor per window
    "import sys,time\n"
    "for _ in range(15):\n"
    "    sys.stdout.buffer.write(bytes(262144)); sys.stdout.flush(); time.sleep(0.2)\n"
)


def test_a_stage_that_stops_reading_stalls_the_pipeline_and_every_stage_is_stopped() -> None:
    started = time.monotonic()
    stages = [["head", "-c", "100000000", "/dev/zero"], ["cat"], ["sh", "-c", "sleep 60"]]
    result = Runner().pipeline(stages, stall_after=1.0)
    assert result.stalled and not result.ok
    assert time.monotonic() - started < 20  # not the 60 s the last stage would sleep
    assert all(stage.returncode != 0 for stage in result.stages[1:])


def test_a_slow_stream_that_keeps_moving_is_not_stalled() -> None:
    """The control: the same limit on a stream that moves (in bursts, each window above the
    floor) runs to its end."""
    stages = [[sys.executable, "-c", DRIP], ["cat"], ["sh", "-c", "cat > /dev/null"]]
    result = Runner().pipeline(stages, stall_after=1.0)
    assert result.ok and not result.stalled


def test_a_paused_relay_is_stopped() -> None:
    """As a hung peer looks from here: the ssh stage frozen mid-stream (SIGSTOP)."""
    import subprocess

    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    cat.send_signal(signal.SIGSTOP)
    stalled = watchdog.wait_watching([cat], [cat], 0.5)
    assert stalled and cat.returncode is not None  # woken, terminated, reaped


def test_without_a_limit_nothing_is_watched() -> None:
    stages = [["head", "-c", "1000", "/dev/zero"], ["cat"], ["sh", "-c", "sleep 1; cat >/dev/null"]]
    result = Runner().pipeline(stages, stall_after=None)
    assert result.ok and not result.stalled


def test_only_the_relaying_stages_are_watched() -> None:
    stages = [["zfs", "send", "t@s"], ["zstd"], ["ssh", "--", "nas", "zstd -d | zfs recv b"]]
    assert watchdog.relays(stages) == [1, 2]
    assert watchdog.relays([["zfs", "send", "t@s"], ["/sbin/zfs", "recv", "b"]]) == []


def test_a_stall_is_a_transfer_failure_that_says_what_to_do() -> None:
    error = Stalled("tank/my data", 600)
    assert isinstance(error, TransferFailed) and error.exit_code == 8
    assert str(error).startswith("tank/my data: stalled, no data moved for 10m: stopped")
    assert "run again" in str(error)


def test_a_wrapper_scripts_children_count_and_are_stopped_with_it(tmp_path) -> None:
    """An --ssh wrapper (`pv | ssh`, a shell that moves no byte itself): its children's data
    is progress, and when they freeze, the whole family is stopped, not only the shell."""
    wrapper = tmp_path / "wrapper"
    wrapper.write_text("#!/bin/sh\ncat | cat > /dev/null\n")
    wrapper.chmod(0o755)
    flowing = Runner().pipeline([[sys.executable, "-c", DRIP], [str(wrapper)]], stall_after=1.0)
    assert flowing.ok and not flowing.stalled  # the control: the shell alone never moved
    pids = tmp_path / "pids"
    frozen = tmp_path / "frozen"
    frozen.write_text(
        f"#!/bin/sh\ncat | sh -c 'echo $$ > {pids}; kill -STOP $$; exec cat' >/dev/null\n"
    )
    frozen.chmod(0o755)
    started = time.monotonic()
    result = Runner().pipeline([["head", "-c", "100000000", "/dev/zero"], [str(frozen)]],
                               stall_after=1.0)  # fmt: skip
    assert result.stalled and time.monotonic() - started < 20
    inner = int(pids.read_text())
    assert not alive(inner), "the frozen child of the wrapper was left behind"


def alive(pid: int) -> bool:
    """Running or stopped (a zombie waiting for a reaper is gone for this purpose)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True
