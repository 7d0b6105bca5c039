"""Every bad input: one line on stderr, the documented exit code, no traceback, and nothing
done (no zfs or ssh call). Each case was seen to end in a traceback, be accepted, or exit
with the wrong code before the edge validated it (issue 27)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from tests.unit.support.fake_zfs import SSH, install, on_path, zmake
from zmake.cli.main import USAGE_EXITS, build_parser

SAMPLE = str(Path(__file__).resolve().parents[3] / "sample-pools" / "home.zcap")
GEN = ["generate", "--from-file", SAMPLE]
RANDOM = "@random"  # replaced by a file of random bytes
CONFIG = "@config"  # replaced by the case's config file

CASES = [  # (argv, config text, exit code, what stderr says)
    (["generate", "--from-file", RANDOM, "--dest", "b/x"], None, 3, "not a zmake capture"),
    ([*GEN, "--dest", "b/x", "-o", "/nonexistent/x.mk"], None, 2, "no directory"),
    ([*GEN, "--dest", "b/x", "-o", "/sys/x.mk"], None, 2, "cannot write into /sys"),
    ([*GEN, "--dest", "b/x", "-o", "/tmp"], None, 2, "is a directory"),
    ([*GEN, "--dest", "b/x", "-c", CONFIG], "exclude = [1, 2]", 2, "exclude must be a list"),
    ([*GEN, "--dest", "b/x", "-c", CONFIG], "jobs = true", 2, "jobs must be a whole number"),
    ([*GEN, "--dest", "b/x", "-c", CONFIG], "keep = 0", 2, "keep must be a whole number"),
    ([*GEN, "--dest", "b/x", "-c", CONFIG], "bogus = 1", 2, "unknown key 'bogus'"),
    ([*GEN, "--dest", "b/x", "-c", CONFIG], "remote = [", 2, "not TOML"),
    ([*GEN, "--dest", "b/x", "-c", "/nonexistent.toml"], None, 2, "No such file"),
    ([*GEN, "--dest", "a//b"], None, 2, "--dest 'a//b' is not a dataset name"),
    ([*GEN, "--dest", "backup/x@snap"], None, 2, "not a snapshot"),
    ([*GEN, "--dest", "backup/x#b"], None, 2, "bookmark"),
    ([*GEN, "--dest=-x"], None, 2, "must start with a letter"),
    ([*GEN, "--dest", "b/x", "--remote", "back up"], None, 2, "is not [USER@]HOST"),
    ([*GEN, "--dest", "b/x", "--ssh", "ssh -o 'Foo"], None, 2, "does not split"),
    ([*GEN, "--dest", "b/x", "--ssh", ""], None, 2, "--ssh is empty"),
    ([*GEN, "--dest", "b/x", "--ssh", "-p 22"], None, 2, "starts with an option"),
    ([*GEN, "--dest", "b/x", "--compress", "rar"], None, 2, "invalid choice: 'rar'"),
    ([*GEN, "--dest", "b/x", "--full-every", "0"], None, 2, "--full-every: '0': at least 1"),
    (["backup", "tank", "--dest", "b/x", "-j", "0"], None, 2, "-j/--jobs: '0': at least 1"),
    (["backup", "tank", "--dest", "b/x", "-j", "-1"], None, 2, "'-1': at least 1"),
    (["backup", "tank", "--dest", "b/x", "-j", "many"], None, 2, "not a whole number"),
    (["prune", "tank", "--dest", "b/x", "--keep", "0"], None, 2, "--keep: '0': at least 1"),
    (
        ["prune", "tank", "--dest", "b/x", "--keep", "3", "--keep-source", "daily=3"],
        None,
        2,
        "give --keep-source or --keep, not both",
    ),
    (["prune", "tank", "--dest", "b/x", "--keep-source", "daily=x"], None, 2, "keep-source"),
    (["check", "--dest", "b/x", "--warn", "2h", "--crit", "1h"], None, 3, "must be longer"),
    (["check", "--dest", "b/x", "--warn", "soon"], None, 3, "--warn: not an age"),
    (["check", "--bogus"], None, 3, "unrecognized arguments: --bogus"),
    (["check", "--at", "noon"], None, 3, "invalid float value"),
    (["snapshot"], None, 2, "say which pools"),
    (["prune", "--keep", "3", "--dest", "b/x"], None, 2, "say which pools"),
    (["backup", "--dest", "b/x"], None, 2, "say which pools"),
    (["snapshot", "tank", "--dest", "b/x"], None, 2, "unrecognized arguments: --dest"),
    (["snapshot", "tank", "--to-dir", "/x"], None, 2, "unrecognized arguments: --to-dir"),
    (["snapshot", "tank", "--name", "a@%Y"], None, 2, "invalid snapshot name"),
    (["status", "tank", "--compress", "zstd"], None, 2, "unrecognized arguments"),
    (["allow", "--role", "receive", "--user", "zb", "tank"], None, 2, "that is a pool"),
    (["allow", "--role", "receive", "--user", "bad user", "b/x"], None, 2, "not a user name"),
    (["allow", "--role", "receive", "--user", "zb", "backup//x"], None, 2, "empty component"),
    (["allow", "--role", "receive", "--user", "zb", "b/x", "--target", "a b"], None, 2, "1-32"),
    (["serve", "--receive-into", "b@x"], None, 2, "not a dataset name"),
    (["send", "tank/x", "--dest", "b/x", "--slots", "-3"], None, 2, "'-3': at least 0"),
    (["backup", "tank", "--dest", "b/x", "--dry"], None, 2, "unrecognized arguments: --dry"),
    (["frobnicate"], None, 2, "invalid choice: 'frobnicate'"),
    ([], None, 2, "the following arguments are required: COMMAND"),
]


@pytest.fixture
def quiet_zfs(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Fake zfs and ssh that log every call: a bad input must cause none."""
    log = tmp_path / "calls.log"
    folder = tmp_path / "bin"
    install(folder)
    install(folder, "ssh", SSH)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZMAKE_", "MAKE", "FAKE_"))}
    env.update(PATH=on_path(folder), ZMAKE_RUN_DIR=str(tmp_path / "run"), FAKE_LOG=str(log))
    return env, log


@pytest.mark.parametrize(("argv", "config", "code", "says"), CASES, ids=lambda c: repr(c)[:60])
def test_a_bad_input_is_one_line_its_exit_code_and_nothing_done(
    tmp_path: Path,
    quiet_zfs: tuple[dict[str, str], Path],
    argv: list[str],
    config: str | None,
    code: int,
    says: str,
) -> None:
    env, log = quiet_zfs
    (tmp_path / "random.zcap").write_bytes(os.urandom(4096) + b"\xff\xfe")
    (tmp_path / "zmake.toml").write_text(config or "")
    files = {RANDOM: str(tmp_path / "random.zcap"), CONFIG: str(tmp_path / "zmake.toml")}
    result = zmake([files.get(word, word) for word in argv], env, cwd=tmp_path)
    assert (result.returncode, result.stderr.count("\n")) == (code, 1), result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not log.exists() or log.read_text() == ""


def test_the_accepted_spellings_the_readme_promises(
    tmp_path: Path, quiet_zfs: tuple[dict[str, str], Path]
) -> None:
    """The other half: what was refused and must not be (config keys are the long option
    names, recovery takes 5% as the option does, -v after the command)."""
    env, _ = quiet_zfs
    config = tmp_path / "zmake.toml"
    config.write_text('recovery = "5%"\nquiet = true\nyes = true\nname = "nightly-%Y%m%d"\n'
                      'warn = "2d"\ncrit = "3d"\nmetrics = "/tmp/m.prom"\n')  # fmt: skip
    result = zmake([*GEN, "-v", "--dest", "b/x", "-c", str(config)], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "recipe" in result.stdout or "zmake" in result.stdout


def wrong_value(action: argparse.Action) -> str | None:
    """A value of the wrong type or out of range for `action`, or None if every string is
    acceptable to it (free text: checked later, by the cases above)."""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "no-such-choice"
    kind = getattr(action.type, "__name__", None)
    return {"positive_int": "0", "count": "-1", "float": "x", "int": "x",
            "dataset_name": "a//b", "user_name": "a b", "target_label": "a b",
            "output_file": "/nonexistent/dir/f"}.get(kind or "")  # fmt: skip


def typed_options() -> list[tuple[str, str, str]]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, sub in commands.choices.items():
        for action in sub._actions:
            value = wrong_value(action)
            if value is not None and action.option_strings:
                found.append((name, action.option_strings[-1], value))
    return found


def test_every_typed_option_is_found() -> None:
    """The control: the walk below reaches the typed options of every kind."""
    options = {(command, option) for command, option, _ in typed_options()}
    assert {("backup", "--jobs"), ("send", "--slots"), ("check", "--at"), ("allow", "--user"),
            ("generate", "--output"), ("serve", "--send-from"), ("prune", "--keep"),
            ("drill", "--on"), ("generate", "--compress")} <= options  # fmt: skip
    assert len(options) >= 25


@pytest.mark.parametrize(("command", "option", "value"), typed_options())
def test_every_option_of_every_command_refuses_a_wrong_type_in_one_line(
    capsys: pytest.CaptureFixture[str], command: str, option: str, value: str
) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([command, f"{option}={value}"])
    err = capsys.readouterr().err
    assert exited.value.code == USAGE_EXITS.get(command, 2)
    assert err.count("\n") == 1 and option in err and "Traceback" not in err, err


def test_a_closed_reader_is_quiet_and_a_file_error_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zmake … | head`: BrokenPipeError is an OSError, and stays silent (exit 1); any other
    OSError is one line naming the file."""
    import types

    from zmake.cli import main as cli

    def failing(error: BaseException) -> types.SimpleNamespace:
        def run(args: object, runner: object) -> int:
            raise error

        return types.SimpleNamespace(run=run)

    monkeypatch.setattr(cli, "import_module", lambda name: failing(BrokenPipeError(32, "pipe")))
    assert cli.main(["status", "tank"]) == 1
    assert capsys.readouterr().err == ""
    denied = PermissionError(13, "Permission denied", "/srv/out.mk")
    monkeypatch.setattr(cli, "import_module", lambda name: failing(denied))
    assert cli.main(["status", "tank"]) == 1
    assert capsys.readouterr().err == "zmake: /srv/out.mk: Permission denied\n"
