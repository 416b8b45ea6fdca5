"""Writes a former primary took after another node left its history: where the histories
forked (timeline history files), and the COMMIT records this node wrote after the fork
(pg_waldump over its own WAL, the node stopped). Counted before anything discards them:
a fence of a node the operator confirmed lost, a split brain's loser, a rewind."""

from __future__ import annotations

import os

from mfa_ha import lsn as lsnlib
from mfa_ha import timing
from mfa_ha.errors import ConnectionFailed, MfaHaError
from mfa_ha.pair.peer import Upstream, identify_peer, timeline_switch_point
from mfa_ha.postgres.server import Server


def divergent_writes(server: Server, keep: Upstream, status: dict) -> dict:
    """What this stopped former primary committed after it left ``keep``'s history: the
    fork, its last write position and the COMMIT records in between (pg_waldump)."""
    timeline = int(status.get("timeline") or 0)
    fork = divergence_point(server, keep, timeline)
    return {
        "timeline": timeline,
        "fork_lsn": lsnlib.to_str(fork) if fork is not None else None,
        "last_lsn": status.get("current_lsn") or status.get("checkpoint_lsn"),
        "transactions_after_fork": count_commits(server, fork, timeline) if fork is not None else None,
    }


KEPT_UNTIL_REJOIN = "its WAL keeps them until mfa_ha.orch.rejoin rewinds it"


def describe(divergent: dict | None, fate: str = KEPT_UNTIL_REJOIN) -> str:
    """The divergent writes of a former primary, as the alert and the operator read them."""
    if not divergent or divergent.get("fork_lsn") is None:
        return "no divergent writes found (it left no history after the new primary's fork)"
    return (
        f"DIVERGENT: {divergent.get('transactions_after_fork')} transaction(s) committed on timeline "
        f"{divergent.get('timeline')} after the fork at {divergent['fork_lsn']} (up to "
        f"{divergent.get('last_lsn')}) are not on the new primary; {fate}"
    )


def divergence_point(server: Server, keep: Upstream, timeline: int) -> int | None:
    """Where this node's timeline ``timeline`` left ``keep``'s history: from this node's own
    timeline history (it was promoted) or from ``keep``'s (it was). None on one timeline."""
    keep_tli = int(identify_peer(server, keep)["timeline"])
    if keep_tli == timeline:
        return None
    if keep_tli < timeline:
        return _own_switch_point(server, keep_tli, timeline)
    try:
        return timeline_switch_point(server, keep, timeline)
    except ConnectionFailed:
        raise
    except MfaHaError:
        return None


def _own_switch_point(server: Server, ancestor: int, timeline: int) -> int | None:
    path = os.path.join(server.data_dir, "pg_wal", f"{timeline:08X}.history")
    try:
        with open(path, encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and int(fields[0]) == ancestor:
            return lsnlib.to_int(fields[1])
    return None


NO_RECORD_FROM = ("could not find a valid record after", "could not find file", "could not open file")


def holds_wal_from(server: Server, start: int, timeline: int) -> bool:
    """Whether this stopped node's WAL on ``timeline`` holds a record at ``start`` or after
    (pg_waldump reads one). False only when pg_waldump says there is none: then its history
    on that timeline ends at or before ``start``. Any other failure counts as True, so that
    pg_rewind, not this guess, decides."""
    done = server.run(
        "pg_waldump",
        "--path",
        os.path.join(server.data_dir, "pg_wal"),
        "--timeline",
        str(timeline),
        "--start",
        lsnlib.to_str(start),
        "--limit",
        "1",
        check=False,
        timeout=timing.WAL_READ_SECONDS,
    )
    if done.returncode == 0 and done.stdout.strip():
        return True
    return not any(reason in done.stderr for reason in NO_RECORD_FROM)


def count_commits(server: Server, start: int, timeline: int) -> int | None:
    """COMMIT records in this (stopped) node's WAL from ``start`` on ``timeline`` (pg_waldump)."""
    out = server.run(
        "pg_waldump",
        "--path",
        os.path.join(server.data_dir, "pg_wal"),
        "--timeline",
        str(timeline),
        "--start",
        lsnlib.to_str(start),
        "--rmgr",
        "Transaction",
        check=False,
        timeout=timing.WAL_SCAN_SECONDS,
    ).stdout
    return sum(1 for line in out.splitlines() if "desc: COMMIT" in line)
