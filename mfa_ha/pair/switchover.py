"""Switchover: the prechecks as one pure decision with readable reasons, and each node's
part of the switch, run on every node at once (one job per node, overlapping).

The old primary stops its app and PostgreSQL cleanly, then waits for the target to accept
writes and re-attaches as its standby. The target does not wait for a message: it proves
on its own that it holds the old primary's last word (its WAL receiver lost the upstream,
the old primary no longer accepts connections, and the last record it received and
replayed is a CHECKPOINT_SHUTDOWN, found with pg_waldump) and only then promotes.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass

from mfa_ha import app as applib
from mfa_ha import lsn as lsnlib
from mfa_ha import roles, timing
from mfa_ha.checks import Checked
from mfa_ha.errors import CommandFailed, ConnectionFailed, InvalidInput, LsnNotReached, MfaHaError
from mfa_ha.pair.peer import Upstream, peer_has_slot, peer_in_recovery, peer_roles, peers
from mfa_ha.pair.service_address import Hooks
from mfa_ha.pair.standby import needs_rewind, wait_streaming
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres import synchronous
from mfa_ha.postgres.naming import parse_conninfo
from mfa_ha.postgres.server import Server
from mfa_ha.roles import Role
from mfa_ha.waiting import Deadline, poll

log = logging.getLogger(__name__)

WAL_PAGE = 8192
WALDUMP_WINDOW = 4 * WAL_PAGE
RECORD_RE = re.compile(
    r"^rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-F]+/[0-9A-F]+), "
    r"prev [0-9A-F/]+, desc: (\S+)"
)


class SwitchoverAborted(MfaHaError):
    """The switch did not happen; the old primary runs again and the target is still a standby."""


# -- prechecks ------------------------------------------------------------------------------
@dataclass
class Decision(Checked):
    target: str
    action: str = "refuse"  # switch | finish | resume | refuse
    primary: str | None = None

    @property
    def summary(self) -> str:
        if self.action == "refuse":
            return "switchover refused: " + "; ".join(f"{c.name} ({c.measured})" for c in self.failed)
        if self.action == "finish":
            return f"{self.target} is already the primary: finishing the re-attach of the others"
        if self.action == "resume":
            return (
                f"switchover not done: no node accepts writes; {self.primary} was shut down cleanly and "
                f"{self.target} never became a primary, so {self.primary} comes back as the primary; "
                f"re-run the switchover once {self.target} streams again"
            )
        return f"switchover {self.primary} -> {self.target}: all {len(self.checks)} prechecks passed"

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "primary": self.primary,
            "target": self.target,
            "summary": self.summary,
            "checks": self.checks_as_dicts(),
        }


def decide(statuses: dict, nodes: dict, target: str, max_lag_bytes: int) -> Decision:
    """Whether a switchover to ``target`` may start, from every node's ``pgrepl.status``
    (a dict, or the error text of a node that did not answer) and ``mfa_ha:nodes``."""
    d = Decision(target)
    if not d.check("target is a node of mfa_ha:nodes", target in nodes, f"target {target!r}"):
        return d
    answered = {n: s for n, s in statuses.items() if isinstance(s, dict) and n in nodes}
    silent = unanswered(statuses, nodes)
    d.check("every node answers", not silent, describe_unanswered(silent) if silent else "all answered")
    primaries = roles.primaries(answered)
    if primaries == [target]:
        d.primary, d.action = target, "finish"
        d.check("target is already the only primary", True, f"{target} accepts writes")
        return d
    if not primaries and _resumable(d, answered, target):
        return d
    unknown = f"; unknown: {', '.join(silent)}" if silent else ""
    if not d.check("exactly one primary", len(primaries) == 1, f"primaries: {', '.join(primaries) or 'none'}{unknown}"):
        return d
    d.primary = primaries[0]
    if target not in answered or target == d.primary:
        d.check("target is not the primary", target != d.primary, f"{target} is the primary")
        return d
    _check_target(d, answered[d.primary], answered[target], nodes, max_lag_bytes)
    if not d.failed:
        d.action = "switch"
    return d


def unanswered(statuses: dict, nodes: dict) -> dict[str, str]:
    """The nodes of ``nodes`` without a status, each with what came back instead: "no answer",
    or the node's own error (a pillar error names its key there)."""
    return {
        n: statuses[n] if isinstance(statuses.get(n), str) else "no answer"
        for n in sorted(nodes)
        if not isinstance(statuses.get(n), dict)
    }


def describe_unanswered(silent: dict[str, str]) -> str:
    return "; ".join(f"no answer from {n}" if text == "no answer" else f"{n} {text}" for n, text in silent.items())


def _resumable(d: Decision, answered: dict, target: str) -> bool:
    """No node accepts writes because a switch's target failed after the old primary had
    stopped. The old primary's clean shutdown proves it holds every write; when the target
    answers and never became a primary, the old primary may come back (action ``resume``)."""
    stopped = sorted(
        n
        for n, s in answered.items()
        if not s.get("running") and s.get("role") == "primary" and s.get("cluster_state") == "shut down"
    )
    status = answered.get(target)
    if len(stopped) != 1 or stopped[0] == target or not isinstance(status, dict) or status.get("role") != "standby":
        return False
    d.primary, d.action = stopped[0], "resume"
    d.check("a primary accepts writes", False, "none: the last switch did not finish")
    d.check(
        "the old primary was shut down cleanly (it holds every write)",
        True,
        f"{d.primary}: shut down at {answered[d.primary].get('checkpoint_lsn')}",
    )
    d.check("the target never became a primary", True, f"{target}: {status.get('state')}, standby")
    return True


def _check_target(d: Decision, primary: dict, standby: dict, nodes: dict, max_lag_bytes: int) -> None:
    target, source = nodes[d.target], nodes[d.primary]
    d.check(
        "target is a running standby",
        standby.get("running") and standby.get("role") == "standby",
        f"{d.target}: {standby.get('state')}, {standby.get('role')}",
    )
    d.check(
        "target has the primary's system identifier",
        standby.get("system_identifier") == primary.get("system_identifier"),
        f"{standby.get('system_identifier')} vs {primary.get('system_identifier')}",
    )
    receiver = standby.get("receiver") or {}
    upstream = f"{receiver.get('sender_host')}:{receiver.get('sender_port')}"
    d.check(
        "target streams from the primary",
        receiver.get("status") == "streaming" and upstream == f"{source['address']}:{source['port']}",
        f"receiver {receiver.get('status') or 'not running'} from {upstream}",
    )
    d.check(
        "target streams through its slot",
        receiver.get("slot_name") == target["slot"],
        f"slot {receiver.get('slot_name')!r}, expected {target['slot']!r}",
    )
    replica = next((r for r in primary.get("replicas") or [] if r.get("application_name") == target["slot"]), {})
    lag = replica.get("lag_bytes")
    d.check(
        "replay lag within mfa_ha:switchover:max_lag_bytes",
        lag is not None and lag <= max_lag_bytes,
        f"{lag if lag is not None else 'unknown'} bytes behind, limit {max_lag_bytes}",
    )
    seen = primary.get("peers") if isinstance(primary.get("peers"), dict) else {}
    d.check(
        "the old primary reaches the target (to re-attach after the switch)",
        seen.get(d.target) in ("standby", "primary"),
        f"{d.primary} sees {d.target} as {seen.get(d.target) or primary.get('peers') or 'unknown'}",
    )
    d.check(
        "pg_rewind possible on the old primary",
        primary.get("rewind_ready"),
        "wal_log_hints or data_checksums on" if primary.get("rewind_ready") else "wal_log_hints and data_checksums off",
    )


# -- peers ------------------------------------------------------------------------------------


# -- the target's proof -----------------------------------------------------------------------
def last_wal_record(server: Server, end_lsn: str) -> dict | None:
    """The last WAL record in this server's ``pg_wal`` that ends at or before ``end_lsn``."""
    end = lsnlib.to_int(end_lsn)
    segment_size = int(
        server.query_one("SELECT setting::bigint AS s FROM pg_settings WHERE name = 'wal_segment_size'")["s"]
    )
    segment_start = (end - 1) // segment_size * segment_size
    start = max(segment_start, (end - WALDUMP_WINDOW) // WAL_PAGE * WAL_PAGE)
    timeline = _segment_timeline(server, (end - 1) // segment_size, segment_size)
    if timeline is None:
        return None
    out = server.run(
        "pg_waldump",
        "--path",
        os.path.join(server.data_dir, "pg_wal"),
        "--timeline",
        str(timeline),
        "--start",
        lsnlib.to_str(start),
        "--end",
        end_lsn,
        check=False,
        timeout=timing.WAL_READ_SECONDS,
    ).stdout
    records = [m for m in (RECORD_RE.match(line) for line in out.splitlines()) if m]
    if not records:
        return None
    rmgr, total, lsn, desc = records[-1].groups()
    return {"rmgr": rmgr, "lsn": lsn, "length": int(total), "record": desc.rstrip(";"), "timeline": timeline}


def _segment_timeline(server: Server, segment_no: int, segment_size: int) -> int | None:
    """The highest timeline with a WAL file for this segment (names: TLI, log, seg in hex)."""
    per_log = 0x100000000 // segment_size
    suffix = f"{segment_no // per_log:08X}{segment_no % per_log:08X}"
    timelines = [
        int(name[:8], 16)
        for name in os.listdir(os.path.join(server.data_dir, "pg_wal"))
        if len(name) == 24 and name.endswith(suffix)
    ]
    return max(timelines, default=None)


WAIT_SQL = """
SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver
"""


def wait_for_shutdown_checkpoint(server: Server, old: Upstream, timeout: float, progress) -> dict:
    """Wait (bounded) until this standby holds and has replayed the old primary's shutdown
    checkpoint and the old primary no longer accepts connections."""

    def probe():
        row, last = server.query_one(WAIT_SQL), {}
        if not row["in_recovery"]:
            raise MfaHaError(f"{server.data_dir} left recovery by itself while waiting for the old primary")
        if row["receiver"] != "streaming" and row["receive_lsn"] and row["receive_lsn"] == row["replay_lsn"]:
            last = last_wal_record(server, row["receive_lsn"]) or {}
            if last.get("record") == "CHECKPOINT_SHUTDOWN" and peer_in_recovery(server, old) is None:
                return True, {
                    "shutdown_checkpoint": last["lsn"],
                    "received": row["receive_lsn"],
                    "replayed": row["replay_lsn"],
                    "timeline": last["timeline"],
                }
        return False, {**row, "last": last}

    return poll(
        probe,
        timeout,
        timing.SWITCHOVER_POLL_SECONDS,
        progress=progress,
        fail=lambda seen: LsnNotReached(
            f"no proof of the old primary's clean shutdown within {timeout:g} s: receiver "
            f"{seen['receiver'] or 'stopped'}, received {seen['receive_lsn']}, replayed "
            f"{seen['replay_lsn']}, last record {seen['last'].get('record', 'unknown')} at "
            f"{seen['last'].get('lsn', '?')}"
        ),
        report=lambda seen: (
            f"waiting for {old.label}'s shutdown checkpoint: receiver "
            f"{seen['receiver'] or 'stopped'}, received {seen['receive_lsn']}, "
            f"replayed {seen['replay_lsn']}"
        ),
    )


# -- the parts --------------------------------------------------------------------------------
class Clock:
    """Monotonic offsets for durations, wall-clock stamps to line nodes up against each other."""

    def __init__(self):
        self.start, self.marks = time.monotonic(), {}
        self.marks["start"] = round(time.time(), 3)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.time(), 3)

    def seconds(self) -> float:
        return round(time.monotonic() - self.start, 3)


def take_over(
    server: Server,
    app_cfg,
    me: str,
    others: dict[str, Upstream],
    hooks: Hooks,
    timeout: float,
    progress,
    drop_synchronous: bool = False,
) -> dict:
    """The target's part: prove the old primary's shutdown is here, promote, open slots for
    the others, move client routing, start the app and check its health.
    ``drop_synchronous``: the master recorded the old primary as not promotable, so this node
    takes writes without waiting for it (its keeper names it again once it streams)."""
    clock, bound = Clock(), part_deadline(timeout, f"{me}'s part as the new primary")
    if repl.role(server) is Role.PRIMARY:
        result = {"part": "new primary", "already_primary": True}
    else:
        old = _upstream_of(server, others)
        proof = wait_for_shutdown_checkpoint(server, old, bound.step(), progress)
        clock.mark("proof")
        progress(f"holds the old primary's shutdown checkpoint {proof['shutdown_checkpoint']}: promoting")
        promoted = repl.promote(server, timeout=bound.step())
        clock.mark("promoted")
        result = {"part": "new primary", "proof": proof, "promoted": promoted}
        if drop_synchronous:  # only a promotion this call made: a primary already is its keeper's
            synchronous.drop(server)
            result["synchronous"] = "dropped until the old primary streams: it is recorded as behind on the master"
    return open_for_business(server, app_cfg, me, others, hooks, bound.step(), clock, result)


def switch_step(settings: dict, timeout=None) -> float:
    """Each step of a node's part: ``timeout``, else ``mfa_ha:switchover:timeout``, else
    ``timing.SWITCH_STEP_SECONDS``."""
    return float(timeout or settings.get("timeout") or timing.SWITCH_STEP_SECONDS)


def switch_job_seconds(settings: dict, app_cfg, timeout=None) -> int:
    """How long the master waits for the switch job: ``mfa_ha:switchover:job_timeout`` when
    set, else the longest node part (``switch_step``), pmfad's stop before it and the
    return's way back."""
    if settings.get("job_timeout"):
        return int(settings["job_timeout"])
    app_stop = timing.app_stop_bound(app_cfg.timeout, app_cfg.manager)
    return int(timing.switch_job_bound(switch_step(settings, timeout), app_stop))


def part_deadline(step: float, what: str) -> Deadline:
    """A node's switchover part: each step bounded by ``step``, all of them by
    ``timing.switch_part_bound``."""
    return Deadline(timing.switch_part_bound(step), what, step=step)


def open_for_business(
    server: Server,
    app_cfg,
    me: str,
    others: dict[str, Upstream],
    hooks: Hooks,
    timeout: float,
    clock: Clock,
    result: dict,
) -> dict:
    """What a new primary does once it accepts writes: slots for the others, client routing
    moved here, the app started and healthy, then a checkpoint (see checkpoint_new_timeline)."""
    result["slots_created"] = [peer.slot for peer in others.values() if repl.create_slot(server, peer.slot)]
    result["service_address"] = hooks.run("acquire", me)
    result["app"] = _start_app(app_cfg, timeout)
    clock.mark("app_healthy")
    checkpoint_new_timeline(server)
    return {**result, "marks": clock.marks, "seconds": clock.seconds()}


def checkpoint_new_timeline(server: Server) -> None:
    """After a promotion the control file names the new timeline only after a checkpoint,
    and pg_rewind of the old primary reads it there: take it now, once the app is up."""
    server.execute("CHECKPOINT")


def _upstream_of(server: Server, others: dict[str, Upstream]) -> Upstream:
    conninfo = parse_conninfo(repl.standby_config(server).get("primary_conninfo") or "")
    for peer in others.values():
        if conninfo.get("host") == peer.host and str(conninfo.get("port")) == str(peer.port):
            return peer
    raise MfaHaError(
        f"{server.data_dir} does not stream from any node of mfa_ha:nodes "
        f"(primary_conninfo host {conninfo.get('host')}, port {conninfo.get('port')})"
    )


def _start_app(app_cfg, timeout: float) -> dict:
    backend = applib.backend(app_cfg)
    backend.start()
    health = applib.wait_healthy(app_cfg, timeout=timeout)
    if not health["healthy"]:
        raise MfaHaError(f"{app_cfg.service} started but is not healthy after {timeout:g} s: {health['error']}")
    return {"healthy": True, "status_code": health["status_code"]}


def hand_over(
    server: Server,
    app_cfg,
    me: str,
    new: Upstream,
    own_slot: str,
    hooks: Hooks,
    timeout: float,
    progress,
    peer_slots=(),
) -> dict:
    """The old primary's part: stop the app and PostgreSQL cleanly, wait until the target
    accepts writes, then re-attach as its standby. If the target does not take over in
    time and is still a standby, start PostgreSQL and the app here again."""
    clock = Clock()
    backend = applib.backend(app_cfg)
    backend.stop()
    clock.mark("app_stopped")
    try:
        hooks.run("release", me)
    except CommandFailed:
        backend.start()
        raise
    bound = part_deadline(timeout, f"{me}'s part as the old primary")
    server.stop(mode="fast", timeout=bound.step())
    clock.mark("db_stopped")
    checkpoint = repl.shutdown_checkpoint_lsn(server)
    progress(f"stopped cleanly at shutdown checkpoint {checkpoint}; waiting for {new.label} to take over")
    _wait_promoted(server, app_cfg, me, new, hooks, bound, checkpoint)
    clock.mark("target_promoted")
    result = rejoin(server, new, own_slot, bound, progress, peer_slots)
    clock.mark("streaming")
    return {
        "part": "old primary",
        "shutdown_checkpoint": checkpoint,
        **result,
        "marks": clock.marks,
        "seconds": clock.seconds(),
    }


def _wait_promoted(server, app_cfg, me, new: Upstream, hooks, bound: Deadline, checkpoint: str) -> None:
    """Until ``new`` accepts writes, for as long as its own steps may take
    (``timing.takeover_wait``). If it does not and still answers as a standby, this node serves
    again and the switch is aborted; if it does not answer, this node stays stopped (whether it
    took over is unknown)."""
    timeout = bound.step(timing.takeover_wait(bound.step()))
    if _promoted_within(server, new, timeout):
        return
    if peer_in_recovery(server, new) is True:
        server.start(timeout=bound.step())
        hooks.run("acquire", me)
        _start_app(app_cfg, bound.step())
        raise SwitchoverAborted(
            f"{new.label} did not take over within {timeout:g} s and is still a standby: PostgreSQL and "
            f"the app run here again (this node stopped at {checkpoint})"
        )
    raise MfaHaError(
        f"{new.label} does not answer, so whether it took over is unknown: this node stays "
        f"stopped to rule out two primaries (stopped at {checkpoint}); check {new.label}, "
        "then re-run the switchover or start this node"
    )


def resume_primary(
    server: Server, app_cfg, me: str, others: dict[str, Upstream], hooks: Hooks, timeout: float, progress
) -> dict:
    """Start this cleanly stopped former primary again, with its app, after a switch whose
    target failed: only when no peer answers as a primary (its clean shutdown proves it holds
    every write)."""
    if server.is_running():
        raise MfaHaError(f"{server.data_dir} is running: nothing to resume")
    if repl.configured_role(server) is not Role.PRIMARY:
        raise MfaHaError(f"{server.data_dir} would start as a standby: nothing to resume")
    repl.shutdown_checkpoint_lsn(server)  # raises unless it was shut down cleanly
    primaries = [n for n, r in peer_roles(server, others).items() if r == Role.PRIMARY.value]
    if primaries:
        raise MfaHaError(f"{', '.join(primaries)} accepts writes: not resuming here (mfa_ha.orch.rejoin)")
    clock, bound = Clock(), part_deadline(timeout, f"resuming {me} as the primary")
    server.start(timeout=bound.step())
    hooks.run("acquire", me)
    progress(f"{me} is the primary again; starting the app")
    app = _start_app(app_cfg, bound.step())
    clock.mark("app_healthy")
    return {"part": "resumed primary", "app": app, "marks": clock.marks, "seconds": clock.seconds()}


def rejoin(server: Server, new: Upstream, own_slot: str, bound: Deadline, progress, peer_slots=()) -> dict:
    """Make this stopped (or misdirected) node a streaming standby of ``new``, each step within
    ``bound``: pg_rewind only when its WAL went past the point where ``new`` left its timeline
    (a rewind has COPY_SECONDS of its own). Inactive slots of ``peer_slots`` left on it from
    when it was the primary are dropped (they would hold WAL)."""
    me = Upstream(new.host, new.port, new.user, own_slot)
    if server.is_running():
        if _streams_from(server, new):
            return {"rewind": "none needed", "already_streaming": True}
        if repl.role(server) is Role.PRIMARY:
            raise MfaHaError(f"{server.data_dir} runs as a primary: refusing to re-attach it under {new.label}")
        server.stop(timeout=bound.step())
    rewind_needed, switch, checkpoint = needs_rewind(server, new)
    _wait_for_slot(server, new, own_slot, bound.step())
    if rewind_needed:
        progress(f"WAL went past {new.label}'s timeline switch: pg_rewind")
        with bound.excluding():
            rewound = repl.rewind(
                server,
                new.host,
                new.port,
                new.user,
                own_slot,
                fallback="basebackup",
                timeout=timing.COPY_SECONDS,
                progress=progress,
            )
        method = rewound["method"]
        why = {"cloned_because": rewound["rewind_error"]} if "rewind_error" in rewound else {}
    else:
        repl.configure_standby(server, new.host, new.port, new.user, own_slot)
        method, why = "none needed", {}
    server.start(timeout=bound.step())
    wait_streaming(server, me, bound.step(), progress)
    dropped = repl.drop_stale_standby_slots(server, peer_slots, progress)
    why.update({"dropped_slots": dropped} if dropped else {})
    return {
        "rewind": method,
        **why,
        "timeline_switch": lsnlib.to_str(switch) if switch is not None else None,
        "zero_loss_proof": None if switch is None or checkpoint is None else checkpoint < switch,
    }


def _streams_from(server: Server, new: Upstream) -> bool:
    receiver = server.query_one(repl.RECEIVER_SQL)
    return (
        receiver.get("status") == "streaming"
        and receiver.get("sender_host") == new.host
        and int(receiver.get("sender_port") or 0) == new.port
    )


def _wait_for_slot(server: Server, new: Upstream, slot: str, timeout: float) -> None:
    poll(
        lambda: (peer_has_slot(server, new, slot), None),
        timeout,
        timing.SWITCHOVER_POLL_SECONDS,
        fail=lambda _: MfaHaError(f"slot {slot} does not exist on {new.label} after {timeout:g} s"),
    )


def run_part(
    server: Server,
    app_cfg,
    me: str,
    target: str,
    nodes: dict,
    user: str,
    hooks: Hooks,
    timeout: float,
    progress,
    drop_synchronous: bool = False,
) -> dict:
    """This node's part of a switchover to ``target``, chosen from its live role."""
    if target not in nodes:
        raise InvalidInput(f"target: unknown node id {target!r} (mfa_ha:nodes: {', '.join(nodes)})")
    others = peers(nodes, me, user)
    if me == target:
        return take_over(server, app_cfg, me, others, hooks, timeout, progress, drop_synchronous)
    own_slot = nodes[me]["slot"]
    if server.is_running() and repl.role(server) is Role.PRIMARY:
        return hand_over(
            server,
            app_cfg,
            me,
            others[target],
            own_slot,
            hooks,
            timeout,
            progress,
            peer_slots=[o.slot for o in others.values()],
        )
    clock, bound = Clock(), part_deadline(timeout, f"{me}'s part as a standby")
    _wait_promoted_or_fail(server, others[target], bound.step(timing.takeover_wait(bound.step())))
    applib.backend(app_cfg).stop()
    result = rejoin(server, others[target], own_slot, bound, progress, [o.slot for o in others.values()])
    return {"part": "standby", **result, "marks": clock.marks, "seconds": clock.seconds()}


def _wait_promoted_or_fail(server: Server, new: Upstream, timeout: float) -> None:
    if not _promoted_within(server, new, timeout):
        raise ConnectionFailed(f"{new.label} is not a primary after {timeout:g} s")


def _promoted_within(server: Server, new: Upstream, timeout: float) -> bool:
    """Whether ``new`` answers as a primary within ``timeout`` (False: a standby or silent)."""
    last = poll(
        lambda: ((answer := peer_in_recovery(server, new)) is False, answer),
        timeout,
        timing.SWITCHOVER_POLL_SECONDS,
        fail=None,
    )
    return last is False
