"""Selection, the dataset DAG and the rendered Makefile, on random trees with nasty names.

The DAG rule (zmake/core/plan.py): for every selected dataset with a nearest selected ancestor A,
A depends on the dataset (children first), except when A is encrypted: then the dataset
depends on A (parent first), since a raw stream cannot be received over the unencrypted
placeholder `zfs recv -d` would create for A. The random trees have encrypted pool roots and
encrypted subtrees, so both directions, and DAGs where several children share one parent as
their prerequisite, come up all the time.

Make's targets are stamp files, `$(STAMPS)/<encoded name>@<newest snapshot guid>`, each with a
phony alias `send/<encoded name>`; the DAG's edges and the umount step are order-only
prerequisites of the stamps. The Makefile is checked three ways: as text (rules, order-only
prerequisites, recipes), by `make -n`, and by really running `make -j1` and `make -j4` with
ZMAKE pointing at a recorder that logs each call and, like `zmake`, writes the `--stamp` file
when it succeeds: so a second make must run nothing at all. Stamps always live in the test's
own temporary directory (RenderSettings.stamps or STAMPS=…), never in /run."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.unit.support.zfsgen import GenTree, forest_get_output, forest_list_output, forests, trees
from zmake.core.errors import UsageError
from zmake.core.model import (
    FILESYSTEM,
    BackupDataset,
    Dataset,
    Inventory,
    Snapshot,
    parent_of,
    pool_of,
)
from zmake.core.parse import parse_source
from zmake.core.plan import Node, Plan, Selection, build_plan, expected_bytes, select
from zmake.core.render import (
    RenderSettings,
    make_value,
    recipe_word,
    render_makefile,
    stamp_name,
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


# --- building a selection from random trees ---------------------------------------------------


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


# --- plan and Makefile text ----------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_selection_respects_roots_and_excludes(scenario: Scenario) -> None:
    for name in scenario.inventory.datasets:
        under = any(name == r or name.startswith(r + "/") for r in scenario.roots)
        wanted = under and name not in scenario.excludes
        assert (name in scenario.selected) == wanted


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_generated_encryption_is_inherited(scenario: Scenario) -> None:
    """What the DAG rule relies on, and ZFS guarantees: below an encrypted dataset every
    dataset is encrypted (the generator must not produce anything else)."""
    for name, dataset in scenario.inventory.datasets.items():
        parent = parent_of(name)
        if parent is not None and scenario.inventory.datasets[parent].encrypted:
            assert dataset.encrypted, name


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_plan_edges_follow_encryption(scenario: Scenario) -> None:
    plan, chosen = scenario.plan, set(scenario.selected)
    names = [node.dataset.name for node in plan.nodes]
    assert Counter(names) == Counter(scenario.selected)  # every node exactly once
    nodes = {node.dataset.name: node for node in plan.nodes}
    deps = dependencies(scenario)
    for ancestor, name, encrypted in tree_edges(scenario):
        if encrypted:  # parent first
            assert ancestor in nodes[name].prerequisites
            assert name not in nodes[ancestor].prerequisites
        else:  # children first
            assert name in nodes[ancestor].prerequisites
            assert ancestor not in nodes[name].prerequisites
    for name, node in nodes.items():
        assert node.dataset == scenario.inventory.datasets[name]
        assert node.expected_bytes == expected_bytes(node.dataset)
        # exactly the edges above, nothing else, no duplicates
        assert len(set(node.prerequisites)) == len(node.prerequisites)
        assert set(node.prerequisites) == {first for first, then in deps if then == name}
        # largest subtree first (ties by name)
        sizes = [nodes[p].subtree_bytes for p in node.prerequisites]
        assert sizes == sorted(sizes, reverse=True)
        assert list(node.prerequisites) == largest_first(plan, list(node.prerequisites))
        # the subtree is the selection's tree, whichever way its edges point
        below = [n for n in names if nearest_selected_ancestor(n, chosen) == name]
        assert node.subtree_bytes == node.expected_bytes + sum(
            nodes[n].subtree_bytes for n in below
        )
    assert sum(len(node.prerequisites) for node in plan.nodes) == len(deps)
    nobody_depends_on = {n for n in names if not any(first == n for first, _ in deps)}
    assert len(set(plan.roots)) == len(plan.roots)
    assert set(plan.roots) == nobody_depends_on
    assert list(plan.roots) == largest_first(plan, nobody_depends_on)
    assert sorted(expected_order(plan)) == sorted(names)  # acyclic, `all` reaches everything
    assert plan.total_bytes == sum(node.expected_bytes for node in plan.nodes)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_makefile_text_has_one_stamp_rule_and_one_alias_per_dataset(scenario: Scenario) -> None:
    plan = scenario.plan
    makefile = parse_makefile(render_makefile(plan, TEXT_SETTINGS, "t"))
    nodes = {node.dataset.name: node for node in plan.nodes}
    aliases = {name: alias(name) for name in scenario.selected}
    stamps = {name: "$(STAMPS)/" + expected_stamp(nodes[name].dataset) for name in nodes}
    assert len(set(aliases.values())) == len(aliases)
    assert len(set(stamps.values())) == len(stamps)
    for stamp in stamps.values():  # a stamp file is never another stamp's directory
        assert not any(other.startswith(stamp + "/") for other in stamps.values()), stamp
        assert re.fullmatch(r"\$\(STAMPS\)/[A-Za-z0-9._/+-]+@(none|[0-9]+)", stamp), stamp
    umount_stamp = makefile.rule("umount").prerequisites[0]
    assert UMOUNT_STAMP.fullmatch(umount_stamp)
    assert set(makefile.rules) == {
        "all",
        "umount",
        umount_stamp,
        *aliases.values(),
        *stamps.values(),
    }
    assert sorted(makefile.phony) == sorted(["all", "umount", *aliases.values()])
    everything = makefile.rule("all")
    assert (everything.prerequisites, everything.order_only) == (
        [aliases[root] for root in plan.roots],
        [],
    )
    # At the end, every dataset's failure (written by `zmake send --failures`) is listed.
    assert "$(FAILED)" in everything.recipe[0] and "exit 1" in everything.recipe[-1]
    assert makefile.rule("umount") == Rule([umount_stamp], [])
    # The selection comes from ZMAKE_SELECTION, exported above.
    assert makefile.rule(umount_stamp) == Rule([], [], ["$(ZMAKE) umount --stamp '$@'"])
    deps = dependencies(scenario)
    for name, node in nodes.items():
        assert makefile.rule(aliases[name]) == Rule([stamps[name]], [])  # exactly once
        stamp_rule = makefile.rule(stamps[name])
        assert stamp_rule.prerequisites == []  # only order-only: a stamp is never outdated
        assert stamp_rule.order_only == [umount_stamp, *map(alias, node.prerequisites)]
        assert set(node.prerequisites) == {f for f, t in deps if t == name}
        assert len(stamp_rule.recipe) == 1
        recipe = shlex.split(stamp_rule.recipe[0].replace("$$", "$"))
        assert recipe == [
            "$(ZMAKE)", "send", "--stamp", "$@", "--failures", "$(FAILED)", "--", name
        ]  # fmt: skip


# --- fixed trees --------------------------------------------------------------------------------


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


def test_encrypted_parents_come_first_unencrypted_ones_last() -> None:
    inventory = inventory_of(MIXED_TREE)
    plan = build_plan(inventory, select(inventory, ["tank"], []))
    assert prerequisites_of(plan) == {
        "tank": ("tank/secret", "tank/plain"),  # unencrypted: its children first
        "tank/secret": (),
        "tank/secret/a": ("tank/secret",),  # below an encrypted one: parent first
        "tank/secret/a/deep": ("tank/secret/a",),
        "tank/secret/b": ("tank/secret",),
        "tank/plain": ("tank/plain/own key",),
        "tank/plain/own key": (),
        "tank/plain/own key/x": ("tank/plain/own key",),
    }
    subtree = {node.dataset.name: node.subtree_bytes for node in plan.nodes}
    assert subtree["tank"] == 7586 and subtree["tank/secret"] == 7540
    assert plan.roots == ("tank", "tank/secret/b", "tank/secret/a/deep", "tank/plain/own key/x")
    assert expected_order(plan) == [
        "tank/secret",
        "tank/plain/own key",
        "tank/plain",
        "tank",
        "tank/secret/b",
        "tank/secret/a",
        "tank/secret/a/deep",
        "tank/plain/own key/x",
    ]


def test_an_encrypted_pool_root_sends_parents_first_everywhere() -> None:
    inventory = inventory_of(
        [("my pool", 0, AES), ("my pool/a", 5, AES), ("my pool/a/b", 9, AES), ("my pool/c", 1, AES)]
    )
    plan = build_plan(inventory, select(inventory, ["my pool"], []))
    assert prerequisites_of(plan) == {
        "my pool": (),
        "my pool/a": ("my pool",),
        "my pool/a/b": ("my pool/a",),
        "my pool/c": ("my pool",),
    }
    assert plan.roots == ("my pool/a/b", "my pool/c")
    assert expected_order(plan) == ["my pool", "my pool/a", "my pool/a/b", "my pool/c"]


def test_the_nearest_selected_ancestor_decides_the_direction() -> None:
    """An excluded encrypted dataset does not turn its children around (their nearest
    selected ancestor is not encrypted), and an excluded intermediate below an encrypted
    one does not either (theirs is)."""
    inventory = inventory_of(
        [
            ("tank", 1, "off"),
            ("tank/secret", 2, AES),
            ("tank/secret/a", 30, AES),
            ("tank/secret/b", 40, AES),
            ("tank/vault", 3, AES),
            ("tank/vault/mid", 4, AES),
            ("tank/vault/mid/c", 50, AES),
        ]
    )
    selected = select(inventory, ["tank"], ["tank/secret", "tank/vault/mid"])
    plan = build_plan(inventory, selected)
    assert prerequisites_of(plan) == {
        "tank": ("tank/vault", "tank/secret/b", "tank/secret/a"),
        "tank/secret/a": (),
        "tank/secret/b": (),
        "tank/vault": (),
        "tank/vault/mid/c": ("tank/vault",),
    }
    assert plan.roots == ("tank", "tank/vault/mid/c")


def test_selecting_below_an_unselected_encrypted_parent_has_no_edge() -> None:
    inventory = inventory_of(MIXED_TREE)
    plan = build_plan(inventory, select(inventory, ["tank/secret/a", "tank/secret/b"], []))
    assert prerequisites_of(plan) == {
        "tank/secret/a": (),
        "tank/secret/a/deep": ("tank/secret/a",),
        "tank/secret/b": (),
    }
    assert plan.roots == ("tank/secret/b", "tank/secret/a/deep")


def test_plan_nodes_are_a_valid_serial_order() -> None:
    inventory = inventory_of(MIXED_TREE)
    plan = build_plan(inventory, select(inventory, ["tank"], []))
    done: set[str] = set()
    for node in plan.nodes:
        assert set(node.prerequisites) <= done, (node.dataset.name, node.prerequisites)
        done.add(node.dataset.name)


def test_excluded_intermediate_keeps_its_children_under_the_grandparent() -> None:
    inventory = inventory_of(
        [
            ("tank", 1, "off"),
            ("tank/home", 10, "off"),
            ("tank/home/my data", 500, "off"),
            ("tank/home/vm:disk0", 7000, "off"),
            ("tank/home/my data/deep 50%", 30, "off"),
            ("tank/small", 2, "off"),
        ]
    )
    selected = select(inventory, ["tank"], ["tank/home", "tank/home/my data"])
    plan = build_plan(inventory, selected)
    nodes = {node.dataset.name: node for node in plan.nodes}
    assert nodes["tank"].prerequisites == (
        "tank/home/vm:disk0",
        "tank/home/my data/deep 50%",
        "tank/small",
    )
    assert plan.roots == ("tank",)
    makefile = parse_makefile(
        render_makefile(plan, RenderSettings("z", "", "ssh", "", "none", "c", "s"), "t")
    )
    assert makefile.rule("send/tank") == Rule(["$(STAMPS)/tank@100"], [])
    rule = makefile.rule("$(STAMPS)/tank@100")
    umount_stamp = makefile.rule("umount").prerequisites[0]
    assert rule.prerequisites == []
    assert rule.order_only == [
        umount_stamp,
        "send/tank/home/vm+3Adisk0",
        "send/tank/home/my+20data/deep+2050+25",
        "send/tank/small",
    ]
    assert makefile.rule("send/tank/home/my+20data/deep+2050+25") == Rule(
        ["$(STAMPS)/tank/home/my+20data/deep+2050+25@104"], []
    )


# --- stamp names ---------------------------------------------------------------------------


def node_of(name: str, guids: list[int]) -> Node:
    """A node whose dataset has snapshots with these guids, oldest first."""
    snapshots = tuple(
        Snapshot(f"{name}@s{i}", guid, createtxg=10 + i) for i, guid in enumerate(guids)
    )
    dataset = Dataset(name=name, kind=FILESYSTEM, snapshots=snapshots)
    return Node(dataset, expected_bytes=0, subtree_bytes=0, prerequisites=())


GUIDS = st.integers(min_value=1, max_value=2**64 - 1)


@given(
    st.text(min_size=1),
    st.lists(GUIDS, unique=True, min_size=1, max_size=4),
    GUIDS,
)
def test_stamp_name_is_the_encoded_name_and_the_newest_guid(
    name: str, guids: list[int], newer: int
) -> None:
    stamp = stamp_name(node_of(name, guids))
    assert stamp == f"{target_name(name).removeprefix('send/')}@{guids[-1]}"
    assert re.fullmatch(r"[A-Za-z0-9._/+-]+@[0-9]+", stamp), stamp
    # a new snapshot renames the stamp (unless it is the same snapshot)...
    renamed = stamp_name(node_of(name, [*guids, newer]))
    assert (renamed == stamp) == (newer == guids[-1])
    # ...older snapshots coming and going do not
    assert stamp_name(node_of(name, [newer, *guids])) == stamp
    assert stamp_name(node_of(name, guids[-1:])) == stamp
    assert stamp_name(node_of(name, [])) == f"{target_name(name).removeprefix('send/')}@none"


def test_a_new_snapshot_renames_its_stamp_and_the_umount_stamp_only() -> None:
    rows = [("tank", 1, "off"), ("tank/a", 2, "off"), ("tank/b", 3, "off")]
    before = render_makefile(full_plan(inventory_of(rows)), TEXT_SETTINGS, "t")
    after = render_makefile(full_plan(inventory_of(rows, {"tank/a": 5000})), TEXT_SETTINGS, "t")
    old, new = parse_makefile(before), parse_makefile(after)
    assert old.rule("send/tank/a") == Rule(["$(STAMPS)/tank/a@101"], [])
    assert new.rule("send/tank/a") == Rule(["$(STAMPS)/tank/a@5000"], [])
    for unchanged in ("tank", "tank/b"):
        assert old.rule(alias(unchanged)) == new.rule(alias(unchanged))
    old_umount, new_umount = old.rule("umount").prerequisites, new.rule("umount").prerequisites
    assert old_umount != new_umount
    assert render_makefile(full_plan(inventory_of(rows)), TEXT_SETTINGS, "t") == before


def full_plan(inventory: Inventory) -> Plan:
    pools = sorted({pool_of(name) for name in inventory.datasets})
    return build_plan(inventory, select(inventory, pools, []))


def test_expected_bytes_full_then_incremental_or_after_the_common_snapshot() -> None:
    snapshots = tuple(
        Snapshot(f"tank/a b@s{i}", guid=i + 1, createtxg=10 * (i + 1), written=w, referenced=r)
        for i, (w, r) in enumerate([(700, 700), (30, 710), (5, 712), (100, 800)])
    )
    ds = Dataset(name="tank/a b", kind="filesystem", snapshots=snapshots)
    assert expected_bytes(ds) == 700 + 30 + 5 + 100
    assert expected_bytes(ds, None) == 700 + 30 + 5 + 100
    on_backup = BackupDataset("b/a b", "filesystem", snapshots=(Snapshot("b/a b@s1", 2, 999),))
    assert expected_bytes(ds, on_backup) == 5 + 100
    unrelated = BackupDataset("b/a b", "filesystem", snapshots=(Snapshot("b/a b@x", 99, 1),))
    assert expected_bytes(ds, unrelated) == 835
    assert expected_bytes(Dataset(name="tank/empty", kind="volume")) == 0


def test_build_plan_uses_the_backup_state_for_estimates() -> None:
    listing = (
        "tank\tfilesystem\t1\t1\t0\t0\t0\t-\n"
        "tank/big\tfilesystem\t2\t2\t0\t0\t0\t-\n"
        "tank/big@s1\tsnapshot\t3\t3\t0\t9000\t9000\t-\n"
        "tank/big@s2\tsnapshot\t4\t4\t0\t9001\t1\t-\n"
        "tank/new\tfilesystem\t5\t5\t0\t0\t0\t-\n"
        "tank/new@s1\tsnapshot\t6\t6\t0\t50\t50\t-\n"
    )
    inventory = parse_source(listing, "")
    chosen = select(inventory, ["tank"], [])
    assert build_plan(inventory, chosen).nodes[-1].prerequisites == ("tank/big", "tank/new")
    backup = BackupDataset("b/big", "filesystem", snapshots=(Snapshot("b/big@s1", 3, 7),))
    plan = build_plan(inventory, chosen, {"tank/big": backup, "tank/new": None})
    assert plan.nodes[-1].prerequisites == ("tank/new", "tank/big")
    assert plan.total_bytes == 51


def test_select_errors() -> None:
    inventory = parse_source("tank\tfilesystem\t1\t1\t0\t0\t0\t-\n", "")
    with pytest.raises(UsageError, match="no pool"):
        select(inventory, [], [])
    with pytest.raises(UsageError, match="no such dataset"):
        select(inventory, ["tank/nope"], [])
    with pytest.raises(UsageError, match="every dataset is excluded"):
        select(inventory, ["tank"], ["tank*"])


# --- target names ----------------------------------------------------------------------------


def assert_make_safe(target: str) -> None:
    assert target.startswith("send/")
    assert not FORBIDDEN_IN_TARGETS & set(target), target
    assert re.fullmatch(r"[A-Za-z0-9._/+-]+", target), target


@given(st.text(), st.text())
def test_target_name_is_injective_on_any_strings(a: str, b: str) -> None:
    if a != b:
        assert target_name(a) != target_name(b)
    assert_make_safe(target_name(a))


@given(st.lists(st.text(alphabet="+2B/ %:é.-_aA0\x01\x10\n", max_size=6), unique=True, max_size=40))
def test_target_name_is_injective_on_escape_lookalikes(names: list[str]) -> None:
    assert len({target_name(n) for n in names}) == len(names)


def test_target_name_exhaustive_short_strings() -> None:
    alphabet = "+2B/ %:.-0\x01\x10"
    names = ["".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
    assert len({target_name(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    "name",
    ["tank/my data", "tank/vm:disk0", "tank/50%", "tank/a+2B", "tank/-x", "tank/ lead", "tank/é"],
)
def test_target_name_examples_are_make_safe(name: str) -> None:
    assert_make_safe(target_name(name))


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from("$'\"\\ %#:;()`!*?[]{}~&|<>=@"),
            st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        ),
        min_size=1,
    )
)
def test_recipe_word_survives_make_and_sh(value: str) -> None:
    """A recipe word reaches the command as exactly one argument equal to the value."""
    makefile = f"all:\n\t@printf '%s\\n' {recipe_word(value)}\n"
    assert run_make(["-s", "-f", "-"], stdin=makefile).stdout == value + "\n"


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


@settings(deadline=None)  # one make process per example
@given(SETTING_TEXT)
def test_make_value_round_trips_through_make(value: str) -> None:
    """A setting written with make_value reaches a recipe's environment unchanged (make drops
    leading blanks of a value; nobody's ssh command starts with one)."""
    assert through_make(value) == value.lstrip(" \t")


@pytest.mark.parametrize(
    "value",
    [
        "ssh -o X=a\\ b",
        "C:\\backup",
        "ssh -i key\\",
        "ssh -i key\\\\",
        "ssh -o 'X=a\\#b'",
        "a\\\\#b\\\\\\#c#d",
        "\\",
        "$\\",
        "#\\",
    ],
)
def test_make_value_keeps_backslashes(value: str) -> None:
    assert through_make(value) == value


def test_make_value_ending_in_a_backslash_ignores_the_environment() -> None:
    assert through_make("ssh -i key\\", env={"EMPTY": "oops"}) == "ssh -i key\\"


# --- GNU make on the rendered Makefile ---------------------------------------------------------

# The Makefile's settings. It assigns them with a plain `=`, so an environment value must not
# matter; they are kept out of make's environment all the same, and only the precedence tests
# (test_the_environment_never_changes_a_setting) put them back on purpose.
MAKEFILE_VARIABLES = ("ZMAKE", "REMOTE", "SOURCE", "SSH", "DEST", "COMPRESS", "READONLY", "STAMPS")


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


@MAKE_SETTINGS
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_make_dry_run_lists_every_send_in_order(recorders: Recorders, scenario: Scenario) -> None:
    with workspace(recorders, scenario.plan) as space:
        done = run_make(["-n", "-f", space.makefile.name], cwd=str(space.root), log=space.log)
        assert not space.base.exists() and not space.log.exists()  # -n runs and writes nothing
    lines = done.stdout.splitlines()
    # The last command is `all`'s: the report of what failed (nothing here).
    assert lines[-1].startswith("failed=$(find ") and "exit 1" in lines[-1], lines[-1]
    commands = [shlex.split(line) for line in lines[:-1]]
    assert all(c[0] == str(recorders.default) for c in commands), done.stdout
    check_umount(commands[0][1:], space.stamps())
    sends = sent_names([c[1:] for c in commands[1:]], space.stamps(), scenario.plan)
    assert_respects_dependencies(sends, scenario)
    assert sends == expected_order(scenario.plan)


@MAKE_SETTINGS
@given(scenario=scenarios(max_datasets=7, dense=True), data=st.data())
def test_make_sends_each_once_then_nothing_then_only_a_lost_stamp(
    recorders: Recorders, scenario: Scenario, data: st.DataObject
) -> None:
    with workspace(recorders, scenario.plan) as space:
        records = space.make("-j1", f"ZMAKE={recorders.override}")
        assert all(r["argv0"] == recorders.override.name for r in records)
        assert [r["event"] for r in records] == ["start", "end"] * (len(records) // 2)  # serial
        argvs = argvs_of(records)
        check_umount(argvs[0], space.stamps())
        sent = sent_names(argvs[1:], space.stamps(), scenario.plan)
        assert_respects_dependencies(sent, scenario)
        assert sent == expected_order(scenario.plan)  # largest subtree first, as listed
        stamps = {a[2] for a in argvs}
        assert {str(space.base / f) for f in space.stamp_files()} == stamps
        # Everything is stamped: make runs nothing at all, serial or parallel.
        assert space.make("-j1") == []
        assert space.make("-j4") == []
        # One stamp lost: only that dataset is sent again (not even the umount).
        lost = data.draw(st.sampled_from(argvs[1:]), label="lost")
        Path(lost[2]).unlink()
        assert argvs_of(space.make("-j4")) == [lost]
        assert {str(space.base / f) for f in space.stamp_files()} == stamps
        assert space.make("-j1") == []


def position_of(records: list[dict[str, Any]], event: str, argv: list[str]) -> int:
    [index] = [i for i, r in enumerate(records) if r["event"] == event and r["argv"] == argv]
    return index


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_parallel_make_respects_every_dependency(recorders: Recorders, scenario: Scenario) -> None:
    """With -j4 the order among independent targets is free, but a target starts only after
    its prerequisites finished: the umount first of all, children before unencrypted
    parents, encrypted parents before their children."""
    with workspace(recorders, scenario.plan) as space:
        records = space.make("-j4")
        assert space.make("-j4") == []
    argvs = argvs_of(records)
    check_umount(argvs[0], space.stamps())
    assert [r["event"] for r in records[:2]] == ["start", "end"]  # umount, alone
    assert records[1]["argv"] == argvs[0]
    sent = sent_names(argvs[1:], space.stamps(), scenario.plan)
    assert_respects_dependencies(sent, scenario)
    by_name = dict(zip(sent, argvs[1:], strict=True))
    for first, then in dependencies(scenario):
        finished = position_of(records, "end", by_name[first])
        assert finished < position_of(records, "start", by_name[then]), (first, then)


@pytest.mark.parametrize("jobs", [1, 4])
def test_make_sends_the_mixed_tree_in_dependency_order(recorders: Recorders, jobs: int) -> None:
    scenario = mixed_scenario()
    with workspace(recorders, scenario.plan) as space:
        argvs = argvs_of(space.make(f"-j{jobs}"))
        assert space.make(f"-j{jobs}") == []
    check_umount(argvs[0], space.stamps())
    sent = sent_names(argvs[1:], space.stamps(), scenario.plan)
    assert_respects_dependencies(sent, scenario)
    if jobs == 1:
        assert sent == MIXED_ORDER


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_failed_send_holds_back_nothing_and_the_end_says_why(
    recorders: Recorders, jobs: int
) -> None:
    """A send that fails (refused, diverged, …) records why and lets make go on: every other
    dataset, its ancestors included, is sent in the same run, even without -k; `all` then
    lists it and fails. The next run sends only what failed."""
    scenario = mixed_scenario()
    failing = ("tank/secret", "tank/plain/own key")
    with workspace(recorders, scenario.plan) as space:
        records = space.make(f"-j{jobs}", fail=failing, check=False)
        assert space.last is not None and space.last.returncode != 0
        assert sorted(r["argv"][-1] for r in records if r["event"] == "fail") == sorted(failing)
        tried = sent_names(argvs_of(records)[1:], space.stamps(), scenario.plan)
        assert sorted(tried) == sorted(scenario.selected)  # nobody waited in vain
        assert_respects_dependencies(tried, scenario)  # still children (or parents) first
        report = space.last.stderr
        assert "zmake: not up to date" in report
        assert [line for line in report.splitlines() if "refused for the test" in line] == [
            f"{name}: refused for the test" for name in sorted(failing)
        ]
        stamped = {
            str(Path(space.base, f).relative_to(space.stamps())) for f in space.stamp_files()
        }
        for name in scenario.selected:
            stamp = expected_stamp(scenario.inventory.datasets[name])
            assert (stamp in stamped) == (name not in failing), name
        # the next run sends only what failed, and ends well
        rest = sent_names(argvs_of(space.make(f"-j{jobs}")), space.stamps(), scenario.plan)
        assert sorted(rest) == sorted(failing)
        assert "not up to date" not in space.last.stderr
        assert space.make(f"-j{jobs}") == []


def test_a_crashed_send_stamps_nothing_and_the_next_run_finishes(recorders: Recorders) -> None:
    """A send that dies (no record of why: a bug, a kill) is a make failure: -k goes on with
    what does not need it, and the next run finishes."""
    scenario = mixed_scenario()
    needs_secret = {"tank", "tank/secret/a", "tank/secret/b", "tank/secret/a/deep"}
    with workspace(recorders, scenario.plan) as space:
        failed = space.make("-k", "-j4", crash=("tank/secret",), check=False)
        assert [r["argv"][-1] for r in failed if r["event"] == "fail"] == ["tank/secret"]
        tried = sent_names(argvs_of(failed)[1:], space.stamps(), scenario.plan)
        # make -k went on with everything that does not need tank/secret
        assert sorted(tried) == sorted(set(scenario.selected) - needs_secret)
        stamped = {
            str(Path(space.base, f).relative_to(space.stamps())) for f in space.stamp_files()
        }
        assert expected_stamp(scenario.inventory.datasets["tank/secret/b"]) not in stamped
        assert expected_stamp(scenario.inventory.datasets["tank/plain"]) in stamped
        assert expected_stamp(scenario.inventory.datasets["tank/secret"]) not in stamped
        # the next run sends what is left, in order, and nothing else
        rest = sent_names(argvs_of(space.make("-j4")), space.stamps(), scenario.plan)
        assert sorted(rest) == sorted({"tank/secret", *needs_secret})
        assert rest[0] == "tank/secret"
        assert rest.index("tank/secret/a") < rest.index("tank/secret/a/deep")
        assert space.make("-j4") == []


def test_a_new_snapshot_sends_that_dataset_after_a_new_umount(recorders: Recorders) -> None:
    """A new snapshot of tank/plain: its stamp and the umount stamp are new, so make unmounts
    and sends tank/plain again; its parent tank (which needs tank/plain first, order-only)
    is not sent again."""
    with workspace(recorders, full_plan(inventory_of(MIXED_TREE))) as space:
        first = argvs_of(space.make("-j4"))
        assert len(first) == len(MIXED_TREE) + 1
        space.render(recorders, full_plan(inventory_of(MIXED_TREE, {"tank/plain": 5000})))
        second = argvs_of(space.make("-j4"))
        assert len(second) == 2
        check_umount(second[0], space.stamps())
        assert second[0][2] != first[0][2]
        assert sent_names(second[1:], space.stamps(), full_plan(
            inventory_of(MIXED_TREE, {"tank/plain": 5000}))) == ["tank/plain"]  # fmt: skip
        assert second[1][2] == str(space.stamps("_0/_0/_0/tank/plain@5000"))
        assert space.make("-j4") == []


def test_make_passes_settings_to_zmake_send(recorders: Recorders) -> None:
    listing = "tank\tfilesystem\t1\t1\t0\t0\t0\t-\ntank/my data\tfilesystem\t2\t2\t0\t0\t0\t-\n"
    inventory = parse_source(listing, "")
    plan = build_plan(inventory, select(inventory, ["tank"], []))
    ssh = "ssh -o 'ProxyCommand=nc %h %p' -F my\\ cfg -p 2222 #$HOME"
    overrides = {"remote": "me@backup.example", "ssh": ssh, "dest": "b:ack", "compress": "zstd"}
    with workspace(recorders, plan, **overrides) as space:
        default_calls = space.make()
        override_calls = space.make("REMOTE=other", "COMPRESS=none")
        assert space.make() == space.make("REMOTE=other", "COMPRESS=none") == []
    assert [c["argv0"] for c in default_calls] == ["zmake-default"] * 6
    env = {
        **DEFAULT_ENV,
        "ZMAKE_REMOTE": "me@backup.example",
        "ZMAKE_SSH": ssh,
        "ZMAKE_DEST": "b:ack",
        "ZMAKE_COMPRESS": "zstd",
    }
    assert all(c["env"] == env for c in default_calls)
    stamps = space.stamps("_0/me@backup_oexample/b_cack")  # `.` → _o, `:` → _c
    argvs = argvs_of(default_calls)
    check_umount(argvs[0], stamps)
    assert sent_names(argvs[1:], stamps, plan) == ["tank/my data", "tank"]
    assert [a[2] for a in argvs[1:]] == [f"{stamps}/tank/my+20data@none", f"{stamps}/tank@none"]
    assert {c["selection"] for c in default_calls} == {'{"roots": [], "exclude": []}'}
    # another REMOTE: its own stamps, so everything is sent again
    overridden = override_calls[-1]["env"]
    assert (overridden["ZMAKE_REMOTE"], overridden["ZMAKE_COMPRESS"]) == ("other", "none")
    check_umount(argvs_of(override_calls)[0], space.stamps("_0/other/b_cack"))
    sent = sent_names(argvs_of(override_calls)[1:], space.stamps("_0/other/b_cack"), plan)
    assert sent == ["tank/my data", "tank"]


def test_stamps_are_kept_per_remote_and_dest(recorders: Recorders) -> None:
    plan = full_plan(inventory_of(MIXED_TREE))
    everything = sorted(name for name, _, _ in MIXED_TREE)
    with workspace(recorders, plan) as space:
        assert len(argvs_of(space.make("-j4"))) == len(everything) + 1
        # another backup target: everything again, stamped in its own folder
        other = space.make("-j4", "REMOTE=x", "DEST=a b:c")
        assert {(c["env"]["ZMAKE_REMOTE"], c["env"]["ZMAKE_DEST"]) for c in other} == {
            ("x", "a b:c")
        }
        argvs = argvs_of(other)
        check_umount(argvs[0], space.stamps("_0/x/a_sb_cc"))  # space → _s, : → _c
        assert sorted(sent_names(argvs[1:], space.stamps("_0/x/a_sb_cc"), plan)) == everything
        assert space.make("-j4", "REMOTE=x", "DEST=a b:c") == []
        assert space.make("-j4") == []
        folders = {"/".join(Path(f).parts[:3]) for f in space.stamp_files()}
        assert folders == {"_0/_0/_0", "_0/x/a_sb_cc"}
        # STAMPS on the command line names the folder itself
        elsewhere = space.root / "elsewhere"
        argvs = argvs_of(space.make("-j4", f"STAMPS={elsewhere}"))
        check_umount(argvs[0], elsewhere)
        assert sorted(sent_names(argvs[1:], elsewhere, plan)) == everything
        assert space.make("-j4", f"STAMPS={elsewhere}") == []


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


@pytest.mark.parametrize(
    ("remote", "dest", "folder"),
    [
        ("nas", "", "nas/_0"),
        ("", "backup", "_0/backup"),
        ("", "", "_0/_0"),
        ("me@backup.example", "b:ack", "me@backup_oexample/b_cack"),
        ("a_b", "_0", "a_ub/_u0"),  # `_` is escaped first: an escape in a value stays apart
        ("ssh://me@nas:2222", "back up", "ssh_c_l_lme@nas_c2222/back_sup"),
        ("[fe80::1%eth0]", "x*y?", "_bfe80_c_c1_peth0_k/x_ay_q"),
        ('o\'brien@"nas"', "x;y|z", "o_tbrien@_dnas_d/x_my_vz"),
        ("a\\b&c=d", "é#(,)", "a_rb_nc_ed/é#(,)"),
    ],
)
def test_stamps_folder_is_the_encoded_remote_then_the_encoded_dest(
    tmp_path: Path, remote: str, dest: str, folder: str
) -> None:
    assert zmake_safe(remote) + "/" + zmake_safe(dest) == folder  # the table is the spec
    assert stamps_folder_of(tmp_path, f"REMOTE={remote}", f"DEST={dest}") == (f"_0/{folder}", [])
    pulled = stamps_folder_of(tmp_path, f"SOURCE={remote}", f"DEST={dest}")
    assert pulled == (f"{zmake_safe(remote)}/_0/{zmake_safe(dest)}", [])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.text(alphabet=ENCODED_ALPHABET, max_size=8).filter(lambda v: not v.startswith(" ")),
        min_size=1,
        max_size=12,
    )
)
def test_make_s_zmake_safe_is_the_documented_encoding(values: list[str]) -> None:
    """(make drops a command-line value's leading blanks: none here.)"""
    with tempfile.TemporaryDirectory() as work:
        assignments = [f"P{i}={value}" for i, value in enumerate(values)]
        _, encoded = stamps_folder_of(Path(work), *assignments)
    assert encoded == [zmake_safe(value) for value in values]


@given(st.text(alphabet=ENCODED_ALPHABET), st.text(alphabet=ENCODED_ALPHABET))
def test_zmake_safe_is_injective_and_gives_one_plain_file_name(a: str, b: str) -> None:
    if a != b:
        assert zmake_safe(a) != zmake_safe(b)
    assert not set(SAFE_ESCAPES) - {"_"} & set(zmake_safe(a)), zmake_safe(a)
    assert re.fullmatch(r"([^_]|_[usclpaqbktdmvrneo0])+", zmake_safe(a)), zmake_safe(a)


def test_zmake_safe_exhaustive_short_strings() -> None:
    alphabet = "_usc0 :/"
    names = ["".join(p) for n in range(5) for p in itertools.product(alphabet, repeat=n)]
    assert len({zmake_safe(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    "remote",
    [
        "ssh://me@nas:2222",
        "[fe80::1%eth0]",
        "me@nas*?",
        "o'brien@nas",
        'me@"nas"',
        "a;b|c&d=e\\f",
        "me@nas#2 (x),y",
        "_0",
        "..",
    ],
)
def test_odd_remotes_get_their_own_stamps(recorders: Recorders, remote: str) -> None:
    plan = full_plan(inventory_of(MIXED_TREE))
    with workspace(recorders, plan) as space:
        calls = space.make("-j4", f"REMOTE={remote}")
        argvs = argvs_of(calls)
        assert len(argvs) == len(MIXED_TREE) + 1
        assert {c["env"]["ZMAKE_REMOTE"] for c in calls} == {remote}
        folder = space.stamps(f"_0/{zmake_safe(remote)}/_0")
        check_umount(argvs[0], folder)
        assert sorted(sent_names(argvs[1:], folder, plan)) == sorted(n for n, _, _ in MIXED_TREE)
        assert folder.resolve().parents[2] == space.base.resolve()  # below the stamps root
        assert len(space.stamp_files()) == len(argvs)
        assert space.make("-j4", f"REMOTE={remote}") == []
        assert len(argvs_of(space.make("-j4"))) == len(MIXED_TREE) + 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("REMOTE=nas", "DEST=backup-tank"), ("REMOTE=nas-backup", "DEST=tank")),
        (("REMOTE=nas", "DEST=back:up"), ("REMOTE=nas", "DEST=back_up")),
        (("REMOTE=nas", "DEST=back:up"), ("REMOTE=nas", "DEST=back_cup")),  # `:` → _c
        (("REMOTE=nas/x", "DEST=y"), ("REMOTE=nas", "DEST=x/y")),
        (("REMOTE=", "DEST=x"), ("REMOTE=_0", "DEST=x")),  # empty → _0
        (("REMOTE=a b", "DEST=c"), ("REMOTE=a_sb", "DEST=c")),
        (("REMOTE=x", "DEST=."), ("REMOTE=.", "DEST=x")),
    ],
)
def test_different_backup_targets_never_share_stamps(
    recorders: Recorders, first: tuple[str, str], second: tuple[str, str]
) -> None:
    with workspace(recorders, full_plan(inventory_of(MIXED_TREE))) as space:
        assert len(argvs_of(space.make("-j4", *first))) == len(MIXED_TREE) + 1
        # a different receiving host or pool holds none of it yet: all must be sent
        assert len(argvs_of(space.make("-j4", *second))) == len(MIXED_TREE) + 1
        assert space.make("-j4", *first) == space.make("-j4", *second) == []


# --- settings: make's command line overrides them, the environment never does -----------------

SMALL_TREE = [("tank", 1, "off"), ("tank/a b", 2, "off")]
DEFAULT_ENV = {
    "ZMAKE_REMOTE": "",
    "ZMAKE_SOURCE": "",
    "ZMAKE_SSH": "ssh",
    "ZMAKE_DEST": "",
    "ZMAKE_COMPRESS": "none",
    "ZMAKE_READONLY": "on",
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


def test_the_environment_never_changes_a_setting(recorders: Recorders) -> None:
    plan = full_plan(inventory_of(SMALL_TREE))
    with workspace(recorders, plan) as space:
        evil_stamps = space.root / "evil-stamps"
        env = {
            "ZMAKE": str(recorders.override),
            "REMOTE": "evil",
            "SSH": "evil -p 1",
            "DEST": "evil",
            "COMPRESS": "zstd",
            "STAMPS": str(evil_stamps),
            # what the recipes export for zmake send: the Makefile's values win there too
            "ZMAKE_REMOTE": "evil",
            "ZMAKE_SSH": "evil -p 1",
            "ZMAKE_DEST": "evil",
            "ZMAKE_COMPRESS": "zstd",
        }
        calls = space.make("-j2", env=env)
        check_calls(calls, "zmake-default", DEFAULT_ENV, space.stamps(), plan)
        assert space.make("-j2", env=env) == space.make("-j2") == []
        assert not evil_stamps.exists()
        # the command line still overrides, with the environment as it was
        calls = space.make("-j2", "REMOTE=x", env=env)
        check_calls(calls, "zmake-default", {**DEFAULT_ENV, "ZMAKE_REMOTE": "x"},
                    space.stamps("_0/x/_0"), plan)  # fmt: skip
        assert not evil_stamps.exists()


@pytest.mark.parametrize(
    ("variable", "value", "changed"),
    [
        ("ZMAKE", "<override recorder>", {}),
        ("REMOTE", "me@nas", {"ZMAKE_REMOTE": "me@nas"}),
        ("SSH", "ssh -p 2222", {"ZMAKE_SSH": "ssh -p 2222"}),
        ("DEST", "backup", {"ZMAKE_DEST": "backup"}),
        ("COMPRESS", "zstd", {"ZMAKE_COMPRESS": "zstd"}),
        ("STAMPS", "<root>/mine", {}),
    ],
)
def test_a_setting_comes_from_make_s_command_line_not_the_environment(
    recorders: Recorders, variable: str, value: str, changed: dict[str, str]
) -> None:
    plan = full_plan(inventory_of(SMALL_TREE))
    with workspace(recorders, plan) as space:
        value = value.replace("<override recorder>", str(recorders.override))
        value = value.replace("<root>", str(space.root))
        evil = {variable: value}  # the very value, in the environment: ignored
        check_calls(space.make("-j2", env=evil), "zmake-default", DEFAULT_ENV, space.stamps(), plan)
        assert not (space.root / "mine").exists()
        assert space.make("-j2", env=evil) == []
        # on the command line (the environment holding something else): it counts
        shutil.rmtree(space.base)  # from scratch: that run must send everything again
        calls = space.make("-j2", f"{variable}={value}", env={variable: "evil"})
        stamps = {
            "REMOTE": space.stamps(f"_0/{zmake_safe(value)}/_0"),
            "DEST": space.stamps(f"_0/_0/{zmake_safe(value)}"),
            "STAMPS": Path(value),
        }.get(variable, space.stamps())
        argv0 = "zmake-override" if variable == "ZMAKE" else "zmake-default"
        check_calls(calls, argv0, {**DEFAULT_ENV, **changed}, stamps, plan)
        assert space.make("-j2", f"{variable}={value}") == []


@pytest.mark.parametrize("char", [" ", "\t", "\n", *":#%$'\"\\;=|&*?[]"])
def test_a_stamps_folder_make_cannot_name_is_refused(char: str) -> None:
    plan = mixed_scenario().plan
    settings_ = RenderSettings("z", "", "ssh", "", "none", "c", "s", stamps=f"/srv/r{char}n/stamps")
    with pytest.raises(UsageError, match="run directory"):
        render_makefile(plan, settings_, "t")


def test_a_stamps_folder_with_other_odd_characters_works(recorders: Recorders) -> None:
    scenario = mixed_scenario()
    with workspace(recorders, scenario.plan, base="run(1),@+é!~{x}^/stamps") as space:
        argvs = argvs_of(space.make("-j4"))
        check_umount(argvs[0], space.stamps())
        assert sorted(sent_names(argvs[1:], space.stamps(), scenario.plan)) == sorted(
            scenario.selected
        )
        assert len(space.stamp_files()) == len(argvs)
        assert space.make("-j4") == []


@settings(max_examples=10, deadline=None)
@given(trees(max_datasets=4))
def test_makefile_header_and_defaults(tree: GenTree) -> None:
    inventory = parse_source(tree.list_output(), tree.get_output())
    plan = build_plan(inventory, select(inventory, [tree.pool], []))
    settings_ = RenderSettings("zmake", "", "ssh", "", "none", "zmake generate x", "capture f")
    makefile = render_makefile(plan, settings_, "9.9")
    assert makefile.startswith("# Generated by zmake 9.9.")
    assert "zmake generate x" in makefile.splitlines()[1]
    assert ".DEFAULT_GOAL := all" in makefile
    for variable in MAKEFILE_VARIABLES:  # plain `=`: the command line overrides, not the env
        assert len(re.findall(rf"^{variable} = ", makefile, re.MULTILINE)) == 1, variable
    assert not re.search(r"^[^#\t]*\?=", makefile, re.MULTILINE)
    assert re.search(
        r"^STAMPS = /run/zmake/stamps/\$\(call zmake_safe,\$\(SOURCE\)\)/"
        r"\$\(call zmake_safe,\$\(REMOTE\)\)/\$\(call zmake_safe,\$\(DEST\)\)$",
        makefile,
        re.MULTILINE,
    )


def test_selection_is_roots_minus_exclusions() -> None:
    selection = Selection(("tank/home", "tank/vm"), ("tank/home/tmp", "tank/vm/old*"))
    assert "tank/home" in selection and "tank/home/alice" in selection
    assert "tank/home/tmp" not in selection and "tank/home/tmp/x" in selection  # not children
    assert "tank/vm/old" not in selection and "tank/vm/old/x" not in selection  # a glob does
    assert "tank" not in selection and "tank/homes" not in selection
    assert 42 not in selection
