"""Fixtures of the core tests."""

from __future__ import annotations

import pytest

from tests.unit.support.plans import (
    RECORDER,
    Recorders,
)


@pytest.fixture(scope="module")
def recorders(tmp_path_factory: pytest.TempPathFactory) -> Recorders:
    base = tmp_path_factory.mktemp("recorders")
    nasty = base / "rec $dir #1 %x"
    nasty.mkdir()
    paths = Recorders(nasty / "zmake-default", base / "zmake-override")
    for path in (paths.default, paths.override):
        path.write_text(RECORDER, encoding="utf-8")
        path.chmod(0o755)
    return paths
