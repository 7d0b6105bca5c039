"""The packages are layers (CONTRIBUTING.md): each may import only the layers below it, and
the pure core starts no process. Read from the source, so a new import that crosses a layer
fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "zmake"
# what each layer may import of zmake (its own modules always)
ALLOWED = {
    "core": {"core"},
    "sides": {"core", "sides"},
    "guard": {"core", "sides", "guard"},
    "reports": {"core", "reports"},
    "settings": {"core", "sides"},
    "fleet": {"core", "settings"},
    "confirm": {"core"},
    "targets": {"core", "sides", "reports", "settings", "confirm", "targets"},
    "commands": {
        "core",
        "sides",
        "guard",
        "reports",
        "settings",
        "fleet",
        "confirm",
        "targets",
        "commands",
        "cli",
        "__version__",
    },
    "cli": {"core", "sides", "reports", "settings", "cli", "__version__"},
}
PROCESS_MODULES = {"subprocess", "multiprocessing", "pty"}


def zmake_imports(source: str) -> set[str]:
    """The top-level zmake names a module imports (`zmake.core.x` → "core")."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "zmake":
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("zmake.")}
    return found


def starts_processes(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        if any(n.split(".")[0] in PROCESS_MODULES or n == "os.system" for n in names):
            return True
    return False


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def crossings(files: dict[str, str]) -> list[str]:
    """`layer/module.py imports X` for every import a layer may not make."""
    wrong = []
    for name, source in sorted(files.items()):
        layer = name.split("/")[0].removesuffix(".py")
        for imported in sorted(zmake_imports(source) - ALLOWED.get(layer, set())):
            wrong.append(f"{name} imports zmake.{imported}")
    return wrong


def sources() -> dict[str, str]:
    return {
        p.relative_to(PACKAGE).as_posix(): p.read_text(encoding="utf-8")
        for p in PACKAGE.rglob("*.py")
        if layer_of(p) in ALLOWED
    }


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert crossings(sources()) == []


def test_the_core_starts_no_process() -> None:
    assert [n for n, s in sources().items() if n.startswith("core/") and starts_processes(s)] == []


def test_the_checks_catch_what_they_must() -> None:
    """The control: a core module that reaches for a side, or runs a process, is caught."""
    assert crossings({"core/x.py": "from zmake.sides.runner import Runner\n"}) == [
        "core/x.py imports zmake.sides"
    ]
    assert crossings({"targets/x.py": "from zmake.commands import backup\n"}) == [
        "targets/x.py imports zmake.commands"
    ]
    assert starts_processes("import subprocess\n") and starts_processes("from os import system")
    assert not starts_processes("import os\nfrom zmake.core import model\n")


def test_unit_test_file_names_are_unique() -> None:
    """pytest imports tests/unit's files by their base name (no __init__.py): two files with
    one name fail collection on a clean checkout (a stale __pycache__ can hide it locally)."""
    names = [path.name for path in Path(__file__).parent.rglob("test_*.py")]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []
