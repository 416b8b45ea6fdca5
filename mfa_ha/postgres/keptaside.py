"""Copies of a data directory kept aside by a clone (``<data_dir>.moved-<stamp>``, a split
brain's ``.diverged-<stamp>``, a failed clone's ``.failed-<stamp>``): never removed silently.
What is kept and how big, the retention ``mfa_ha:postgres:keep_moved_aside`` (of the copies
a routine clone replaced, and of failed clones' partial copies, the newest N of each are
kept, older ones removed, each named; a split brain's ``diverged`` copies hold the only copy
of the transactions it lost and are never removed automatically), and the free space a
clone needs up front."""

from __future__ import annotations

import datetime
import glob
import logging
import os
import re
import shutil

from mfa_ha.errors import InsufficientSpace

log = logging.getLogger(__name__)

LABELS = ("moved", "diverged", "failed")
PRUNED = ("moved", "failed")  # "diverged": the operator's to remove
STAMP_FORMAT = "%Y%m%dT%H%M%S%f"
CLONE_SPACE_FACTOR = 1.1  # a clone writes the primary's databases plus the WAL streamed meanwhile


def move_aside(path: str, label: str = "moved") -> str | None:
    """Rename ``path`` with a timestamp suffix (never delete); returns the new name."""
    if not os.path.lexists(path):
        return None
    target = f"{path}.{label}-{datetime.datetime.now().strftime(STAMP_FORMAT)}"
    os.rename(path, target)
    log.warning("moved %s aside to %s", path, target)
    return target


def kept(data_dir: str) -> list[dict]:
    """The copies of ``data_dir`` kept aside, oldest first: path, label, when, bytes."""
    pattern = re.compile(re.escape(data_dir) + r"\.(" + "|".join(LABELS) + r")-(\d{8}T\d{12})$")
    found = []
    for path in glob.glob(glob.escape(data_dir) + ".*-*"):
        match = pattern.match(path)
        if match and os.path.isdir(path):
            found.append({"path": path, "label": match.group(1), "stamp": match.group(2), "bytes": tree_bytes(path)})
    return sorted(found, key=lambda copy: copy["stamp"])


def to_remove(copies: list[dict], keep: int) -> list[dict]:
    """Of each label the retention applies to, the copies beyond the newest ``keep`` (at least
    one is kept: the newest ``moved`` copy may be the one a clone under way puts back if it
    fails), oldest first."""
    keep = max(int(keep), 1)
    doomed = []
    for label in PRUNED:
        of_label = [c for c in copies if c["label"] == label]
        doomed += of_label[:-keep]
    return sorted(doomed, key=lambda copy: copy["stamp"])


def prune(data_dir: str, keep: int) -> list[dict]:
    """Remove the copies beyond the newest ``keep``; each removal is logged at WARNING."""
    removed = []
    for copy in to_remove(kept(data_dir), keep):
        shutil.rmtree(copy["path"])
        log.warning(
            "removed %s (%d bytes kept aside; mfa_ha:postgres:keep_moved_aside keeps %d)",
            copy["path"],
            copy["bytes"],
            keep,
        )
        removed.append(copy)
    return removed


def tree_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def clone_space_problem(needed: int | None, free: int, where: str) -> str | None:
    """Why a clone of ``needed`` bytes must not start with ``free`` bytes free, or None."""
    if needed is None or free >= needed * CLONE_SPACE_FACTOR:
        return None
    return (
        f"a clone needs about {_gib(needed * CLONE_SPACE_FACTOR)} free in {where} (the primary's databases: "
        f"{_gib(needed)}, plus a tenth for the WAL streamed meanwhile), and {_gib(free)} is free: free space, "
        "or remove copies kept aside (mfa_ha:postgres:keep_moved_aside). Nothing changed"
    )


def require_clone_space(data_dir: str, needed: int | None) -> None:
    where = os.path.dirname(os.path.abspath(data_dir))
    stat = os.statvfs(where)
    problem = clone_space_problem(needed, stat.f_bavail * stat.f_frsize, where)
    if problem:
        raise InsufficientSpace(problem)


def _gib(value: float) -> str:
    return f"{value / 1024**3:.2f} GiB"
