"""Alerts from beacon events, confirmed with the named node before anyone is paged, and
switchover requests accepted only from allowed, verifiable senders.

A beacon event's tag and data are whatever the sending minion wrote: the event only says
where to look. ``confirm`` re-measures on the named node (a job whose return Salt
authenticates) and an alert goes out only when that node's own answer shows the condition.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess

from mfa_ha.errors import InvalidInput
from mfa_ha.health import Thresholds, thresholds

log = logging.getLogger(__name__)

BEACON_TAG = re.compile(r"^salt/beacon/([A-Za-z0-9_.-]{1,128})/pgrepl/(lag|receiver|role|slot|server)/"
                        r"(alert|ok|down|up|changed)$")
SEVERITIES = ("info", "warning", "critical")
ROLES = ("primary", "standby")


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


def confirm(kind: str, what: str, data: dict, live, t: Thresholds) -> tuple[bool, str]:
    """Does the node's own live status (``pgrepl.status``) show what the event claims?
    Returns ``(confirmed, one-line description from the live figures)``."""
    if not isinstance(live, dict):
        return False, f"the node did not answer ({live})"
    running, role = live.get("running"), live.get("role")
    lag_b, lag_s = _number(live.get("lag_bytes")), _number(live.get("lag_seconds"))
    receiver = (live.get("receiver") or {}).get("status") or "not running"
    lag_text = f"replay lag {int(lag_b)} bytes, {lag_s:.1f} s"
    checks = {
        ("server", "down"): (not running, f"PostgreSQL is {live.get('state')}"),
        ("server", "up"): (bool(running), f"PostgreSQL is running as {role}"),
        ("lag", "alert"): (running and role == "standby" and (lag_b >= t.lag_warn_bytes * t.hysteresis
                                                              or lag_s >= t.lag_warn_seconds * t.hysteresis),
                           lag_text),
        ("lag", "ok"): (running and role == "standby" and lag_b < t.lag_warn_bytes and lag_s < t.lag_warn_seconds,
                        lag_text),
        ("receiver", "down"): (running and role == "standby" and receiver != "streaming",
                               f"WAL receiver {receiver}"),
        ("receiver", "up"): (running and receiver == "streaming", f"WAL receiver {receiver}"),
        ("role", "changed"): (running and role == data.get("new") and role in ROLES, f"now {role}"),
        ("slot", "alert"): _slot_check(live, str(data.get("slot", "")), t),
    }
    confirmed, text = checks.get((kind, what), (False, "unknown event"))
    return bool(confirmed), text


def _slot_check(live: dict, name: str, t: Thresholds) -> tuple[bool, str]:
    slot = next((s for s in live.get("slots") or [] if s.get("slot_name") == name), None)
    if slot is None:
        return False, f"no slot {name!r}"
    retained = _number(slot.get("retained_bytes"))
    return (retained > t.slot_max_retained_bytes or not slot.get("active"),
            f"slot {name} retains {int(retained)} bytes, {'active' if slot.get('active') else 'inactive'}")


def severity_of(kind: str, what: str, data: dict) -> str:
    claimed = str(data.get("severity", ""))
    if (kind, what) in (("server", "down"), ("receiver", "down")):
        return "critical"
    if kind == "lag" and what == "alert":
        return claimed if claimed in ("warning", "critical") else "warning"
    return "warning" if what in ("alert", "changed") else "info"


def split_brain(statuses: dict) -> list[str]:
    return sorted(n for n, s in statuses.items()
                  if isinstance(s, dict) and s.get("running") and s.get("role") == "primary")


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
