"""Alerts from beacon events, confirmed by the named node before anyone is paged, and
switchover requests accepted only from allowed, verifiable senders.

A beacon event's tag and data are whatever the sending minion wrote: the event only says
where to look. Salt's master fires a beacon's events with the data the minion wrote (its
``_minion_event`` passes ``events[i]['data']`` on without the authenticated sender id), so
the sender cannot be read from the event. Instead every event carries an unguessable
``event_id`` that the named node's beacon remembers; ``confirm`` accepts an event only when
that node itself (a job whose return Salt authenticates) says its beacon fired this id with
this tag. A current state that merely matches confirms nothing.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess

from mfa_ha.errors import InvalidInput
from mfa_ha.monitoring.health import Thresholds, thresholds
from mfa_ha.roles import primaries

log = logging.getLogger(__name__)

BEACON_TAG = re.compile(
    r"^salt/beacon/([A-Za-z0-9_.-]{1,128})/pgrepl/(lag|receiver|role|slot|server|pause)/"
    r"(alert|ok|down|up|changed)$"
)


def parse_tag(tag: str) -> tuple[str, str, str] | None:
    match = BEACON_TAG.match(str(tag))
    return match.groups() if match else None


def alert_thresholds(alerts_pillar) -> Thresholds:
    """``mfa_ha:alerts:thresholds`` (same keys as the beacon's), used to confirm lag."""
    raw = (alerts_pillar or {}).get("thresholds") or {} if isinstance(alerts_pillar, dict) else {}
    return thresholds(raw)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def confirm(kind: str, what: str, fired, live) -> tuple[bool, str]:
    """Did the named node's beacon fire this very event? ``fired`` is that node's answer to
    ``pgrepl.beacon_fired(event_id)``; ``live`` its ``pgrepl.status`` (for the figures).
    Returns ``(confirmed, one-line description)``."""
    if not isinstance(fired, dict):
        return False, (
            "the node did not answer"
            if isinstance(fired, str) and fired.startswith("no answer")
            else f"the node's beacon did not fire this event ({fired})"
        )
    if fired.get("tag") != f"{kind}/{what}":
        return False, f"the node's beacon fired {fired.get('tag')}, not {kind}/{what}"
    if kind == "pause":  # told by the node's own record of it: a pause has no figures in the status
        return True, str(fired.get("summary") or "automatic failover paused")
    return True, describe(kind, live)


def describe(kind: str, live) -> str:
    """The event told in the node's current figures (or why there are none)."""
    if not isinstance(live, dict):
        return f"status unavailable ({str(live)[:200]})"
    running, role = live.get("running"), live.get("role")
    lag_b, lag_s = _number(live.get("lag_bytes")), _number(live.get("lag_seconds"))
    receiver = (live.get("receiver") or {}).get("status") or "not running"
    texts = {
        "server": f"PostgreSQL is {live.get('state')}" + (f" as {role}" if running else ""),
        "lag": f"replay lag {int(lag_b)} bytes, {lag_s:.1f} s",
        "receiver": f"WAL receiver {receiver}",
        "role": f"now {role}",
        "slot": "; ".join(
            f"slot {s.get('slot_name')} retains {int(_number(s.get('retained_bytes')))} bytes, "
            f"{'active' if s.get('active') else 'inactive'}"
            for s in live.get("slots") or []
        )
        or "no slots",
    }
    return texts.get(kind, "unknown event")


def severity_of(kind: str, what: str, data: dict) -> str:
    """The severity the node's beacon recorded (``data``), within the known levels."""
    claimed = str(data.get("severity", ""))
    if (kind, what) in (("server", "down"), ("receiver", "down")):
        return "critical"
    if kind == "lag" and what == "alert":
        return claimed if claimed in ("warning", "critical") else "warning"
    return "warning" if what in ("alert", "changed") else "info"


def split_brain(statuses: dict) -> list[str]:
    return primaries(statuses)


# -- delivery -----------------------------------------------------------------------------
def targets(alerts_pillar) -> list[dict]:
    raw = (alerts_pillar or {}).get("targets") or [] if isinstance(alerts_pillar, dict) else []
    if not isinstance(raw, list):
        raise InvalidInput("mfa_ha:alerts:targets: must be a list of {command: ...} or {runner: ...}")
    for i, target in enumerate(raw):
        if not isinstance(target, dict) or not ({"command", "runner"} & set(target)):
            raise InvalidInput(f"mfa_ha:alerts:targets:{i}: needs a 'command' or a 'runner'")
    return raw


def run_command(command, summary: str, timeout: float = 15) -> str:
    """Run an alert command without a shell; the one-line summary arrives on its stdin."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    done = subprocess.run(argv, input=summary + "\n", capture_output=True, text=True, timeout=timeout)
    return "sent" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-200:]}"


# -- single-use request tokens ----------------------------------------------------------------
def new_nonce() -> str:
    import secrets

    return secrets.token_hex(16)


def store_nonce(directory: str, nonce: str, target: str) -> None:
    import os

    os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(os.path.join(directory, nonce), "w", encoding="utf-8") as fh:
        fh.write(target)


def take_nonce(directory: str, nonce: str, target: str) -> bool:
    """True once for a token stored for ``target``; the token is used up."""
    import os

    if not re.fullmatch(r"[0-9a-f]{32}", nonce or ""):
        return False
    path = os.path.join(directory, nonce)
    try:
        with open(path, encoding="utf-8") as fh:
            stored = fh.read()
        os.unlink(path)
    except OSError:
        return False
    return stored == target
