"""--dest: what a backup side may be (targets.check_dest), and the names on each side."""

from __future__ import annotations

import pytest
from hypothesis import given

from tests.unit.support.zfsgen import components
from zmake.core.errors import UsageError
from zmake.core.model import dest_name, source_name
from zmake.settings import Settings
from zmake.targets import check_dest, route_of


@pytest.mark.parametrize(
    ("dest", "roots", "same_machine", "refused"),
    [
        ("backup/laptop", ["tank"], False, None),
        ("backup", ["tank/home"], False, None),  # a subtree may go to a pool's root level
        ("backup", ["tank"], False, "is a pool"),  # tank's root would replace backup's root
        ("backup", ["tank/home", "tank"], True, "is a pool"),
        ("tank/backup", ["tank"], True, "overlaps"),  # inside the source
        ("tank", ["tank/home"], True, "overlaps"),  # above it: tank/home would be replaced
        ("tank/home", ["tank/home"], True, "overlaps"),
        ("tank/backup", ["tank/home"], True, None),  # beside it, same pool: fine
        ("tank/backup", ["tank"], False, None),  # on another machine: another pool
        ("tank/homes", ["tank/home"], True, None),  # a name prefix is not a parent
    ],
)
def test_check_dest(dest: str, roots: list[str], same_machine: bool, refused: str | None) -> None:
    if refused is None:
        check_dest(dest, roots, same_machine=same_machine)
    else:
        with pytest.raises(UsageError, match=refused):
            check_dest(dest, roots, same_machine=same_machine)


def test_dest_is_required_and_has_no_default() -> None:
    with pytest.raises(UsageError, match="give --dest"):
        route_of(Settings(remote="nas"), ["tank"])
    assert route_of(Settings(remote="nas", dest="b/t"), ["tank"]).dest == "b/t"


@given(components(), components())
def test_source_name_inverts_dest_name(a: str, b: str) -> None:
    for name in ("tank", f"tank/{a}", f"tank/{a}/{b}"):
        for dest in ("backup", "backup/laptop", f"b/{b}"):
            assert source_name(dest_name(name, dest), dest, "tank") == name
    assert source_name(f"elsewhere/{a}", "backup", "tank") is None
    assert source_name(f"backup2/{a}", "backup", "tank") is None


def test_the_default_config_is_read_unless_a_makefile_runs_the_command(
    tmp_path, monkeypatch
) -> None:
    """/etc/zmake/zmake.toml when -c is not given; but a generated Makefile's recipe (it
    exports ZMAKE_SELECTION) takes its settings from the Makefile alone."""
    import argparse

    from zmake import settings
    from zmake.cli.arguments import settings_from

    default = tmp_path / "zmake.toml"
    default.write_text('to-dir = "/srv/streams"\nname = "nightly-%Y%m%d"\n')
    monkeypatch.setattr(settings, "DEFAULT_CONFIG", default)
    monkeypatch.delenv("ZMAKE_SELECTION", raising=False)
    for key in settings.SETTING_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    args = argparse.Namespace(config=None)
    read = settings_from(args)
    assert (read.to_dir, read.name) == ("/srv/streams", "nightly-%Y%m%d")
    monkeypatch.setenv("ZMAKE_SELECTION", '{"roots": ["tank"], "exclude": []}')
    under_make = settings_from(args)
    assert (under_make.to_dir, under_make.name) == (None, settings.DEFAULT_SNAPSHOT_NAME)
    explicit = settings_from(argparse.Namespace(config=str(default)))
    assert explicit.to_dir == "/srv/streams"  # -c is always read
