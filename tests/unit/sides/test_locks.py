"""The dataset locks: one per dataset of a source host, so two makes never send one dataset
at once, and a fleet's sources that share a dataset name never wait for each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from zmake.core.errors import LockBusy
from zmake.sides.locks import dataset_lock


def test_one_dataset_of_one_host_is_sent_by_one_zmake(tmp_path: Path) -> None:
    with dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@laptop"):
        with pytest.raises(LockBusy, match="rpool/home: another zmake send holds its lock"):
            with dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@laptop"):
                pass
    with pytest.raises(LockBusy):  # this machine's: as before, by the name alone
        with dataset_lock(tmp_path, "rpool/home", wait=False):
            with dataset_lock(tmp_path, "rpool/home", wait=False):
                pass


def test_two_hosts_datasets_of_one_name_do_not_wait_for_each_other(tmp_path: Path) -> None:
    with (
        dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@laptop"),
        dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@desktop"),
        dataset_lock(tmp_path, "rpool/home", wait=False),
    ):
        pass
