"""The bounds the unattended failover's safety rests on, each with its reason, and the budgets
computed from them (``mfa_ha.lease`` states the inequality they serve).

A fence ends writes first (standby configuration, then PostgreSQL stopped) and stops pmfad
after: the witness's margin must cover the first part only; the watchdog lets a fencing keeper
finish each part within its own bound before it replaces it.
"""

from __future__ import annotations

PG_CTL_SECONDS = 2  # one pg_ctl status or stop -W: it reads postmaster.pid and sends a signal, no waiting
STANDBY_CONFIG_SECONDS = 1  # standby.signal and postgresql.auto.conf written in the data directory
FAST_STOP_SECONDS = 3  # then immediate: with the standby unreachable a fast stop waits for it; the WAL is durable
IMMEDIATE_STOP_SECONDS = 6  # PostgreSQL kills (SIGKILL) children that ignore an immediate stop after 5 s
SRC_FORCED_STOP_SECONDS = 10  # after stopsrc -f (SIGKILL): the subsystem leaves lssrc's active list
KEEPER_START_SECONDS = 5  # a new keeper's first heartbeat (Python started, modules imported)


def server_stop_bound(wait_seconds: float) -> float:
    """``Server.stop``: pg_ctl status, pg_ctl stop -W, then the wait for postmaster.pid to go."""
    return 2 * PG_CTL_SECONDS + wait_seconds


def writes_end_bound() -> float:
    """From the fence's start until PostgreSQL is stopped: the standby configuration, a fast
    stop that may time out, then an immediate one (a signal to the postmaster, or where its
    PID cannot be proven, pg_ctl: the longer of the two is counted)."""
    return STANDBY_CONFIG_SECONDS + server_stop_bound(FAST_STOP_SECONDS) + server_stop_bound(IMMEDIATE_STOP_SECONDS)


def app_stop_bound(app_timeout: float, manager: str = "src") -> float:
    """``mfa_ha.app``'s stop with ``mfa_ha:pmfad:timeout``: each command is bounded by it, and a
    wait polls the status (one more command) until it runs out. SRC: lssrc, stopsrc, the wait,
    stopsrc -f, the forced wait; systemd: status, stop, the wait."""
    wait = 2 * app_timeout
    if manager == "systemd":
        return 2 * app_timeout + wait
    return 3 * app_timeout + wait + SRC_FORCED_STOP_SECONDS + app_timeout


def fence_bound(app_timeout: float, manager: str = "src") -> float:
    """The whole fence: writes ended, then pmfad stopped."""
    return writes_end_bound() + app_stop_bound(app_timeout, manager)
