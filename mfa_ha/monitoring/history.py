"""Who was primary when, and why: every role change and every decision that touched a role,
kept on the master as one JSON object per line (``<cachedir>/mfa_ha/history.jsonl``),
appended and flushed to disk as it happens, so it survives a restart of the master. A record
that cannot be written raises (the caller says so in its answer and the log, never silently).

When the master's records are gone, each node's timeline history files (``pg_wal/*.history``,
written by PostgreSQL at every promotion) still tell which timeline began at which LSN;
``from_timelines`` reads them into the same shape, marked with their source.
"""

from __future__ import annotations

import json
import os
import time

KEPT_LINES = 10_000  # the newest records read back; older ones stay in the file


def entry(event: str, outcome: str, summary: str, clock=time.time, **details) -> dict:
    """One record: what happened (``event``: switchover, failover, fence, rejoin, role change,
    split brain, pause, unpause, resume), how it ended (``outcome``), in one line, and the
    nodes, timelines and LSNs it concerns (``details``, values JSON can hold)."""
    now = clock()
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "time": round(now, 3),
        "event": event,
        "outcome": outcome,
        "summary": summary,
        **{k: v for k, v in details.items() if v is not None},
    }


def append(path: str, record: dict) -> None:
    """Appends ``record``; raises OSError (a full disk, a read-only cache) for the caller to report."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line.encode("utf-8"))
        if written != len(line.encode("utf-8")):
            raise OSError(f"short write to {path} ({written} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str, limit: int | None = None) -> tuple[list[dict], int]:
    """``(records oldest first, the number of unreadable lines)``; the newest ``limit`` only."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()[-KEPT_LINES:]
    except FileNotFoundError:
        return [], 0
    records, unreadable = [], 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            unreadable += 1  # a line cut short by a crash or a full disk
            continue
        if isinstance(record, dict):
            records.append(record)
    return (records[-limit:] if limit else records), unreadable


def parse_timeline_history(text: str) -> list[dict]:
    """PostgreSQL's ``<timeline>.history``: one line per earlier timeline, ``parent  switch-LSN
    reason``; comments and blank lines skipped."""
    switches = []
    for line in text.splitlines():
        fields = line.strip().split(None, 2)
        if len(fields) < 2 or fields[0].startswith("#") or not fields[0].isdigit():
            continue
        parent = int(fields[0])
        switches.append(
            {
                "from_timeline": parent,
                "timeline": parent + 1,
                "lsn": fields[1],
                "reason": fields[2] if len(fields) > 2 else "",
            }
        )
    return switches


def from_timelines(answers: dict) -> list[dict]:
    """Records from each node's newest timeline history (``answers``: ``{node: {"timeline": n,
    "history": text}}`` or an error text): one per timeline switch, the nodes that have it."""
    seen: dict[tuple, dict] = {}
    for node, answer in sorted(answers.items()):
        if not isinstance(answer, dict) or not answer.get("history"):
            continue
        for switch in parse_timeline_history(answer["history"]):
            key = (switch["timeline"], switch["lsn"])
            record = seen.setdefault(
                key,
                {
                    "event": "promotion",
                    "outcome": "timeline began",
                    "summary": f"timeline {switch['timeline']} began at {switch['lsn']} "
                    f"(after timeline {switch['from_timeline']}; {switch['reason'] or 'no reason recorded'})",
                    "timeline": switch["timeline"],
                    "lsn": switch["lsn"],
                    "known_to": [],
                },
            )
            record["known_to"].append(node)
    return [seen[key] for key in sorted(seen)]


def table(records: list[dict]) -> str:
    """The records as lines a person reads, oldest first (like ``patronictl history``)."""
    if not records:
        return "no history recorded"
    return "\n".join(
        f"{r.get('at') or '(from timelines)':<21} {r.get('event', '?'):<12} {r.get('outcome', '?'):<15} {r.get('summary', '')}"
        for r in records
    )
