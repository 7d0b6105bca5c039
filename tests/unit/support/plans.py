"""Random and fixed source trees, their plans and Makefiles, and the recorder that stands in
for `zmake send` under GNU make: what the plan and render tests share."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from tests.unit.support.zfsgen import GenTree, forest_get_output, forest_list_output, forests
from zmake.core.model import (
    FILESYSTEM,
    Dataset,
    Inventory,
    Snapshot,
    parent_of,
    pool_of,
)
from zmake.core.parse import parse_source
from zmake.core.plan import Node, Plan, build_plan, select
from zmake.core.render import (
    RenderSettings,
    make_value,
    render_makefile,
    target_name,
)

# Each example runs make and one recorder process per dataset: keep the tier fast.
MAKE_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


FORBIDDEN_IN_TARGETS = set(" \t\n\r\v\f:%#$=;\\*?[]()'\"|&<>{}~`!,")


# Logs a "start" record, then (unless its dataset is listed in RECORDER_FAIL) writes the
# `--stamp` file as zmake does (parent directories created, only on success) and logs "end".
RECORDER = f"""#!{sys.executable} -SI
import json, os, sys
argv = sys.argv[1:]
options = argv[: argv.index("--")] if "--" in argv else argv
stamp = options[options.index("--stamp") + 1] if "--stamp" in options else None
record = {{
    "argv0": os.path.basename(sys.argv[0]),
    "argv": argv,
    "env": {{k: v for k, v in os.environ.items()
            if k.startswith("ZMAKE_") and k != "ZMAKE_SELECTION"}},
    "selection": os.environ.get("ZMAKE_SELECTION"),
}}
def log(event):
    with open(os.environ["RECORDER_LOG"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({{"event": event, **record}}) + "\\n")
log("start")
if argv[-1] in json.loads(os.environ.get("RECORDER_CRASH", "[]")):
    log("fail")
    sys.exit(1)
# as zmake send --failures DIR: why, in DIR/<encoded name>.failed, and exit 0; removed when
# the dataset is up to date
failure = None
if "--failures" in options:
    safe = "".join(
        c if (c.isascii() and (c.isalnum() or c in "._/-")) else "".join(
            f"+{{b:02X}}" for b in c.encode()) for c in argv[-1])
    failure = os.path.join(options[options.index("--failures") + 1], safe + ".failed")
if argv[-1] in json.loads(os.environ.get("RECORDER_FAIL", "[]")):
    log("fail")
    os.makedirs(os.path.dirname(failure), exist_ok=True)
    with open(failure, "w", encoding="utf-8") as handle:
        handle.write(argv[-1] + ": refused for the test\\n")
    sys.exit(0)
if failure is not None and os.path.exists(failure):
    os.unlink(failure)
if stamp is not None:
    os.makedirs(os.path.dirname(stamp), exist_ok=True)
    with open(stamp, "w", encoding="utf-8") as handle:
        handle.write(argv[-1] + "\\n")
log("end")
"""


TEXT_SETTINGS = RenderSettings("zmake", "", "ssh", "", "none", "cmd", "src")


UMOUNT_STAMP = re.compile(r"\$\(STAMPS\)/umount@[0-9a-f]{16}")


@dataclass(frozen=True)
class Recorders:
    default: Path  # what RenderSettings.zmake names (in a directory with a nasty name)
    override: Path  # what `make ZMAKE=…` names


def render_settings(recorders: Recorders, **overrides: str) -> RenderSettings:
    values = {
        "zmake": shlex.quote(str(recorders.default)),
        "remote": "",
        "ssh": "ssh",
        "dest": "",
        "compress": "none",
        "command": "zmake generate tank --exclude 'tank/tmp*'",
        "origin": "a test",
    }
    values.update(overrides)
    return RenderSettings(**values)


@dataclass(frozen=True)
class Scenario:
    inventory: Inventory
    roots: list[str]
    excludes: list[str]
    selected: list[str]
    plan: Plan


@st.composite
def scenarios(
    draw: st.DrawFn, max_datasets: int = 10, min_datasets: int = 1, dense: bool = False
) -> Scenario:
    """`dense`: bigger trees, mostly kept whole, for the tests that can only afford few
    examples (each runs make and a process per dataset)."""
    if dense:
        min_datasets = max(min_datasets, 4)
    pools: list[GenTree] = draw(forests(max_datasets=max_datasets, min_datasets=min_datasets))
    inventory = parse_source(forest_list_output(pools), forest_get_output(pools))
    names = list(inventory.datasets)
    if draw(st.sampled_from(("pools", "pools", "pools", "datasets"))) == "pools":
        roots = [tree.pool for tree in pools]
    else:
        roots = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    under = [n for n in names if any(n == r or n.startswith(r + "/") for r in roots)]
    # Exclude datasets (names are literal globs: no legal name holds * ? or [) but keep
    # at least one: intermediate ones are what the "nearest selected ancestor" rule is for.
    most = len(under) // 3 if dense else len(under) - 1
    excludes = draw(st.lists(st.sampled_from(under), unique=True, max_size=most))
    selected = select(inventory, roots, excludes)
    scenario = Scenario(inventory, roots, excludes, selected, build_plan(inventory, selected))
    kinds = Counter(encrypted for _, _, encrypted in tree_edges(scenario))
    below = {key: "3+" if n >= 3 else str(n) for key, n in kinds.items()}
    event(f"edges below encrypted: {below.get(True, 0)}; unencrypted: {below.get(False, 0)}")
    return scenario


def nearest_selected_ancestor(name: str, selected: set[str]) -> str | None:
    parent = parent_of(name)
    while parent is not None and parent not in selected:
        parent = parent_of(parent)
    return parent


def tree_edges(scenario: Scenario) -> list[tuple[str, str, bool]]:
    """(nearest selected ancestor, dataset, whether that ancestor is encrypted)."""
    chosen = set(scenario.selected)
    result = []
    for name in scenario.selected:
        ancestor = nearest_selected_ancestor(name, chosen)
        if ancestor is not None:
            result.append((ancestor, name, scenario.inventory.datasets[ancestor].encrypted))
    return result


def dependencies(scenario: Scenario) -> set[tuple[str, str]]:
    """(first, then): `then` lists `first` as a prerequisite, so `first` is sent before."""
    return {
        (ancestor, name) if encrypted else (name, ancestor)
        for ancestor, name, encrypted in tree_edges(scenario)
    }


def largest_first(plan: Plan, names: set[str] | list[str]) -> list[str]:
    """The documented order of prerequisites and roots: subtree bytes down, then by name."""
    subtree = {node.dataset.name: node.subtree_bytes for node in plan.nodes}
    return sorted(names, key=lambda n: (-subtree[n], n))


@dataclass(frozen=True)
class Rule:
    prerequisites: list[str]  # normal ones, before `|`
    order_only: list[str]  # after `|`
    recipe: list[str] = field(default_factory=list)  # its tab lines, tab removed


@dataclass(frozen=True)
class Makefile:
    rules: dict[str, list[Rule]]  # target → every rule that names it
    phony: list[str]  # every .PHONY prerequisite, in order

    def rule(self, target: str) -> Rule:
        """The one rule of `target` (asserting there is exactly one)."""
        assert len(self.rules.get(target, [])) == 1, (target, self.rules.get(target))
        return self.rules[target][0]


def parse_makefile(text: str) -> Makefile:
    """Rule lines (`targets: prerequisites | order-only`) with their recipes; assignments,
    comments and .PHONY kept out of the rules."""
    rules: dict[str, list[Rule]] = {}
    phony: list[str] = []
    current: Rule | None = None
    for line in text.splitlines():
        if line.startswith("\t"):
            assert current is not None, f"recipe line outside a rule: {line!r}"
            current.recipe.append(line[1:])
            continue
        current = None
        if line.startswith(".PHONY:"):
            phony += line.removeprefix(".PHONY:").split()
            continue
        if line.startswith(("#", ".")) or "=" in line or ":" not in line:
            continue
        targets, _, prerequisites = line.partition(":")
        normal, bar, order_only = prerequisites.partition("|")
        current = Rule(normal.split(), order_only.split() if bar else [])
        for target in targets.split():
            rules.setdefault(target, []).append(current)
    return Makefile(rules, phony)


def alias(name: str) -> str:
    return target_name(name)


def expected_stamp(dataset: Dataset) -> str:
    """`<encoded name>@<guid of the newest snapshot (highest createtxg)>`, or `@none`."""
    newest = max(dataset.snapshots, key=lambda s: s.createtxg, default=None)
    guid = "none" if newest is None else str(newest.guid)
    return f"{target_name(dataset.name).removeprefix('send/')}@{guid}"


def expected_order(plan: Plan) -> list[str]:
    """The order `make -j1` sends in: `all`'s goals in order, each target after its
    prerequisites in listed order, a target already made skipped. Asserts there is no cycle
    (make would only warn and drop the edge)."""
    nodes = {node.dataset.name: node for node in plan.nodes}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        assert name not in visiting, f"dependency cycle through {name!r}"
        visiting.add(name)
        for prerequisite in nodes[name].prerequisites:
            visit(prerequisite)
        visiting.discard(name)
        order.append(name)

    for root in plan.roots:
        visit(root)
    return order


def assert_respects_dependencies(sent: list[str], scenario: Scenario) -> None:
    assert sorted(sent) == sorted(scenario.selected)  # each exactly once, name intact
    position = {name: i for i, name in enumerate(sent)}
    for first, then in dependencies(scenario):
        assert position[first] < position[then], (first, then)


def inventory_of(
    rows: list[tuple[str, int, str]], newer: dict[str, int] | None = None
) -> Inventory:
    """(name, bytes of its one snapshot @s, encryption) → the inventory zfs list/get describe.
    `newer`: dataset → the guid of a second, newer snapshot @t."""
    newer = newer or {}
    listing = "".join(
        f"{name}\tfilesystem\t{i + 1}\t{i + 1}\t{size}\t{size}\t{size}\t-\n"
        f"{name}@s\tsnapshot\t{i + 100}\t{i + 100}\t0\t{size}\t{size}\t-\n"
        for i, (name, size, _) in enumerate(rows)
    ) + "".join(
        f"{name}@t\tsnapshot\t{guid}\t{1000 + i}\t0\t1\t1\t-\n"
        for i, (name, guid) in enumerate(sorted(newer.items()))
    )
    get = "".join(
        f"{name}\tencryption\t{encryption}\t{'default' if encryption == 'off' else '-'}\n"
        for name, _, encryption in rows
    )
    return parse_source(listing, get)


def prerequisites_of(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {node.dataset.name: node.prerequisites for node in plan.nodes}


AES = "aes-256-gcm"


MIXED_TREE = [
    ("tank", 1, "off"),
    ("tank/secret", 10, AES),
    ("tank/secret/a", 500, AES),
    ("tank/secret/a/deep", 30, AES),
    ("tank/secret/b", 7000, AES),
    ("tank/plain", 2, "off"),
    ("tank/plain/own key", 40, AES),
    ("tank/plain/own key/x", 3, AES),
]


def node_of(name: str, guids: list[int]) -> Node:
    """A node whose dataset has snapshots with these guids, oldest first."""
    snapshots = tuple(
        Snapshot(f"{name}@s{i}", guid, createtxg=10 + i) for i, guid in enumerate(guids)
    )
    dataset = Dataset(name=name, kind=FILESYSTEM, snapshots=snapshots)
    return Node(dataset, expected_bytes=0, subtree_bytes=0, prerequisites=())


GUIDS = st.integers(min_value=1, max_value=2**64 - 1)


def full_plan(inventory: Inventory) -> Plan:
    pools = sorted({pool_of(name) for name in inventory.datasets})
    return build_plan(inventory, select(inventory, pools, []))


def assert_make_safe(target: str) -> None:
    assert target.startswith("send/")
    assert not FORBIDDEN_IN_TARGETS & set(target), target
    assert re.fullmatch(r"[A-Za-z0-9._/+-]+", target), target


SETTING_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("\\#$ "),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    ),
    max_size=20,
)


def through_make(value: str, env: dict[str, str] | None = None) -> str:
    """What a recipe's environment receives for `X = make_value(value)` (the template's
    assignments), exported."""
    makefile = f"X = {make_value(value)}\nexport V = $(X)\nall:\n\t@printf '%s' \"$$V\"\n"
    return run_make(["-s", "-f", "-"], stdin=makefile, env=env).stdout


# The Makefile's settings. It assigns them with a plain `=`, so an environment value must not
# matter; they are kept out of make's environment all the same, and only the precedence tests
# (test_the_environment_never_changes_a_setting) put them back on purpose.
MAKEFILE_VARIABLES = ("ZMAKE", "REMOTE", "SOURCE", "SSH", "DEST", "COMPRESS", "READONLY", "STAMPS",
                      "STALL_TIMEOUT")  # fmt: skip


def run_make(
    args: list[str],
    *,
    cwd: str | None = None,
    stdin: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAKE", "MFLAGS", "ZMAKE_")) and k not in MAKEFILE_VARIABLES
    }
    clean.update(env or {})
    if log is not None:
        clean["RECORDER_LOG"] = str(log)
    done = subprocess.run(
        ["make", *args], cwd=cwd, input=stdin, env=clean, capture_output=True, text=True, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def argvs_of(records: list[dict[str, Any]]) -> list[list[str]]:
    """The argv of every recorder call, in the order they started."""
    return [r["argv"] for r in records if r["event"] == "start"]


@dataclass
class Workspace:
    """A temporary directory with a rendered Makefile whose RenderSettings.stamps (`base`) is in
    there too; make appends `<safe REMOTE>/<safe DEST>` to it (zmake_safe: `_0` when empty)."""

    root: Path
    base: Path
    last: subprocess.CompletedProcess[str] | None = None  # make's own output, last run

    @property
    def makefile(self) -> Path:
        return self.root / "Makefile.zmake"

    @property
    def log(self) -> Path:
        return self.root / "calls.jsonl"

    def stamps(self, folder: str = "_0/_0/_0") -> Path:
        return self.base / folder

    def render(self, recorders: Recorders, plan: Plan, **overrides: str) -> None:
        settings_ = render_settings(recorders, stamps=str(self.base), **overrides)
        self.makefile.write_text(render_makefile(plan, settings_, "test"), encoding="utf-8")

    def make(
        self,
        *args: str,
        fail: tuple[str, ...] = (),
        crash: tuple[str, ...] = (),
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run make in the workspace: every record the recorder logged during this run.
        `fail`: datasets whose send fails as zmake's does under make (the reason in the
        failures folder, exit 0, no stamp); `crash`: whose send exits 1; `env`: added to
        make's environment."""
        self.log.unlink(missing_ok=True)
        self.last = run_make(
            [*args, "-f", str(self.makefile)],
            cwd=str(self.root),
            log=self.log,
            env={
                **(env or {}),
                "RECORDER_FAIL": json.dumps(fail),
                "RECORDER_CRASH": json.dumps(crash),
            },
            check=check,
        )
        return read_log(self.log)

    def stamp_files(self) -> set[str]:
        """Every file below `base`, relative to it."""
        if not self.base.exists():
            return set()
        return {str(p.relative_to(self.base)) for p in self.base.rglob("*") if p.is_file()}


@contextmanager
def workspace(
    recorders: Recorders, plan: Plan, base: str = "run/stamps", **overrides: str
) -> Iterator[Workspace]:
    with tempfile.TemporaryDirectory() as work:
        space = Workspace(Path(work), Path(work, base))
        space.render(recorders, plan, **overrides)
        yield space


def source_pools(scenario: Scenario) -> list[str]:
    return sorted({name.split("/")[0] for name in scenario.selected})


def check_umount(argv: list[str], stamps: Path) -> None:
    """`umount --stamp STAMPS/umount@<generation>` (the selection is in ZMAKE_SELECTION)."""
    assert argv[:2] == ["umount", "--stamp"] and len(argv) == 3, argv
    assert re.fullmatch(re.escape(str(stamps)) + r"/umount@[0-9a-f]{16}", argv[2]), argv


FAILED_FOLDER = re.compile(r"/failed-[0-9a-f]{16}")


def sent_names(argvs: list[list[str]], stamps: Path, plan: Plan) -> list[str]:
    """Checks each argv is `send --stamp STAMPS/<its stamp> --failures STAMPS/failed-<gen> --
    NAME`; returns the names."""
    datasets = {node.dataset.name: node.dataset for node in plan.nodes}
    names = []
    for argv in argvs:
        assert len(argv) == 7 and argv[:2] == ["send", "--stamp"] and argv[5] == "--", argv
        assert argv[3] == "--failures", argv
        assert FAILED_FOLDER.fullmatch(argv[4].removeprefix(str(stamps))), argv
        names.append(argv[6])
        assert argv[2] == str(stamps / expected_stamp(datasets[argv[6]])), argv
    return names


def mixed_scenario() -> Scenario:
    inventory = inventory_of([*MIXED_TREE, ("my pool", 5, AES), ("my pool/x y", 6, AES)])
    selected = select(inventory, ["tank", "my pool"], [])
    return Scenario(inventory, ["tank", "my pool"], [], selected, build_plan(inventory, selected))


MIXED_ORDER = [
    "tank/secret",
    "tank/plain/own key",
    "tank/plain",
    "tank",
    "tank/secret/b",
    "tank/secret/a",
    "tank/secret/a/deep",
    "my pool",
    "my pool/x y",
    "tank/plain/own key/x",
]


def position_of(records: list[dict[str, Any]], event: str, argv: list[str]) -> int:
    [index] = [i for i, r in enumerate(records) if r["event"] == event and r["argv"] == argv]
    return index


# The stamps folder is `<RenderSettings.stamps>/<zmake_safe REMOTE>/<zmake_safe DEST>`. zmake_safe
# (templates/Makefile.j2) escapes `_` first, then each character make or the recipe's quoting
# cannot take, as `_` and a letter; an empty value is `_0`. Written out here independently:
SAFE_ESCAPES = {
    "_": "_u", " ": "_s", ":": "_c", "/": "_l", "%": "_p", "*": "_a", "?": "_q", "[": "_b",
    "]": "_k", "'": "_t", '"': "_d", ";": "_m", "|": "_v", "\\": "_r", "&": "_n", "=": "_e",
    ".": "_o",
}  # fmt: skip


def zmake_safe(value: str) -> str:
    """One level of the stamps folder, as documented."""
    return "".join(SAFE_ESCAPES.get(char, char) for char in value) or "_0"


# What zmake_safe must tell apart: everything it escapes, the letters of its escapes, and
# characters it leaves alone (no `$`: make expands it on the command line, as it should).
ENCODED_ALPHABET = "".join(SAFE_ESCAPES) + "usclpaqbktdmvrneo0" + "@-#,()!~{}+xé"


PROBE_MAKEFILE = (
    "probe:\n\t@printf '%s\\n' \"$$PROBE_STAMPS\"{outputs}\nexport PROBE_STAMPS = $(STAMPS)\n"
)


def stamps_folder_of(tmp_path: Path, *assignments: str) -> tuple[str, list[str]]:
    """(STAMPS relative to RenderSettings.stamps, [zmake_safe of P0, P1, …]) as GNU make computes
    them in a rendered Makefile, with `assignments` on make's command line."""
    base = tmp_path / "stamps"
    settings_ = RenderSettings("z", "", "ssh", "", "none", "c", "s", stamps=str(base))
    makefile = tmp_path / "Makefile"
    makefile.write_text(render_makefile(mixed_scenario().plan, settings_, "t"), encoding="utf-8")
    count = sum(a.startswith("P") for a in assignments)
    probe = tmp_path / "probe.mk"
    probe.write_text(
        PROBE_MAKEFILE.format(outputs="".join(f' "$$PROBE_{i}"' for i in range(count)))
        + "".join(f"export PROBE_{i} = $(call zmake_safe,$(P{i}))\n" for i in range(count)),
        encoding="utf-8",
    )
    done = run_make(["-s", "-f", str(makefile), "-f", str(probe), *assignments, "probe"])
    stamps, *encoded = done.stdout.split("\n")[:-1]
    return str(Path(stamps).relative_to(base)), encoded


SMALL_TREE = [("tank", 1, "off"), ("tank/a b", 2, "off")]


DEFAULT_ENV = {
    "ZMAKE_REMOTE": "",
    "ZMAKE_SOURCE": "",
    "ZMAKE_SSH": "ssh",
    "ZMAKE_DEST": "",
    "ZMAKE_COMPRESS": "none",
    "ZMAKE_READONLY": "on",
    "ZMAKE_STALL_TIMEOUT": "10m",
}


def check_calls(
    calls: list[dict[str, Any]], argv0: str, env: dict[str, str], stamps: Path, plan: Plan
) -> None:
    """Every dataset sent once after the umount, by `argv0`, with `env`, stamped in `stamps`."""
    assert {c["argv0"] for c in calls} == {argv0}
    assert all(c["env"] == env for c in calls), [c["env"] for c in calls]
    argvs = argvs_of(calls)
    check_umount(argvs[0], stamps)
    assert sent_names(argvs[1:], stamps, plan) == ["tank/a b", "tank"]
