"""The fleet's one Makefile (core/render.py render_fleet, templates/Fleet.j2), run by real
GNU make with ZMAKE pointing at the recorder: each source's recipes get that source's
settings and nothing of another's, datasets start in turn across sources, children before
parents within each, one source's failure holds back no other, and a second make runs
nothing."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.unit.support.plans import RECORDER, full_plan, inventory_of, read_log, run_make
from zmake.core.render import FleetPart, RenderSettings, in_turn, render_fleet

SOURCES = {  # name → (its host, its datasets: name, bytes)
    "laptop": ("zsend@laptop", [("tank", 10), ("tank/home", 5000), ("tank/home/me", 9000)]),
    "nas1": ("zsend@10.0.0.2", [("tank", 10), ("tank/home", 40)]),
    "desk top": ("", [("data", 1), ("data/my data", 7), ("data/vm:disk0", 3)]),
}


def fleet(tmp_path: Path, recorder: Path) -> tuple[str, list[FleetPart]]:
    parts = []
    for index, (name, (host, rows)) in enumerate(SOURCES.items(), start=1):
        plan = full_plan(inventory_of([(n, size, "off") for n, size in rows]))
        settings = RenderSettings(
            zmake="unused", remote="", ssh="ssh -p 22", dest=f"backup/{name}", compress="zstd",
            command="", origin=f"source {name}", source_host=host,
            selection=f'{{"roots": ["{rows[0][0]}"], "exclude": []}}',
            stamps=str(tmp_path / f"run/backup-{index}/stamps"),
        )  # fmt: skip
        report = str(tmp_path / f"run/backup-{index}/report.jsonl")
        parts.append(FleetPart(index, name, plan, settings, report, host_streams=index))
    return render_fleet(parts, shlex.quote(str(recorder)), "zmake backup --all", "t"), parts


def recorder_in(tmp_path: Path) -> Path:
    recorder = tmp_path / "bin dir" / "zmake"
    recorder.parent.mkdir()
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    return recorder


def written(tmp_path: Path) -> tuple[Path, list[FleetPart], Path]:
    """The fleet's Makefile, written; its parts; where the recorder logs."""
    text, parts = fleet(tmp_path, recorder_in(tmp_path))
    makefile = tmp_path / "Makefile"
    makefile.write_text(text)
    return makefile, parts, tmp_path / "log"


def sends(log: Path) -> list[dict[str, object]]:
    return [r for r in read_log(log) if r["event"] == "start" and r["argv"][0] == "send"]


def test_each_source_s_recipes_get_its_own_settings(tmp_path: Path) -> None:
    makefile, parts, log = written(tmp_path)
    run_make(["-s", "-j4", "-f", str(makefile)], log=log)
    records = sends(log)
    assert len(records) == sum(len(rows) for _, rows in SOURCES.values())
    for part in parts:
        host, rows = SOURCES[part.name]
        mine = [r for r in records if r["env"]["ZMAKE_REPORT"] == part.report]
        assert sorted(r["argv"][-1] for r in mine) == sorted(name for name, _ in rows)
        for record in mine:
            env = record["env"]
            assert env["ZMAKE_SOURCE"] == host and env["ZMAKE_DEST"] == f"backup/{part.name}"
            assert env["ZMAKE_HOST_STREAMS"] == str(part.host_streams)
            assert env["ZMAKE_SSH"] == "ssh -p 22" and env["ZMAKE_COMPRESS"] == "zstd"
            assert record["selection"] == part.settings.selection
            stamp = record["argv"][record["argv"].index("--stamp") + 1]
            assert stamp.startswith(part.settings.stamps + "/")
    umounts = [r for r in read_log(log) if r["event"] == "start" and r["argv"][0] == "umount"]
    assert sorted(r["env"]["ZMAKE_DEST"] for r in umounts) == sorted(
        f"backup/{name}" for name in SOURCES
    )
    log.unlink()
    run_make(["-s", "-j4", "-f", str(makefile)], log=log)
    assert read_log(log) == []  # every stamp written: nothing left to run


def test_sources_take_turns_and_children_go_first(tmp_path: Path) -> None:
    makefile, parts, log = written(tmp_path)
    run_make(["-s", "-j1", "-f", str(makefile)], log=log)
    started = [(r["env"]["ZMAKE_DEST"], r["argv"][-1]) for r in sends(log)]
    dests = [dest for dest, _ in started]
    assert dests[:3] == ["backup/laptop", "backup/nas1", "backup/desk top"], started
    laptop = [name for dest, name in started if dest == "backup/laptop"]
    assert laptop == ["tank/home/me", "tank/home", "tank"]  # children first
    order = in_turn(parts)
    assert [index for index, _ in order[:3]] == [1, 2, 3]


def test_one_source_failing_holds_back_no_other(tmp_path: Path) -> None:
    makefile, _, log = written(tmp_path)
    env = {"RECORDER_CRASH": '["tank/home/me"]'}  # laptop's first send dies (tank/home/me)
    done = run_make(["-s", "-k", "-j2", "-f", str(makefile)], log=log, env=env, check=False)
    assert done.returncode != 0
    ended = [(r["env"]["ZMAKE_DEST"], r["argv"][-1]) for r in read_log(log)
             if r["event"] == "end" and r["argv"][0] == "send"]  # fmt: skip
    others = [pair for pair in ended if pair[0] != "backup/laptop"]
    assert len(others) == 5, ended  # nas1 and "desk top": every dataset
    # laptop: its parents wait for the failed child (make -k builds nothing above it)
    assert not [name for dest, name in ended if dest == "backup/laptop" and name != "tank/home/me"]


def test_a_sources_small_siblings_fill_its_host_streams_in_batches(tmp_path: Path) -> None:
    """A fleet source sends at most host-streams at once: its ten small children go in that
    many batches (a process each), not ten; a backup of its own would batch none of them."""
    from zmake.core.batch import batches

    rows = [("tank", 10, "off"), *((f"tank/d{i}", 5, "off") for i in range(10))]
    plan = full_plan(inventory_of(rows))
    settings = RenderSettings(zmake="unused", remote="", ssh="ssh", dest="backup/x",
                              compress="none", command="", origin="source x", source_host="h",
                              selection='{"roots": ["tank"], "exclude": []}',
                              stamps=str(tmp_path / "stamps"))  # fmt: skip
    part = FleetPart(1, "x", plan, settings, str(tmp_path / "report"), host_streams=2)
    text = render_fleet([part], "zmake", "zmake backup --all", "t")
    recipes = [line for line in text.splitlines() if line.startswith("\t$(ZMAKE) send ")]
    assert sorted(len(line.split(" -- ")[1].split()) for line in recipes) == [1, 5, 5]
    assert all(len(b.nodes) == 1 for b in batches(plan))  # the control: one backup's own
