"""Pack the Python runtime the guest runs (stdlib, libpython, the venv's packages) into one tar.

The guest's root is the host's, exported over 9p without a page cache: under emulation every
Python start then re-reads libpython and a few hundred modules through the share, 2-4 s before
the first line of zmake runs (0.4 s from RAM). guest-init.sh unpacks this tar into a tmpfs and
bind-mounts each copy over its original path, so paths, shebangs and pyc timestamps stay as on
the host. Folders left out of the copy (tests, mypy, ...) are bind-mounted back from the share,
so nothing disappears; only the copy is faster.

Each manifest line is `KIND<TAB>ABSOLUTE_PATH`: `copy` (a file or folder to put over its
original) or `share` (a folder or file inside a copy to bind back from the original).
"""

from __future__ import annotations

import fnmatch
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

TAR = "runtime.tar"
MANIFEST = "runtime.tsv"
ROOT_IN_TAR = "root"
# Names (fnmatch, relative to the copied folder) that stay on the share: never run in the
# guest, or too big for what they give there.
STDLIB_LEFT_ON_SHARE = (
    "test", "site-packages", "config-*", "idlelib", "tkinter", "turtledemo", "lib2to3",
    "ensurepip", "pydoc_data",
)  # fmt: skip
VENV_LEFT_ON_SHARE = (
    "mypy", "mypyc", "*__mypyc*", "ruff", "pip", "setuptools", "pkg_resources", "pygments",
    "ast_serialize", "librt",
)  # fmt: skip
SKIPPED_SUFFIXES = (".opt-1.pyc", ".opt-2.pyc")  # never read without -O

PROBE = """
import json, os, sys, sysconfig
libdir = sysconfig.get_config_var("LIBDIR") or ""
ldlib = sysconfig.get_config_var("INSTSONAME") or ""
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "stdlib": sysconfig.get_paths()["stdlib"],
    "purelib": sysconfig.get_paths()["purelib"],
    "libpython": os.path.realpath(os.path.join(libdir, ldlib)) if ldlib.endswith(".0") else "",
}))
"""


@dataclass(frozen=True)
class Copy:
    path: Path
    left_on_share: tuple[str, ...] = ()


@dataclass
class Packing:
    shared: list[Path] = field(default_factory=list)
    size: int = 0


def runtime_copies(venv_python: Path) -> list[Copy]:
    """What to copy for this venv's interpreter (asked of the interpreter itself)."""
    out = subprocess.run(
        [str(venv_python), "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout
    paths = json.loads(out)
    copies = [
        Copy(Path(paths["executable"])),
        Copy(Path(paths["stdlib"]), left_on_share=STDLIB_LEFT_ON_SHARE),
        Copy(Path(paths["purelib"]), left_on_share=VENV_LEFT_ON_SHARE),
    ]
    if paths["libpython"]:
        copies.append(Copy(Path(paths["libpython"])))
    # zmake itself (installed editable: the venv points at the checkout): every zmake started
    # in the guest, one per dataset and one per restricted-key session, reads its modules
    copies.append(Copy(venv_python.parent.parent.parent / "zmake"))
    return copies


def add_tree(tar: tarfile.TarFile, copy: Copy, path: Path, packing: Packing) -> None:
    arcname = f"{ROOT_IN_TAR}{path}"
    relative = path.relative_to(copy.path).as_posix()
    if path != copy.path and any(fnmatch.fnmatch(relative, p) for p in copy.left_on_share):
        add_mount_point(tar, path, arcname)
        packing.shared.append(path)
        return
    if path.name.endswith(SKIPPED_SUFFIXES):
        return
    tar.add(path, arcname=arcname, recursive=False)
    if path.is_symlink():
        return
    if path.is_dir():
        for child in sorted(path.iterdir()):
            add_tree(tar, copy, child, packing)
    else:
        packing.size += path.stat().st_size


def add_mount_point(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """An empty folder or file of the same name, for the original to be bound back onto."""
    info = tar.gettarinfo(str(path), arcname=arcname)
    if info.isreg():
        info.size = 0
        tar.addfile(info, io.BytesIO())
    else:
        tar.addfile(info)


def pack(venv_python: Path, folder: Path) -> int:
    """Write TAR and MANIFEST into `folder`; return the bytes packed."""
    copies = runtime_copies(venv_python)
    packing = Packing()
    with tarfile.open(folder / TAR, "w", format=tarfile.PAX_FORMAT) as tar:
        for copy in copies:
            add_tree(tar, copy, copy.path, packing)
    lines = [f"copy\t{c.path}" for c in copies] + [f"share\t{p}" for p in packing.shared]
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")
    return packing.size
