"""
Idempotent states for PostgreSQL replication on this node.

Every state reads the current value through the ``pgrepl`` execution module, returns early
when nothing differs, reports pending changes with ``result: None`` under ``test=True``
without touching anything, acts, and reads back. Changes never contain a secret.

.. code-block:: yaml

    replication settings:
      pgrepl.settings:
        - restart: False

    replication user:
      pgrepl.replication_user

    slot for dr:
      pgrepl.slot_present:
        - name: server_dr

    peers in pg_hba.conf:
      pgrepl.hba

    pgpass for the peers:
      pgrepl.pgpass

    copies kept aside:
      pgrepl.kept_aside

    standby of prod:
      pgrepl.standby:
        - name: server_prod
        - timeout: 300
"""

import functools
import os

from mfa_ha import files, timing
from mfa_ha.adapters.saltface import FAILURES
from mfa_ha.pair import divergence
from mfa_ha.postgres.naming import validate_slot_name

__virtualname__ = "pgrepl"


def __virtual__():
    return __virtualname__


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _failed(ret, err):
    """A failed state. Once it began to act (past ``_pending``), the changes it set out to make
    stay in the return, named as begun: some may have been made before the failure."""
    begun = ret.pop("_acting", False)
    if not begun:
        ret["changes"] = {}
    elif ret["changes"]:
        ret["changes"] = {"begun": ret["changes"]}
    ret.update(result=False, comment=str(err))
    return ret


def _pending(ret, changes, comment):
    """Under test=True, report ``changes`` and stop (True); otherwise note them and act (False)."""
    ret["changes"] = changes
    if __opts__["test"]:
        ret.update(result=None, comment=f"would {comment}")
        return True
    ret["_acting"] = True
    return False


def _state(func):
    """A state's return as Salt reads it (the acting marker ``_pending`` sets removed)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ret = func(*args, **kwargs)
        ret.pop("_acting", None)
        return ret

    return wrapper


@_state
def settings(name="replication settings", restart=False, **kwargs):
    """
    The replication settings this server version needs, this node's TLS settings and pillar
    ``mfa_ha:postgres:settings`` are set, in the running server and in its config files.
    A value that waits for a restart is not converged: with ``restart: True`` the server is
    restarted, otherwise the state fails saying so (never "as wanted").
    """
    ret = _ret(name)
    try:
        current = __salt__["pgrepl.settings"](**kwargs)
        if not current["differ"] and not current["restart_pending"]:
            ret["comment"] = "settings are as wanted"
            return ret
        changes = dict(current["differ"])
        if current["restart_pending"]:
            changes["restart"] = {
                "old": f"pending for {', '.join(current['restart_pending'])}",
                "new": "restarted" if restart else "pending (mfa_ha:settings_restart is off)",
            }
        if _pending(
            ret,
            changes,
            f"set {', '.join(current['differ']) or 'nothing'}"
            + (" and restart" if restart else "")
            + _restart_note(current["restart_pending"]),
        ):
            return ret
        if current["differ"]:
            __salt__["pgrepl.apply_settings"](**kwargs)
        waiting = __salt__["pgrepl.settings"](**kwargs)["restart_pending"]
        if restart and waiting:
            __salt__["pgrepl.restart"](**kwargs)
            ret["changes"]["restarted"] = True
        after = __salt__["pgrepl.settings"](**kwargs)
        left = {k: v for k, v in after["differ"].items() if k not in after["restart_pending"]}
        if left:
            return _failed(ret, f"settings still differ after ALTER SYSTEM: {', '.join(left)}")
        ret["changes"] = changes
        ret["comment"] = f"set {', '.join(current['differ']) or 'nothing'}"
        if after["restart_pending"]:
            ret.update(
                result=False,
                comment=ret["comment"]
                + _restart_note(after["restart_pending"])
                + ": not converged until PostgreSQL restarts (restart it in a maintenance window, "
                "or set mfa_ha:settings_restart: true)",
            )
    except FAILURES as err:
        return _failed(ret, err)
    return ret


def _restart_note(waiting):
    return f"; restart pending for {', '.join(waiting)}" if waiting else ""


@_state
def replication_user(name="replication user", **kwargs):
    """The replication role exists with REPLICATION, LOGIN, the connection limit and the
    pillar password (``mfa_ha:replication``). Only on a primary."""
    return _needs_then_apply(
        name,
        "replication_user",
        kwargs,
        lambda needs: needs,
        "the replication user",
        ("pgrepl.replication_user_needs", "pgrepl.set_replication_user"),
    )


@_state
def slot_present(name, **kwargs):
    """A physical replication slot ``name`` exists (on a primary)."""
    return _slot(name, True, kwargs)


@_state
def slot_absent(name, **kwargs):
    """No replication slot ``name`` exists; an active slot is not dropped."""
    return _slot(name, False, kwargs)


def _slot(name, wanted, kwargs):
    ret = _ret(name)
    try:
        validate_slot_name(name)
        exists = any(s["slot_name"] == name for s in __salt__["pgrepl.slots"](**kwargs))
        if exists == wanted:
            ret["comment"] = f"slot {name} is {'present' if wanted else 'absent'}"
            return ret
        verb = "create" if wanted else "drop"
        if _pending(
            ret, {"slot": {"old": None if wanted else name, "new": name if wanted else None}}, f"{verb} slot {name}"
        ):
            return ret
        __salt__[f"pgrepl.{verb}_slot"](name, **kwargs)
        if any(s["slot_name"] == name for s in __salt__["pgrepl.slots"](**kwargs)) != wanted:
            return _failed(ret, f"slot {name} did not {verb}")
        ret["comment"] = f"{verb}d slot {name}".replace("dropd", "dropped")
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def pillar_valid(name="mfa_ha pillar"):
    """The ``mfa_ha`` pillar is complete and well formed; fails naming every bad key.
    Put it first (``order: 1``, ``failhard: True``) so a bad pillar changes nothing."""
    ret = _ret(name)
    try:
        nodes = __salt__["pgrepl.validate_pillar"]()
        ret["comment"] = f"mfa_ha pillar is valid ({len(nodes)} nodes: {', '.join(nodes)})"
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def hba(name="pg_hba.conf", **kwargs):
    """The managed block of ``pg_hba.conf`` holds the peers' replication and rewind entries
    (and ``mfa_ha:hba:entries``) and is the first rule of the file; the rest is kept, except
    that a ``trust`` line for a non-local address is commented out. With
    ``mfa_ha:hba:foreign: report`` such lines fail the state instead. Reloads after a change."""
    ret = _ret(name)
    try:
        current = __salt__["pgrepl.hba"](**kwargs)
        if not current["differs"]:
            ret["comment"] = f"{current['path']} has the peers' entries"
            return ret
        changes = {"pg_hba": {k: current[k] for k in ("missing", "unexpected", "foreign") if current[k]}}
        foreign = "; ".join(f"line {f['line']} is {f['problem']}" for f in current["foreign"])
        if _pending(
            ret,
            changes,
            f"update the mfa-ha block of {current['path']}" + (f" (and repair: {foreign})" if foreign else ""),
        ):
            return ret
        __salt__["pgrepl.apply_hba"](**kwargs)
        if __salt__["pgrepl.hba"](**kwargs)["differs"]:
            return _failed(ret, f"{current['path']} still differs after writing it")
        ret["comment"] = f"updated the mfa-ha block of {current['path']} and reloaded"
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def pgpass(name="pgpass", **kwargs):
    """The database user's pgpass file holds the pillar's replication password for every
    peer (mode 0600). The password never appears in the return."""
    return _needs_then_apply(
        name,
        "pgpass",
        kwargs,
        lambda needs: {"updated": needs},
        "the peers' pgpass entries",
        ("pgrepl.pgpass_needs", "pgrepl.set_peer_pgpass"),
    )


def _needs_then_apply(name, key, kwargs, as_changes, subject, functions):
    """The skeleton for a state whose module lists what is missing: read it, stop if
    nothing is, report under test=True, apply, read back."""
    needs_fn, apply_fn = functions
    ret = _ret(name)
    try:
        needs = __salt__[needs_fn](**kwargs)
        if not needs:
            ret["comment"] = f"{subject}: as wanted"
            return ret
        if _pending(ret, {key: as_changes(needs)}, f"change {subject}: {', '.join(needs)}"):
            return ret
        __salt__[apply_fn](**kwargs)
        left = __salt__[needs_fn](**kwargs)
        if left:
            return _failed(ret, f"{subject} still differ: {', '.join(left)}")
        ret["comment"] = f"changed {subject}: {', '.join(needs)}"
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def standby(name, timeout=timing.STANDBY_SECONDS, replace_running_primary=False, **kwargs):
    """This node streams from the node ``name`` (an id in ``mfa_ha:nodes``). An empty or
    foreign data directory is cloned (the old one moved aside), a diverged one rewound, a
    misdirected one reconfigured; the state ends when the WAL receiver streams, within
    ``timeout`` seconds for all steps together (a clone or a rewind has an hour of its own). It never demotes a running primary; a running primary of another cluster
    is replaced only with ``replace_running_primary: True``."""
    ret = _ret(name)
    try:
        plan = __salt__["pgrepl.standby_plan"](name, replace_running_primary, **kwargs)
        steps = plan["steps"]
        if steps and _pending(ret, {"standby": steps}, "; ".join(f"{s['action']} ({s['reason']})" for s in steps)):
            return ret
        if not steps and __opts__["test"]:
            __salt__["pgrepl.wait_streaming"](name, min(float(timeout), timing.TEST_MODE_STREAM_SECONDS), **kwargs)
            ret["comment"] = f"streaming from {name}"
            return ret
        done = __salt__["pgrepl.make_standby"](name, timeout, replace_running_primary, **kwargs)
        if done["done"]:
            ret["changes"] = {"standby": done["plan"], "done": done["done"]}
        ret["comment"] = f"streaming from {name}" + (f" after {', '.join(done['done'])}" if done["done"] else "")
        if done.get("divergent"):
            ret["changes"]["divergent"] = done["divergent"]
            ret["comment"] += "; " + divergence.describe(done["divergent"], "pg_rewind discarded them")
        if done.get("rewind_method"):
            ret["changes"]["rewind_method"] = done["rewind_method"]
        if done.get("cloned_because"):
            ret["changes"]["cloned_because"] = done["cloned_because"]
            ret["comment"] += f"; pg_rewind failed, cloned instead: {done['cloned_because']}"
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def tls(name="TLS files", **kwargs):
    """This node's TLS CA, certificate and key (``mfa_ha:tls``) are in place under
    ``mfa_ha:tls:dir`` (key mode 0600, owned by the database user). The certificate is
    verified first; a wrong one fails naming its pillar key, with nothing written."""
    return _needs_then_apply(
        name, "tls", kwargs, lambda needs: {"written": needs}, "the TLS files", ("pgrepl.tls_needs", "pgrepl.apply_tls")
    )


@_state
def follows(name, timeout=timing.FOLLOW_SECONDS, **kwargs):
    """This node is configured to follow the live primary ``name`` (a node id): a stopped node
    that would start as a primary, or points elsewhere, gets its standby configuration (it is
    not started); a running standby pointing or streaming elsewhere is reconfigured and
    reloaded (13+) or restarted. Never clones, rewinds or demotes: that is mfa_ha.orch.rejoin."""
    ret = _ret(name)
    try:
        steps = __salt__["pgrepl.follow_plan"](name, **kwargs)["steps"]
        if not steps:
            ret["comment"] = f"follows {name}"
            return ret
        if _pending(ret, {"follows": steps}, "; ".join(f"{s['action']} ({s['reason']})" for s in steps)):
            return ret
        done = __salt__["pgrepl.follow"](name, timeout, **kwargs)
        left = __salt__["pgrepl.follow_plan"](name, **kwargs)["steps"]
        if left:
            return _failed(ret, f"still not following {name}: {left}")
        ret["comment"] = f"follows {name} after {', '.join(done['done'])}"
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def fenced(name="not a stale primary", **kwargs):
    """If another node is the primary on a later timeline while this one is (or would start
    as) a primary and serves no clients, fence this node: pmfad and PostgreSQL stopped, data
    directory configured as a standby of that node. With its app running it fails instead
    (a split brain: the operator chooses the node to keep)."""
    ret = _ret(name)
    try:
        decision = __salt__["pgrepl.fence_decision"](**kwargs)
        if decision["action"] == "none":
            ret["comment"] = decision["reason"]
            return ret
        if decision["action"] == "refuse":
            return _failed(ret, decision["reason"])
        newer = decision["primary"]
        if _pending(
            ret,
            {"fenced": {"old": "primary", "new": f"stopped, standby of {newer}"}},
            f"fence this node: {decision['reason']}",
        ):
            return ret
        done = __salt__["pgrepl.fence_if_stale"](**kwargs)
        ret["comment"] = f"fenced: {done['reason']}; run mfa_ha.orch.rejoin"
        ret["changes"]["done"] = done
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def lease_keeper(name="lease keeper config"):
    """
    The lease keeper's config file (``<mfa_ha:failover:run_dir>/config.json``, mode 0600) is
    what the pillar says. With ``mfa_ha:failover:automatic`` off and no file yet, nothing is
    written; once written, turning it off writes ``automatic: false`` and the keeper idles.
    The keeper re-reads the file at every poll.
    """
    ret = _ret(name)
    try:
        wanted = __salt__["pgrepl.lease_keeper_config"]()
        path = os.path.join(wanted["settings"]["run_dir"], "config.json")
        current = files.read_json(path)
        if current == wanted:
            ret["comment"] = f"{path} is as wanted"
            return ret
        if not current and not wanted["settings"]["automatic"]:
            ret["comment"] = "automatic failover is off (mfa_ha:failover:automatic): no lease keeper config"
            return ret
        changes = {
            "config": {"old": "missing" if not current else "differs", "new": path},
            "automatic": wanted["settings"]["automatic"],
        }
        if _pending(ret, changes, f"write {path}"):
            return ret
        files.write_json(path, wanted)
        os.chmod(path, 0o600)
        ret.update(changes=changes, comment=f"wrote {path}")
    except FAILURES as err:
        return _failed(ret, err)
    return ret


@_state
def health_endpoint(name="health endpoint config"):
    """
    The health endpoint's config file (``<mfa_ha:failover:run_dir>/endpoint.json``, mode
    0600) is what ``mfa_ha:endpoint`` says; the service re-binds within a second of a change.
    Off (the default) and no file: nothing to do; off with a file: the file is removed (the
    formula stops the service first; a service left running ends by itself once it is gone).
    """
    ret = _ret(name)
    try:
        wanted = __salt__["pgrepl.health_endpoint_config"]()
        path = os.path.join(wanted["run_dir"], "endpoint.json")
        current = files.read_json(path)
        if not wanted["enabled"]:
            if not current:
                ret["comment"] = "the health endpoint is off (mfa_ha:endpoint:enabled)"
                return ret
            if _pending(ret, {"config": {"old": path, "new": "removed"}}, f"remove {path}"):
                return ret
            os.unlink(path)
            ret.update(changes={"config": {"old": path, "new": "removed"}}, comment=f"removed {path}")
            return ret
        if current == wanted:
            ret["comment"] = f"{path} is as wanted ({wanted['listen']}:{wanted['port']})"
            return ret
        changes = {"config": {"old": "missing" if not current else "differs", "new": path}}
        if _pending(ret, changes, f"write {path} ({wanted['listen']}:{wanted['port']})"):
            return ret
        os.makedirs(os.path.dirname(path), exist_ok=True)
        files.write_json(path, wanted)
        os.chmod(path, 0o600)
        ret.update(changes=changes, comment=f"wrote {path} ({wanted['listen']}:{wanted['port']})")
    except (*FAILURES, OSError) as err:
        return _failed(ret, err)
    return ret


@_state
def kept_aside(name="copies kept aside", **kwargs):
    """At most ``mfa_ha:postgres:keep_moved_aside`` copies of the data directory that clones
    moved aside are kept (the newest); the older ones are removed, each named in the changes
    with its size."""
    ret = _ret(name)
    try:
        found = __salt__["pgrepl.kept_aside"](**kwargs)
        if not found["remove"]:
            ret["comment"] = f"{len(found['kept'])} kept aside (keep_moved_aside {found['keep']})"
            return ret
        doomed = {c["path"]: c["bytes"] for c in found["remove"]}
        if _pending(ret, {"removed": doomed}, f"remove {', '.join(doomed)} (keep_moved_aside {found['keep']})"):
            return ret
        removed = {c["path"]: c["bytes"] for c in __salt__["pgrepl.prune_kept_aside"](**kwargs)}
        ret["changes"] = {"removed": removed}
        ret["comment"] = f"removed {', '.join(removed) or 'nothing'} (keep_moved_aside {found['keep']})"
    except FAILURES as err:
        return _failed(ret, err)
    return ret
