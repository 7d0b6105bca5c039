"""zmake/targets/pool/batch.py: a batch holds all of its members' locks, or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from zmake.core.errors import LockBusy
from zmake.sides.locks import dataset_lock
from zmake.sides.runner import Runner
from zmake.targets.pool.batch import Batch

NAMES = ("tank/a", "tank/b x:y", "tank/c")


def test_a_busy_member_leaves_the_batch_holding_no_lock(tmp_path: Path) -> None:
    batch = Batch(Runner(), NAMES, tmp_path, wait=False, host=None)
    with dataset_lock(tmp_path, "tank/c", wait=False):  # another zmake sends it
        for name in NAMES:  # each send of the batch is refused; none goes on without it
            with pytest.raises(LockBusy), batch.locked(name):
                pytest.fail(f"{name} was sent while tank/c's lock was another's")
        assert batch.held is None
        with dataset_lock(tmp_path, "tank/a", wait=False):
            pass  # what the refused attempts took was given back
    # now the batch holds every member's, until its last send
    with (
        batch.locked(NAMES[0]),
        pytest.raises(LockBusy),
        dataset_lock(tmp_path, "tank/c", wait=False),
    ):
        pass
    with batch.locked(NAMES[-1]):
        pass
    with dataset_lock(tmp_path, "tank/b x:y", wait=False):
        pass
