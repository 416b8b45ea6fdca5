"""Make this node a streaming standby of a given primary: decide what is wrong, then act.

``plan`` only reads (the local data directory and server, and the upstream's identity over a
replication connection) and returns the steps with a reason each; ``converge`` performs them
and ends only when the WAL receiver streams from the wanted upstream (bounded wait).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from mfa_ha import lsn as lsnlib
from mfa_ha import proc, timing
from mfa_ha.errors import CommandFailed, InvalidInput, MfaHaError, NeedsRejoin, ServerRunning
from mfa_ha.pair import divergence
from mfa_ha.pair.peer import Upstream, peer_connect, timeline_switch_point
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres.naming import parse_conninfo
from mfa_ha.postgres.replication import Progress, log_progress
from mfa_ha.postgres.server import Server
from mfa_ha.roles import Role, ServerState
from mfa_ha.waiting import Deadline, poll

CLEAN_PRIMARY_SHUTDOWN = "shut down"  # pg_controldata's state; a standby's is "shut down in recovery"


@dataclass
class Plan:
    steps: list[tuple[str, str]] = field(default_factory=list)  # (action, reason)
    facts: dict = field(default_factory=dict)

    def add(self, action: str, reason: str) -> None:
        self.steps.append((action, reason))

    @property
    def actions(self) -> list[str]:
        return [action for action, _ in self.steps]

    def as_dict(self) -> dict:
        return {"steps": [{"action": a, "reason": r} for a, r in self.steps], "facts": self.facts}


def plan(server: Server, up: Upstream, replace_running_primary: bool = False) -> Plan:
    """What must happen for this node to stream from ``up``; raises when it must not happen."""
    upstream = repl.identify_upstream(server, up.host, up.port, up.user)
    result = Plan(facts={"upstream": {**upstream, "address": up.label}})
    state = server.state()
    result.facts["local_state"] = state.value
    if state is ServerState.MISSING:
        result.add("clone", f"{server.data_dir} holds no cluster")
        result.add("start", "after the clone")
        return result
    local = repl.status(server)
    result.facts["local"] = {k: local.get(k) for k in ("role", "system_identifier", "timeline", "running")}
    if local["system_identifier"] != upstream["system_identifier"]:
        _plan_foreign(server, result, local, upstream, replace_running_primary)
        return result
    if local["role"] == "primary":
        if local["running"]:
            raise ServerRunning(
                f"{server.data_dir} is a running primary of the same cluster as {up.label}: a standby "
                "state never demotes a primary (use mfa_ha.orch.switchover or mfa_ha.orch.rejoin)"
            )
        result.add("rewind", "stopped former primary: rewind it onto the upstream's timeline")
        result.add("start", "server is stopped")
        return result
    if not local["running"] and needs_rewind(server, up)[0]:
        result.add("rewind", "its WAL went past the point where the upstream left its timeline")
        result.add("start", "after the rewind")
        return result
    _plan_configure(server, up, result, local["running"])
    if not local["running"]:
        result.add("start", "server is stopped")
    return result


def _plan_configure(server: Server, up: Upstream, result: Plan, running: bool) -> None:
    if _config_matches(server, up):
        return
    result.add(
        "configure",
        f"standby configuration does not point at {up.label}{' through slot ' + up.slot if up.slot else ''}",
    )
    if running:
        if server.data_version().conninfo_reloadable:
            result.add("reload", "a reload applies the new upstream on this version")
        else:
            result.add("restart", "this version applies a new upstream only at a restart")


def plan_slots(server: Server, result: Plan, peer_slots) -> None:
    """A running standby holding an inactive slot of a node (from when it was the primary)."""
    stale = repl.stale_standby_slots(server, peer_slots)
    if stale:
        held = sum(int(s.get("retained_bytes") or 0) for s in stale)
        result.add(
            "drop_slots",
            f"inactive slot(s) {', '.join(s['slot_name'] for s in stale)} on this standby hold {held} bytes of WAL",
        )


def follow_plan(server: Server, up: Upstream, peer_slots=()) -> Plan:
    """What highstate may do so that this node follows the primary ``up`` without touching its
    data: write the standby configuration of a stopped node (one that would start as a
    primary included) or of a misdirected running standby, then reload (13+) or restart it.
    A clone or rewind is not highstate's to do: that raises NeedsRejoin with the reason."""
    upstream = repl.identify_upstream(server, up.host, up.port, up.user)
    result = Plan(facts={"upstream": {**upstream, "address": up.label}})
    state = server.state()
    if state is ServerState.MISSING:
        raise NeedsRejoin(f"{server.data_dir} holds no cluster: run mfa_ha.orch.rejoin to clone it")
    local = repl.status(server)
    if local["system_identifier"] != upstream["system_identifier"]:
        raise NeedsRejoin(f"{server.data_dir} belongs to another cluster than {up.label}: run mfa_ha.orch.rejoin")
    if local["running"] and local["role"] == "primary":
        raise ServerRunning(
            f"{server.data_dir} runs as a primary while {up.label} is one too: split brain, "
            "highstate changes no role (mfa_ha.orch.rejoin with mfa_ha:keep chooses)"
        )
    if not local["running"] and local["role"] == "primary":
        result.add("configure", f"it would start as a primary while {up.label} is the primary")
        return result
    _plan_configure(server, up, result, local["running"])
    if local["running"] and not result.steps:
        receiver = server.query_one(repl.RECEIVER_SQL) or {}
        if receiver.get("status") == "streaming" and receiver.get("sender_host") != up.host:
            result.add("restart", f"streaming from {receiver.get('sender_host')}, not from {up.label}")
    if local["running"]:
        plan_slots(server, result, peer_slots)
    return result


def _plan_foreign(server, result, local, upstream, replace_running_primary) -> None:
    reason = (
        f"{server.data_dir} belongs to another cluster (system {local['system_identifier']}, "
        f"upstream {upstream['system_identifier']})"
    )
    if local["running"]:
        if local["role"] == "primary" and not replace_running_primary:
            raise ServerRunning(
                f"{reason} and runs as a primary: refusing to replace it unless "
                "replace_running_primary is set (its directory would be moved aside)"
            )
        result.add("stop", "the foreign server must stop before its directory is moved aside")
    result.add("clone", reason)
    result.add("start", "after the clone")


def _config_matches(server: Server, up: Upstream) -> bool:
    config = repl.standby_config(server)
    conninfo = parse_conninfo(config.get("primary_conninfo") or "")
    return (
        conninfo.get("host") == up.host
        and str(conninfo.get("port")) == str(up.port)
        and conninfo.get("user") == up.user
        and (config.get("primary_slot_name") or None) == up.slot
    )


def converge(
    server: Server,
    up: Upstream,
    steps: list[str],
    timeout: float = 60,
    progress: Progress = log_progress,
    peer_slots=(),
) -> dict:
    """Perform the planned steps, then wait until streaming; a standby that cannot stream
    because its timeline diverged is rewound once. Inactive slots of ``peer_slots`` on it are
    dropped once it streams. It ends within ``timeout``, but for a clone or a rewind: each has
    ``mfa_ha.timing.COPY_SECONDS`` of its own (it copies the database)."""
    deadline = Deadline(timeout, f"making {server.data_dir} a standby of {up.label}")
    done, found = [], {}
    for action in [a for a in steps if a != "drop_slots"]:  # done once it streams
        try:
            with deadline.excluding() if action in COPIES else contextlib.nullcontext():
                reported = _ACTIONS[action](server, up, _bound(action, deadline), progress)
            found.update(reported if isinstance(reported, dict) else {})
        except MfaHaError as err:
            raise type(err)(f"{err}\n(planned: {', '.join(steps)}; done: {', '.join(done) or 'nothing'})") from None
        done.append(action)
    if ensure_upstream_slot(server, up):
        progress(f"created the missing slot {up.slot} on {up.label}")
        done.append("slot")
    try:
        grace = deadline.left() if "rewind" in done else min(timing.DIVERGENCE_GRACE_SECONDS, deadline.left())
        receiver = wait_streaming(server, up, grace, progress)
    except MfaHaError:
        if "rewind" in done or not _diverged(server, up):
            receiver = wait_streaming(server, up, deadline.left(), progress)
        else:
            progress("the standby's timeline diverged from the upstream's: rewinding it")
            server.stop(timeout=deadline.left())
            found.update(_rewind(server, up, timing.COPY_SECONDS, progress) or {})
            server.start(timeout=deadline.left())
            done += ["rewind", "start"]
            receiver = wait_streaming(server, up, deadline.left(), progress)
    dropped = repl.drop_stale_standby_slots(server, peer_slots, progress)
    return {
        "done": done + (["drop_slots"] if dropped else []),
        "receiver": receiver,
        **found,
        **({"dropped_slots": dropped} if dropped else {}),
    }


def outcome(result: dict) -> dict:
    """What a ``converge`` did to the node, as the history records it: ``method`` (cloned,
    rewound, re-attached as it was, already streaming), why a clone, what was discarded,
    the timeline it streams on."""
    done = result.get("done") or []
    if "clone" in done or result.get("rewind_method") == "basebackup":
        method = "cloned"
    elif "rewind" in done:
        method = "rewound"
    elif done:
        method = "re-attached as it was"
    else:
        method = "already streaming"
    divergent = result.get("divergent") or {}
    return {
        "method": method,
        "steps": done,
        "cloned_because": result.get("cloned_because"),
        "divergent_transactions": divergent.get("transactions_after_fork"),
        "timeline": (result.get("receiver") or {}).get("received_tli"),
    }


COPIES = ("clone", "rewind")  # they copy the database: a bound of their own, outside the deadline's


def _bound(action: str, deadline: Deadline) -> int:
    """A copy of the database has its own bound; every other step what is left of the deadline."""
    return timing.COPY_SECONDS if action in COPIES else deadline.left()


def follow(
    server: Server,
    up: Upstream,
    steps: list[str],
    timeout: float = 30,
    progress: Progress = log_progress,
    peer_slots=(),
) -> dict:
    """Perform a ``follow_plan``; a running standby must then stream from ``up`` (bounded)."""
    for action in steps:
        if action == "drop_slots":
            repl.drop_stale_standby_slots(server, peer_slots, progress)
        else:
            _ACTIONS[action](server, up, timeout, progress)
    if not server.is_running():
        return {"done": steps, "receiver": None}
    if ensure_upstream_slot(server, up):
        steps = [*steps, "slot"]
    try:
        receiver = wait_streaming(server, up, timeout, progress)
    except MfaHaError as err:
        raise MfaHaError(f"{err}\n(if its timeline diverged from {up.label}'s, run mfa_ha.orch.rejoin)") from None
    return {"done": steps, "receiver": receiver}


def _diverged(server: Server, up: Upstream) -> bool:
    upstream = repl.identify_upstream(server, up.host, up.port, up.user)
    local = repl.status(server)
    return local.get("timeline") != upstream["timeline"]


def _clone(server, up, timeout, progress):
    if ensure_upstream_slot(server, up):  # pg_basebackup -S needs it
        progress(f"created the missing slot {up.slot} on {up.label}")
    repl.basebackup(server, up.host, up.port, up.user, up.slot, timeout=int(timeout), progress=progress)


def _rewind(server, up, timeout, progress):
    lost = _divergent_before_rewind(server, up)
    if lost:
        progress(f"{server.data_dir}: " + divergence.describe(lost, "pg_rewind discards them now"))
    rewound = repl.rewind(
        server,
        up.host,
        up.port,
        up.user,
        up.slot,
        fallback="basebackup",
        timeout=int(timeout),
        progress=progress,
    )
    found = {"rewind_method": rewound["method"]}
    if "rewind_error" in rewound:
        found["cloned_because"] = rewound["rewind_error"]
    return {**found, "divergent": lost} if lost else found


def _divergent_before_rewind(server, up) -> dict | None:
    """What this stopped node wrote after it left ``up``'s history, counted while its WAL
    still holds it (None when nothing can be counted: one timeline, no history, no pg_waldump)."""
    try:
        lost = divergence.divergent_writes(server, up, repl.status(server))
    except MfaHaError:
        return None
    return lost if lost.get("transactions_after_fork") is not None else None


def _configure(server, up, _timeout, _progress):
    repl.configure_standby(server, up.host, up.port, up.user, up.slot)


def _restart(server, _up, timeout, _progress):
    server.stop(timeout=int(timeout))
    server.start(timeout=int(timeout))


_ACTIONS = {
    "stop": lambda server, up, timeout, progress: server.stop(timeout=int(timeout)),
    "reload": lambda server, up, timeout, progress: server.reload(),
    "clone": _clone,
    "rewind": _rewind,
    "configure": _configure,
    "restart": _restart,
    "start": lambda server, up, timeout, progress: server.start(timeout=int(timeout)),
}


def ensure_upstream_slot(server: Server, up: Upstream) -> bool:
    """Create this node's slot on the upstream when it is missing (a primary promoted outside
    the tool has none, and the WAL receiver would never start); True when it was created."""
    if not up.slot:
        return False
    conn = peer_connect(server, up)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (up.slot,))
            if cur.fetchone():
                return False
            cur.execute("SELECT pg_create_physical_replication_slot(%s, true)", (up.slot,))
            return True
    finally:
        conn.close()


def needs_rewind(server: Server, peer: Upstream) -> tuple[bool, int | None, int]:
    """Whether this stopped server may hold WAL past the point where ``peer`` left its
    timeline (then pg_rewind must decide); also that switch point and the local checkpoint
    (None unless it was shut down cleanly as a primary: only then does its WAL end there).

    A primary shut down cleanly ends at its shutdown checkpoint. A crashed server or a
    standby may hold more WAL than its control file shows: pg_waldump looks for a record at
    the switch point on the timeline the peer left. None there means its WAL is a prefix of
    the peer's history, so it needs no rewind, only its upstream: a standby killed while it
    re-attached starts as one and fetches the rest (a crash recovery without the peer would
    wait for WAL only the peer holds)."""
    control = server.controldata()
    timeline = int(control["Latest checkpoint's TimeLineID"])
    switch = timeline_switch_point(server, peer, timeline)
    ends_at_checkpoint = control.get("Database cluster state") == CLEAN_PRIMARY_SHUTDOWN
    checkpoint = lsnlib.to_int(control["Latest checkpoint location"]) if ends_at_checkpoint else None
    if switch is None:
        return False, None, checkpoint
    if checkpoint is not None:
        return checkpoint >= switch, switch, checkpoint
    return divergence.holds_wal_from(server, switch, timeline), switch, checkpoint


def wait_streaming(server: Server, up: Upstream, timeout: float = 60, progress: Progress = log_progress) -> dict:
    """Wait (bounded) until the WAL receiver streams from ``up``; returns its row."""

    def probe():
        receiver = server.query_one(repl.RECEIVER_SQL) or {}
        return (
            receiver.get("status") == "streaming"
            and receiver.get("sender_host") == up.host
            and int(receiver.get("sender_port") or 0) == int(up.port)
        ), receiver

    def fail(receiver):
        seen = (
            f"receiver {receiver.get('status')} from {receiver.get('sender_host')}:{receiver.get('sender_port')}"
            if receiver
            else "no WAL receiver running"
        )
        return MfaHaError(
            f"{server.data_dir} is not streaming from {up.label} after {timeout:g} s "
            f"({seen}); last errors in {server.cfg.log_path}:\n{server.log_errors() or 'none'}"
        )

    return poll(
        probe,
        timeout,
        timing.STANDBY_POLL_SECONDS,
        fail,
        progress,
        report_every=2,
        report=lambda receiver: (
            f"waiting for the WAL receiver to stream from {up.label}: {receiver.get('status') or 'not running'}"
        ),
    )


def check_command(command) -> None:
    """A command to run on a stopped node: a non-empty list of strings, run without a shell."""
    if command is not None and (
        not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command)
    ):
        raise InvalidInput(f"command: a list of strings (no shell), not {command!r}")


def restart_standby(
    server: Server, up: Upstream, command: list[str] | None, timeout: float, progress: Progress = log_progress
) -> dict:
    """One node's turn in a rolling restart: this standby stopped (fast), ``command`` run
    while it is stopped (a package upgrade for a minor release; no shell, bounded by
    ``timing.RESTART_COMMAND_SECONDS``), started, and streaming from ``up`` again within
    ``timeout``. Refused on a primary, running or stopped: only a standby is restarted so."""
    check_command(command)
    if repl.role(server) is Role.PRIMARY:  # running, or stopped and would start as one
        raise MfaHaError(
            f"{server.data_dir} is a primary: a rolling restart restarts a node only while it is a standby"
        )
    started = time.monotonic()
    progress("stopping the standby")
    server.stop(mode="fast", timeout=int(timeout))
    ran = _run_while_stopped(server, command, timeout, progress) if command else None
    progress("starting the standby")
    server.start(timeout=int(timeout))
    receiver = wait_streaming(server, up, timeout, progress)
    return {"restarted": True, "ran": ran, "receiver": receiver, "seconds": round(time.monotonic() - started, 3)}


def _run_while_stopped(server: Server, command: list[str], timeout: float, progress: Progress) -> dict:
    """``command`` run while PostgreSQL is stopped; when it fails (or cannot run at all), the
    server is started again on what it had, so the standby serves on, and the error raised."""
    progress(f"running {command[0]} while PostgreSQL is stopped")
    try:
        done = proc.run(command, timeout=timing.RESTART_COMMAND_SECONDS, check=False)
        output = (done.stdout + done.stderr)[-2000:]
        failure = None if done.returncode == 0 else f"exit {done.returncode}: {output.strip()[-300:]}"
    except CommandFailed as err:  # not found, or past its bound
        done, output, failure = None, "", str(err)
    if failure:
        server.start(timeout=int(timeout))
        raise MfaHaError(
            f"{command[0]} failed while the standby was stopped ({failure}); PostgreSQL started again as it was"
        )
    return {"command": command, "exit": done.returncode, "output": output}
