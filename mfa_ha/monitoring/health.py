"""Replication health for the ``pgrepl`` beacon: one short read of the local server, and
the pure rule that turns the previous state and a new reading into events on transitions
only (with hysteresis), plus a periodic heartbeat.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields

import psycopg2
import psycopg2.extras

from mfa_ha import timing
from mfa_ha.errors import InvalidInput
from mfa_ha.postgres.config import PostgresConfig
from mfa_ha.postgres.replication import DEFAULT_LAG_LIMIT_BYTES
from mfa_ha.postgres.versions import LAG_SECONDS, RECEIVER_SENDER_HOST, RECEIVER_SENDER_PORT


@dataclass(frozen=True)
class Thresholds:
    report_interval: float = 60
    # a primary with no standby streaming from it: a primary cut off during a failover is
    # fenced by its first heartbeat once its links return, so it beats this often
    alone_report_interval: float = 5
    lag_warn_bytes: int = DEFAULT_LAG_LIMIT_BYTES
    lag_crit_bytes: int = 256 * 1024 * 1024
    lag_warn_seconds: float = 30
    lag_crit_seconds: float = 300
    hysteresis: float = 0.8  # back to ok only below this fraction of the warn thresholds
    receiver_down_after: int = 3  # consecutive polls without streaming
    slot_max_retained_bytes: int = 1024**3
    slot_inactive_seconds: float = 600
    pause_warn_seconds: float = 4 * 3600  # a pause of automatic failover longer than this is alerted


CONFIG_KEYS = {f.name for f in fields(Thresholds)} | {"interval", "disable_during_state_run"}


def thresholds(config: dict) -> Thresholds:
    """The beacon's configuration checked; every bad key or value named."""
    if not isinstance(config, dict):
        raise InvalidInput("beacons:pgrepl: must be a list of one-key mappings")
    unknown = {k for k in config if not str(k).startswith("_")} - CONFIG_KEYS  # Salt adds _beacon_name
    problems = [f"beacons:pgrepl: unknown key(s) {', '.join(sorted(unknown))}"] if unknown else []
    values = {}
    for field in fields(Thresholds):
        if field.name not in config:
            continue
        raw = config[field.name]
        try:
            value = int(raw) if field.type == "int" else float(raw)
            if isinstance(raw, bool) or value <= 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"beacons:pgrepl:{field.name}: must be a positive number, got {raw!r}")
            continue
        values[field.name] = value
    if "hysteresis" in values and not values["hysteresis"] < 1:
        problems.append(f"beacons:pgrepl:hysteresis: must be below 1, got {values['hysteresis']}")
    if problems:
        raise InvalidInput("; ".join(problems))
    return Thresholds(**values)


READ_SQL = f"""
SELECT json_build_object(
  'role', CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END,
  'started_at', extract(epoch FROM pg_postmaster_start_time()),
  'timeline', CASE WHEN pg_is_in_recovery()
                   THEN greatest((SELECT timeline_id FROM pg_control_checkpoint()),
                                 (SELECT received_tli FROM pg_stat_wal_receiver))
                   ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  'receive_lsn', pg_last_wal_receive_lsn()::text,
  'replay_lsn', pg_last_wal_replay_lsn()::text,
  'lag_bytes', CASE WHEN pg_is_in_recovery()
                    THEN greatest(coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0), 0)
               END,
  'lag_seconds', CASE WHEN pg_is_in_recovery() THEN {LAG_SECONDS} END,
  'receiver', (SELECT json_build_object('status', status, 'sender_host', {RECEIVER_SENDER_HOST},
                                        'sender_port', {RECEIVER_SENDER_PORT}, 'slot', slot_name)
               FROM pg_stat_wal_receiver r),
  'replicas', (SELECT coalesce(json_agg(json_build_object(
                   'name', application_name, 'state', state,
                   'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),
                   'lag_seconds', extract(epoch FROM replay_lag))), '[]'::json)
               FROM pg_stat_replication WHERE NOT pg_is_in_recovery()),
  'slots', (SELECT coalesce(json_agg(json_build_object(
                'name', slot_name, 'active', active,
                'retained_bytes', pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                                       ELSE pg_current_wal_lsn() END, restart_lsn))), '[]'::json)
            FROM pg_replication_slots)
)
"""


def read(cfg: PostgresConfig) -> dict | None:
    """Everything the beacon needs in one connection and one query; None when the server
    does not accept connections. No subprocess on this path."""
    try:
        conn = psycopg2.connect(
            host=cfg.host,
            port=cfg.port,
            user=cfg.superuser,
            dbname=cfg.dbname,
            connect_timeout=timing.BEACON_CONNECT_SECONDS,
            application_name="mfa_ha_beacon",
        )
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(READ_SQL)
            return cur.fetchone()[0]
    except psycopg2.Error:
        return None
    finally:
        conn.close()


# -- transitions --------------------------------------------------------------------------
def _lag_level(reading: dict, t: Thresholds, previous: str) -> str:
    lag_b, lag_s = float(reading.get("lag_bytes") or 0), float(reading.get("lag_seconds") or 0)
    if lag_b >= t.lag_crit_bytes or lag_s >= t.lag_crit_seconds:
        return "critical"
    if lag_b >= t.lag_warn_bytes or lag_s >= t.lag_warn_seconds:
        return "critical" if previous == "critical" and _above_crit_hysteresis(lag_b, lag_s, t) else "warning"
    if previous != "ok" and (lag_b >= t.lag_warn_bytes * t.hysteresis or lag_s >= t.lag_warn_seconds * t.hysteresis):
        return previous
    return "ok"


def _above_crit_hysteresis(lag_b: float, lag_s: float, t: Thresholds) -> bool:
    return lag_b >= t.lag_crit_bytes * t.hysteresis or lag_s >= t.lag_crit_seconds * t.hysteresis


def _figures(reading: dict) -> dict:
    keep = ("role", "timeline", "receive_lsn", "replay_lsn", "lag_bytes", "lag_seconds")
    return {k: reading.get(k) for k in keep}


def transitions(
    state: dict, reading: dict | None, t: Thresholds, now: float, paused: dict | None = None
) -> tuple[list[dict], dict]:
    """``(events, new_state)``: an event only when something changed since ``state``.
    ``now``: wall-clock seconds; ``paused``: this node's pause record (maintenance mode)."""
    state = dict(state or {})
    events = _pause_events(state, paused, t, now)
    if reading is None:
        if state.get("server") != "down":
            events.append({"tag": "server/down", "severity": "critical"})
        state["server"] = "down"
        return events, state
    if state.get("server") == "down":
        events.append({"tag": "server/up", "severity": "info", **_figures(reading)})
    state["server"] = "up"
    role = reading.get("role")
    if state.get("role") and state["role"] != role:
        events.append(
            {
                "tag": "role/changed",
                "severity": "warning",
                "old": state["role"],
                "new": role,
                "timeline": reading.get("timeline"),
            }
        )
    state["role"] = role
    if role == "standby":
        events += _standby_events(state, reading, t)
    else:
        state.update(lag="ok", receiver_misses=0, receiver="up")
    events += _slot_events(state, reading, t, now)
    if now - float(state.get("last_report") or 0) >= _report_every(reading, t):
        events.append(
            {
                "tag": "heartbeat",
                **_figures(reading),
                "receiver": reading.get("receiver"),
                "replicas": reading.get("replicas"),
                "slots": reading.get("slots"),
            }
        )
        state["last_report"] = now
    return events, state


def _report_every(reading: dict, t: Thresholds) -> float:
    alone = reading.get("role") == "primary" and not any(
        r.get("state") == "streaming" for r in reading.get("replicas") or []
    )
    return min(t.report_interval, t.alone_report_interval) if alone else t.report_interval


def _standby_events(state: dict, reading: dict, t: Thresholds) -> list[dict]:
    events = []
    previous = state.get("lag", "ok")
    level = _lag_level(reading, t, previous)
    rank = {"ok": 0, "warning": 1, "critical": 2}
    if rank[level] > rank[previous]:
        events.append(
            {
                "tag": "lag/alert",
                "severity": level,
                "lag_bytes": float(reading.get("lag_bytes") or 0),
                "lag_seconds": float(reading.get("lag_seconds") or 0),
                "thresholds": _crossed(reading, t),
            }
        )
    elif level == "ok" and previous != "ok":
        events.append(
            {
                "tag": "lag/ok",
                "severity": "info",
                "lag_bytes": float(reading.get("lag_bytes") or 0),
                "lag_seconds": float(reading.get("lag_seconds") or 0),
                "was": previous,
            }
        )
    state["lag"] = level
    streaming = (reading.get("receiver") or {}).get("status") == "streaming"
    state["receiver_misses"] = 0 if streaming else int(state.get("receiver_misses") or 0) + 1
    if not streaming and state["receiver_misses"] >= t.receiver_down_after and state.get("receiver") != "down":
        events.append(
            {
                "tag": "receiver/down",
                "severity": "critical",
                "polls": state["receiver_misses"],
                "receiver": reading.get("receiver"),
            }
        )
        state["receiver"] = "down"
    elif streaming and state.get("receiver") == "down":
        events.append({"tag": "receiver/up", "severity": "info", "receiver": reading.get("receiver")})
        state["receiver"] = "up"
    elif streaming:
        state["receiver"] = "up"
    return events


def _crossed(reading: dict, t: Thresholds) -> dict:
    lag_b, lag_s = float(reading.get("lag_bytes") or 0), float(reading.get("lag_seconds") or 0)
    names = {
        "lag_warn_bytes": lag_b >= t.lag_warn_bytes,
        "lag_crit_bytes": lag_b >= t.lag_crit_bytes,
        "lag_warn_seconds": lag_s >= t.lag_warn_seconds,
        "lag_crit_seconds": lag_s >= t.lag_crit_seconds,
    }
    return {name: getattr(t, name) for name, crossed in names.items() if crossed}


def _slot_events(state: dict, reading: dict, t: Thresholds, now: float) -> list[dict]:
    events, alerted, inactive_since = (
        [],
        dict(state.get("slots_alerted") or {}),
        dict(state.get("inactive_since") or {}),
    )
    for slot in reading.get("slots") or []:
        name = slot["name"]
        if slot.get("active"):
            inactive_since.pop(name, None)
        else:
            inactive_since.setdefault(name, now)
        retained = float(slot.get("retained_bytes") or 0)
        idle = now - inactive_since[name] if name in inactive_since else 0
        bad = retained > t.slot_max_retained_bytes or idle > t.slot_inactive_seconds
        if bad and not alerted.get(name):
            events.append(
                {
                    "tag": "slot/alert",
                    "severity": "warning",
                    "slot": name,
                    "retained_bytes": retained,
                    "inactive_seconds": round(idle, 1),
                    "thresholds": {
                        "slot_max_retained_bytes": t.slot_max_retained_bytes,
                        "slot_inactive_seconds": t.slot_inactive_seconds,
                    },
                }
            )
        alerted[name] = bad
    names = {s["name"] for s in reading.get("slots") or []}
    state["slots_alerted"] = {k: v for k, v in alerted.items() if k in names}
    state["inactive_since"] = {k: v for k, v in inactive_since.items() if k in names}
    return events


# -- the node's own word: which events its beacon fired ------------------------------------------
FIRED_KEPT = 200  # the latest events a node can still confirm


def state_path(cachedir: str) -> str:
    return os.path.join(cachedir, "mfa_ha", "beacon_pgrepl.json")


def _pause_events(state: dict, paused: dict | None, t: Thresholds, now: float) -> list[dict]:
    """One warning per pause that outlasts ``pause_warn_seconds``, and word when it ends."""
    alerted = state.get("pause_alerted")
    if not paused:
        state.pop("pause_alerted", None)
        return (
            [{"tag": "pause/ok", "severity": "info", "summary": "automatic failover no longer paused"}]
            if alerted
            else []
        )
    age = now - float(paused.get("at") or now)
    if age < t.pause_warn_seconds or alerted == paused.get("id"):
        return []
    state["pause_alerted"] = paused.get("id")
    why = f": {paused['reason']}" if paused.get("reason") else ""
    summary = (
        f"automatic failover paused for {age / 3600:.1f} h (limit {t.pause_warn_seconds / 3600:g} h) by "
        f"{paused.get('by') or '?'}{why}; while paused no failover happens (salt-run mfa_ha.unpause ends it)"
    )
    return [{"tag": "pause/alert", "severity": "warning", "summary": summary}]


def record_fired(state: dict, event: dict, now: float) -> str:
    """Give ``event`` an unguessable id and remember it in ``state``: the master acts on an
    event only once the node it names confirms, by this id, that its beacon fired it."""
    event_id = secrets.token_hex(16)
    fired = dict(state.get("fired") or {})
    fired[event_id] = {"tag": event["tag"], "severity": event.get("severity"), "time": now}
    if event.get("summary"):
        fired[event_id]["summary"] = event["summary"]
    state["fired"] = dict(sorted(fired.items(), key=lambda item: item[1]["time"])[-FIRED_KEPT:])
    return event_id


def fired(state: dict, event_id: str) -> dict | None:
    return (state.get("fired") or {}).get(str(event_id))


# -- state between polls ------------------------------------------------------------------------
