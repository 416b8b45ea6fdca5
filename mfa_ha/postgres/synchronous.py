"""Synchronous replication (``mfa_ha:replication:synchronous``): which settings each node runs
with so that a commit is acknowledged only once the other node holds it. ``strict`` never
drops the standby; ``on`` drops it only with the witness's word (``mfa_ha.unattended.syncguard``).

Each node names the other node's ``application_name`` (its slot) in
``synchronous_standby_names``. A standby ignores the setting, so a node that is promoted
already waits for its peer from its first commit: a switchover, a failover and a rejoin need
no step of their own, and a clone or a rewind cannot carry the primary's value over (the
settings are this node's own, re-written after both).
"""

from __future__ import annotations

from mfa_ha.errors import InvalidInput

MODES = ("off", "on", "strict")
OWN_SETTINGS = ("synchronous_standby_names", "synchronous_commit")  # decided here while not off
COMMIT_LEVELS = ("on", "remote_apply")  # both wait for the standby's flush; remote_apply for its replay too


def mode(value) -> str:
    """The pillar's value as a mode: YAML reads a bare on/off as a boolean."""
    if value is None or value is False:
        return "off"
    text = "on" if value is True else str(value).strip().lower()
    if text not in MODES:
        raise InvalidInput(f"mfa_ha:replication:synchronous: {value!r} is not one of {', '.join(MODES)}")
    return text


def commit_level(value) -> str:
    text = "on" if value in (None, True) else str(value).strip().lower()
    if text not in COMMIT_LEVELS:
        raise InvalidInput(
            f"mfa_ha:replication:synchronous_commit: {value!r} is not one of {', '.join(COMMIT_LEVELS)} "
            "(a weaker level acknowledges a commit the standby may not hold)"
        )
    return text


def node_settings(repl_cfg, nodes: dict, me: str) -> dict[str, str]:
    """The node ``me``'s own settings (``repl_cfg``: a ``ReplicationConfig``): every other node
    of ``nodes`` named by its application name (its slot); none when off (``wanted_when_off``
    keeps the server from waiting)."""
    peer_names = sorted(n["slot"] for node_id, n in nodes.items() if node_id != me)
    if repl_cfg.synchronous == "off" or not peer_names:
        return {}
    quoted = ", ".join('"' + name.replace('"', '""') + '"' for name in peer_names)
    names = quoted if len(peer_names) == 1 else f"ANY 1 ({quoted})"
    return {"synchronous_standby_names": names, "synchronous_commit": repl_cfg.synchronous_commit}


def wanted_when_off(sync_mode: str) -> dict[str, str]:
    """What the settings state holds a node to when off: no standby named (PostgreSQL's own
    default, so a node that never had one shows no change)."""
    return {"synchronous_standby_names": ""} if sync_mode == "off" else {}


def drop(server) -> None:
    """No synchronous standby from now on (ALTER SYSTEM and a reload: neither is a transaction,
    so neither waits for the standby it drops)."""
    name(server, "")


def name(server, names: str) -> None:
    server.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (names,))
    server.execute("SELECT pg_reload_conf()")


NAMING_SQL = """
SELECT pg_is_in_recovery() AS standby, current_setting('synchronous_standby_names') AS names,
       (SELECT count(*) FROM pg_stat_replication WHERE application_name = ANY(%s) AND state = 'streaming') AS streaming
"""


def not_yet(server, peer_names: list[str]) -> bool:
    """A primary names its peers only once one streams from it, or once it already names them:
    until then (setup, the standby not cloned yet) naming them would stop every commit, the
    setup's own included. A standby always names them, for when it is promoted."""
    row = server.query_one(NAMING_SQL, (list(peer_names),))
    return not row["standby"] and not (row["names"] or "").strip() and not row["streaming"]
