"""The other node as this one sees it: who it is (an ``Upstream``), the one way to connect
to it, and what it says of its role, its slots and its timeline history."""

from __future__ import annotations

from dataclasses import dataclass

from mfa_ha import lsn as lsnlib
from mfa_ha import timing
from mfa_ha.errors import ConnectionFailed, MfaHaError
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres.server import Server
from mfa_ha.roles import Role


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    user: str
    slot: str | None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def peer_connect(server: Server, peer: Upstream, replication: bool = False):
    """A connection to a peer (``replication.upstream_connection``), given up after
    ``PEER_CONNECT_SECONDS``: a peer that does not answer within it counts as unreachable."""
    return repl.upstream_connection(
        server,
        peer.host,
        peer.port,
        peer.user,
        replication=replication,
        connect_timeout=timing.PEER_CONNECT_SECONDS,
        application_name="mfa_ha",
    )


def timeline_switch_point(server: Server, peer: Upstream, timeline: int) -> int | None:
    """Where ``peer``'s history left ``timeline`` (from its timeline history file), or None
    while the peer is still on that timeline. Raises when ``timeline`` is not in its history."""
    conn = peer_connect(server, peer, replication=True)
    try:
        with conn.cursor() as cur:
            cur.execute("IDENTIFY_SYSTEM")
            current = int(cur.fetchone()[1])
            if current == timeline:
                return None
            cur.execute(f"TIMELINE_HISTORY {current}")
            content = cur.fetchone()[1]
    finally:
        conn.close()
    # TIMELINE_HISTORY's content is bytea before 16 (psycopg2: a memoryview), text from 16 on.
    text = bytes(content).decode() if isinstance(content, (bytes, memoryview)) else str(content)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and int(fields[0]) == timeline:
            return lsnlib.to_int(fields[1])
    raise MfaHaError(f"timeline {timeline} is not in the history of {peer.label} (timeline {current})")


def identify_peer(server: Server, peer: Upstream) -> dict:
    return repl.identify_upstream(server, peer.host, peer.port, peer.user)


def peers(nodes: dict, me: str, user: str) -> dict[str, Upstream]:
    """Every other node as an upstream, with the slot *it* streams through."""
    return {n: Upstream(v["address"], int(v["port"]), user, v["slot"]) for n, v in nodes.items() if n != me}


def peer_in_recovery(server: Server, peer: Upstream) -> bool | None:
    """True/False from the peer itself; None when it does not accept connections."""
    try:
        conn = peer_connect(server, peer)
    except ConnectionFailed:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def peer_roles(server: Server, peers: dict[str, Upstream]) -> dict[str, str]:
    """Each peer's live role as it answers this node: primary, standby or unreachable."""
    roles = {}
    for node_id, peer in sorted(peers.items()):
        in_recovery = peer_in_recovery(server, peer)
        roles[node_id] = (
            "unreachable" if in_recovery is None else Role.STANDBY.value if in_recovery else Role.PRIMARY.value
        )
    return roles


def peer_has_slot(server: Server, peer: Upstream, slot: str) -> bool:
    conn = peer_connect(server, peer)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            return cur.fetchone() is not None
    finally:
        conn.close()
