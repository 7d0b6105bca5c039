"""zmake/core/batch.py: which small datasets share one `zmake send`, and that make still
sends every dataset once, children before parents."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support.plans import (
    AES,
    argvs_of,
    full_plan,
    inventory_of,
    prerequisites_of,
    workspace,
)
from zmake.core.batch import LEAST_BATCHES, MOST_PER_BATCH, SMALL_BYTES, batches, stamps_of
from zmake.core.plan import Plan

SMALL, BIG = 4096, SMALL_BYTES + 1


@st.composite
def wide_plans(draw: st.DrawFn) -> Plan:
    """A pool with up to three parents, each with 0-60 children of mixed sizes (some with a
    child of their own, some encrypted): siblings enough to be batched."""
    rows = [("tank", SMALL, "off")]
    for p in range(draw(st.integers(1, 3))):
        parent = f"tank/p{p} x:y"
        encryption = draw(st.sampled_from(["off", "off", AES]))
        rows.append((parent, draw(st.sampled_from([SMALL, BIG])), encryption))
        for c in range(draw(st.integers(0, 60))):
            child = f"{parent}/c{c:02d}"
            rows.append((child, draw(st.sampled_from([SMALL, SMALL, SMALL, BIG])), encryption))
            if draw(st.integers(0, 9)) == 0:
                rows.append((f"{child}/leaf", SMALL, encryption))
    return full_plan(inventory_of(rows))


@settings(max_examples=200, deadline=None)
@given(plan=wide_plans())
def test_every_dataset_is_in_one_batch_after_all_it_waits_for(plan: Plan) -> None:
    cut = batches(plan)
    names = [name for batch in cut for name in batch.names]
    assert sorted(names) == sorted(node.dataset.name for node in plan.nodes)
    position = {name: i for i, batch in enumerate(cut) for name in batch.names}
    for name, prerequisites in prerequisites_of(plan).items():
        assert all(position[p] < position[name] for p in prerequisites), name


@settings(max_examples=200, deadline=None)
@given(plan=wide_plans())
def test_only_small_siblings_nothing_waits_for_in_between_share_a_batch(plan: Plan) -> None:
    dependent = {p: n.dataset.name for n in plan.nodes for p in n.prerequisites}
    for batch in batches(plan):
        if len(batch.nodes) == 1:
            continue
        assert len(batch.nodes) <= MOST_PER_BATCH
        assert all(not n.prerequisites and n.expected_bytes <= SMALL_BYTES for n in batch.nodes)
        assert len({dependent.get(name) for name in batch.names}) == 1


@settings(max_examples=100, deadline=None)
@given(siblings=st.integers(1, 400), least=st.sampled_from([LEAST_BATCHES, 1, 2, 3, 10]))
def test_a_group_is_cut_so_that_every_job_has_work(siblings: int, least: int) -> None:
    """`least`: the jobs that can send for it (a backup's LEAST_BATCHES; a fleet source's
    host-streams): at least that many batches, as few processes as that allows."""
    rows = [("tank", BIG, "off"), *((f"tank/d{i:03d}", SMALL, "off") for i in range(siblings))]
    plan = full_plan(inventory_of(rows))
    cut = [b for b in batches(plan, least) if b.names != ("tank",)]
    size = min(MOST_PER_BATCH, math.ceil(siblings / least))
    assert [len(b.nodes) for b in cut] == [
        min(size, siblings - i) for i in range(0, siblings, size)
    ]
    if siblings <= least:
        assert all(len(b.nodes) == 1 for b in cut)  # a send per dataset
    else:
        assert len(cut) >= min(least, math.ceil(siblings / MOST_PER_BATCH))
    assert set(stamps_of(plan, least).values()) == {b.stamp for b in batches(plan, least)}


def test_a_batch_stamp_changes_with_any_members_newest_snapshot() -> None:
    rows = [("tank", BIG, "off"), *((f"tank/d{i:02d}", SMALL, "off") for i in range(40))]
    before = stamps_of(full_plan(inventory_of(rows)))
    after = stamps_of(full_plan(inventory_of(rows, newer={"tank/d07": 99999})))
    changed = {name for name in before if before[name] != after[name]}
    batch_of_d07 = {name for name, stamp in before.items() if stamp == before["tank/d07"]}
    assert changed == batch_of_d07 and len(batch_of_d07) == 3


def test_make_sends_each_dataset_once_and_the_parent_after_its_batches(recorders) -> None:
    rows = [("tank", SMALL, "off"), ("tank/big", BIG, "off"),
            *((f"tank/d{i:02d} x", SMALL, "off") for i in range(40))]  # fmt: skip
    plan = full_plan(inventory_of(rows))
    with workspace(recorders, plan) as space:
        records = space.make("-j4")
        sends = [argv for argv in argvs_of(records) if argv[0] == "send"]
        sent = [name for argv in sends for name in argv[argv.index("--") + 1 :]]
        assert sorted(sent) == sorted(name for name, _, _ in rows)
        assert sends[-1][-2:] == ["--", "tank"]
        assert max(len(argv) - argv.index("--") - 1 for argv in sends) == 3
        assert space.make("-j4") == []  # every batch's stamp is there
