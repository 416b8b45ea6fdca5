"""Copies of the data directory kept aside: what is kept, what the retention removes, and
the free space a clone needs up front."""

import os

import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.postgres import keptaside
from mfa_ha.postgres.config import postgres_config

GIB = 1024**3


def test_a_clone_is_refused_up_front_naming_the_figures():
    problem = keptaside.clone_space_problem(needed=2 * GIB, free=1 * GIB, where="/opt/IBM/powersc/MFA")
    assert "needs about 2.20 GiB free in /opt/IBM/powersc/MFA" in problem
    assert "the primary's databases: 2.00 GiB" in problem and "1.00 GiB is free" in problem
    assert "keep_moved_aside" in problem and "Nothing changed" in problem
    assert keptaside.clone_space_problem(needed=2 * GIB, free=3 * GIB, where="/x") is None
    assert keptaside.clone_space_problem(needed=None, free=0, where="/x") is None  # size unknown: no check


def test_the_retention_keeps_the_newest_copies(tmp_path):
    data_dir = str(tmp_path / "mfadb")
    for stamp, label in (
        ("20261101T010203000000", "moved"),
        ("20261102T010203000000", "diverged"),
        ("20261103T010203000000", "moved"),
    ):
        os.makedirs(f"{data_dir}.{label}-{stamp}/base")
        with open(f"{data_dir}.{label}-{stamp}/base/1", "wb") as fh:
            fh.write(b"x" * 1000)
    os.makedirs(f"{data_dir}.unrelated-20261104T010203000000")  # not a label of ours: never touched
    copies = keptaside.kept(data_dir)
    assert [c["stamp"] for c in copies] == ["20261101T010203000000", "20261102T010203000000", "20261103T010203000000"]
    assert all(c["bytes"] == 1000 for c in copies)
    assert keptaside.to_remove(copies, 2) == []  # two moved copies; the diverged one is never pruned
    assert [c["stamp"] for c in keptaside.to_remove(copies, 1)] == ["20261101T010203000000"]
    removed = keptaside.prune(data_dir, 1)
    assert [c["path"] for c in removed] == [f"{data_dir}.moved-20261101T010203000000"]
    assert [c["label"] for c in keptaside.kept(data_dir)] == ["diverged", "moved"]
    assert os.path.isdir(f"{data_dir}.unrelated-20261104T010203000000")
    assert keptaside.prune(data_dir, 1) == []  # the newest moved copy stays, the diverged one too


@pytest.mark.parametrize("value", [0, -1, "two", True, 1.5])
def test_a_bad_retention_names_the_key(value):
    with pytest.raises(InvalidInput, match="mfa_ha:postgres:keep_moved_aside"):
        postgres_config({"data_dir": "/opt/IBM/powersc/MFA/mfadb", "os_user": "root", "keep_moved_aside": value})
