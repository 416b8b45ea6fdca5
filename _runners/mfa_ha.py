"""
Master-side views and conveniences for mfa-ha.

.. code-block:: bash

    salt-run mfa_ha.status                  # the cluster as a table
    salt-run mfa_ha.status --out=json       # the same data as JSON
    salt-run mfa_ha.precheck server_dr      # would a switchover to server_dr start?
    salt-run mfa_ha.switchover server_dr    # prechecks, then mfa_ha.orch.switchover

Node list and thresholds come from the master's view of pillar ``mfa_ha`` (the one the
orchestrations render with): ``mfa_ha:nodes``, ``mfa_ha:switchover:max_lag_bytes``.
"""

import logging
import time

import salt.client
import salt.pillar
from salt.exceptions import CommandExecutionError

from mfa_ha import failover as pgfailover
from mfa_ha import status as cluster
from mfa_ha import switchover as sw
from mfa_ha.pillar import validate_nodes

log = logging.getLogger(__name__)

__virtualname__ = "mfa_ha"
DEFAULT_MAX_LAG_BYTES = 16 * 1024 * 1024
STATUS_TIMEOUT = 10
GATHER_JOB_TIMEOUT = 3
FENCE_TIMEOUT = 10


def __virtual__():
    return __virtualname__


def _pillar():
    pillar = salt.pillar.get_pillar(__opts__, {}, __opts__["id"], saltenv=__opts__.get("saltenv") or "base")
    return pillar.compile_pillar().get("mfa_ha", {})


def _progress(message):
    """A progress line salt-run prints at once (or plain stdout once a nested runner call,
    such as state.orchestrate, has released the job's event handle)."""
    log.info("%s", message)
    try:
        __jid_event__.fire_event({"message": message}, "progress")
    except (NameError, ReferenceError):
        print(message, flush=True)


def _gather(nodes, timeout=STATUS_TIMEOUT):
    """One job to every node for ``pgrepl.status`` and ``pmfad.status``; a node that does not
    answer (or fails) appears with the error text instead of a dict."""
    returns = _cmd(list(nodes), ["pgrepl.status", "pmfad.status"], [[], []], timeout)
    gathered = {}
    for node in nodes:
        ret = returns[node]
        gathered[node] = ret if isinstance(ret, dict) else {"pgrepl.status": ret, "pmfad.status": ret}
    return gathered


def _failed(retcode) -> bool:
    """A compound job's retcode is a mapping of one retcode per function."""
    return any(retcode.values()) if isinstance(retcode, dict) else bool(retcode)


def _cmd(targets, function, args, timeout):
    """One job to ``targets`` (a list of ids); ``{id: return}``, or ``{id: "no answer"}`` for
    a minion that did not return (waiting at most ``timeout`` seconds for it)."""
    client = salt.client.LocalClient(mopts=__opts__)
    try:
        returns = client.cmd(targets, function, args, tgt_type="list", timeout=timeout, full_return=True,
                             gather_job_timeout=min(timeout, GATHER_JOB_TIMEOUT))
    finally:
        client.destroy()
    result = {}
    for node in targets:
        ret = returns.get(node)
        if not isinstance(ret, dict) or ret.get("failed") or (
                isinstance(ret.get("ret"), str) and ret["ret"].startswith("Minion did not return")):
            result[node] = "no answer"
        elif _failed(ret.get("retcode", 0)):
            result[node] = f"failed: {ret.get('ret')}"
        else:
            result[node] = ret.get("ret")
    return result


def status(timeout=STATUS_TIMEOUT):
    """
    Every node of ``mfa_ha:nodes``: address, role, server state, timeline, receive/replay
    LSN, lag (bytes behind the primary, seconds), slot, pmfad. Printed as a table; with
    ``--out=json`` (or any ``--out``) the same rows as data.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.status
        salt-run mfa_ha.status --out=json
    """
    nodes = validate_nodes(_pillar().get("nodes"))
    rows = cluster.rows(nodes, _gather(nodes, int(timeout)))
    return {"outputter": "mfa_ha_status", "data": rows}


def precheck(target, nodes=None, max_lag_bytes=None):
    """
    Run the switchover prechecks for ``target`` against the live servers and say which
    passed, with what was measured. Sets a failing exit code when the switchover must not
    start (what ``mfa_ha.orch.switchover`` relies on).

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.precheck server_dr
    """
    pillar = _pillar() if nodes is None or max_lag_bytes is None else {}
    nodes = validate_nodes(nodes if nodes is not None else pillar.get("nodes"))
    limit = int(max_lag_bytes if max_lag_bytes is not None
                else (pillar.get("switchover") or {}).get("max_lag_bytes", DEFAULT_MAX_LAG_BYTES))
    statuses = {n: v.get("pgrepl.status") for n, v in _gather(nodes).items()}
    decision = sw.decide(statuses, nodes, target, limit)
    _progress(decision.summary)
    if decision.action == "refuse":
        __context__["retcode"] = 1
    return decision.as_dict()


def switchover(target, timeout=600):
    """
    Switch the primary role to ``target`` through ``state.orchestrate mfa_ha.orch.switchover``
    (whose first step is the prechecks); prints each precheck with what it measured, then
    each phase of the switch with its duration.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.switchover server_dr
    """
    started = time.monotonic()
    _progress(f"prechecks, then the switch to {target} (mfa_ha.orch.switchover)")
    ran = __salt__["state.orchestrate"]("mfa_ha.orch.switchover", pillar={"mfa_ha": {"target": target}})
    for check in cluster.precheck_lines(ran):
        _progress(check)
    result = cluster.switch_report(ran, started)
    for line in result["phases"]:
        _progress(line)
    if not result["ok"]:
        __context__["retcode"] = 1
    return result


def primary(nodes=None):
    """
    The id of the node whose live server accepts writes; fails unless exactly one does.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.primary
    """
    nodes = validate_nodes(nodes if nodes is not None else _pillar().get("nodes"))
    statuses = {n: v.get("pgrepl.status") for n, v in _gather(nodes).items()}
    found = sorted(n for n, s in statuses.items() if isinstance(s, dict) and s.get("running")
                   and s.get("role") == "primary")
    if len(found) != 1:
        raise CommandExecutionError(f"expected exactly one primary, found {', '.join(found) or 'none'}")
    return found[0]


def failover_precheck(target, nodes=None, confirm_primary_lost=False):
    """
    May ``target`` be promoted because the primary is lost? Refuses while another node still
    answers as a primary, and while a lost node's minion is silent unless
    ``confirm_primary_lost=True``.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.failover_precheck server_dr confirm_primary_lost=True
    """
    nodes = validate_nodes(nodes if nodes is not None else _pillar().get("nodes"))
    statuses = {n: v.get("pgrepl.status") for n, v in _gather(nodes, timeout=3).items()}
    decision = pgfailover.decide(statuses, nodes, target, str(confirm_primary_lost).lower() in ("true", "1", "yes"))
    _progress(decision.summary.replace("switchover", "failover"))
    if decision.action == "refuse":
        __context__["retcode"] = 1
    return decision.as_dict()


def fence_others(target, nodes=None):
    """
    Fence every node but ``target`` whose minion answers (pmfad and PostgreSQL stopped, data
    directory configured as a standby of ``target``). A silent node is fenced by the
    ``salt/minion/<id>/start`` reactor when it comes back.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.fence_others server_dr
    """
    nodes = validate_nodes(nodes if nodes is not None else _pillar().get("nodes"))
    others = sorted(set(nodes) - {target})
    result = _cmd(others, "pgrepl.fence", [target], FENCE_TIMEOUT)
    for node, done in result.items():
        if done == "no answer":
            result[node] = "no answer: fenced by the salt/minion/<id>/start reactor when it comes back"
        elif isinstance(done, str):
            __context__["retcode"] = 1
        _progress(f"{node}: {result[node] if isinstance(result[node], str) else 'fenced'}")
    return result
