"""contrib/: the example config loads through zmake's own loader (every key, the commented ones
too), and the systemd units say what they must: the service runs `zmake backup` with that
config, writes only into its state directory, and keeps /dev/zfs reachable; the timer runs it
nightly, catching up a missed night. `systemd-analyze verify` too, where it is installed."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from zmake.cli.arguments import setting_layer
from zmake.cli.main import build_parser
from zmake.core.retention import parse_retention
from zmake.settings import load_config, resolve

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
EXAMPLE = CONTRIB / "zmake.toml.example"
SERVICE = CONTRIB / "systemd" / "zmake-backup.service"
TIMER = CONTRIB / "systemd" / "zmake-backup.timer"
CONFIG_PATH = "/etc/zmake/zmake.toml"
STATE = "/var/lib/zmake"
# `# key = value`: an option shown at its default, to be set by removing the `# `
COMMENTED_SETTING = re.compile(r"^# ([a-z][a-z-]*) = (.+)$", re.MULTILINE)


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(path.read_text(), str(path))
    return parser


def service_argv() -> list[str]:
    return shlex.split(unit(SERVICE)["Service"]["ExecStart"])


def service_environment() -> dict[str, str]:
    words = shlex.split(unit(SERVICE)["Service"].get("Environment", ""))
    return dict(word.split("=", 1) for word in words)


def test_the_example_config_loads() -> None:
    data = load_config(str(EXAMPLE))
    assert data["pools"] == ["tank"] and data["dest"] == "backup/laptop"
    assert data["run_dir"] == STATE


def test_every_commented_setting_loads_once_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    shown = {key for key, _ in COMMENTED_SETTING.findall(text)}
    assert shown == {  # the control: the pattern finds them all
        "exclude", "source", "ssh", "compress", "readonly", "to-dir", "full-every", "recovery",
        "keep",
    }  # fmt: skip
    uncommented = tmp_path / "all.toml"
    uncommented.write_text(COMMENTED_SETTING.sub(r"\1 = \2", text))
    data = load_config(str(uncommented))
    assert {key.replace("-", "_") for key in shown} <= set(data)


def test_the_service_command_with_the_example_config_is_a_backup_run() -> None:
    """The unit's command line, parsed by zmake's own parser, with its environment over the
    example config: a push of tank to nas's backup/laptop, pruning by each side's policy."""
    argv = service_argv()
    args = build_parser().parse_args(argv[1:])
    assert args.command == "backup" and args.yes and args.config == CONFIG_PATH
    settings = resolve(setting_layer(args), str(EXAMPLE), env=service_environment())
    assert settings.pools == ("tank",)
    assert (settings.remote, settings.dest) == ("zbackup@nas.example.org", "backup/laptop")
    assert settings.snapshot and settings.prune
    assert settings.keep_source is not None and settings.keep_backup is not None
    parse_retention(settings.keep_source, "keep-source")
    parse_retention(settings.keep_backup, "keep-backup")
    assert str(settings.run_dir) == STATE


def test_the_service() -> None:
    service = unit(SERVICE)["Service"]
    assert service["Type"] == "oneshot"
    assert service_argv()[0] == "/usr/local/bin/zmake"
    assert service["Nice"] == "10" and service["IOSchedulingClass"] == "idle"
    # the one writable place is zmake's run directory, the same in the unit and the example
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "zmake"
    assert service["WorkingDirectory"] == STATE
    assert service_environment()["ZMAKE_RUN_DIR"] == STATE
    # zfs needs /dev/zfs: nothing that closes the devices
    closing = {"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"}
    assert closing.isdisjoint(service)


def test_the_timer() -> None:
    timer = unit(TIMER)
    assert timer["Timer"]["OnCalendar"] == "*-*-* 01:15:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"]
    assert timer["Timer"].get("Unit", SERVICE.name) == SERVICE.name
    assert timer["Install"]["WantedBy"] == "timers.target"


SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not (SYSTEM_UNITS / "sysinit.target").exists(),
    reason="no systemd-analyze, or no system units to verify against",
)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """In a root of its own, where /usr/local/bin/zmake exists: verify checks the command is
    executable. It exits 0 even on an unknown key, so its output must be empty too."""
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    binary = root / "usr/local/bin/zmake"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for path in (SERVICE, TIMER):
        shutil.copy(path, units / path.name)
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no",
         units / SERVICE.name, units / TIMER.name],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_fleet_example_loads_as_a_fleet() -> None:
    from zmake.fleet import fleet_of

    fleet = fleet_of(str(CONTRIB / "fleet.toml.example"), {}, env={})
    assert [(s.name, s.push) for s in fleet] == [
        ("laptop", False), ("nas1", False), ("phone-box", True)
    ]  # fmt: skip
    laptop, nas1, _ = fleet
    assert laptop.settings.host_streams == 2 and nas1.settings.host_streams == 4
    assert nas1.roots == ("tank", "fast/vm") and laptop.roots == ("rpool",)
    for source in fleet:  # every policy parses
        parse_retention(source.settings.keep_source or "")
        parse_retention(source.settings.keep_backup or "")
