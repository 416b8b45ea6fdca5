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

from mfa_ha import status as cluster
from mfa_ha import switchover as sw
from mfa_ha.pillar import validate_nodes

log = logging.getLogger(__name__)

__virtualname__ = "mfa_ha"
DEFAULT_MAX_LAG_BYTES = 16 * 1024 * 1024
STATUS_TIMEOUT = 10


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
    client = salt.client.LocalClient(mopts=__opts__)
    returns = client.cmd(list(nodes), ["pgrepl.status", "pmfad.status"], [[], []], tgt_type="list",
                         timeout=timeout, full_return=True)
    gathered = {}
    for node in nodes:
        ret = (returns.get(node) or {}).get("ret")
        gathered[node] = ret if isinstance(ret, dict) else {"pgrepl.status": "no answer", "pmfad.status": "no answer"}
    return gathered


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
    Switch the primary role to ``target``: the prechecks (printed with their figures), then
    ``state.orchestrate mfa_ha.orch.switchover``, then each phase with its duration.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.switchover server_dr
    """
    started = time.monotonic()
    checked = precheck(target)
    if checked["action"] == "refuse":
        return checked
    ran = __salt__["state.orchestrate"]("mfa_ha.orch.switchover", pillar={"mfa_ha": {"target": target}})
    result = cluster.switch_report(ran, started)
    for line in result["phases"]:
        _progress(line)
    if not result["ok"]:
        __context__["retcode"] = 1
    return result
