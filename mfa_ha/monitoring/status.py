"""The cluster at a glance, from every node's ``pgrepl.status`` and ``pmfad.status``, and the
phase timings of a switchover, from each node's part."""

from __future__ import annotations

import time

from mfa_ha import lsn as lsnlib
from mfa_ha import maintenance
from mfa_ha.postgres.naming import slot_name
from mfa_ha.roles import accepts_writes

# salt.function records a minion that never returned as False (or this text, by Salt release)

COLUMNS = (
    ("node", "node"),
    ("address", "address"),
    ("role", "role"),
    ("state", "state"),
    ("upstream", "upstream"),
    ("tl", "timeline"),
    ("lsn", "lsn"),
    ("lag bytes", "lag_bytes"),
    ("lag s", "lag_seconds"),
    ("sync", "sync_state"),
    ("slot", "slot"),
    ("pmfad", "pmfad"),
    ("kept aside", "kept_aside"),
    ("health", "health"),
)


def view(nodes: dict, gathered: dict, max_lag_bytes: int, paused: dict | None = None) -> dict:
    """The cluster as values (``--out=json``): a row per node with the problems found on it,
    ``healthy`` and a ``retcode`` that is non-zero when anything is unhealthy (what
    ``salt-run`` exits with). ``paused``: the master's pause record (maintenance mode); a
    node whose own record differs has a problem, since then the witness and that node's
    keeper disagree on whether automatic action may happen."""
    found = rows(nodes, gathered)
    primaries = [r for r in found if accepts_writes(r)]
    for row in found:
        row["problems"] = _problems(row, primaries, max_lag_bytes) + _pause_problems(row, paused)
    healthy = not any(row["problems"] for row in found)
    return {"nodes": found, "paused": paused, "healthy": healthy, "retcode": 0 if healthy else 1}


def _pause_problems(row: dict, paused: dict | None) -> list[str]:
    here = row.get("paused")
    if row["state"] == "no answer" or isinstance(here, str) or (here or {}).get("id") == (paused or {}).get("id"):
        return []
    if paused:
        return [
            "automatic failover paused on the master but not here: this keeper still fences (salt-run mfa_ha.pause)"
        ]
    return ["automatic failover paused here but not on the master (salt-run mfa_ha.unpause)"]


def rows(nodes: dict, gathered: dict) -> list[dict]:
    """One row of values per node; lag of a standby is measured against the primary's
    current LSN."""
    statuses = {n: (gathered.get(n) or {}).get("pgrepl.status") for n in nodes}
    primary_lsn = next((s.get("current_lsn") for s in statuses.values() if accepts_writes(s)), None)
    sync_states = _sync_states(statuses.values())
    result = []
    for node_id, node in sorted(nodes.items()):
        pg, app = statuses[node_id], (gathered.get(node_id) or {}).get("pmfad.status")
        row = {"node": node_id, "address": node["address"], "port": node["port"]}
        if not isinstance(pg, dict):
            row.update(role=None, running=None, state="no answer", error=str(pg) if pg else None)
        else:
            row.update(_pg_values(pg, primary_lsn))
            if row["role"] == "standby":
                row["sync_state"] = sync_states.get(node.get("slot") or slot_name(node_id))
        row["pmfad"] = app.get("state") if isinstance(app, dict) else None
        here = (gathered.get(node_id) or {}).get("paused")
        row["paused"] = (
            {"id": here["id"], "by": here.get("by"), "at": here.get("at")} if isinstance(here, dict) else here
        )
        copies = (gathered.get(node_id) or {}).get("kept_aside")
        if isinstance(copies, list):
            row["kept_aside"] = [{"path": c["path"], "bytes": c["bytes"]} for c in copies]
        result.append(row)
    return result


def _sync_states(statuses) -> dict[str, str]:
    """Each standby's ``sync_state`` as the primary sees it, by application name (its slot):
    ``sync`` (a commit waits for it), ``async``, ``potential`` or ``quorum``."""
    primary = next((s for s in statuses if accepts_writes(s)), None) or {}
    return {r["application_name"]: r.get("sync_state") for r in primary.get("replicas") or []}


def _pg_values(pg: dict, primary_lsn: str | None) -> dict:
    values = {
        "role": pg.get("role"),
        "running": bool(pg.get("running")),
        "state": pg.get("state"),
        "timeline": pg.get("timeline"),
    }
    if not pg.get("running"):
        return {**values, "lsn": pg.get("checkpoint_lsn")}
    if pg.get("role") == "primary":
        return {
            **values,
            "lsn": pg.get("current_lsn"),
            "slots": [{"name": s["slot_name"], "active": bool(s["active"])} for s in pg.get("slots") or []],
        }
    receiver = pg.get("receiver") or {}
    behind = lsnlib.diff(primary_lsn, pg.get("replay_lsn")) if primary_lsn else pg.get("lag_bytes")
    sender = receiver.get("sender_host")
    return {
        **values,
        "lsn": pg.get("replay_lsn"),
        "receive_lsn": pg.get("receive_lsn"),
        "receiver": receiver.get("status"),
        "upstream": f"{sender}:{receiver.get('sender_port')}" if sender else None,
        "lag_bytes": max(behind, 0) if behind is not None else None,
        "lag_seconds": _round(pg.get("lag_seconds")),
        "slot": receiver.get("slot_name"),
        "held_slots": _holding(pg.get("slots")),
    }


def _holding(slots) -> list[dict]:
    """Inactive slots that hold WAL back (a standby serves no standby: any slot there is left over)."""
    return [
        {"name": s["slot_name"], "retained_bytes": s.get("retained_bytes")}
        for s in slots or []
        if not s.get("active") and (s.get("retained_bytes") or 0) > 0
    ]


def _problems(row: dict, primaries: list[dict], max_lag_bytes: int) -> list[str]:
    if row["state"] == "no answer":
        return ["no answer"]
    problems = []
    if not row["running"]:
        problems.append(f"PostgreSQL {row['state']}")
    if len(primaries) > 1 and row in primaries:
        problems.append(f"SPLIT BRAIN: {len(primaries)} primaries")
    if not primaries:
        problems.append("no primary")
    if row["role"] == "primary" and row["running"]:
        if row["pmfad"] != "running":
            problems.append(f"pmfad {row['pmfad'] or 'unknown'} on the primary")
        problems += [f"slot {s['name']} inactive" for s in row.get("slots") or [] if not s["active"]]
        return problems
    if row["pmfad"] == "running":
        problems.append("pmfad runs on a node that is not the primary")
    if row["running"] and row["role"] == "standby":
        expected = f"{primaries[0]['address']}:{primaries[0]['port']}" if len(primaries) == 1 else None
        if row.get("receiver") != "streaming":
            problems.append(f"not streaming (receiver {row.get('receiver') or 'not running'})")
        elif expected and row.get("upstream") != expected:
            problems.append(f"streams from {row.get('upstream')}, not from the primary {expected}")
        if row.get("lag_bytes") is not None and row["lag_bytes"] > max_lag_bytes:
            problems.append(f"{row['lag_bytes']} bytes behind (max_lag_bytes {max_lag_bytes})")
        problems += [
            f"slot {s['name']} inactive on a standby, holding {s['retained_bytes']} bytes of WAL "
            "(mfa_ha.orch.rejoin or highstate drops it)"
            for s in row.get("held_slots") or []
        ]
    return problems


def _round(value):
    return round(value, 3) if isinstance(value, (int, float)) else value


def _display(row: dict) -> dict:
    """A row's values as the table shows them."""
    shown = dict(row)
    shown["address"] = f"{row['address']}:{row['port']}"
    if row.get("receiver") or (row.get("running") and row.get("role") == "standby"):
        shown["state"] = f"{row['state']}, {row.get('receiver') or 'not streaming'}"
    if row.get("slots") is not None:
        shown["slot"] = ", ".join(f"{s['name']}{'' if s['active'] else ' (inactive)'}" for s in row["slots"]) or "-"
    if "problems" in row:
        shown["health"] = "; ".join(row["problems"]) or "ok"
    shown["role"] = row.get("role") or "?"
    shown["pmfad"] = row.get("pmfad") or "?"
    if row.get("kept_aside") is not None:
        copies = row["kept_aside"]
        shown["kept_aside"] = f"{len(copies)}, {sum(c['bytes'] for c in copies) / 1024**3:.2f} GiB" if copies else "-"
    return shown


def table(data) -> str:
    """``view``'s result (or a list of rows) as a table, then the overall health."""
    found = data.get("nodes") if isinstance(data, dict) else data
    if not isinstance(found, list):
        return str(data)
    cells = [[str(v) if (v := _display(row).get(key)) is not None else "" for _, key in COLUMNS] for row in found]
    widths = [
        max(len(title), *(len(c[i]) for c in cells)) if cells else len(title) for i, (title, _) in enumerate(COLUMNS)
    ]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    lines = [line, fmt([t for t, _ in COLUMNS]), line, *(fmt(c) for c in cells), line]
    if isinstance(data, dict) and data.get("paused"):
        lines.append(f"maintenance: {maintenance.describe(data['paused'])} (salt-run mfa_ha.unpause ends it)")
    if isinstance(data, dict) and "healthy" in data:
        lines.append("cluster: healthy" if data["healthy"] else "cluster: UNHEALTHY (exit code 1)")
    return "\n".join(lines)


# -- switchover report ------------------------------------------------------------------------
def phases(parts: dict) -> dict[str, float]:
    """Seconds per phase from the nodes' wall-clock marks."""
    old = next((p["marks"] for p in parts.values() if isinstance(p, dict) and p.get("part") == "old primary"), {})
    new = next((p["marks"] for p in parts.values() if isinstance(p, dict) and p.get("part") == "new primary"), {})
    spans = {
        "app stopped on the old primary": (old.get("start"), old.get("app_stopped")),
        "PostgreSQL stopped, shutdown checkpoint proven on the target": (old.get("app_stopped"), new.get("proof")),
        "promoted": (new.get("proof"), new.get("promoted")),
        "app healthy on the new primary": (new.get("promoted"), new.get("app_healthy")),
        "app outage": (old.get("start"), new.get("app_healthy")),
        "old primary streaming again": (old.get("start"), old.get("streaming")),
    }
    return {name: round(end - begin, 3) for name, (begin, end) in spans.items() if begin and end}


def precheck_lines(orchestrate_result: dict) -> list[str]:
    """Each precheck of an orchestration's first step, with what it measured."""
    data = orchestrate_result.get("data", orchestrate_result) if isinstance(orchestrate_result, dict) else {}
    for steps in data.values():
        for step in steps.values() if isinstance(steps, dict) else []:
            decision = ((step or {}).get("changes") or {}).get("return") if isinstance(step, dict) else None
            if isinstance(decision, dict) and "checks" in decision:
                return check_lines(decision)
    return []


def check_lines(decision: dict) -> list[str]:
    """Each check of a decision (``as_dict``), with what it measured."""
    return [f"{'ok ' if c['ok'] else 'FAILED '} {c['check']}: {c['measured']}" for c in decision.get("checks") or []]


def switch_report(parts: dict, ok: bool, started: float) -> dict:
    """The switch as the nodes' parts tell it (``{minion: part}``, the parts that returned;
    ``ok``: every node's did): each phase's seconds, the whole, and the old primary's
    zero-loss proof."""
    timings = phases(parts)
    lines = [f"{name}: {seconds:.3f} s" for name, seconds in timings.items()]
    lines.append(f"whole switchover: {time.monotonic() - started:.3f} s ({'done' if ok else 'FAILED'})")
    old = next((p for p in parts.values() if isinstance(p, dict) and p.get("part") == "old primary"), {})
    proof = {k: old.get(k) for k in ("shutdown_checkpoint", "timeline_switch", "zero_loss_proof", "rewind")}
    marks = {
        m: {"part": p.get("part"), "marks": p.get("marks"), "seconds": p.get("seconds")}
        for m, p in parts.items()
        if isinstance(p, dict)
    }
    return {"ok": ok, "phases": lines, "timings": timings, "old_primary": proof, "parts": marks}


def after_failure(nodes: dict, answers: dict, gathered: dict) -> list[str]:
    """What an operator needs after a switch that failed: which node did not answer the
    switch job (``answers`` None: the switch job never ran), and the state each node is in now."""
    silent = sorted(set(nodes) - set(answers)) if answers is not None else []
    lines = [f"no answer to the switch from {', '.join(silent)}"] if silent else []
    for row in map(_display, rows(nodes, gathered)):
        lines.append(f"{row['node']} now: {row['role']}, {row['state']}, pmfad {row['pmfad']}")
    return lines
