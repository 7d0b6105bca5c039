"""A backup host's fleet config (zmake/fleet.py): defaults, per-source overrides, and every
mistake refused in one line before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from zmake.core.errors import UsageError
from zmake.fleet import DEFAULT_HOST_STREAMS, chosen, fleet_names, fleet_of

CONFIG = """
keep-source = "7d"
keep-backup = "30d"
compress = "zstd"
ssh = "ssh -i /etc/zmake/key"
pools = ["tank"]

[sources.laptop]
source = "zsend@laptop.lan"
dest = "backup/laptop"

[sources.nas1]
source = "zsend@10.0.0.2"
dest = "backup/nas1"
pools = ["data", "tank/home"]
exclude = ["data/scratch"]
host-streams = 4
keep-backup = "90d"

[sources.phone-box]
dest = "backup/phone"
push = true
"""


def config(tmp_path: Path, text: str = CONFIG) -> str:
    path = tmp_path / "zmake.toml"
    path.write_text(text)
    return str(path)


def test_sources_take_the_defaults_and_override_them(tmp_path: Path) -> None:
    fleet = fleet_of(config(tmp_path), {}, env={})
    assert [s.name for s in fleet] == ["laptop", "nas1", "phone-box"]
    laptop, nas1, phone = fleet
    assert laptop.settings.source == "zsend@laptop.lan" and laptop.roots == ("tank",)
    assert laptop.settings.compress == "zstd" and laptop.settings.ssh == "ssh -i /etc/zmake/key"
    assert laptop.settings.host_streams == DEFAULT_HOST_STREAMS
    assert (laptop.settings.keep_source, laptop.settings.keep_backup) == ("7d", "30d")
    assert nas1.roots == ("data", "tank/home") and nas1.settings.exclude == ("data/scratch",)
    assert nas1.settings.host_streams == 4 and nas1.settings.keep_backup == "90d"
    assert phone.push and not laptop.push and phone.host == "this machine"
    assert fleet_names(config(tmp_path)) == {"laptop", "nas1", "phone-box"}


def test_the_command_line_s_run_options_reach_every_source(tmp_path: Path) -> None:
    fleet = fleet_of(config(tmp_path), {"compress": "lz4", "stall_timeout": "5m"}, env={})
    assert {s.settings.compress for s in fleet} == {"lz4"}
    assert {s.settings.stall_timeout for s in fleet} == {"5m"}


def test_naming_sources_picks_them_in_the_config_s_order(tmp_path: Path) -> None:
    fleet = fleet_of(config(tmp_path), {}, env={})
    assert [s.name for s in chosen(fleet, ["nas1", "laptop"])] == ["laptop", "nas1"]
    assert chosen(fleet, []) == fleet
    with pytest.raises(UsageError, match="no source 'nas2' in the config"):
        chosen(fleet, ["nas2"])


BAD = {
    "an unknown key": ("[sources.a]\ndest='b/a'\npools=['t']\nhost='x'\n", "unknown key 'host'"),
    "a wrong kind": ("[sources.a]\ndest='b/a'\npools='t'\n", "pools must be a list of text"),
    "no dest": ("[sources.a]\npools=['t']\n", "say where its backups go"),
    "no pools": ("[sources.a]\ndest='b/a'\n", "say which pools"),
    "a bad name": ("[sources.'a b']\ndest='b/a'\npools=['t']\n", "a source's name is letters"),
    "too many streams": (
        "[sources.a]\ndest='b/a'\npools=['t']\nhost_streams=11\n",
        "host_streams above 10",
    ),
    "a bad host": ("[sources.a]\ndest='b/a'\npools=['t']\nsource='-oProxy=x'\n", "source"),
    "a bad dest": ("[sources.a]\ndest='b//a'\npools=['t']\n", "not a dataset name"),
    "sources not tables": ("sources = ['a']\n", "sources must be a table of tables"),
    "no sources": ("pools = ['t']\n", "no \\[sources.NAME\\] tables"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_mistake_is_refused_before_any_work(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    with pytest.raises(UsageError, match=message):
        fleet_of(config(tmp_path, text), {}, env={})


def test_a_per_source_option_on_the_command_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--dest says nothing about which source"):
        fleet_of(config(tmp_path), {"dest": "backup/x"}, env={})


def test_a_per_source_variable_in_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ZMAKE_DEST is set"):
        fleet_of(config(tmp_path), {}, env={"ZMAKE_DEST": "backup/x"})
