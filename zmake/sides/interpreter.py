"""How a command line zmake writes or prints starts Python again (the Makefile's ZMAKE, the
authorized_keys line of `zmake allow`, a Python stage of `zmake serve`).

`python -m zmake` puts the working directory first on sys.path and obeys PYTHONPATH,
PYTHONHOME, PYTHONSTARTUP and the user's site directory: root's cron running `make` in a
directory another user can write would run their `./zmake`. So every such line starts this
interpreter isolated (`-I`), and runs the very zmake package that is running now: by `-m`
when an isolated interpreter finds that package by itself (an installed zmake), else by a
short program that puts this package's parent directory first on sys.path (a checkout)."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # zmake/, above sides/
PROBE = "import zmake;print(zmake.__file__)"


def module_argv(module: str = "zmake") -> list[str]:
    """argv running `python -m MODULE` (a module of this zmake) immune to the working
    directory and the environment."""
    if isolated_finds_package():
        return [sys.executable, "-I", "-m", module]
    return [sys.executable, "-I", "-c", bootstrap(module, PACKAGE.parent)]


@cache
def isolated_finds_package() -> bool:
    """Does `python -I` import this very zmake package (asked once per process)?

    Already isolated and not started by bootstrap(): we are the answer (the Makefile's
    self-update, on every make run, starts no second interpreter to ask)."""
    if sys.flags.isolated and sys.path[:1] != [str(PACKAGE.parent)]:
        return True
    from zmake.sides.runner import Runner

    result = Runner().run([sys.executable, "-I", "-c", PROBE])
    if result.returncode != 0 or not result.stdout.strip():
        return False
    return Path(result.stdout.strip()).resolve().parent == PACKAGE


def bootstrap(module: str, parent: Path) -> str:
    """`python -I -c` code that runs MODULE from the package under `parent` as `-m` would.

    It holds no quote, `$`, `#` or backslash: it goes unchanged into a make variable, a make
    recipe and authorized_keys' `command="…"`. Strings are spelled as integer literals."""
    path = f"os.fsdecode({bytes_literal(os.fsencode(parent))})"
    name = f"{bytes_literal(module.encode())}.decode()"
    return (
        f"import os,runpy,sys;sys.path.insert(0,{path});"
        f"runpy.run_module({name},run_name=__name__,alter_sys=True)"
    )


def bytes_literal(data: bytes) -> str:
    """Python code for `data` without a quote: `(0x…).to_bytes(N)` (big-endian by default)."""
    return f"(0x{data.hex()}).to_bytes({len(data)})"
