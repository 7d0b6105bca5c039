"""Every command line zmake writes that starts Python ignores the working directory and the
environment (issue 23, hole 1): a planted `./zmake` or a PYTHONPATH package never runs.

Each test also runs the old `python -m zmake` line the same way, as the control that shows
the plant would have run."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zmake import __version__
from zmake.sides import permissions
from zmake.sides.interpreter import PACKAGE, bootstrap, isolated_finds_package, module_argv

REPO = Path(__file__).resolve().parents[3]
OLD_ZMAKE = [sys.executable, "-m", "zmake"]
PLANT = "import pathlib\npathlib.Path({marker!r}).write_text(__file__)\n"
PLANTED_MAIN = 'import sys\nprint("planted zmake ran")\nsys.exit(0)\n'


class Plants:
    """A directory a stranger could write (with their `zmake` package in it) to run make
    in, and an environment pointing Python at another such package."""

    def __init__(self, tmp_path: Path) -> None:
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        self.cwd = tmp_path / "writable"
        self.plant(self.cwd / "zmake", "cwd")
        self.pythonpath = tmp_path / "pythonpath"
        self.plant(self.pythonpath / "zmake", "pythonpath")
        (self.pythonpath / "sitecustomize.py").write_text(self.code("sitecustomize"))
        startup = tmp_path / "startup.py"
        startup.write_text(self.code("startup"))
        self.neutral = tmp_path / "neutral"
        self.neutral.mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ZMAKE_"))}
        self.env = {**base, "PYTHONPATH": str(self.pythonpath), "PYTHONSTARTUP": str(startup)}

    def code(self, name: str) -> str:
        return PLANT.format(marker=str(self.markers / name))

    def plant(self, package: Path, name: str) -> None:
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(self.code(name))
        (package / "__main__.py").write_text(PLANTED_MAIN)

    def ran(self) -> list[str]:
        return sorted(path.name for path in self.markers.iterdir())

    def run(self, argv: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=cwd or self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip


def makefile_zmake(makefile: str) -> str:
    """The ZMAKE assignment of a generated Makefile, as make reads it."""
    line = next(line for line in makefile.splitlines() if line.startswith("ZMAKE = "))
    return line.removeprefix("ZMAKE = ")


def run_through_make(plants: Plants, zmake_value: str, *args: str) -> str:
    """`$(ZMAKE) ARGS` as a recipe of make run in the plants' directory: its stdout."""
    makefile = plants.markers.parent / "probe.mk"
    makefile.write_text(f"ZMAKE = {zmake_value}\nprobe:\n\t@$(ZMAKE) {' '.join(args)}\n")
    done = plants.run(["make", "-s", "-f", str(makefile), "probe"])
    assert done.returncode == 0, done.stderr
    return done.stdout


def generated_makefile(python: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [*python, "generate", "--from-file", str(REPO / "sample-pools" / "home.zcap"),
         "--remote", "nas", "--dest", "backup/home"],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ZMAKE_"))},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefiles_zmake_ignores_a_planted_package_and_pythonpath(tmp_path: Path) -> None:
    plants = Plants(tmp_path)
    zmake = makefile_zmake(generated_makefile(OLD_ZMAKE, REPO))
    assert " -I " in zmake

    out = run_through_make(plants, zmake, "--version")
    assert out.strip() == f"zmake {__version__}"
    assert plants.ran() == []
    plants.env["PYTHONHOME"] = str(tmp_path / "no-such-home")  # ignored too
    assert run_through_make(plants, zmake, "--version").strip() == f"zmake {__version__}"
    assert plants.ran() == []
    del plants.env["PYTHONHOME"]  # the old line could not even start with it

    # The control: the old line runs the stranger's code, from the directory or PYTHONPATH.
    assert "planted zmake ran" in run_through_make(plants, shlex.join(OLD_ZMAKE), "--version")
    assert plants.ran() == ["cwd", "sitecustomize"]
    assert plants.run([*OLD_ZMAKE, "--version"], cwd=plants.neutral).returncode == 0
    assert plants.ran() == ["cwd", "pythonpath", "sitecustomize"]


def test_an_uninstalled_zmake_is_run_by_its_path_immune_all_the_same(tmp_path: Path) -> None:
    """A zmake that `python -I` cannot import (a checkout, a copy): the Makefile runs that
    very copy by its path, still ignoring the directory and the environment. The path holds
    what make, the shell and authorized_keys treat specially."""
    copy = tmp_path / 'it\'s a "copy" $HOME #1'
    shutil.copytree(PACKAGE, copy / "zmake", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "templates", copy / "zmake" / "templates")
    init = copy / "zmake" / "__init__.py"
    init.write_text(init.read_text().replace(__version__, "9.9.9-copy"))
    zmake = makefile_zmake(generated_makefile(OLD_ZMAKE, copy))  # runs the copy, from it
    assert " -I -c " in zmake

    plants = Plants(tmp_path)
    assert shlex.split(zmake)[0] == sys.executable
    if shutil.which("make"):
        assert run_through_make(plants, zmake, "--version").strip() == "zmake 9.9.9-copy"
    done = plants.run([*shlex.split(zmake), "--version"])
    assert done.stdout.strip() == "zmake 9.9.9-copy", done.stderr
    assert plants.ran() == []
    # The Makefile's self-update (run by that line) writes the same line: no restart loop.
    assert makefile_zmake(generated_makefile(shlex.split(zmake), plants.cwd)) == zmake
    assert plants.ran() == []


def test_an_isolated_zmake_asks_no_second_interpreter(tmp_path: Path) -> None:
    """`-I -m zmake` (the Makefile's self-update, every make run) is its own answer; the
    same line comes out of it."""
    zmake = makefile_zmake(generated_makefile(OLD_ZMAKE, REPO))
    assert makefile_zmake(generated_makefile(shlex.split(zmake), tmp_path)) == zmake
    no_probe = (
        "import zmake.sides.interpreter as i, zmake.sides.runner as r;"
        "r.Runner = None;print(i.module_argv())"
    )
    done = subprocess.run([sys.executable, "-I", "-c", no_probe], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == repr([sys.executable, "-I", "-m", "zmake"]), done.stderr


def test_the_bootstrap_holds_nothing_make_a_shell_or_authorized_keys_would_read() -> None:
    odd = Path('/it\'s "odd" $x #1\\ \n/\udcff')
    code = bootstrap("zmake", odd)
    assert re.fullmatch(r"[\w.,;()= ]+", code, re.ASCII), code
    spelled = re.search(r"os\.fsdecode\(\(0x\w+\)\.to_bytes\(\d+\)\)", code)
    assert spelled and eval(spelled[0], {"os": os}) == str(odd)
    assert code.startswith("import os,runpy,sys;sys.path.insert(0,os.fsdecode((0x")


def test_module_argv_is_isolated_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isolated_finds_package()  # the test venv installs zmake
    assert module_argv() == [sys.executable, "-I", "-m", "zmake"]
    monkeypatch.setattr("zmake.sides.interpreter.isolated_finds_package", lambda: False)
    python, flag, dash_c, code = module_argv("zmake")
    assert (python, flag, dash_c) == (sys.executable, "-I", "-c")
    assert code == bootstrap("zmake", PACKAGE.parent)


def authorized_command(key_line: str) -> str:
    """The forced command of an authorized_keys line, as sshd reads `command="…"`."""
    match = re.fullmatch(r'command="([^"\\]*)",restrict [A-Z-]+', key_line)
    assert match, key_line
    return match[1]


def test_the_authorized_keys_line_ignores_a_planted_package_and_pythonpath(
    tmp_path: Path,
) -> None:
    plants = Plants(tmp_path)
    done = subprocess.run(
        [*OLD_ZMAKE, "allow", "--role", "pull-source", "--user", "zsend", "tank"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key_line = next(line for line in done.stdout.splitlines() if "command=" in line)
    command = authorized_command(key_line.removeprefix("# "))
    assert " -I " in command
    # sshd runs the forced command with the user's shell; --help instead of a request.
    serve = plants.run(["sh", "-c", f"{command} --help"])
    assert serve.returncode == 0 and "--send-from" in serve.stdout, serve.stderr
    assert plants.ran() == []

    old = permissions.setup("pull-source", "zsend", "tank", zmake=shlex.join(OLD_ZMAKE)).key_line
    assert old is not None
    assert "planted zmake ran" in plants.run(["sh", "-c", authorized_command(old)]).stdout
    assert plants.ran() == ["cwd", "sitecustomize"]
