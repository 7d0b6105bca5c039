"""`[USER@]HOST` is checked where it enters (option, ZMAKE_* variable, config key) before any
work, and every ssh argv ends ssh's options with `--` before the host (issue 23, hole 8)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zmake.cli.main import main
from zmake.core.errors import UsageError
from zmake.core.hosts import check_host, problem, ssh_destination
from zmake.settings import resolve
from zmake.sides.runner import Runner
from zmake.sides.side import Side, master_control_argv, ssh_argv, ssh_config_argv

REPO = Path(__file__).resolve().parents[3]
CAPTURE = str(REPO / "sample-pools" / "home.zcap")
BAD = ["-oProxyCommand=x", "a b", "back up", "host\n", "-x", "user@-x", "@host", "a/b",
       "nas\t", "n\x1bas", "user name@nas", "[::1", "[nas]", "[::1]x", "a@b@c", ""]  # fmt: skip
GOOD = ["nas", "zb@nas.example.org", "10.0.0.1", "[::1]", "zb@[fe80::1]", "backup_host",
        "nas.", "zb.backup-1@nas-2", "[fe80::1%eth0]", "[::ffff:10.0.0.1]"]  # fmt: skip
needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh")


@pytest.mark.parametrize("host", [h for h in BAD if h])
def test_bad_hosts_are_refused(host: str) -> None:
    assert problem(host) is not None
    with pytest.raises(UsageError, match=r"^--remote '.*' is not \[USER@\]HOST: [^\n]+$"):
        check_host(host, "--remote")


@pytest.mark.parametrize("host", GOOD)
def test_good_hosts_are_accepted(host: str) -> None:
    assert problem(host) is None
    assert check_host(host, "--remote") == host


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A refusal comes before any process starts (no zfs, no ssh, no make)."""

    def refuse(*_: object, **__: object) -> object:
        raise AssertionError("a process was started before the host was checked")

    for method in ("run_all", "interactive", "pipeline"):
        monkeypatch.setattr(Runner, method, refuse)
    for variable in ("ZMAKE_REMOTE", "ZMAKE_SOURCE", "ZMAKE_CONFIG", "MAKEFLAGS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ZMAKE_RUN_DIR", str(tmp_path / "run"))


COMMANDS = {
    "generate": ["generate", "--from-file", CAPTURE, "--dest", "backup/home"],
    "backup": ["backup", "tank", "--dest", "backup/home", "--snapshot", "--yes"],
    "send": ["send", "tank/home", "--dest", "backup/home"],
}


def refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run zmake's CLI; assert exit 2 with one line on stderr; that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("zmake: "), err
    return err


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("host", [h for h in BAD if h])
def test_every_command_refuses_a_bad_option_host_in_one_line(
    capsys: pytest.CaptureFixture[str], command: str, host: str
) -> None:
    for option in ("--remote", "--source"):
        err = refusal(capsys, [*COMMANDS[command], f"{option}={host}"])
        assert err.startswith(f"zmake: {option} {host!r} is not [USER@]HOST: ")


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("host", ["-oProxyCommand=x", "back up", "user@-x"])
def test_the_variables_a_makefile_exports_are_checked_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str, host: str
) -> None:
    """`make REMOTE=…` reaches `zmake send` as ZMAKE_REMOTE."""
    for variable in ("ZMAKE_REMOTE", "ZMAKE_SOURCE"):
        with monkeypatch.context() as env:
            env.setenv(variable, host)
            err = refusal(capsys, COMMANDS[command])
        assert err.startswith(f"zmake: {variable} {host!r} is not [USER@]HOST: ")


@pytest.mark.usefixtures("no_work")
def test_a_config_files_host_is_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "zmake.toml"
    config.write_text('source = "-oProxyCommand=touch /tmp/pwned"\n')
    err = refusal(capsys, [*COMMANDS["send"], "-c", str(config)])
    assert err.startswith(f"zmake: config {config}: source '-oProxyCommand")
    # The command line overrides the file (a value never used is never checked).
    assert resolve({"source": "nas"}, str(config), {}).source == "nas"


def test_the_checked_value_is_the_one_used_and_named_by_its_layer() -> None:
    with pytest.raises(UsageError, match=r"^ZMAKE_REMOTE 'a b' "):
        resolve({"remote": None}, None, {"ZMAKE_REMOTE": "a b"})
    assert resolve({"remote": "nas"}, None, {"ZMAKE_REMOTE": "a b"}).remote == "nas"
    assert resolve({}, None, {"ZMAKE_REMOTE": ""}).remote is None  # empty: this machine


@pytest.mark.parametrize("host", GOOD)
def test_generate_accepts_good_hosts(capsys: pytest.CaptureFixture[str], host: str) -> None:
    assert main([*COMMANDS["generate"], f"--remote={host}"]) == 0
    assert f"\nREMOTE = {host}\n" in capsys.readouterr().out


def test_a_subprocess_refusal_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zmake", "send", "tank/home", "--dest", "backup/home"],
        env={"PATH": "/usr/bin:/bin", "ZMAKE_REMOTE": "-oProxyCommand=x",
             "ZMAKE_RUN_DIR": str(tmp_path / "run")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "zmake: ZMAKE_REMOTE '-oProxyCommand=x' is not [USER@]HOST: a host never starts with -\n"
    )


# --- `--` before the host in every ssh argv -----------------------------------------------


def ssh_argvs(host: str) -> list[list[str]]:
    side = Side(host, ssh="ssh -F /dev/null -p 2222")
    socket = "/run/zmake/ssh/s0-0123456789ab"
    return [
        ssh_argv("ssh -F /dev/null", host, [["zfs", "list"]]),
        ssh_argv("ssh -F /dev/null", host, [["zfs", "list"]], own_connection=True, socket=socket),
        side.control(["zfs", "list"]),
        *side.stream([["zfs", "send", "tank@s1"], ["zstd"]]),
        master_control_argv("ssh -F /dev/null", host, socket, "exit"),
        ssh_config_argv("ssh -F /dev/null", host),
    ]


@pytest.mark.parametrize("host", ["nas", "zb@nas.example.org", "zb@[fe80::1]"])
def test_every_ssh_argv_ends_the_options_before_the_host(host: str) -> None:
    for argv in ssh_argvs(host):
        index = argv.index(ssh_destination(host))
        assert argv[index - 1] == "--" and argv.count("--") == 1, argv
        assert all(word != host or host == ssh_destination(host) for word in argv)


def test_an_ipv6_host_loses_its_brackets_only_on_sshs_command_line() -> None:
    assert ssh_destination("zb@[fe80::1]") == "zb@fe80::1"
    assert ssh_destination("[::1]") == "::1"
    assert ssh_destination("zb@nas") == "zb@nas"
    assert Side("zb@[fe80::1]").where() == " on zb@[fe80::1]"


def ssh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", *argv], capture_output=True, text=True, timeout=30)


@needs_ssh
def test_openssh_takes_the_double_dash() -> None:
    config = ssh_config_argv("ssh -F /dev/null", "zb@[fe80::1]")
    done = ssh(*config[1:])
    assert done.returncode == 0, done.stderr
    assert "\nuser zb\n" in done.stdout and "\nhostname fe80::1\n" in done.stdout
    # -O exit with no master: ssh reached the socket, so it read `-- host` as the host.
    exit_master = master_control_argv("ssh -F /dev/null", "nas", "/nonexistent/s0", "exit")
    done = ssh(*exit_master[1:])
    assert done.returncode == 255 and "Control socket connect(/nonexistent/s0)" in done.stderr


@needs_ssh
def test_after_the_double_dash_a_hostile_host_is_only_a_bad_name() -> None:
    done = ssh("-F", "/dev/null", "-G", "--", "-oProxyCommand=touch /nonexistent/x")
    assert done.returncode != 0 and "proxycommand" not in done.stdout
    without = ssh("-F", "/dev/null", "-G", "-oProxyCommand=echo x", "nas")  # the hole, shown
    assert "proxycommand echo x" in without.stdout
