"""Synchronous replication that drops to asynchronous only with the witness's word
(``mfa_ha:replication:synchronous: on``).

While the standby acknowledges, every commit on the primary waits for it, so the standby
holds every write a client was told is done. When it stops acknowledging for
``timing.SYNC_LOST_SECONDS``, the primary's keeper *asks* (state ``asked``, with a request
id and the primary's WAL position); the witness records on the master, durably, that the
standby is no longer promotable (since when, from which LSN) and only then gives its word
back in the next renewal; the keeper then clears ``synchronous_standby_names`` (state
``degraded``) and commits go on without the standby. A primary that cannot reach the master
never gets the word: its commits wait, nothing is acknowledged, and its lease fences it as
without synchronous replication.

Back: once the standby streams again and is within ``CATCH_UP_BYTES`` of the primary, the
keeper names it again (``resyncing``, from the WAL position at that moment); once it is a
synchronous standby with everything up to that position, the keeper says ``sync`` and the
witness records it promotable. A keeper new to its primary starts ``resyncing`` from the
position it first sees (naming the standby as soon as it is close by when the promotion
cleared the names: a switchover or a failover that recorded the old primary as behind
first), and the witness counts a standby it has no record of as not yet promotable. At every moment the standby either holds every acknowledged commit or the
master's record does not say it is promotable.

``step`` decides (a pure function of what the keeper measured); ``observe`` and ``apply``
are the SQL.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

from mfa_ha.lsn import to_int, to_str
from mfa_ha.postgres import synchronous
from mfa_ha.postgres.server import Server

CATCH_UP_BYTES = 1024 * 1024  # a standby this close is named again: commits then wait for little
STATES = ("sync", "asked", "degraded", "resyncing")

OBSERVE_SQL = """
SELECT pg_current_wal_lsn()::text AS current_lsn,
       current_setting('synchronous_standby_names') AS names,
       (SELECT row_to_json(r) FROM (SELECT sync_state, state, flush_lsn::text AS flush_lsn
                                    FROM pg_stat_replication WHERE application_name = %s
                                    ORDER BY flush_lsn DESC NULLS LAST LIMIT 1) r) AS standby,
       coalesce((SELECT extract(epoch FROM max(now() - state_change))::float8
                 FROM pg_stat_activity WHERE wait_event = 'SyncRep'), 0) AS waiting_s
"""


@dataclass(frozen=True)
class Observed:
    """What the keeper measured on its primary this poll."""

    current_lsn: int
    standby_state: str | None  # pg_stat_replication.state ("streaming"), None when not connected
    standby_sync: bool  # sync_state 'sync': a commit waits for it
    standby_flush: int | None
    waiting_s: float  # the oldest commit waiting for a synchronous standby
    names_set: bool = True  # synchronous_standby_names names a standby now


@dataclass
class SyncState:
    """What the keeper keeps between polls (and shows the witness through ``pgrepl.lease_renew``)."""

    state: str = "resyncing"  # a keeper new to this primary proves the standby holds all first
    request: str | None = None  # the request the witness's word must name
    lsn: str | None = None  # asked/degraded: the point of degradation; resyncing: the point it must reach
    since: float | None = None  # wall clock of the last change, for the record
    lost_since: float | None = None  # monotonic: when the standby stopped acknowledging

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict | None) -> SyncState:
        known = {k: v for k, v in (record or {}).items() if k in cls.__dataclass_fields__}
        state = cls(**known)
        return state if state.state in STATES else cls()


def acknowledging(seen: Observed, lost_after: float) -> bool:
    """The standby is a synchronous standby and no commit has waited for it for ``lost_after``."""
    return seen.standby_sync and seen.waiting_s < lost_after


def close_by(seen: Observed) -> bool:
    """The standby streams within ``CATCH_UP_BYTES`` of the primary: naming it costs little wait."""
    streaming = seen.standby_state == "streaming" and seen.standby_flush is not None
    return streaming and seen.current_lsn - seen.standby_flush <= CATCH_UP_BYTES


def step(
    state: SyncState, seen: Observed, word: str | None, now: float, wall: float, lost_after: float
) -> tuple[SyncState, str | None]:
    """The next state and the action it takes (``degrade``: clear the names; ``resync``:
    name the standby again; None). ``word``: the request id the witness last allowed."""
    if state.state == "degraded":
        if close_by(seen):
            return SyncState("resyncing", since=wall), "resync"
        return state, "degrade" if seen.names_set else None  # named again meanwhile: dropped again
    if state.state == "resyncing" and not seen.names_set and close_by(seen):
        # a new primary whose promotion cleared the names (the master recorded the old one behind first)
        return SyncState("resyncing", since=wall, lost_since=state.lost_since), "resync"
    if state.state == "asked":
        if word == state.request:
            return SyncState("degraded", state.request, state.lsn, wall), "degrade"
        if acknowledging(seen, lost_after):  # back before the word: it may be recorded, so it resyncs
            return SyncState("resyncing", since=wall), None
        return state, None
    if state.state == "resyncing" and state.lsn is None and seen.standby_sync:
        # the first poll that sees the standby acknowledging: every commit from here waits for it
        state = SyncState("resyncing", lsn=to_str(seen.current_lsn), since=wall, lost_since=state.lost_since)
    if acknowledging(seen, lost_after):
        if state.state == "resyncing" and (state.lsn is None or (seen.standby_flush or 0) < to_int(state.lsn)):
            return state, None
        return SyncState("sync", since=wall if state.state != "sync" else state.since), None
    lost_since = state.lost_since if state.lost_since is not None else now
    if now - lost_since < lost_after:
        return SyncState(state.state, lsn=state.lsn, since=state.since, lost_since=lost_since), None
    asked = SyncState("asked", "r" + secrets.token_hex(6), to_str(seen.current_lsn), wall)
    return asked, None


def observe(server: Server, standby_name: str) -> Observed:
    row = server.query_one(OBSERVE_SQL, (standby_name,))
    standby = row.get("standby") or {}
    return Observed(
        current_lsn=to_int(row["current_lsn"]),
        standby_state=standby.get("state"),
        standby_sync=standby.get("sync_state") == "sync",
        standby_flush=to_int(standby["flush_lsn"]) if standby.get("flush_lsn") else None,
        waiting_s=float(row.get("waiting_s") or 0),
        names_set=bool((row.get("names") or "").strip()),
    )


def apply(server: Server, action: str, names: str) -> None:
    """``degrade``: no synchronous standby; ``resync``: ``names`` again."""
    synchronous.name(server, "" if action == "degrade" else names)
