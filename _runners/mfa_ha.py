"""
Master-side views and conveniences for mfa-ha.

.. code-block:: bash

    salt-run mfa_ha.status                  # the cluster as a table
    salt-run mfa_ha.status --out=json       # the same data as JSON
    salt-run mfa_ha.precheck server_dr      # would a switchover to server_dr start?
    salt-run mfa_ha.switchover server_dr    # prechecks, then mfa_ha.orch.switchover

Node list and thresholds come from the master's view of pillar ``mfa_ha`` (the one the
orchestrations render with): ``mfa_ha:nodes``, ``mfa_ha:switchover:max_lag_bytes``.

With ``--out=json`` each function prints one JSON document (progress on stderr); an error is
``{"error": ..., "retcode": ...}``. Exit codes: 0 done or healthy; 1 an action failed or the
cluster is unhealthy; 2 refused, nothing changed; 3 bad input (argument or pillar), nothing
changed.
"""

import contextlib
import functools
import inspect
import logging
import os
import sys
import threading
import time

import salt.output
import salt.utils.user
from salt.exceptions import CommandExecutionError, SaltInvocationError

from mfa_ha import loader, maintenance, scheduled, timing
from mfa_ha.adapters import master
from mfa_ha.adapters.pillar import validate as validate_pillar
from mfa_ha.adapters.pillar import validate_nodes
from mfa_ha.adapters.saltface import call_args
from mfa_ha.app import app_config
from mfa_ha.errors import InvalidInput, MfaHaError
from mfa_ha.files import read_json, write_json
from mfa_ha.monitoring import alerts as pgalerts
from mfa_ha.monitoring import history as pghistory
from mfa_ha.monitoring import status as cluster
from mfa_ha.pair import divergence as pgdivergence
from mfa_ha.pair import failover as pgfailover
from mfa_ha.pair import switchover as sw
from mfa_ha.pair.standby import check_command
from mfa_ha.postgres.config import replication_config
from mfa_ha.postgres.replication import DEFAULT_LAG_LIMIT_BYTES
from mfa_ha.roles import primaries
from mfa_ha.unattended.witness import behind
from mfa_ha.waiting import retry

log = logging.getLogger(__name__)

__virtualname__ = "mfa_ha"
NODE_STATUS_KEYS = ("pgrepl.status", "pmfad.status")
GO_ACTIONS = ("switch", "finish", "failover")  # a decision that lets the next orchestration step run
MACHINE_OUTPUTS = ("json", "yaml", "pprint", "raw", "newline_values_only", "key")


def __virtual__():
    return __virtualname__


def _gate(func):
    """Every answer is one document, never a traceback: a missing or bad argument, a bad
    pillar and a failure come back as ``{"error": one line, "retcode": code}`` with the exit
    code set (``master.EXIT_*``). The exit code is also what fails an orchestration's
    ``salt.runner`` step, so a ``failhard`` gate cannot be passed."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            signature.bind(*args, **call_args(kwargs))
        except TypeError as err:
            return _error(f"{err}; see: salt-run doc.runner mfa_ha.{func.__name__}", master.EXIT_BAD_INPUT)
        try:
            return func(*args, **kwargs)
        except (SaltInvocationError, InvalidInput, TypeError, ValueError) as err:  # an argument's shape
            return _error(str(err), master.EXIT_BAD_INPUT)
        except (CommandExecutionError, MfaHaError) as err:
            return _error(str(err), master.EXIT_FAILED)
        except Exception as err:  # a step that failed must fail its orchestration, never pass
            log.exception("mfa_ha.%s failed", func.__name__)
            return _error(f"{type(err).__name__}: {err} (the master log has the details)", master.EXIT_FAILED)

    return wrapper


def _error(message: str, code: int) -> dict:
    __context__["retcode"] = code
    return {"error": message, "retcode": code}


def _with_retcode(result: dict, code: int) -> dict:
    """``salt-run`` takes its exit code from a ``retcode`` key of the returned data."""
    if code:
        __context__["retcode"] = code
    return {**result, "retcode": code}


def _refused_unless(go: bool) -> int:
    return master.EXIT_DONE if go else master.EXIT_REFUSED


def _failed_unless(ok: bool) -> int:
    return master.EXIT_DONE if ok else master.EXIT_FAILED


def _pillar():
    return master.pillar(__opts__)


def _progress(message):
    """A progress line: printed by salt-run at once for a person; under a machine-readable
    outputter (``--out=json``) on stderr, so stdout holds the one answer document."""
    log.info("%s", message)
    if __opts__.get("output") in MACHINE_OUTPUTS:
        print(message, file=sys.stderr, flush=True)
        return
    try:
        __jid_event__.fire_event({"message": message}, "progress")
    except (NameError, ReferenceError):  # a nested runner call (state.orchestrate) released the job's event handle
        print(message, flush=True)


def _gather(nodes, timeout=timing.STATUS_TIMEOUT_SECONDS, lost=(), kept_aside=False):
    """``pgrepl.node_status`` on every node in one single-function job (Salt issue 59141: a
    compound job breaks every ``state.*`` run on that minion meanwhile, fencing included). A
    node that does not answer (or fails) appears with the error text instead of a dict.
    Bounded by ``timeout`` with no find_job follow-up: a status that comes late is not worth
    a second job on a node that is already slow."""
    args = ["kept_aside=True"] if kept_aside else []
    returns = _ask(list(nodes), "pgrepl.node_status", args, timeout, lost, follow_up=False)
    gathered = {}
    for node in nodes:
        ret = returns[node]
        gathered[node] = ret if isinstance(ret, dict) else {f: ret for f in NODE_STATUS_KEYS}
    return gathered


def _ask(targets, function, args, timeout, lost=(), follow_up=True):
    """``_cmd`` (or, without ``follow_up``, ``_returns_within``) for the nodes expected to
    answer; the ``lost`` ones (measured silent by the witness for lease + margin) get one probe
    of ``timing.LOST_PROBE_SECONDS``: an answer still counts, silence is not waited out twice."""
    lost = [node for node in targets if node in set(lost or ())]
    expected = [node for node in targets if node not in lost]
    ask = _cmd if follow_up else _returns_within
    if not lost:
        return ask(expected, function, args, timeout)
    with _job(lost, function, args, timing.LOST_PROBE_SECONDS) as probe:  # runs while the others answer
        result = ask(expected, function, args, timeout) if expected else {}
        result.update(probe())
    return result


def _lost(lost, nodes, target) -> list:
    """``lost`` checked: ids of ``mfa_ha:nodes`` other than ``target``."""
    lost = [] if lost in (None, "") else lost
    if not isinstance(lost, list) or not set(lost) <= set(nodes) - {target}:
        others = ", ".join(sorted(set(nodes) - {target}))
        raise SaltInvocationError(
            f"lost: must be a list of ids from mfa_ha:nodes other than the target {target} ({others}), not {lost!r}"
        )
    return lost


def _cmd(targets, function, args, timeout):
    return master.cmd(__opts__, targets, function, args, timeout)


def _job(targets, function, args, seconds):
    return master.job(__opts__, targets, function, args, seconds)


def _returns_within(targets, function, args, seconds):
    return master.returns_within(__opts__, targets, function, args, seconds)


@_gate
def status(timeout=timing.STATUS_TIMEOUT_SECONDS):
    """
    Every node of ``mfa_ha:nodes``: address, role, server state, the upstream a standby
    streams from, timeline, LSN, lag (bytes behind the primary, seconds), slot, pmfad, and
    what is unhealthy about it (a standby streaming from another host than the primary, not
    streaming, lagging past ``mfa_ha:switchover:max_lag_bytes``; pmfad off the primary or on
    a standby; an inactive slot; no primary or two). Printed as a table; ``--out=json`` gives
    the values (``nodes``, ``healthy``, ``retcode``). The exit code is non-zero when anything
    is unhealthy.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.status
        salt-run mfa_ha.status --out=json
    """
    pillar = _pillar()
    nodes = validate_nodes(pillar.get("nodes"))
    limit = int((pillar.get("switchover") or {}).get("max_lag_bytes", DEFAULT_LAG_LIMIT_BYTES))
    paused = maintenance.read(master.pause_path(__opts__))
    found = cluster.view(nodes, _gather(nodes, int(timeout), kept_aside=True), limit, paused)
    if not found["healthy"]:
        __context__["retcode"] = 1
    return {"outputter": "mfa_ha_status", "data": found}


def formula_root():
    """
    The directory to add to the master's ``file_roots`` to serve the formula, the
    orchestrations (``mfa_ha.orch.*``) and the reactors (``salt://mfa_ha/reactor/*``)
    straight from the installed package, as ``{"formula_root": path}``.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.formula_root
        salt-run mfa_ha.formula_root --out=json | jq -r .formula_root
    """
    return {"formula_root": loader.formula_root()}


@_gate
def precheck(target, nodes=None, max_lag_bytes=None, record_old_primary=False):
    """
    Run the switchover prechecks for ``target`` against the live servers and say which
    passed, with what was measured. Sets a failing exit code when the switchover must not
    start (what ``mfa_ha.orch.switchover`` relies on). ``record_old_primary`` (the
    orchestration passes it): with ``synchronous: on``, a switch it lets through first
    records the primary on the master as not promotable, so the target may take writes at
    once and name it once it streams again; refused when that record cannot be made.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.precheck server_dr
    """
    pillar = _pillar()
    validate_pillar(pillar)
    nodes = validate_nodes(nodes if nodes is not None else pillar.get("nodes"))
    decision = _prechecks(pillar, nodes, target, max_lag_bytes, _flag(record_old_primary))
    _progress(decision.summary)
    return _with_retcode(decision.as_dict(), _refused_unless(decision.action in GO_ACTIONS))


def _prechecks(pillar, nodes, target, max_lag_bytes, record_old_primary):
    """The switchover's decision from every node's status (one job)."""
    settings = pillar.get("switchover") or {}
    limit = int(max_lag_bytes if max_lag_bytes is not None else settings.get("max_lag_bytes", DEFAULT_LAG_LIMIT_BYTES))
    statuses = {n: _with_peers(v) for n, v in _gather(nodes).items()}
    decision = sw.decide(statuses, nodes, target, limit)
    if decision.action == "switch" and record_old_primary and _synchronous_mode(pillar) == "on":
        _record_old_primary(decision, statuses.get(decision.primary), pillar.get("alerts"))
    if decision.action in GO_ACTIONS:
        _forget_replaced(list(nodes))  # every node answers and one is the primary: the pair is whole again
    return decision


@_gate
def resume(target, nodes=None):
    """
    After refused prechecks: if no node accepts writes because a switch to ``target`` failed
    after the old primary stopped cleanly (and ``target`` never became a primary), start the
    old primary and its app again. Otherwise nothing. ``mfa_ha.orch.switchover`` runs it when
    its prechecks fail, so a re-run converges to a serving primary.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.resume server_dr
    """
    pillar = _pillar()
    nodes = validate_nodes(nodes if nodes is not None else pillar.get("nodes"))
    statuses = {n: _with_peers(v) for n, v in _gather(nodes).items()}
    decision = sw.decide(statuses, nodes, target, DEFAULT_LAG_LIMIT_BYTES)
    if decision.action != "resume":
        return {"resumed": False, "reason": "nothing to resume: " + decision.summary, "retcode": 0}
    _progress(decision.summary)
    step = float((pillar.get("switchover") or {}).get("timeout") or timing.SWITCH_STEP_SECONDS)
    bound = timing.switch_part_bound(step) + timing.SWITCH_JOB_MARGIN_SECONDS
    done = _cmd([decision.primary], "pgrepl.resume_primary", [step], bound)[decision.primary]
    resumed = isinstance(done, dict)
    _remember({}, "resume", "done" if resumed else "failed", decision.summary, node=decision.primary)
    return _with_retcode(
        {"resumed": resumed, "node": decision.primary, "reason": decision.summary, "result": done},
        _failed_unless(resumed),
    )


def _with_peers(gathered: dict):
    """A node's ``pgrepl.status`` with the peers as it sees them (``peers``)."""
    status = gathered.get("pgrepl.status")
    return {**status, "peers": gathered.get("peers")} if isinstance(status, dict) else status


@_gate
def switchover(target, timeout=None, at=None):
    """
    Switch the primary role to ``target``: the steps of ``mfa_ha.orch.switchover``, run from
    here without the orchestration's own machinery. The prechecks (one job to every node)
    decide before anything changes, each printed with what it measured; when they refuse
    after a switch that failed once the old primary stopped, that node comes back
    (``mfa_ha.resume``); otherwise one job runs every node's part (``pgrepl.switchover``),
    bounded by ``mfa_ha:switchover:job_timeout`` (or the parts' own bound), and each phase is
    printed with its duration. When the master goes away meanwhile, whose jobs' returns can
    then never arrive, it ends within a second or two, failing, each node ``unknown: the
    master went away``. ``timeout``: seconds after which it also gives up waiting (none by
    default: a rewind that falls back to a clone may legitimately take long).

    ``at``: schedule it instead (ISO 8601; without a UTC offset, the master's local time):
    Salt's scheduler on the master runs it then through ``mfa_ha.run_scheduled``, the
    prechecks at that time. Refused unless the master's ``schedule`` config has that job
    (the refusal shows it). ``mfa_ha.scheduled_switchovers`` lists what is scheduled,
    ``mfa_ha.unschedule`` cancels.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.switchover server_dr
        salt-run mfa_ha.switchover server_dr at=2026-12-24T03:00 --out=json
    """
    if at is not None:
        return _schedule_switchover(target, at)
    started, began = time.monotonic(), time.time()
    _progress(f"prechecks, then the switch to {target}")
    pillar = _pillar()
    validate_pillar(pillar)
    nodes = validate_nodes(pillar.get("nodes"))
    with _ended_if_unfinished(target, started, float(timeout) if timeout else None):
        decision = _prechecks(pillar, nodes, target, None, record_old_primary=True)
        prechecked = time.time()
        answers = _switch(pillar, nodes, target, decision)
    parts = {n: a for n, a in (answers or {}).items() if isinstance(a, dict)}
    result = cluster.switch_report(parts, answers is not None and set(parts) == set(nodes), started)
    result["prechecks"] = cluster.check_lines(decision.as_dict())
    result["runner"] = {"began": round(began, 3), "prechecks_s": round(prechecked - began, 3)}  # wall clock
    for line in result["phases"]:
        _progress(line)
    switch = result["old_primary"].get("timeline_switch")
    if result["ok"]:
        result = _remember(result, "switchover", "done", result["phases"][-1], target=target, switch=switch)
        return _with_retcode(result, master.EXIT_DONE)
    answered = None if answers is None else {n: a for n, a in answers.items() if not master.silent(a)}
    result["after"] = cluster.after_failure(nodes, answered, _gather(nodes))
    for line in result["after"]:
        _progress(line)
    outcome = "refused" if answers is None else "failed"
    why = "; ".join(result["prechecks"][-3:]) if answers is None else "; ".join(result["after"])
    result = _remember(result, "switchover", outcome, why or result["phases"][-1], target=target, switch=switch)
    return _with_retcode(result, master.EXIT_REFUSED if answers is None else master.EXIT_FAILED)


def _switch(pillar, nodes, target, decision):
    """After the prechecks' ``decision``: every node's part in one job (``{node: part or its
    error}``), or None when they refused (then the old primary of a switch that failed once it
    stopped comes back)."""
    for line in cluster.check_lines(decision.as_dict()):
        _progress(line)
    _progress(decision.summary)
    if decision.action not in GO_ACTIONS:
        resume(target, nodes)
        return None
    settings = pillar.get("switchover") or {}
    seconds = sw.switch_job_seconds(settings, app_config(pillar.get("pmfad")))
    drop = f"drop_synchronous={_synchronous_mode(pillar) == 'on'}"  # the prechecks recorded the old primary
    return _cmd(sorted(nodes), "pgrepl.switchover", [target, drop], seconds)


@contextlib.contextmanager
def _ended_if_unfinished(target, started, seconds):
    """Runs the block (the orchestration, which Salt runs on the main thread only) under a
    watch: if it has not ended within ``seconds``, or the master goes away meanwhile (its
    jobs' returns can no longer arrive), the watch prints what is known and ends salt-run
    with a failing exit code instead of leaving it waiting."""
    done, ending = threading.Event(), threading.Lock()

    def watch():
        deadline = time.monotonic() + seconds if seconds else None
        while not done.wait(timing.MASTER_CHECK_SECONDS):
            why = (
                "the master went away"
                if not _master_running()
                else (f"no result within {seconds:g} s" if deadline and time.monotonic() >= deadline else None)
            )
            if why:
                report = _unfinished_switch(target, why, started)
                with ending:  # the orchestration may have returned meanwhile: then it reports
                    if not done.is_set():
                        _end_unfinished(report)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with ending:
            done.set()


def _master_running() -> bool:
    """The master's process (its pidfile) is alive; True when that cannot be told."""
    try:
        with open(__opts__.get("pidfile") or "", encoding="ascii") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _unfinished_switch(target, why, started) -> dict:
    try:
        nodes = sorted(validate_nodes(_pillar().get("nodes")))
    except Exception:  # noqa: BLE001 - the report goes out whatever the pillar says
        nodes = []
    state = "unknown: the master went away" if why == "the master went away" else "unknown: see salt-run mfa_ha.status"
    after = [f"{node} now: {state}" for node in nodes]
    return {
        "ok": False,
        "unfinished": f"switch to {target} unfinished: {why} (after {time.monotonic() - started:.1f} s)",
        "after": after,
        "next": f"once the master runs: salt-run mfa_ha.switchover {target} (it finishes a switch the nodes "
        "completed, or refuses saying why)",
        "retcode": 1,
    }


def _end_unfinished(report: dict) -> None:
    """Print ``report`` as salt-run would (its ``--out``) and end the process: the thread that
    waits on the master cannot be interrupted."""
    log.error("mfa_ha.switchover: %s", report["unfinished"])
    try:  # to the real stdout: the waiting thread may have sent sys.stdout to stderr meanwhile (master.cmd)
        with contextlib.redirect_stdout(sys.__stdout__):
            salt.output.display_output(report, __opts__.get("output") or "nested", __opts__)
    finally:
        sys.__stdout__.flush()
        os._exit(1)


@_gate
def primary(nodes=None):
    """
    The id of the node whose live server accepts writes, as ``{"primary": id}``; fails
    (exit code 1) unless exactly one does.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.primary
        salt-run mfa_ha.primary --out=json | jq -r .primary
    """
    nodes = validate_nodes(nodes if nodes is not None else _pillar().get("nodes"))
    statuses = {n: v.get("pgrepl.status") for n, v in _gather(nodes).items()}
    found = primaries(statuses)
    if len(found) != 1:
        raise CommandExecutionError(f"expected exactly one primary, found {', '.join(found) or 'none'}")
    return {"primary": found[0]}


@_gate
def rejoin_decision(keep=None, node=None, nodes=None):
    """
    Which node the others re-attach to (``mfa_ha.orch.rejoin``): the one primary; with two
    (a split brain) it refuses at once, naming both with their timelines and write
    positions, unless ``keep`` names the node whose data is kept.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.rejoin_decision
        salt-run mfa_ha.rejoin_decision keep=server_prod
    """
    nodes = validate_nodes(nodes if nodes is not None else _pillar().get("nodes"))
    statuses = {n: v.get("pgrepl.status") for n, v in _gather(nodes).items()}
    decision = pgfailover.rejoin_decision(statuses, nodes, keep or None, node or None)
    _progress(decision["reason"])
    event = "split brain" if len(decision.get("primaries") or {}) > 1 else "rejoin"
    outcome = "decided" if decision["action"] == "rejoin" else "refused"
    decision = _remember(
        decision, event, outcome, decision["reason"], primary=decision.get("primary"), nodes=decision.get("rejoining")
    )
    decision["decided_at"] = time.time()
    return _with_retcode(decision, _refused_unless(decision["action"] == "rejoin"))


@_gate
def rejoined(node, primary, since):
    """
    Record in the history what ``mfa_ha.orch.rejoin`` did to ``node`` once it streams from
    ``primary``: cloned, rewound, re-attached as it was, or nothing (it already streamed),
    from the node's ``pgrepl.last_rejoin`` if that is newer than ``since`` (epoch seconds:
    when the rejoin was decided). The orchestration runs it; a node that does not answer is
    recorded as unknown.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.rejoined server_prod server_dr 1796250000
    """
    nodes = validate_nodes(_pillar().get("nodes"))
    for name, value in (("node", node), ("primary", primary)):
        if value not in nodes:
            raise SaltInvocationError(f"{name}: unknown node id {value!r} (mfa_ha:nodes: {', '.join(nodes)})")
    try:
        since = float(since)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"since: epoch seconds, not {since!r}") from None
    answer = _returns_within([node], "pgrepl.last_rejoin", [], timing.GATHER_JOB_SECONDS).get(node)
    found = pgfailover.rejoin_outcome(answer, since)
    summary = f"{node} streams from {primary}: {found['method']}" + (
        f" ({found['cloned_because']})" if found.get("cloned_because") else ""
    )
    return _remember(
        {"node": node, "primary": primary, **found},
        "rejoin",
        found["method"],
        summary,
        node=node,
        primary=primary,
        **{k: v for k, v in found.items() if k != "method"},
    )


@_gate
def failover_precheck(target, nodes=None, confirm_primary_lost=False, lost=None, confirm_data_loss=False):
    """
    May ``target`` be promoted because the primary is lost? Refuses while another node still
    answers as a primary, while a lost node's minion is silent unless
    ``confirm_primary_lost=True``, and (``synchronous: on``) while the master records
    ``target`` as behind unless ``confirm_data_loss=True``: the refusal says since when and from
    which LSN. ``lost``: nodes the witness measured silent (asked once more, briefly, instead of
    waited for). With ``synchronous: on``, a failover it lets through records the nodes left
    behind before anything is promoted, so the new primary stops waiting for them.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.failover_precheck server_dr confirm_primary_lost=True
    """
    pillar = _pillar()
    validate_pillar(pillar)
    nodes = validate_nodes(nodes if nodes is not None else pillar.get("nodes"))
    statuses = {n: v.get("pgrepl.status") for n, v in _gather(nodes, lost=_lost(lost, nodes, target)).items()}
    synchronous = _synchronous_mode(pillar) == "on"
    decision = pgfailover.decide(
        statuses, nodes, target, _flag(confirm_primary_lost), _behind(target, synchronous), _flag(confirm_data_loss)
    )
    if decision.action == "failover" and synchronous:
        _record_left_behind(decision, nodes, statuses.get(target), _flag(confirm_data_loss))
    summary = decision.summary.replace("switchover", "failover")
    _progress(summary)
    go = decision.action in GO_ACTIONS
    answer = _remember(
        decision.as_dict(), "failover", "decided" if go else "refused", summary, target=target, lost=lost
    )
    return _with_retcode(answer, _refused_unless(go))


def _behind(node, synchronous, record=None):
    record = master.standby_records(__opts__).get(node) or {} if record is None else record
    return behind(node, record, synchronous)


def _synchronous_mode(pillar):
    return replication_config(pillar.get("replication")).synchronous


def _record_left_behind(decision, nodes, status, loss_confirmed):
    """Before the promotion: every other node no longer gets the new primary's commits. Made
    one at a time with the witness's records: a target recorded as behind meanwhile refuses."""
    target, status = decision.target, status if isinstance(status, dict) else {}
    lsn = status.get("receive_lsn") or status.get("replay_lsn")
    record = {"promotable": False, "primary": target, "request": "failover", "lsn": lsn, "since": time.time()}
    left = {node: record for node in sorted(set(nodes) - {target})}
    try:
        master.record_failover(
            __opts__, target, left, lambda found: None if loss_confirmed else _behind(target, True, found)
        )
    except (MfaHaError, OSError) as err:
        decision.check("the nodes left behind are recorded on the master first", False, str(err))
        decision.action = "refuse"


def _record_old_primary(decision, status, alerts_pillar):
    """Before the switch: the new primary's first commits do not wait for the old one, which
    the master records as not promotable until the new primary's keeper proves it holds them."""
    lsn = status.get("current_lsn") if isinstance(status, dict) else None
    record = {"promotable": False, "primary": decision.target, "request": "switchover", "lsn": lsn}
    try:
        master.record_standby(__opts__, decision.primary, {**record, "since": time.time()})
    except (MfaHaError, OSError) as err:
        decision.check("the old primary is recorded on the master as not promotable first", False, str(err))
        decision.action = "refuse"
        return
    summary = (
        f"mfa_ha switchover to {decision.target}: {decision.primary} recorded as not promotable from {lsn} "
        "until it streams in sync again"
    )
    decision.check("the old primary is recorded on the master as not promotable first", True, summary)
    _deliver("info", summary, record, alerts_pillar)


@_gate
def fence_others(target, nodes=None, lost=None):
    """
    Fence every node but ``target`` whose minion answers (pmfad and PostgreSQL stopped, data
    directory configured as a standby of ``target``). A silent node, which the operator
    confirmed lost, is recorded on the master as replaced by ``target``: it is fenced when it
    comes back (its minion starting, or its first heartbeat as a primary), even with its app
    running, and the writes it took meanwhile are named as divergent. ``lost``: as for
    ``failover_precheck``.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.fence_others server_dr
    """
    nodes = validate_nodes(nodes if nodes is not None else _pillar().get("nodes"))
    if target not in nodes:  # every other node would be fenced: a typo must fence none
        raise SaltInvocationError(f"target: unknown node id {target!r} (mfa_ha:nodes: {', '.join(sorted(nodes))})")
    others = sorted(set(nodes) - {target})
    result = _ask(others, "pgrepl.fence", [target], timing.FENCE_JOB_SECONDS, _lost(lost, nodes, target))
    failed = False
    for node, done in result.items():
        if master.silent(done):
            _remember_replaced(node, target)
            result[node] = (
                f"no answer: recorded as replaced by {target}; fenced when it comes back "
                "(minion start or its heartbeat as a primary)"
            )
        elif isinstance(done, str):
            failed = True
        told = result[node] if isinstance(result[node], str) else "fenced"
        _progress(f"{node}: {told}")
        _remember(
            {}, "fence", "fenced" if told == "fenced" else told.split(":")[0], f"{node}: {told}", node=node, by=target
        )
    return _with_retcode({"nodes": result}, master.EXIT_FAILED if failed else master.EXIT_DONE)


def _replaced_path():
    return os.path.join(__opts__["cachedir"], "mfa_ha", "replaced.json")


def _remember_replaced(node, by):
    replaced = read_json(_replaced_path())
    replaced[node] = {"by": by, "at": time.time()}
    write_json(_replaced_path(), replaced)


def _forget_replaced(nodes):
    replaced = read_json(_replaced_path())
    if any(node in replaced for node in nodes):
        write_json(_replaced_path(), {n: r for n, r in replaced.items() if n not in nodes})


@_gate
def fence_if_stale(
    node, attempts=timing.FENCE_ATTEMPTS, retry_seconds=timing.FENCE_RETRY_SECONDS, only_if_replaced=False
):
    """
    Fence ``node`` if it is a stale former primary that serves no clients, or one the
    operator confirmed lost in a failover (the master's record), retrying until the node
    itself answers (``pgrepl.fence_if_stale``, one single-function job per try; bounded by
    ``attempts``). A critical alert goes out when it is fenced with divergent writes, when
    it cannot be proven, or when the node refuses because its app runs (a split brain).
    Called by ``mfa_ha/reactor/fence.sls`` on ``salt/minion/<id>/start`` and on a primary's
    heartbeat (``only_if_replaced=True``: nothing is asked unless the record names it).

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.fence_if_stale server_prod
    """
    replaced_by = (read_json(_replaced_path()).get(node) or {}).get("by")
    if only_if_replaced and not replaced_by:
        return {"action": "none", "reason": f"{node} was not replaced in a failover"}
    pillar = _pillar()
    nodes = validate_nodes(pillar.get("nodes"))
    if node not in nodes:
        return {"action": "none", "reason": f"{node} is not a node of mfa_ha:nodes"}
    alerts_pillar = pillar.get("alerts") or {}

    def ask(_attempt):
        answer = _cmd(
            [node], "pgrepl.fence_if_stale", [{"replaced_by": replaced_by, "__kwarg__": True}], timing.FENCE_JOB_SECONDS
        )[node]
        return isinstance(answer, dict), answer

    answered, answer, attempt = retry(ask, attempts, retry_seconds)
    if answered:
        log.warning("mfa_ha: fence check of %s (attempt %s): %s", node, attempt, answer.get("reason"))
        _alert_fence_answer(node, answer, alerts_pillar)
        if answer.get("action") in ("fenced", "refuse"):
            event = "fence" if answer["action"] == "fenced" else "split brain"
            _remember({}, event, answer["action"], f"{node}: {answer.get('reason')}", node=node)
        if answer.get("action") == "fenced" or answer.get("reason") == "not a primary":
            _forget_replaced([node])
        return {**answer, "attempts": attempt}
    summary = (
        f"{node}: could not prove it is not a stale primary after {attempts} attempts "
        f"(last: {answer}); check it by hand: salt {node} pgrepl.fence_if_stale"
    )
    _remember({}, "fence", "unproven", summary, node=node)
    return {
        "action": "unproven",
        "reason": summary,
        "attempts": int(attempts),
        "alert": _deliver("critical", summary, {"node": node, "event": "fence_unproven"}, alerts_pillar),
    }


def _alert_fence_answer(node, answer, alerts_pillar):
    if answer.get("action") == "refuse":
        answer["alert"] = _deliver(
            "critical",
            f"SPLIT BRAIN: {node}: {answer['reason']}",
            {"node": node, "event": "split_brain"},
            alerts_pillar,
        )
    elif answer.get("action") == "fenced":
        summary = f"{node} fenced: {answer['reason']}; " + pgdivergence.describe(answer.get("divergent"))
        answer["alert"] = _deliver(
            "critical", summary, {"node": node, "event": "fenced", "divergent": answer.get("divergent")}, alerts_pillar
        )


# -- alerts and requests (called by the reactors in salt/mfa_ha/reactor/) ------------------------
def _fire(tag, data):
    master.fire(__opts__, tag, data)


def _deliver(severity, summary, details, alerts_pillar):
    return master.deliver(__opts__, severity, summary, details, alerts_pillar, __salt__)


@_gate
def alert(tag, data=None):
    """
    Turn a ``pgrepl`` beacon event into an alert people see, once the node it names confirms
    that its own beacon fired this very event (its ``event_id``, asked with a job whose
    return Salt authenticates): a forged event, from any other minion, names no one into a
    page. Only ids in ``mfa_ha:nodes`` are considered; the severity is the one the node
    recorded; a second primary is reported as a critical split brain, with no automatic
    action. Called by ``mfa_ha/reactor/alert.sls``.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.alert salt/beacon/server_dr/pgrepl/lag/alert '{"event_id": "5f0c..."}'
    """
    data = data if isinstance(data, dict) else {}
    parsed = pgalerts.parse_tag(tag)
    if not parsed:
        log.warning("mfa_ha: ignored event with unexpected tag %r", str(tag)[:200])
        return {"sent": False, "reason": "unexpected tag"}
    node, kind, what = parsed
    pillar = _pillar()
    nodes = validate_nodes(pillar.get("nodes"))
    if node not in nodes:
        log.warning("mfa_ha: ignored %s: %s is not a node of mfa_ha:nodes", tag, node)
        return {"sent": False, "reason": f"{node} is not a node"}
    alerts_pillar = pillar.get("alerts") or {}
    fired = _cmd([node], "pgrepl.beacon_fired", [str(data.get("event_id", ""))[:64]], timing.STATUS_TIMEOUT_SECONDS)[
        node
    ]
    live = _cmd([node], "pgrepl.status", [], timing.STATUS_TIMEOUT_SECONDS)[node] if isinstance(fired, dict) else None
    confirmed, measured = pgalerts.confirm(kind, what, fired, live)
    result = {"node": node, "event": f"{kind}/{what}", "confirmed": confirmed, "measured": measured}
    if not confirmed:
        log.warning("mfa_ha: %s not confirmed by %s itself (%s): no alert sent", tag, node, measured)
        return {**result, "sent": False}
    severity = pgalerts.severity_of(kind, what, fired)
    summary = f"{node}: {kind} {what} — {measured}"
    result["sent"] = _deliver(severity, summary, {"node": node, "event": f"{kind}/{what}"}, alerts_pillar)
    if (kind, what) == ("role", "changed"):
        now = live if isinstance(live, dict) else {}
        _remember({}, "role change", f"now {now.get('role')}", summary, node=node, timeline=now.get("timeline"))
    if (kind, what) in (("role", "changed"), ("server", "up")):
        found = pgalerts.split_brain({n: v.get("pgrepl.status") for n, v in _gather(nodes).items()})
        if len(found) > 1:
            text = f"SPLIT BRAIN: {', '.join(found)} all accept writes; no automatic action taken"
            result["split_brain"] = _deliver("critical", text, {"nodes": found, "event": "split_brain"}, alerts_pillar)
            _remember({}, "split brain", "detected", text, nodes=found)
    return result


@_gate
def rolling_restart(pending_only=False, switch_back=False, command=None):
    """
    Restart both nodes with one switchover's outage: the standby first (stopped, ``command``
    run while it is stopped, started, streaming again), then a switchover to it, then the old
    primary in its turn as a standby, and with ``switch_back=True`` a switchover back.
    ``pending_only=True`` restarts only the nodes with a setting pending restart
    (``pgrepl.pending_restart``), and switches over only when the primary is one of them.
    ``command`` (a list, no shell) is what each node runs while stopped: a package upgrade
    for a PostgreSQL minor release. Refused up front, changing nothing, unless the switchover
    prechecks to the standby pass (the pair healthy); it stops at the first step that fails,
    saying where each node is.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.rolling_restart pending_only=True
        salt-run mfa_ha.rolling_restart switch_back=True command='["apt-get", "install", "-y", "postgresql-15"]'
    """
    check_command(command)
    pillar = _pillar()
    nodes = validate_pillar(pillar)
    limit = int((pillar.get("switchover") or {}).get("max_lag_bytes", DEFAULT_LAG_LIMIT_BYTES))
    statuses = {n: _with_peers(v) for n, v in _gather(nodes).items()}
    found = primaries(statuses)
    standby = next((n for n in sorted(nodes) if found and n != found[0]), None)
    decision = sw.decide(statuses, nodes, standby or "", limit)
    if len(nodes) != 2 or len(found) != 1 or decision.action != "switch":
        why = f"not restarted, nothing changed: the pair must pass the switchover prechecks first. {decision.summary}"
        _progress(why)
        return _with_retcode(
            _remember({"restarted": [], "reason": why}, "restart", "refused", why), master.EXIT_REFUSED
        )
    primary = found[0]
    wanted = _restart_wanted(sorted(nodes), _flag(pending_only))
    if isinstance(wanted, str):
        return _with_retcode({"restarted": [], "reason": wanted}, master.EXIT_REFUSED)
    steps = _restart_steps(primary, standby, wanted, _flag(switch_back))
    done = []
    for what, node, other in steps:
        _progress(f"{what}: {node}")
        ok, detail = (_restart_turn if what == "restart" else _switch_turn)(node, other, command)
        done.append({"step": what, "node": node, "ok": ok, "detail": detail})
        if not ok:
            after = cluster.after_failure(nodes, None, _gather(nodes))
            summary = f"{what} of {node} failed: {detail}"
            result = {"restarted": [s["node"] for s in done if s["step"] == "restart" and s["ok"]], "steps": done}
            result = _remember({**result, "after": after, "reason": summary}, "restart", "failed", summary)
            return _with_retcode(result, master.EXIT_FAILED)
    restarted = [s["node"] for s in done if s["step"] == "restart"]
    summary = f"restarted {', '.join(restarted) or 'nothing (no restart pending)'}" + "".join(
        f"; switched to {s['node']}" for s in done if s["step"] == "switch"
    )
    _progress(summary)
    result = _remember({"restarted": restarted, "steps": done, "summary": summary}, "restart", "done", summary)
    return _with_retcode(result, master.EXIT_DONE)


def _flag(value) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def _restart_wanted(nodes: list, pending_only: bool):
    """The nodes to restart, or why none can be chosen."""
    if not pending_only:
        return set(nodes)
    pending = _cmd(nodes, "pgrepl.pending_restart", [], timing.STATUS_TIMEOUT_SECONDS)
    silent = [n for n in nodes if not isinstance(pending[n], list)]
    if silent:
        return f"cannot tell what waits for a restart on {', '.join(silent)}: {pending[silent[0]]}"
    return {n for n in nodes if pending[n]}


def _restart_steps(primary: str, standby: str, wanted: set, switch_back: bool) -> list[tuple]:
    """``(step, node, the node it follows or switches from)``: the standby first, the primary
    only as a standby after a switchover, and back if asked."""
    steps = [("restart", standby, primary)] if standby in wanted else []
    if primary in wanted:
        steps += [("switch", standby, primary), ("restart", primary, standby)]
        if switch_back:
            steps.append(("switch", primary, standby))
    return steps


def _restart_turn(node, upstream, command):
    args = [upstream, {"command": command, "__kwarg__": True}] if command else [upstream]
    bound = timing.RESTART_STEP_SECONDS + (timing.RESTART_COMMAND_SECONDS if command else 0)
    answer = _cmd([node], "pgrepl.restart_standby", args, bound)[node]
    return isinstance(answer, dict), answer if isinstance(answer, dict) else str(answer)


def _switch_turn(target, _old_primary, _command):
    done = switchover(target)
    if done.get("retcode") == 0:
        return True, done["phases"][-1]
    refused = [line for line in done.get("prechecks") or [] if line.startswith("FAILED")]
    return False, "; ".join(refused or done.get("after") or [done.get("error") or done["phases"][-1]])


@_gate
def history(limit=50):
    """
    Who was primary when, and why, oldest first: every switchover (done, refused or failed,
    with its duration and the timeline switch), failover (decided or refused, by an operator
    or the witness), fence (and why), rejoin (decided, then rewound, cloned or re-attached
    as it was), split brain, role change (as the node's own beacon reported it), pause and
    unpause, each with its time, nodes, timelines and outcome, from the master's records (``source: master``). When those are gone, each
    node's timeline history files say which timeline began at which LSN (``source:
    timelines``). ``limit``: the newest that many.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.history
        salt-run mfa_ha.history limit=10 --out=json | jq -r '.entries[] | .at + " " + .summary'
    """
    records, unreadable = pghistory.read(master.history_path(__opts__), int(limit))
    found = {"source": "master", "entries": records, "unreadable_lines": unreadable, "retcode": 0}
    if not records:
        nodes = sorted(validate_nodes(_pillar().get("nodes")))
        answers = _cmd(nodes, "pgrepl.timeline_history", [], timing.STATUS_TIMEOUT_SECONDS)
        found.update(
            source="timelines",
            entries=pghistory.from_timelines(answers)[-int(limit) :],
            silent={n: a for n, a in answers.items() if not isinstance(a, dict)},
        )
    return {"outputter": "mfa_ha_history", "data": found}


# -- switchovers scheduled for later ---------------------------------------------------------------
def _scheduled_path():
    return os.path.join(__opts__["cachedir"], "mfa_ha", "scheduled.json")


def _schedule_switchover(target, at):
    nodes = validate_nodes(_pillar().get("nodes"))
    if target not in nodes:
        raise InvalidInput(f"target: {target!r} is not a node of mfa_ha:nodes ({', '.join(nodes)})")
    when = scheduled.parse_at(at, time.time())
    if not scheduled.scheduler_runs_it(__opts__.get("schedule")):
        why = (
            "no job of the master's schedule runs mfa_ha.run_scheduled, so nothing would run it; add to the "
            f"master config (then restart the master):\n{scheduled.SCHEDULE_RECIPE}"
        )
        return _with_retcode({"scheduled": False, "reason": why}, master.EXIT_REFUSED)
    entry = scheduled.add(_scheduled_path(), target, when, _operator())
    summary = f"switchover to {target} scheduled for {entry['when']} (id {entry['id']})"
    _progress(summary + "; the prechecks run then")
    return _with_retcode(
        _remember({"scheduled": True, **entry}, "switchover", "scheduled", summary, target=target),
        master.EXIT_DONE,
    )


@_gate
def scheduled_switchovers():
    """
    The switchovers scheduled with ``mfa_ha.switchover <target> at=...``, soonest first.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.scheduled_switchovers --out=json
    """
    return {"entries": scheduled.listed(_scheduled_path()), "retcode": master.EXIT_DONE}


@_gate
def unschedule(ids="all"):
    """
    Cancel scheduled switchovers: ``ids``, a comma-separated list of their ids, or ``all``.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.unschedule 1a2b3c4d
        salt-run mfa_ha.unschedule all
    """
    wanted = "all" if ids == "all" else [i.strip() for i in str(ids).split(",") if i.strip()]
    gone = scheduled.remove(_scheduled_path(), wanted)
    for entry in gone:
        _remember(
            {},
            "switchover",
            "unscheduled",
            f"switchover to {entry['target']} at {scheduled.describe_time(entry['at'])} cancelled",
            target=entry["target"],
        )
    code = master.EXIT_DONE if gone or ids == "all" else master.EXIT_REFUSED
    return _with_retcode({"cancelled": gone, **({} if gone else {"reason": f"no scheduled switchover {ids}"})}, code)


@_gate
def run_scheduled():
    """
    Run the scheduled switchovers whose time has come (Salt's scheduler on the master calls
    this; each runs at most once, its prechecks now). One more than 15 minutes late (the
    master was down) is not run: it is recorded as missed and alerted.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.run_scheduled
    """
    due, missed = scheduled.take_due(_scheduled_path(), time.time())
    alerts_pillar = (_pillar().get("alerts") or {}) if missed else {}
    for entry in missed:
        summary = (
            f"scheduled switchover to {entry['target']} ({scheduled.describe_time(entry['at'])}, id {entry['id']}) "
            f"missed: not run more than {scheduled.LATE_LIMIT_SECONDS // 60} min late; schedule it again"
        )
        _remember({}, "switchover", "missed", summary, target=entry["target"])
        _deliver("warning", summary, {"event": "switchover_missed", "target": entry["target"]}, alerts_pillar)
    ran = []
    for entry in due:
        log.warning("mfa_ha: scheduled switchover to %s (id %s) starting", entry["target"], entry["id"])
        # no bound of its own, as an operator's switchover: its steps are bounded, a clone may take long
        done = master.orchestrate_as_operator(
            __opts__, "mfa_ha.orch.switchover", {"mfa_ha": {"target": entry["target"]}}, timeout=None
        )
        ok = isinstance(done, dict) and done.get("retcode") == 0
        why = "done" if ok else "; ".join(cluster.precheck_lines(done)) or str(done)[-500:]
        _remember(
            {}, "switchover", "done" if ok else "failed", f"scheduled (id {entry['id']}): {why}", target=entry["target"]
        )
        ran.append({**entry, "ok": ok, **({} if ok else {"failed": why})})
    failed = any(not r["ok"] for r in ran)
    return _with_retcode({"ran": ran, "missed": missed}, master.EXIT_FAILED if failed else master.EXIT_DONE)


# -- maintenance: automatic failover paused ------------------------------------------------------
@_gate
def pause(reason="", force=False):
    """
    Pause automatic failover (maintenance mode): the witness stops failing over, then each
    node's lease keeper stops fencing; both go on measuring, and ``mfa_ha.status`` shows who
    paused, when and why. The pause survives a restart of the master, a minion or a keeper,
    and lasts until ``mfa_ha.unpause``. With a node that does not answer it is refused,
    naming the node (that node's keeper would never hear of the pause and would still fence
    it); ``force=True`` pauses the others anyway and names the one left out.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.pause reason="patching the master"
        salt-run mfa_ha.pause reason="server_dr is being rebuilt" force=True
    """
    nodes = sorted(validate_nodes(_pillar().get("nodes")))
    record = maintenance.new_record(_operator(), reason)
    reached = _returns_within(nodes, "test.ping", [], timing.STATUS_TIMEOUT_SECONDS)
    silent = [node for node in nodes if reached[node] is not True]
    if silent and not _flag(force):
        reason_text = (
            f"{', '.join(silent)} does not answer ({'; '.join(str(reached[n]) for n in silent)}): its lease keeper "
            "would never hear of the pause and would still fence its node when the lease runs out. Nothing was "
            "paused; pause the others anyway with force=True"
        )
        _progress(reason_text)
        return _with_retcode({"paused": False, "reason": reason_text, "silent": silent}, master.EXIT_REFUSED)
    maintenance.write(master.pause_path(__opts__), record)  # first: the witness stops failing over
    done = _cmd(
        [n for n in nodes if n not in silent], "pgrepl.pause_automation", [record], timing.STATUS_TIMEOUT_SECONDS
    )
    left_out = silent + sorted(n for n, answer in done.items() if not isinstance(answer, dict))
    result = {
        "paused": True,
        "record": record,
        "nodes": {n: "paused" if isinstance(done.get(n), dict) else done.get(n, reached[n]) for n in nodes},
        "left_out": left_out,
    }
    _progress(maintenance.describe(record))
    result = _remember(result, "pause", "paused", maintenance.describe(record), left_out=left_out)
    if left_out:
        result["warning"] = f"{', '.join(left_out)} not paused: its lease keeper still fences its node"
        _progress(result["warning"])
    return _with_retcode(result, master.EXIT_FAILED if len(left_out) > len(silent) else master.EXIT_DONE)


@_gate
def unpause():
    """
    End a pause of automatic failover: each node's lease keeper fences again first, and only
    once every node has confirmed does the witness fail over again (a keeper that may still
    be paused would not fence an isolated primary). When a node does not confirm, the master
    stays paused and the answer names the node: run it again once the node answers.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.unpause
    """
    nodes = sorted(validate_nodes(_pillar().get("nodes")))
    was = maintenance.read(master.pause_path(__opts__))
    done = _cmd(nodes, "pgrepl.resume_automation", [], timing.STATUS_TIMEOUT_SECONDS)
    unconfirmed = [node for node in nodes if not isinstance(done[node], dict)]
    result = {"was": was, "nodes": {n: "not paused" if isinstance(a, dict) else a for n, a in done.items()}}
    if unconfirmed:
        result.update(
            unpaused=False,
            reason=f"{', '.join(unconfirmed)} did not confirm: the master stays paused (the witness does not fail "
            "over while a keeper may still be paused); run salt-run mfa_ha.unpause again once it answers",
        )
        _progress(result["reason"])
        return _with_retcode(result, master.EXIT_FAILED)
    maintenance.clear(master.pause_path(__opts__))
    _progress("automatic failover resumed" if was else "automatic failover was not paused")
    if was:
        result = _remember(result, "unpause", "resumed", f"automatic failover resumed ({maintenance.describe(was)})")
    return _with_retcode({**result, "unpaused": True}, master.EXIT_DONE)


def _remember(result: dict, event: str, outcome: str, summary: str, **details) -> dict:
    """``result``, once the event is in the master's history (or saying that it could not be)."""
    failed = master.remember(__opts__, event, outcome, summary, **details)
    return {**result, "history": failed} if failed else result


def _operator() -> str:
    """Who runs this salt-run: the user behind sudo, else the process's user."""
    return os.environ.get("SUDO_USER") or salt.utils.user.get_user()


def _request_dir():
    return os.path.join(__opts__["cachedir"], "mfa_ha", "requests")


@_gate
def request_switchover(target):
    """
    Ask for a switchover to ``target`` by event (``mfa_ha/switchover/request``), as an
    operator on the master. The request carries a single-use token kept in the master's
    cache, which is how the reactor knows the master sent it.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.request_switchover server_dr
    """
    nonce = pgalerts.new_nonce()
    pgalerts.store_nonce(_request_dir(), nonce, target)
    _fire("mfa_ha/switchover/request", {"target": target, "nonce": nonce})
    return {"requested": target, "nonce": nonce}


@_gate
def switchover_request(data=None):
    """
    Act on a ``mfa_ha/switchover/request`` event: only from the master itself (its token
    in the master's cache) or from a minion listed in ``mfa_ha:switchover:requesters`` that
    confirms, in an authenticated job return, that it made this very request. Anything else
    is ignored and logged. The switchover re-checks everything itself. Called by
    ``mfa_ha/reactor/switchover_request.sls``.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.switchover_request '{"data": {"target": "server_dr", "nonce": "..."}}'
    """
    data = data if isinstance(data, dict) else {}
    payload = data.get("data") if isinstance(data.get("data"), dict) else data
    target, nonce = str(payload.get("target", "")), str(payload.get("nonce", ""))
    pillar = _pillar()
    nodes = validate_nodes(pillar.get("nodes"))
    sender = data.get("id")
    reason = None
    if target not in nodes:
        reason = f"target {target!r} is not a node of mfa_ha:nodes"
    elif sender is None:
        if not pgalerts.take_nonce(_request_dir(), nonce, target):
            reason = "no such request token on the master"
    else:
        allowed = (pillar.get("switchover") or {}).get("requesters") or []
        if sender not in allowed:
            reason = f"sender {sender!r} is not in mfa_ha:switchover:requesters"
        elif (
            _cmd([str(sender)], "pgrepl.confirm_switchover_request", [nonce, target], timing.STATUS_TIMEOUT_SECONDS)[
                sender
            ]
            is not True
        ):
            reason = f"{sender} does not confirm this request"
    if reason:
        log.warning("mfa_ha: ignored switchover request to %r from %s: %s", target, sender or "the master", reason)
        return {"accepted": False, "reason": reason}
    log.warning("mfa_ha: switchover to %s requested by %s", target, sender or "the master")
    ran = master.orchestrate_as_operator(__opts__, "mfa_ha.orch.switchover", {"mfa_ha": {"target": target}})
    ok = isinstance(ran, dict) and ran.get("retcode") == 0
    result = {"accepted": True, "ok": ok}
    if not ok:
        result["failed"] = cluster.precheck_lines(ran) or str(ran)[-2000:]
    return result
