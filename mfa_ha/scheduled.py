"""Switchovers scheduled for later, kept on the master (``<cachedir>/mfa_ha/scheduled.json``)
until Salt's own scheduler on the master runs ``mfa_ha.run_scheduled`` at or after their time.

Each runs at most once: it leaves the file before it starts, so a master that dies during it
never starts it again on its own. One that comes due more than ``LATE_LIMIT_SECONDS`` late
(the master was down at the time) is not run but reported as missed: a switchover at an
hour nobody chose is worse than none. The prechecks run when the switchover runs, not when it
is scheduled.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import secrets
import time

from mfa_ha.errors import InvalidInput
from mfa_ha.files import read_json, write_json

LATE_LIMIT_SECONDS = 15 * 60
RUNNER = "mfa_ha.run_scheduled"
SCHEDULE_RECIPE = "schedule:\n  mfa_ha_scheduled_switchovers:\n    function: mfa_ha.run_scheduled\n    seconds: 30\n"


def parse_at(text, now: float) -> float:
    """``at`` as a Unix time: ISO 8601 (``2026-12-24T03:00``, seconds and a UTC offset or
    ``Z`` optional; without an offset, the local time of the process that asks, its ``TZ``).
    Refused when in the past, or when a clock change makes a local time happen twice or never."""
    try:
        when = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"at: an ISO 8601 date and time (2026-12-24T03:00), not {text!r}") from None
    if when.tzinfo is None and when.replace(fold=0).timestamp() != when.replace(fold=1).timestamp():
        raise InvalidInput(f"at: {text} happens twice or never in this time zone (a clock change): give a UTC offset")
    stamp = when.timestamp()  # a naive time is the local time
    if stamp <= now:
        raise InvalidInput(f"at: {text} is in the past (now {describe_time(now)})")
    return stamp


def describe_time(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def scheduler_runs_it(schedule: dict | None) -> bool:
    """Whether the master's ``schedule`` config has a job that runs ``mfa_ha.run_scheduled``."""
    jobs = schedule if isinstance(schedule, dict) else {}
    return any(isinstance(job, dict) and job.get("function") == RUNNER for job in jobs.values())


@contextlib.contextmanager
def _locked(path: str):
    """One change of the file at a time (an operator's salt-run beside the scheduler's run)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a+", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def add(path: str, target: str, at: float, by: str, clock=time.time) -> dict:
    entry = {"id": "s" + secrets.token_hex(4), "target": target, "at": at, "by": by, "asked_at": round(clock(), 3)}
    with _locked(path):
        entries = read_json(path).get("entries") or []
        write_json(path, {"entries": [*entries, entry]}, durable=True)
    return {**entry, "when": describe_time(at)}


def listed(path: str) -> list[dict]:
    return [
        {**e, "when": describe_time(e["at"])}
        for e in sorted(read_json(path).get("entries") or [], key=lambda e: e["at"])
    ]


def remove(path: str, ids) -> list[dict]:
    """The entries with an id in ``ids`` (``all``: every one), taken out of the file."""
    with _locked(path):
        entries = read_json(path).get("entries") or []
        gone = [e for e in entries if ids == "all" or e["id"] in ids]
        if gone:
            write_json(path, {"entries": [e for e in entries if e not in gone]}, durable=True)
    return gone


def take_due(path: str, now: float) -> tuple[list[dict], list[dict]]:
    """``(to run, missed)``: the entries whose time has come, taken out of the file before any
    runs; those more than ``LATE_LIMIT_SECONDS`` late are missed."""
    due = remove(path, [e["id"] for e in read_json(path).get("entries") or [] if e["at"] <= now])
    return [e for e in due if now - e["at"] <= LATE_LIMIT_SECONDS], [
        e for e in due if now - e["at"] > LATE_LIMIT_SECONDS
    ]
