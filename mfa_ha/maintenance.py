"""Maintenance mode: automatic failover paused.

While paused, the witness does not fail over and the lease keepers do not fence; the keepers
go on measuring and say in their heartbeat what they would have done. A pause is a record in
a file on the master (``<cachedir>/mfa_ha/pause.json``, read by the witness every round) and
on each node (``<run_dir>/pause.json``, read by its keeper every poll), so it survives a
restart of the master, the minion or the keeper.

The order keeps the safety argument whole: a pause reaches the master first (the witness
stops failing over), then the nodes (the keepers stop fencing); ending it reaches the nodes
first, and the master only once every node has confirmed. The witness never fails over
while a keeper might not fence.
"""

from __future__ import annotations

import os
import secrets
import time

from mfa_ha.errors import InvalidInput
from mfa_ha.files import read_json, write_json

FILE_NAME = "pause.json"
REASON_MAX = 200


def new_record(by: str, reason, clock=time.time) -> dict:
    """A pause by ``by`` (who asked) for ``reason`` (free text, one line)."""
    reason = "" if reason is None else str(reason)
    if "\n" in reason or len(reason) > REASON_MAX:
        raise InvalidInput(f"reason: one line of at most {REASON_MAX} characters, not {reason[:40]!r}...")
    return {"id": secrets.token_hex(6), "by": str(by), "at": round(clock(), 3), "reason": reason}


def read(path: str) -> dict | None:
    """The pause recorded at ``path``, or None when automatic action is not paused."""
    record = read_json(path)
    return record if isinstance(record.get("id"), str) and isinstance(record.get("at"), (int, float)) else None


def write(path: str, record: dict) -> bool:
    """Records ``record``; False when that very pause was already recorded."""
    if (read(path) or {}).get("id") == record["id"]:
        return False
    write_json(path, record, durable=True)
    return True


def clear(path: str) -> bool:
    """Ends the pause recorded at ``path``; False when there was none."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def describe(record: dict | None, now: float | None = None) -> str:
    if not record:
        return "automatic failover not paused"
    now = time.time() if now is None else now
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record["at"]))
    minutes = max(0, round((now - record["at"]) / 60))
    why = f": {record['reason']}" if record.get("reason") else ""
    return f"automatic failover paused by {record.get('by') or '?'} since {since} ({minutes} min){why}"
