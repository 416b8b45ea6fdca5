"""Failover when the primary site is lost, and fencing of a primary that comes back.

A fenced node has pmfad and PostgreSQL stopped and its data directory configured as a
standby of the new primary (standby.signal / recovery.conf), so whatever starts it again
(a reboot, an init script, a hand) brings it up read-only: never two primaries accepting
writes. ``mfa_ha.orch.rejoin`` rewinds it and makes it stream.
"""

from __future__ import annotations

from mfa_ha import app as applib
from mfa_ha import roles, timing
from mfa_ha.errors import ConnectionFailed, MfaHaError
from mfa_ha.pair.divergence import divergent_writes
from mfa_ha.pair.peer import Upstream, identify_peer, peer_in_recovery
from mfa_ha.pair.service_address import Hooks
from mfa_ha.pair.switchover import Clock, Decision, describe_unanswered, open_for_business, unanswered
from mfa_ha.postgres import keptaside, synchronous
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres.server import Server
from mfa_ha.roles import Role
from mfa_ha.waiting import poll


def decide(
    statuses: dict,
    nodes: dict,
    target: str,
    confirm_primary_lost: bool,
    behind: str | None = None,
    confirm_data_loss: bool = False,
) -> Decision:
    """Whether ``target`` may be promoted because the primary is lost. ``behind``: why the
    master recorded ``target`` as not holding every acknowledged commit (``synchronous:
    on``), which only ``confirm_data_loss`` overrides."""
    d = Decision(target)
    if not d.check("target is a node of mfa_ha:nodes", target in nodes, f"target {target!r}"):
        return d
    answered = {n: s for n, s in statuses.items() if isinstance(s, dict) and n in nodes}
    primaries = roles.primaries(answered)
    if primaries == [target]:
        d.primary, d.action = target, "finish"
        d.check("target is already the only primary", True, f"{target} accepts writes")
        return d
    others = sorted(set(primaries) - {target})
    d.check(
        "no other node answers as a primary",
        not others,
        f"{', '.join(others)} still accepts writes: that is a switchover, or a split brain to stop first"
        if others
        else "none",
    )
    status = answered.get(target, {})
    d.check(
        "target is a running standby",
        status.get("running") and status.get("role") == "standby",
        f"{target}: {status.get('state', 'no answer')}, {status.get('role', '?')}",
    )
    d.check(
        "target holds every acknowledged commit, or the loss is confirmed",
        behind is None or confirm_data_loss,
        f"{behind}: pass mfa_ha:confirm_data_loss: true to promote it all the same"
        if behind and not confirm_data_loss
        else f"loss confirmed: {behind}"
        if behind
        else "not recorded as behind",
    )
    silent = sorted(set(nodes) - set(answered) - {target})
    d.check(
        "every lost node's minion answers, or the loss is confirmed",
        not silent or confirm_primary_lost,
        f"{describe_unanswered(unanswered(statuses, {n: None for n in silent}))}: pass "
        "mfa_ha:confirm_primary_lost: true once you know "
        "it cannot accept writes"
        if silent and not confirm_primary_lost
        else f"confirmed lost: {', '.join(silent)}"
        if silent
        else "all answered",
    )
    if not d.failed:
        d.action = "failover"
    return d


def promote_after_loss(
    server: Server,
    app_cfg,
    me: str,
    others: dict[str, Upstream],
    hooks: Hooks,
    timeout: float,
    progress,
    drop_synchronous: bool = False,
) -> dict:
    """The target's part of a failover: replay what was received, promote, open slots for the
    others, move client routing, start the app. Records the last LSN received from the lost
    primary. ``drop_synchronous``: the master recorded the lost nodes as behind, so this node
    stops waiting for them before it takes its first write."""
    clock = Clock()
    result = {"part": "new primary"}
    if repl.role(server) is not Role.PRIMARY:
        received = _replay_received(server, min(timeout, timing.REPLAY_CATCH_UP_SECONDS), progress)
        progress(f"promoting; last WAL received from the lost primary: {received}")
        result.update(last_received_lsn=received, promoted=repl.promote(server, timeout=int(timeout)))
        clock.mark("promoted")
        if drop_synchronous:  # only a promotion this call made: a primary already is its keeper's
            synchronous.drop(server)
            result["synchronous"] = "dropped: the lost nodes are recorded as behind on the master"
    else:
        result["already_primary"] = True
    return open_for_business(server, app_cfg, me, others, hooks, timeout, clock, result)


def _replay_received(server: Server, timeout: float, progress) -> str | None:
    def replayed():
        row = server.query_one(
            "SELECT pg_last_wal_receive_lsn()::text AS rx, pg_last_wal_replay_lsn()::text AS rp, "
            "pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() AS caught_up"
        )
        return row["rx"] is None or bool(row["caught_up"]), row

    row = poll(replayed, timeout, timing.REPLICATION_POLL_SECONDS, fail=None)
    if row["rx"] is None or row["caught_up"]:
        return row["rx"] or row["rp"]
    progress(f"replay did not catch up within {timeout:g} s (received {row['rx']}, replayed {row['rp']})")
    return row["rx"]


def fence(server: Server, app_cfg, new: Upstream) -> dict:
    """Stop pmfad here and, if this node is (or would start as) a primary, configure its data
    directory as a standby of ``new`` and stop PostgreSQL, without starting it again. The
    standby configuration is written first (a running server ignores it until its next
    start), so there is no moment in which a restart would bring a primary back. A node that
    already is a standby keeps running: re-running a failover must not take it down."""
    done = {"app_stopped": applib.backend(app_cfg).stop(), "db_stopped": False}
    if not server.has_cluster() or repl.role(server) is not Role.PRIMARY:
        return {**done, "left_running": "not a primary"}
    done["standby_config"] = repl.configure_standby(server, new.host, new.port, new.user, new.slot)["changed"]
    done["db_stopped"] = server.stop(mode="fast")
    return done


def stale_peer(server: Server, peers: dict[str, Upstream]) -> str | None:
    """The id of a peer that is a primary on a later timeline while this node is (or would
    start as) a primary: this node then is a stale former primary that must be fenced."""
    if not server.has_cluster() or repl.role(server) is not Role.PRIMARY:
        return None
    local_tli = repl.status(server).get("timeline") or 0
    for node_id, peer in sorted(peers.items()):
        if peer_in_recovery(server, peer) is False:
            try:
                peer_tli = identify_peer(server, peer)["timeline"]
            except ConnectionFailed:
                raise  # it answered a moment ago: an error of the check, never "not stale"
            except MfaHaError:
                continue
            if peer_tli > int(local_tli):
                return node_id
    return None


def fence_decision(server: Server, app_cfg, peers: dict[str, Upstream], replaced_by: str | None = None) -> dict:
    """Should this node be fenced? ``fence`` when it is a stale former primary (a peer is the
    primary on a later timeline) that serves no clients, or when ``replaced_by`` is that
    peer: the operator confirmed this node lost in a failover to it, so writes taken here
    since are divergent by the operator's own decision. ``refuse`` when its app runs and no
    such failover names it, for clients may be writing here: a split brain, which the
    operator resolves by choosing the node to keep. ``none`` otherwise. Only reads."""
    if not server.has_cluster() or repl.role(server) is not Role.PRIMARY:
        return {"action": "none", "reason": "not a primary"}
    newer = stale_peer(server, peers)
    if newer is None:
        return {"action": "none", "reason": "no peer answers as the primary on a later timeline"}
    if newer == replaced_by:
        return {
            "action": "fence",
            "primary": newer,
            "reason": f"the operator confirmed this node lost in the failover to {newer}, the primary on "
            "a later timeline: writes taken here since are divergent",
        }
    if applib.backend(app_cfg).status().get("state") == "running":
        return {
            "action": "refuse",
            "primary": newer,
            "reason": f"split brain: {newer} is the primary on a later timeline, but {app_cfg.service} "
            "runs here and clients may be writing: nothing fenced automatically; choose the "
            "node whose data is kept",
        }
    return {"action": "fence", "primary": newer, "reason": f"{newer} is the primary on a later timeline"}


def fence_if_stale(server: Server, app_cfg, peers: dict[str, Upstream], replaced_by: str | None = None) -> dict:
    """``fence_decision``, then the fence when it says so, naming the transactions this node
    committed after it left the new primary's history (divergent: the new primary does not
    have them)."""
    decision = fence_decision(server, app_cfg, peers, replaced_by)
    if decision["action"] != "fence":
        return decision
    keep = peers[decision["primary"]]
    status = repl.status(server)
    fenced = fence(server, app_cfg, keep)
    return {**decision, "action": "fenced", **fenced, "divergent": divergent_writes(server, keep, status)}


# -- rejoin: which node's data is kept ----------------------------------------------------------
def _position(status: dict) -> str:
    return f"timeline {status.get('timeline')}, wrote up to {status.get('current_lsn')}"


def rejoin_decision(statuses: dict, nodes: dict, keep: str | None = None, node: str | None = None) -> dict:
    """Which node is the primary the others re-attach to, and which running primaries must
    give up their data first. Two primaries (a split brain) are refused at once, naming
    both with their timelines and write positions, unless ``keep`` names the one to keep."""
    primaries = {n: s for n, s in sorted(statuses.items()) if n in nodes and roles.accepts_writes(s)}
    described = {n: {"timeline": s.get("timeline"), "current_lsn": s.get("current_lsn")} for n, s in primaries.items()}
    result = {"action": "refuse", "primary": None, "rejoining": [], "discard": [], "primaries": described}
    if keep is not None and keep not in primaries:
        return {
            **result,
            "reason": f"mfa_ha:keep: {keep} does not accept writes (primaries: "
            f"{', '.join(primaries) or 'none'}); nothing done",
        }
    if keep is None and len(primaries) > 1:
        listed = " and ".join(f"{n} ({_position(s)})" for n, s in primaries.items())
        return {
            **result,
            "reason": f"SPLIT BRAIN: {listed} all accept writes. Choose the node whose data is "
            'kept: pillar=\'{"mfa_ha": {"keep": "<node id>"}}\'; the others\' data is '
            "moved aside (never deleted) and they are cloned from it. Nothing done",
        }
    if not primaries:
        return {**result, "reason": no_primary_reason(statuses, nodes)}
    primary = keep or next(iter(primaries))
    if node is not None and node not in nodes:
        return {**result, "reason": f"mfa_ha:node: unknown node id {node!r}"}
    rejoining = [node] if node else sorted(set(nodes) - {primary})
    discard = sorted(n for n in primaries if n != primary and n in rejoining)
    return {
        **result,
        "action": "rejoin",
        "primary": primary,
        "rejoining": rejoining,
        "discard": discard,
        "reason": f"{', '.join(rejoining)} re-attach to {primary}"
        + (f"; divergent data of {', '.join(discard)} moved aside first" if discard else ""),
    }


def rejoin_outcome(answer, since: float) -> dict:
    """What a rejoin did to a node, from its ``pgrepl.last_rejoin`` (``answer``: the record,
    or the text of a node that did not answer): a record older than ``since`` (the rejoin's
    decision) is an earlier rejoin's, so this one found the node streaming already."""
    if not isinstance(answer, dict):
        return {"method": "unknown", "reason": str(answer or "no answer")}
    if float(answer.get("at") or 0) < since:
        return {"method": "already streaming"}
    kept = ("steps", "cloned_because", "divergent_transactions", "timeline")
    return {
        "method": str(answer.get("method") or "unknown"),
        **{k: answer[k] for k in kept if answer.get(k) is not None},
    }


def no_primary_reason(statuses: dict, nodes: dict) -> str:
    """Why nothing can re-attach while no node accepts writes, and the operator's choices. A
    node that did not answer is named as silent (it may be the running primary): no failover
    is suggested while any node's state is unknown."""
    answered = {n: s for n, s in sorted(statuses.items()) if n in nodes and isinstance(s, dict)}
    silent = unanswered(statuses, nodes)
    if silent:
        return (
            f"no answering node accepts writes, and the state of {', '.join(silent)} is unknown "
            f"({describe_unanswered(silent)}; a silent node may be the running primary). Nothing done; "
            "run it again once every node answers"
        )
    seen = "; ".join(f"{n}: {_described(s)}" for n, s in answered.items())
    stopped = [n for n, s in answered.items() if not s.get("running") and s.get("role") in ("primary", "standby")]
    standbys = [n for n, s in answered.items() if s.get("running") and s.get("role") == "standby"]
    choices = [
        f"start {n} as the primary it was: salt {n} pgrepl.start"
        for n in stopped
        if answered[n].get("role") == "primary"
    ]
    choices += [
        f"keep the writes of {n} (stopped, fenced as a standby): salt {n} pgrepl.start, then {_failover_command(n)}"
        for n in stopped
        if answered[n].get("role") == "standby"
    ]
    choices += [
        f"fail over to {n}, losing what the stopped node{'s' if len(stopped) > 1 else ''} "
        f"wrote after {n} last received WAL: {_failover_command(n)}"
        for n in standbys
        if stopped
    ]
    if not choices:
        return f"no node accepts writes ({seen}) and none can take over: nothing done"
    return f"no node accepts writes ({seen}). Nothing done; choose one: " + "; or ".join(choices)


def _described(status: dict) -> str:
    if status.get("running"):
        return f"running {status.get('role')}, timeline {status.get('timeline')}"
    if status.get("role") in ("primary", "standby"):
        return (
            f"stopped, would start as a {status['role']}, timeline {status.get('timeline')}, "
            f"checkpoint {status.get('checkpoint_lsn')}"
        )
    return status.get("state") or "unknown"


def _failover_command(target: str) -> str:
    return f'salt-run state.orchestrate mfa_ha.orch.failover pillar=\'{{"mfa_ha": {{"target": "{target}"}}}}\''


def discard_divergent(server: Server, app_cfg, keep: Upstream) -> dict:
    """This primary loses a split brain: count the transactions it committed after it left
    ``keep``'s history (when its timeline history shows where), fence it, and move its data
    directory aside (never deleted) so that a clone from ``keep`` replaces it."""
    status = repl.status(server)
    fenced = fence(server, app_cfg, keep)
    result = divergent_writes(server, keep, status)
    result["moved_aside"] = keptaside.move_aside(server.data_dir, "diverged")
    return {**result, **fenced}
