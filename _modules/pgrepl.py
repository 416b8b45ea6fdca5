"""
Control PostgreSQL streaming replication on this node.

Defaults come from pillar ``mfa_ha:postgres`` (``data_dir``, ``bin_dir``, ``port``, ``host``
(socket directory), ``os_user``, ``superuser``, ``pgpass``, ``log_file``) and
``mfa_ha:replication`` (``user``, ``password``, ``connection_limit``), with the IBM PowerSC
MFA defaults (``/opt/IBM/powersc/MFA/mfadb``, port 5432, OS user ``postgres``, replication
user ``replicamfa``). Every function also takes those keys as keyword overrides.

The replication password is read from pillar only, written to a pgpass file (mode 0600,
owned by the database user) and never returned, logged or put on a command line.

The functions, in this order:

- the node's PostgreSQL, read: ``version``, ``status``, ``role``, ``settings``, ``slots``,
  ``slot_name``, ``standby_config``, ``shutdown_checkpoint_lsn``, ``pending_restart``,
  ``timeline_history``, ``kept_aside``;
- the node's PostgreSQL, acted on: ``start``, ``stop``, ``restart``, ``reload``,
  ``checkpoint``, ``create_slot``, ``drop_slot``, ``wait_for_lsn``, ``promote``,
  ``basebackup``, ``configure_standby``, ``rewind``, ``prune_kept_aside``;
- what the states converge, each a "what is needed" and its change: ``validate_pillar``,
  ``pillar_problems``, ``apply_settings``, ``replication_user_needs`` /
  ``set_replication_user``, ``pgpass_needs`` / ``set_pgpass`` / ``set_peer_pgpass``, ``hba`` /
  ``apply_hba``, ``tls_needs`` / ``apply_tls``, ``standby_plan`` / ``make_standby`` /
  ``last_rejoin`` / ``wait_streaming``, ``follow_plan`` / ``follow``;
- role changes, each node's part of an orchestration: ``switchover``, ``resume_primary``,
  ``rejoin``, ``failover``, ``fence``, ``discard_divergent``, ``restart_standby``;
- called by the master, the reactors and the beacon: ``node_status``, ``cluster_view``,
  ``stale_primary``, ``beacon_fired``, ``fence_if_stale``, ``fence_decision``,
  ``request_switchover``, ``confirm_switchover_request``;
- the unattended failover: ``lease_renew``, ``lease_keeper_config``, ``pause_automation``,
  ``paused``, ``resume_automation``.
"""

import logging
import os
import time

from mfa_ha import maintenance, timing
from mfa_ha.adapters.pillar import unresolvable, validate_nodes
from mfa_ha.adapters.pillar import validate as validate_mfa_ha_pillar
from mfa_ha.adapters.saltface import FAILURES, call_args, pillar_value, translate_errors
from mfa_ha.app import app_config
from mfa_ha.errors import InvalidInput, InvalidPillar
from mfa_ha.files import read_json, write_json
from mfa_ha.monitoring import alerts as pgalerts
from mfa_ha.monitoring import endpoint as pgendpoint
from mfa_ha.monitoring import health, singleflight
from mfa_ha.pair import failover as pgfailover
from mfa_ha.pair import peer as pgpeer
from mfa_ha.pair import standby as pgstandby
from mfa_ha.pair import switchover as sw
from mfa_ha.pair.service_address import Hooks
from mfa_ha.postgres import hba as pghba
from mfa_ha.postgres import keptaside, synchronous
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres import settings as pgsettings
from mfa_ha.postgres import tls as pgtls
from mfa_ha.postgres.config import postgres_config, replication_config
from mfa_ha.postgres.naming import slot_name as _slot_name
from mfa_ha.postgres.secrets import pgpass_has
from mfa_ha.postgres.server import Server
from mfa_ha.unattended import keeper as pgkeeper
from mfa_ha.unattended import lease as pglease
from mfa_ha.waiting import Deadline

log = logging.getLogger(__name__)

__virtualname__ = "pgrepl"


def __virtual__():
    return __virtualname__


def _pillar(key, default=None):
    return pillar_value(__pillar__, key, default, __salt__["sdb.get"])


def _app():
    return app_config(_pillar("mfa_ha:pmfad", {}), __grains__.get("os_family"))


def _server(kwargs) -> Server:
    cfg = postgres_config(_pillar("mfa_ha:postgres", {}), **call_args(kwargs))
    return Server(cfg, _tls(cfg.data_dir), _synchronous_settings(kwargs))


def _synchronous_settings(kwargs) -> dict:
    """This node's own synchronous replication settings: it names every other node."""
    repl_cfg = _repl_cfg(kwargs)
    if repl_cfg.synchronous == "off":
        return {}
    return synchronous.node_settings(repl_cfg, _nodes(), __opts__["id"])


def _wanted_settings(server, kwargs) -> dict:
    """What the settings state holds this node to: replication's needs, its own settings,
    ``mfa_ha:postgres:settings`` last."""
    mode = _repl_cfg(kwargs).synchronous
    overrides = _pillar("mfa_ha:postgres:settings", {}) or {}
    for key in synchronous.OWN_SETTINGS:
        if mode != "off" and key in overrides:
            raise InvalidInput(
                f"mfa_ha:postgres:settings:{key}: mfa_ha:replication:synchronous ({mode}) decides it; "
                "set mfa_ha:replication:synchronous_commit instead, or synchronous: off"
            )
    wanted = pgsettings.wanted(server, {**synchronous.wanted_when_off(mode), **overrides})
    if mode == "on" and pglease.read_record(_lease_settings().sync_file).get("state") == "degraded":
        wanted.pop("synchronous_standby_names", None)  # the keeper dropped the standby with the witness's word
    elif mode != "off" and synchronous.not_yet(server, _peer_slots()):
        wanted.pop("synchronous_standby_names", None)
    return wanted


def _tls(data_dir, check_node=False):
    """``mfa_ha:tls`` with an ``sdb://`` key resolved; with ``check_node`` this node's
    certificate and key are verified too (naming the key that is wrong)."""
    raw = dict(_pillar("mfa_ha:tls", {}) or {})
    try:
        nodes = _nodes()
    except InvalidInput:
        nodes = {}
    return pgtls.tls_config(raw, nodes, data_dir, __opts__["id"] if check_node else None)


def _repl_cfg(kwargs):
    return replication_config(_pillar("mfa_ha:replication", {}), **call_args(kwargs))


def _password():
    return _pillar("mfa_ha:replication:password", "")


def _nodes(resolved=False):
    """``mfa_ha:nodes`` checked; ``resolved``: every address a name this node resolves too."""
    nodes = validate_nodes(_pillar("mfa_ha:nodes"))
    problems = unresolvable(nodes) if resolved else []
    if problems:
        raise InvalidInput("\n- ".join(problems))
    return nodes


def _peers(resolved=False):
    return {node_id: node for node_id, node in _nodes(resolved).items() if node_id != __opts__["id"]}


def _peer_slots():
    """The slots the other nodes stream through: a standby must not keep them."""
    return [node["slot"] for node in _peers().values()]


def _upstream(primary, kwargs) -> pgpeer.Upstream:
    """The node id ``primary`` (from ``mfa_ha:nodes``) as an upstream; this node's slot is
    its own entry's slot (``slot=`` overrides)."""
    nodes = _nodes()
    if primary not in nodes:
        raise InvalidInput(f"primary: unknown node id {primary!r} (mfa_ha:nodes: {', '.join(nodes)})")
    if primary == __opts__["id"]:
        raise InvalidInput(f"primary: {primary} is this node; a node cannot stream from itself")
    own = nodes.get(__opts__["id"], {})
    slot = kwargs.get("slot") or own.get("slot") or _slot_name(__opts__["id"])
    return pgpeer.Upstream(nodes[primary]["address"], nodes[primary]["port"], _repl_cfg(kwargs).user, slot)


# -- the node's PostgreSQL, read ---------------------------------------------------------------
@translate_errors
def version(**kwargs):
    """
    Major version of the cluster in the data directory (from ``PG_VERSION``).

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.version
        salt '*' pgrepl.version data_dir=/srv/pg/data
    """
    return _server(kwargs).data_version().major


@translate_errors
def status(**kwargs):
    """
    The node's replication status: running, role, timeline, system identifier, LSNs,
    WAL receiver (upstream host and port, no secrets), replicas with lag, slots with the
    WAL they retain, lag in bytes and seconds. A stopped server reports what its control
    file says.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.status
    """
    return repl.status(_server(kwargs))


@translate_errors
def role(**kwargs):
    """
    ``primary`` or ``standby`` from the live server (``pg_is_in_recovery()``); for a stopped
    server the role it would start in; ``unknown`` without a cluster.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.role
    """
    return repl.role(_server(kwargs)).value


@translate_errors
def settings(**kwargs):
    """
    Replication settings that differ from what this version needs (plus pillar
    ``mfa_ha:postgres:settings``): ``{name: {old, new}}``, and those waiting for a restart.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.settings
    """
    server = _server(kwargs)
    wanted = _wanted_settings(server, kwargs)
    return {
        "differ": pgsettings.diff(pgsettings.current(server, wanted), wanted),
        "restart_pending": pgsettings.restart_pending(server, wanted),
    }


@translate_errors
def slots(**kwargs):
    """
    Replication slots with their active flag, restart LSN and retained WAL in bytes.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.slots
    """
    return repl.list_slots(_server(kwargs))


def slot_name(minion_id):
    """
    The replication slot name for a minion id: lower-case, other characters to ``_``.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.slot_name ServerA
    """
    return _slot_name(minion_id)


@translate_errors
def standby_config(**kwargs):
    """
    The standby settings in the data directory (primary_conninfo, slot, timeline).

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.standby_config
    """
    return repl.standby_config(_server(kwargs))


@translate_errors
def shutdown_checkpoint_lsn(**kwargs):
    """
    The shutdown checkpoint LSN of a cleanly stopped server (``pg_controldata``). Errors if
    the server runs or was not shut down cleanly.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.shutdown_checkpoint_lsn
    """
    return repl.shutdown_checkpoint_lsn(_server(kwargs))


@translate_errors
def pending_restart(**kwargs):
    """
    The settings whose new value waits for a restart (``pg_settings.pending_restart``); empty
    when none does.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.pending_restart
    """
    return pgsettings.restart_pending(_server(kwargs))


@translate_errors
def timeline_history(**kwargs):
    """
    This node's newest timeline history file (``pg_wal/<timeline>.history``, written by
    PostgreSQL at every promotion): ``timeline`` and the file's text, or timeline 1 and no
    history when this cluster was never promoted. ``salt-run mfa_ha.history`` reads it when
    the master's records are gone.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.timeline_history
    """
    server = _server(kwargs)
    server.require_cluster()
    wal = os.path.join(server.data_dir, "pg_wal")
    found = sorted(n for n in os.listdir(wal) if len(n) == 16 and n.endswith(".history") and _is_hex(n[:8]))
    if not found:
        return {"timeline": 1, "history": None}
    with open(os.path.join(wal, found[-1]), encoding="utf-8", errors="replace") as fh:
        return {"timeline": int(found[-1][:8], 16), "history": fh.read()}


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


@translate_errors
def kept_aside(**kwargs):
    """
    The copies of this node's data directory that clones kept aside (path, label, when,
    bytes), and which ``mfa_ha:postgres:keep_moved_aside`` (the newest N stay) would remove.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.kept_aside
    """
    server = _server(kwargs)
    copies = keptaside.kept(server.data_dir)
    keep = server.cfg.keep_moved_aside
    return {"kept": copies, "keep": keep, "remove": keptaside.to_remove(copies, keep)}


# -- the node's PostgreSQL, acted on -----------------------------------------------------------
@translate_errors
def start(timeout=timing.SERVER_ACTION_SECONDS, **kwargs):
    """
    Start PostgreSQL and wait until it accepts connections. Returns False if it already ran.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.start
    """
    return _server(kwargs).start(timeout=int(timeout))


@translate_errors
def stop(mode="fast", timeout=timing.SERVER_ACTION_SECONDS, **kwargs):
    """
    Stop PostgreSQL (``fast`` by default; ``smart`` or ``immediate``) and wait until it is gone.
    Returns False if it was not running.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.stop
        salt server_prod pgrepl.stop mode=smart timeout=120
    """
    return _server(kwargs).stop(mode=mode, timeout=int(timeout))


@translate_errors
def restart(mode="fast", timeout=timing.SERVER_ACTION_SECONDS, **kwargs):
    """
    Stop (if running) and start PostgreSQL.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.restart
    """
    server = _server(kwargs)
    server.stop(mode=mode, timeout=int(timeout))
    return server.start(timeout=int(timeout))


@translate_errors
def reload(**kwargs):
    """
    Reload the server's configuration (``pg_ctl reload``).

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.reload
    """
    _server(kwargs).reload()
    return True


@translate_errors
def checkpoint(**kwargs):
    """
    Run a ``CHECKPOINT``.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.checkpoint
    """
    _server(kwargs).execute("CHECKPOINT")
    return True


@translate_errors
def create_slot(name, **kwargs):
    """
    Create a physical replication slot (WAL reserved at once). Returns False if it existed.
    Only ``[a-z0-9_]`` names are valid.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.create_slot server_dr
    """
    return repl.create_slot(_server(kwargs), name)


@translate_errors
def drop_slot(name, **kwargs):
    """
    Drop a replication slot. Returns False if there was none; refuses an active slot.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.drop_slot server_dr
    """
    return repl.drop_slot(_server(kwargs), name)


@translate_errors
def wait_for_lsn(lsn, timeout=timing.LSN_WAIT_SECONDS, beyond=False, **kwargs):
    """
    Wait until this standby has received and replayed ``lsn`` (with ``beyond=True``, the
    record starting there in full). Bounded by ``timeout`` seconds; the error gives the
    figures reached.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.wait_for_lsn 0/3000028 timeout=30 beyond=True
    """
    return repl.wait_for_lsn(_server(kwargs), lsn, float(timeout), bool(beyond))


@translate_errors
def promote(timeout=timing.SERVER_ACTION_SECONDS, **kwargs):
    """
    Promote this standby and wait until it accepts writes; refuses on a primary.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.promote
    """
    return repl.promote(_server(kwargs), int(timeout))


@translate_errors
def basebackup(
    primary_host, primary_port=5432, slot=None, application_name=None, timeout=timing.COPY_SECONDS, **kwargs
):
    """
    Clone the primary into the (stopped) data directory with ``pg_basebackup`` through a
    slot, and configure it as that primary's standby. An existing data directory is moved
    aside with a timestamp, never deleted. The password comes from the pgpass file.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.basebackup 192.168.1.1 slot=server_dr
    """
    server = _server(kwargs)
    return repl.basebackup(
        server, primary_host, int(primary_port), _repl_cfg(kwargs).user, slot, application_name, int(timeout)
    )


@translate_errors
def configure_standby(primary_host, primary_port=5432, slot=None, application_name=None, **kwargs):
    """
    Write the standby configuration for the server's major version: ``recovery.conf`` up to
    11, ``standby.signal`` plus ``postgresql.auto.conf`` from 12; timeline ``latest``.
    Takes effect at the next start.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.configure_standby 192.168.1.1 slot=server_dr
    """
    server = _server(kwargs)
    return repl.configure_standby(
        server, primary_host, int(primary_port), _repl_cfg(kwargs).user, slot, application_name
    )


@translate_errors
def rewind(
    source_host,
    source_port=5432,
    slot=None,
    application_name=None,
    fallback=None,
    timeout=timing.COPY_SECONDS,
    **kwargs,
):
    """
    ``pg_rewind`` this stopped former primary onto the new primary, then write its standby
    configuration. With ``fallback=basebackup`` a failed rewind is followed by a fresh clone
    (the old directory moved aside).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.rewind 192.169.1.2 slot=server_prod fallback=basebackup
    """
    server = _server(kwargs)
    return repl.rewind(
        server, source_host, int(source_port), _repl_cfg(kwargs).user, slot, application_name, fallback, int(timeout)
    )


@translate_errors
def prune_kept_aside(**kwargs):
    """
    Remove the copies of this node's data directory kept aside beyond the newest
    ``mfa_ha:postgres:keep_moved_aside``; returns what was removed (each also logged at
    WARNING).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.prune_kept_aside
    """
    server = _server(kwargs)
    return keptaside.prune(server.data_dir, server.cfg.keep_moved_aside)


# -- what the states converge: what is needed, then the change ---------------------------------
@translate_errors
def validate_pillar():
    """
    Check the whole ``mfa_ha`` pillar (nodes and their addresses, slot names, data dir,
    password present, app manager); returns the nodes with their slots, or fails naming
    every bad key.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.validate_pillar
    """
    pillar = dict(_pillar("mfa_ha", {}) or {})
    nodes = validate_mfa_ha_pillar(pillar, __opts__["id"])
    problems = unresolvable(nodes)
    if problems:
        raise InvalidPillar("invalid mfa_ha pillar:\n- " + "\n- ".join(problems))
    return nodes


def pillar_problems():
    """
    The problems of the ``mfa_ha`` pillar as a list, empty when it is valid; never raises.
    The orchestrations render it into a failing first step, so a bad pillar (including one
    given on the command line) stops them before anything runs.

    CLI Example:

    .. code-block:: bash

        salt-run state.orchestrate ...   # used by mfa_ha.orch.switchover and failover
        salt '*' pgrepl.pillar_problems
    """
    try:
        validate_pillar()
    except FAILURES as err:  # validate_pillar is a Salt function: its errors are Salt's
        return [
            line.lstrip("- ") for line in str(err).splitlines() if line.strip(" -") and line != "invalid mfa_ha pillar:"
        ]
    return []


@translate_errors
def apply_settings(**kwargs):
    """
    Set the replication settings with ``ALTER SYSTEM`` and reload; returns what changed and
    which settings need a restart to take effect (the server is not restarted).

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.apply_settings
    """
    server = _server(kwargs)
    wanted = _wanted_settings(server, kwargs)
    changes = pgsettings.diff(pgsettings.current(server, wanted), wanted)
    applied = pgsettings.apply(server, {k: v["new"] for k, v in changes.items()}) if changes else {}
    return {"changes": changes, "restart_pending": applied.get("restart_pending", [])}


@translate_errors
def replication_user_needs(**kwargs):
    """
    What differs between the replication role and the pillar (``create``, ``replication
    login``, ``connection limit a -> b``, ``password``); empty when it is as wanted. The
    password is compared against the stored SCRAM verifier, never shown.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.replication_user_needs
    """
    server = _server(kwargs)
    rcfg = _repl_cfg(kwargs)
    password = _password()
    if not password:
        raise InvalidInput("mfa_ha:replication:password is empty or missing")
    return repl.user_needs(repl.replication_user(server, rcfg.user), rcfg, password)


@translate_errors
def set_replication_user(**kwargs):
    """
    Make the replication role (``mfa_ha:replication:user``) exist with REPLICATION, LOGIN,
    the connection limit and the pillar password (stored as SCRAM-SHA-256), plus the grants
    pg_rewind needs. Returns the list of what changed (never the password).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.set_replication_user
    """
    return repl.set_replication_user(_server(kwargs), _repl_cfg(kwargs), _password())


@translate_errors
def pgpass_needs(**kwargs):
    """
    Peers (``host:port``) whose pgpass entry for the replication user is missing or holds
    another password than the pillar's. The password itself is never returned.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.pgpass_needs
    """
    cfg, user, password = _server(kwargs).cfg, _repl_cfg(kwargs).user, _password()
    if not password:
        raise InvalidInput("mfa_ha:replication:password: missing (keep it in an encrypted pillar)")
    return sorted(
        f"{n['address']}:{n['port']}"
        for n in _peers(resolved=True).values()
        if not pgpass_has(cfg.pgpass_path, n["address"], n["port"], user, password)
    )


@translate_errors
def set_pgpass(host, port=5432, **kwargs):
    """
    Write the replication user's password for ``host:port`` into the DB user's pgpass file
    (mode 0600). Returns True when the file changed.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.set_pgpass 192.168.1.1
    """
    server = _server(kwargs)
    return repl.set_pgpass(server, host, int(port), _repl_cfg(kwargs).user, _password())


@translate_errors
def set_peer_pgpass(**kwargs):
    """
    Write the pgpass entries (mode 0600, owned by the database user) for every peer in
    ``mfa_ha:nodes``. Returns the peers whose entry changed.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.set_peer_pgpass
    """
    server, user, password = _server(kwargs), _repl_cfg(kwargs).user, _password()
    return sorted(
        f"{n['address']}:{n['port']}"
        for n in _peers(resolved=True).values()
        if repl.set_pgpass(server, n["address"], n["port"], user, password)
    )


@translate_errors
def hba(**kwargs):
    """
    Compare the managed block of ``pg_hba.conf`` with what the peers need: replication and
    rewind access for the replication user from every node in ``mfa_ha:nodes``
    (``scram-sha-256`` unless ``mfa_ha:hba:method``) plus ``mfa_ha:hba:entries``. Returns
    ``missing``/``unexpected`` lines and the file's path; changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.hba
    """
    server = _server(kwargs)
    server.require_cluster()
    path = pghba.hba_path(server)
    entries = _hba_entries(kwargs, server)
    allow_trust = bool((_pillar("mfa_ha:hba", {}) or {}).get("allow_trust"))
    return {**pghba.diff(pghba.read(path), entries, allow_trust), "path": path, "wanted": [e.line for e in entries]}


@translate_errors
def apply_hba(**kwargs):
    """
    Write the managed block of ``pg_hba.conf`` (the rest of the file is kept) and reload.
    A block the server would reject is not left in place.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.apply_hba
    """
    server = _server(kwargs)
    server.require_cluster()
    hba_pillar = _pillar("mfa_ha:hba", {}) or {}
    return pghba.apply(
        server,
        _hba_entries(kwargs, server),
        bool(hba_pillar.get("allow_trust")),
        hba_pillar.get("foreign", "repair") == "repair",
    )


def _hba_entries(kwargs, server=None):
    server = server or _server(kwargs)
    return pghba.wanted_entries(
        _nodes(resolved=True), _repl_cfg(kwargs).user, _pillar("mfa_ha:hba", {}), server.tls.enabled
    )


@translate_errors
def tls_needs(**kwargs):
    """
    This node's TLS files (``mfa_ha:tls``: CA, certificate, key under ``mfa_ha:tls:dir``)
    that are missing or differ in content, mode or owner; empty when TLS is off or all is
    in place. Never returns a file's content.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.tls_needs
    """
    cfg = postgres_config(_pillar("mfa_ha:postgres", {}), **call_args(kwargs))
    return pgtls.file_needs(_tls(cfg.data_dir), cfg.os_user)


@translate_errors
def apply_tls(**kwargs):
    """
    Verify this node's certificate (parses, matches its key, signed by ``mfa_ha:tls:ca``,
    valid now, names the node's address) and write the TLS files (key mode 0600, owned by
    the database user); reloads a running server when a file changed. A wrong or missing
    certificate fails naming the pillar key, before anything is written.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.apply_tls
    """
    server = _server(kwargs)
    tls = _tls(server.data_dir, check_node=True)
    changed = pgtls.write_files(tls, server.cfg.os_user)
    if changed and server.has_cluster() and server.is_running():
        server.reload()
    return changed


@translate_errors
def standby_plan(primary, replace_running_primary=False, **kwargs):
    """
    What it would take for this node to stream from ``primary`` (a node id of
    ``mfa_ha:nodes``): the steps (clone, rewind, configure, restart, start, ...) with a reason
    each. Only reads; fails when the node must not be made a standby (a running primary).

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.standby_plan server_prod
    """
    up = _upstream(primary, kwargs)
    return pgstandby.plan(_server(kwargs), up, bool(replace_running_primary)).as_dict()


@translate_errors
def make_standby(primary, timeout=timing.STANDBY_SECONDS, replace_running_primary=False, **kwargs):
    """
    Make this node a streaming standby of ``primary``: clone an empty or foreign data
    directory (the old one moved aside), rewind a diverged one, point a misdirected one at
    the primary, start it, and wait until it streams. It ends within ``timeout`` seconds, all
    steps together, but for a clone or a rewind: that copies the database and has an hour of
    its own. A running primary is never demoted; a running primary of another cluster is
    replaced only with ``replace_running_primary=True``.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.make_standby server_prod timeout=300
    """
    server, up = _server(kwargs), _upstream(primary, kwargs)
    steps = pgstandby.plan(server, up, bool(replace_running_primary))
    done = pgstandby.converge(
        server, up, steps.actions, float(timeout), progress=repl.log_progress, peer_slots=_peer_slots()
    )
    _remember_rejoin(primary, done)
    return {**done, "plan": steps.as_dict()["steps"]}


def _remember_rejoin(primary, done):
    """Kept for ``last_rejoin`` (the history's record of a rejoin); never fails the call."""
    record = {**pgstandby.outcome(done), "primary": primary, "at": time.time()}
    path = _lease_settings().rejoin_file
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json(path, record)
    except OSError as err:
        log.warning("what this rejoin did is not kept in %s: %s", path, err)


@translate_errors
def last_rejoin():
    """
    What this node's last re-attach as a standby did (``make_standby``, the ``pgrepl.standby``
    state): ``method`` (cloned, rewound, re-attached as it was, already streaming), its
    steps, why a clone, the divergent transactions discarded, the timeline it streams on,
    the primary and when (epoch seconds); empty when there was none since the node's boot
    (it lives in ``mfa_ha:failover:run_dir``). ``mfa_ha.orch.rejoin`` records it in the
    master's history.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.last_rejoin
    """
    return read_json(_lease_settings().rejoin_file)


@translate_errors
def wait_streaming(primary, timeout=timing.STREAMING_WAIT_SECONDS, **kwargs):
    """
    Wait (up to ``timeout`` seconds) until this standby's WAL receiver streams from
    ``primary``; returns the receiver's status.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.wait_streaming server_prod timeout=30
    """
    return pgstandby.wait_streaming(_server(kwargs), _upstream(primary, kwargs), float(timeout), repl.log_progress)


@translate_errors
def follow_plan(primary, **kwargs):
    """
    What highstate would do so this node follows the live primary ``primary`` without
    touching its data (write the standby configuration; reload or restart a running standby).
    Fails, naming ``mfa_ha.orch.rejoin``, when a clone or rewind would be needed.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.follow_plan server_prod
    """
    return pgstandby.follow_plan(_server(kwargs), _upstream(primary, kwargs), _peer_slots()).as_dict()


@translate_errors
def follow(primary, timeout=timing.FOLLOW_SECONDS, **kwargs):
    """
    Carry out ``follow_plan``; a running standby must then stream from ``primary`` within
    ``timeout`` seconds. A stopped node is configured, never started.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.follow server_prod
    """
    server, up = _server(kwargs), _upstream(primary, kwargs)
    steps = pgstandby.follow_plan(server, up, _peer_slots())
    return {
        **pgstandby.follow(server, up, steps.actions, float(timeout), repl.log_progress, _peer_slots()),
        "plan": steps.as_dict()["steps"],
    }


# -- role changes: each node's part of the orchestrations --------------------------------------
def _switchover_settings():
    value = _pillar("mfa_ha:switchover", {}) or {}
    if not isinstance(value, dict):
        raise InvalidInput("mfa_ha:switchover: must be a mapping (max_lag_bytes, timeout, job_timeout)")
    return value


@translate_errors
def switchover(target, timeout=None, drop_synchronous=False, **kwargs):
    """
    This node's part of a switchover to the node ``target``, chosen by its live role; run it
    on every node in one job (``mfa_ha.orch.switchover`` does). On the target: wait (bounded)
    until it holds and has replayed the old primary's shutdown checkpoint (pg_waldump), then
    promote, create the other nodes' slots, run ``mfa_ha:service_address:acquire`` and start
    the app. On the old primary: stop the app and PostgreSQL cleanly, wait until the target
    accepts writes (if it does not and is still a standby: start again here and fail), then
    re-attach as its standby (pg_rewind only if needed) and wait until streaming. Returns
    each step's wall-clock time.

    ``drop_synchronous=True`` (the orchestration passes it with ``synchronous: on``, once
    its prechecks recorded the old primary on the master as not promotable): the target
    takes writes without waiting for the old primary, whose re-attach would otherwise hold
    every commit; its lease keeper names the old primary again once that one streams. With
    ``strict`` it is ignored.

    CLI Example:

    .. code-block:: bash

        salt -L server_prod,server_dr pgrepl.switchover server_dr
    """
    settings = _switchover_settings()
    app_cfg = _app()
    return sw.run_part(
        _server(kwargs),
        app_cfg,
        __opts__["id"],
        target,
        _nodes(),
        _repl_cfg(kwargs).user,
        Hooks.from_pillar(_pillar("mfa_ha:service_address")),
        sw.switch_step(settings, timeout),
        repl.log_progress,
        drop_synchronous=str(drop_synchronous).lower() == "true" and _repl_cfg(kwargs).synchronous == "on",
    )


@translate_errors
def synchronous_mode():
    """
    ``mfa_ha:replication:synchronous`` as this node (or the master, in an orchestration)
    reads it: ``off``, ``on`` or ``strict``.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.synchronous_mode
    """
    return _repl_cfg({}).synchronous


@translate_errors
def switch_job_seconds(timeout=None):
    """
    How long the master waits for the switch job of ``mfa_ha.orch.switchover``: the longest
    node part with each step bounded by ``timeout`` (default ``mfa_ha:switchover:timeout``,
    else 30 s), pmfad's stop before it (``mfa_ha:pmfad``), and the return's way back.

    CLI Example:

    .. code-block:: bash

        salt-call pgrepl.switch_job_seconds
        salt-call pgrepl.switch_job_seconds timeout=60
    """
    return sw.switch_job_seconds({**_switchover_settings(), "job_timeout": None}, _app(), timeout)


@translate_errors
def resume_primary(timeout=None, **kwargs):
    """
    Start this cleanly stopped former primary and its app again after a switchover whose
    target failed (``mfa_ha.orch.switchover`` does it when its prechecks find no primary):
    refused unless the server was shut down cleanly, would start as a primary, and no peer
    answers as a primary.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.resume_primary
    """
    return sw.resume_primary(*_primary_part(timeout, kwargs), repl.log_progress)


def _primary_part(timeout, kwargs):
    """What a node's part as the (new) primary needs: its server, app, id, the other nodes,
    the client-routing hooks and the switch's timeout."""
    app_cfg = _app()
    others = pgpeer.peers(_nodes(), __opts__["id"], _repl_cfg(kwargs).user)
    return (
        _server(kwargs),
        app_cfg,
        __opts__["id"],
        others,
        Hooks.from_pillar(_pillar("mfa_ha:service_address")),
        sw.switch_step(_switchover_settings(), timeout),
    )


@translate_errors
def rejoin(primary, timeout=timing.STANDBY_SECONDS, **kwargs):
    """
    Re-attach this node (a stopped or fenced former primary, or a misdirected standby) as a
    streaming standby of the node ``primary``: pg_rewind only when its WAL went past the
    point where ``primary`` left its timeline (fresh clone if pg_rewind fails), standby
    configuration, start, wait until streaming, all within ``timeout`` seconds but for a
    rewind or a clone (an hour of its own). Refuses a running primary.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.rejoin server_dr
    """
    up = _upstream(primary, kwargs)
    bound = Deadline(float(timeout), f"re-attaching this node under {primary}")
    return sw.rejoin(_server(kwargs), up, up.slot, bound, repl.log_progress, _peer_slots())


@translate_errors
def failover(timeout=None, **kwargs):
    """
    Promote this standby because the primary is lost (``mfa_ha.orch.failover`` runs the
    prechecks and fences the others first): replay what was received, promote, create the
    other nodes' slots, run ``mfa_ha:service_address:acquire``, start the app. Returns the
    last WAL position received from the lost primary.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.failover
    """
    drop = _repl_cfg(kwargs).synchronous == "on"  # its keeper names the old primary again once that one caught up
    return pgfailover.promote_after_loss(*_primary_part(timeout, kwargs), repl.log_progress, drop_synchronous=drop)


@translate_errors
def fence(primary, **kwargs):
    """
    Fence this node: stop pmfad and PostgreSQL and configure the data directory as a
    standby of the node ``primary`` without starting it, so anything that starts it brings
    it up read-only. ``mfa_ha.orch.rejoin`` makes it stream again.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.fence server_dr
    """
    return pgfailover.fence(_server(kwargs), _app(), _upstream(primary, kwargs))


@translate_errors
def discard_divergent(keep, **kwargs):
    """
    This node lost a split brain: the operator keeps the node ``keep``. Counts the
    transactions this node committed after it left ``keep``'s history (when its timeline
    history shows where), fences it (app and PostgreSQL stopped) and moves its data
    directory aside, never deleted, so that ``mfa_ha.orch.rejoin`` clones it from ``keep``.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.discard_divergent server_prod
    """
    return pgfailover.discard_divergent(_server(kwargs), _app(), _upstream(keep, kwargs))


@translate_errors
def restart_standby(primary, command=None, timeout=timing.RESTART_STEP_SECONDS, **kwargs):
    """
    This standby's turn in a rolling restart (``salt-run mfa_ha.rolling_restart``): stopped
    (fast), ``command`` run while it is stopped (a list, no shell: a package upgrade for a
    PostgreSQL minor release), started, and streaming from ``primary`` again within
    ``timeout`` seconds. Refused on a primary.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.restart_standby server_prod
        salt server_dr pgrepl.restart_standby server_prod command='["apt-get", "install", "-y", "postgresql-15"]'
    """
    return pgstandby.restart_standby(
        _server(kwargs), _upstream(primary, kwargs), command or None, float(timeout), repl.log_progress
    )


# -- called by the master, the reactors and the beacon -----------------------------------------
def node_status(kept_aside=False, **kwargs):
    """
    ``pgrepl.status``, ``pmfad.status`` and each peer's role as this node sees it (``peers``:
    can this node reach them?) in one function, so the master asks with a single-function
    job (a compound job breaks every state run on the minion while it runs, Salt issue
    59141). A part that fails holds its error text instead of a dict. With
    ``kept_aside=True``, also the copies of the data directory kept aside (``kept_aside``).
    Jobs that ask at once share one computation (``mfa_ha.monitoring.singleflight``): a busy master
    costs this node one status at a time.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.node_status
    """
    path = os.path.join(__opts__["cachedir"], "mfa_ha", "node_status.json")
    try:
        result = dict(singleflight.shared(path, lambda: _node_status(kwargs), timing.NODE_STATUS_TURN_SECONDS))
    except singleflight.Busy as err:
        return {name: f"failed: {err}" for name in ("pgrepl.status", "pmfad.status", "peers")}
    if kept_aside:
        try:
            result["kept_aside"] = keptaside.kept(_server(kwargs).data_dir)
        except Exception as err:  # noqa: BLE001 - each part reports its own failure
            result["kept_aside"] = f"failed: {err}"
    return result


def _node_status(kwargs) -> dict:
    result = {}
    for name in ("pgrepl.status", "pmfad.status", "pgrepl.cluster_view"):
        try:
            result[name] = __salt__[name](**call_args(kwargs)) if name.startswith("pgrepl") else __salt__[name]()
        except Exception as err:  # noqa: BLE001 - each part reports its own failure
            result[name] = f"failed: {err}"
    view = result.pop("pgrepl.cluster_view")
    result["peers"] = view["peers"] if isinstance(view, dict) else view
    try:
        result["paused"] = maintenance.read(_lease_settings().pause_file)
    except Exception as err:  # noqa: BLE001 - each part reports its own failure
        result["paused"] = f"failed: {err}"
    return result


@translate_errors
def cluster_view(**kwargs):
    """
    The cluster as this node sees it: its own role (live, or the one a stopped server would
    start in), each peer's live role as it answers here (``primary``, ``standby``,
    ``unreachable``) and the ids of every node that accepts writes (two: split brain).

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.cluster_view
    """
    server = _server(kwargs)
    me = __opts__["id"]
    running = server.has_cluster() and server.is_running()
    role = repl.role(server).value
    peers = pgpeer.peer_roles(server, pgpeer.peers(_nodes(), me, _repl_cfg(kwargs).user))
    primaries = [n for n, r in peers.items() if r == "primary"] + ([me] if running and role == "primary" else [])
    return {"role": role, "running": running, "peers": peers, "primaries": sorted(primaries)}


@translate_errors
def stale_primary(**kwargs):
    """
    The id of a node that is a primary on a later timeline while this node is (or would
    start as) a primary — then this node must be fenced — or None.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.stale_primary
    """
    return pgfailover.stale_peer(_server(kwargs), pgpeer.peers(_nodes(), __opts__["id"], _repl_cfg(kwargs).user))


def beacon_fired(event_id):
    """
    What this minion's ``pgrepl`` beacon recorded for the event ``event_id`` (tag, severity,
    time), or None if it never fired it. The master's alert runner asks before it alerts.

    CLI Example:

    .. code-block:: bash

        salt server_dr pgrepl.beacon_fired 5f0c...
    """
    return health.fired(read_json(health.state_path(__opts__["cachedir"])), event_id)


@translate_errors
def fence_if_stale(replaced_by=None, **kwargs):
    """
    Fence this node if it is a stale former primary (another node is the primary on a later
    timeline) and serves no clients; with the app running it refuses (a split brain is the
    operator's to resolve) unless ``replaced_by`` names that primary: the master passes it
    when the operator confirmed this node lost in a failover to it. Returns ``action``
    (``fenced``, ``none``, ``refuse``), the reason and, once fenced, the ``divergent``
    transactions this node committed after it left the new primary's history. Run through
    ``mfa_ha.fence_if_stale`` by the reactors (minion start, a primary's heartbeat).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.fence_if_stale
        salt server_prod pgrepl.fence_if_stale replaced_by=server_dr
    """
    return pgfailover.fence_if_stale(*_fence_inputs(kwargs), replaced_by=replaced_by or None)


@translate_errors
def fence_decision(replaced_by=None, **kwargs):
    """
    Whether this node would be fenced, and why (``fence``, ``none``, ``refuse``); only reads.
    ``replaced_by``: as for ``fence_if_stale``.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.fence_decision
    """
    return pgfailover.fence_decision(*_fence_inputs(kwargs), replaced_by=replaced_by or None)


def _fence_inputs(kwargs):
    app_cfg = _app()
    return _server(kwargs), app_cfg, pgpeer.peers(_nodes(), __opts__["id"], _repl_cfg(kwargs).user)


def _request_dir():
    return os.path.join(__opts__["cachedir"], "mfa_ha", "requests")


def request_switchover(target):
    """
    Ask the master for a switchover to ``target`` (event ``mfa_ha/switchover/request``). The
    master acts only if this minion is in ``mfa_ha:switchover:requesters``, and first asks
    this minion to confirm the request's single-use token.

    CLI Example:

    .. code-block:: bash

        salt-call pgrepl.request_switchover server_dr
    """
    nonce = pgalerts.new_nonce()
    pgalerts.store_nonce(_request_dir(), nonce, target)
    __salt__["event.send"]("mfa_ha/switchover/request", {"target": target, "nonce": nonce})
    return {"requested": target, "nonce": nonce}


def confirm_switchover_request(nonce, target):
    """
    True once if this minion made the switchover request with this token (then used up).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.confirm_switchover_request 0123abcd... server_dr
    """
    return pgalerts.take_nonce(_request_dir(), str(nonce), str(target))


# -- the unattended failover (mfa_ha:failover:automatic): the lease, its keeper, the pause -----
def _lease_settings():
    return pglease.lease_settings(_pillar("mfa_ha:failover", {}))


@translate_errors
def lease_renew(seq, acked=None, session="", words=None):
    """
    The master's witness renews this node's lease: records when renewal ``seq`` of the
    witness ``session`` arrived (this host's monotonic clock) and which renewal of that
    session the master heard this node answer (``acked``: a number, or ``{node id:
    number}``), for the lease keeper to read; answers
    with this node's role, its WAL receiver (streaming, from which node, and ``quiet_s``: for
    how long no new WAL arrived, measured by the renewals that saw its receive position), the
    last heartbeat its keeper had from the other node's (``heard_from``, ``heard_quiet_s``) and
    whether its keeper is alive. Sent by the ``mfa_ha_witness`` engine every ``witness_every`` seconds.
    With ``synchronous: on``: ``words`` (``{node id: request}``) carries the witness's word that
    this node's keeper may drop its standby from synchronous replication, recorded first on the
    master; the answer's ``sync`` says where the keeper is (``mfa_ha.unattended.syncguard``).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.lease_renew 7 acked=6 session=5f0c3a9e1b2d4c6a
    """
    settings = _lease_settings()
    now = time.monotonic()
    mine = acked.get(__opts__["id"]) if isinstance(acked, dict) else acked
    record = pglease.read_record(settings.renewals_file)
    renewals = pglease.record_renewal(record, int(seq), None if mine is None else int(mine), now, str(session or ""))
    word = (words or {}).get(__opts__["id"]) if isinstance(words, dict) else None
    renewals["sync_word"] = str(word) if word else record.get("sync_word")
    keeper = pglease.read_record(settings.keeper_file)
    paused_here = maintenance.read(settings.pause_file)
    answer = {
        "seq": int(seq),
        "paused": maintenance.describe(paused_here) if paused_here else None,
        "keeper_alive": pglease.keeper_alive(keeper, now, settings) and keeper.get("action") == "hold",
        "keeper": {k: keeper.get(k) for k in ("action", "pid", "role")},
    }
    try:
        live = repl.status(_server({}))
    except Exception as err:  # noqa: BLE001 - the renewal counts even when the server does not answer
        pglease.write_record(settings.renewals_file, renewals)
        return {**answer, "running": False, "role": "unknown", "error": str(err)}
    receiver = live.get("receiver") or {}
    sender = next(
        (node_id for node_id, node in _nodes().items() if node["address"] == receiver.get("sender_host")), None
    )
    received = pglease.received(record.get("received"), live.get("receive_lsn"), now)
    pglease.write_record(settings.renewals_file, {**renewals, "received": received})
    beat = pglease.read_record(settings.peer_file)
    sync = pglease.read_record(settings.sync_file) if live.get("role") == "primary" else {}
    return {
        **answer,
        "sync": {k: sync.get(k) for k in ("state", "request", "lsn", "since")} if sync else None,
        "running": live.get("running"),
        "role": live.get("role"),
        "receiver": {
            "status": receiver.get("status"),
            "from": sender,
            "quiet_s": None if received is None else round(now - received["seen_at"], 3),
            "heard_from": beat.get("from"),
            "heard_quiet_s": round(now - beat["at"], 3) if isinstance(beat.get("at"), (int, float)) else None,
        },
    }


@translate_errors
def lease_keeper_config():
    """
    What this node's lease keeper runs with (``mfa_ha:failover``, this node's PostgreSQL and
    pmfad settings, the standby it would be configured to follow when it fences itself); no
    secret. The state ``pgrepl.lease_keeper`` writes it to ``<run_dir>/config.json``. With
    ``mfa_ha:failover:automatic`` off, only the settings (the keeper idles).

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.lease_keeper_config
    """
    settings = _lease_settings()
    if not settings.automatic:  # the keeper idles: nothing else to tell it
        return {"settings": pglease.settings_dict(settings)}
    nodes = _nodes()
    if __opts__["id"] not in nodes:
        raise InvalidInput(
            f"mfa_ha:nodes: this minion ({__opts__['id']}) is not one of the nodes "
            f"({', '.join(nodes)}); its lease keeper has nothing to keep"
        )
    peers = sorted(_peers())
    if len(peers) != 1:
        raise InvalidInput(f"mfa_ha:nodes: automatic failover needs exactly two nodes, found {len(peers) + 1}")
    server = _server({})
    return pgkeeper.build_config(
        settings,
        _pillar("mfa_ha:postgres", {}) or {},
        _pillar("mfa_ha:pmfad", {}) or {},
        server.tls,
        __grains__.get("os_family"),
        peers[0],
        _upstream(peers[0], {}),
        __opts__["id"],
        nodes[__opts__["id"]]["address"],
        _keeper_synchronous(server, nodes[peers[0]]["slot"]),
    )


@translate_errors
def health_endpoint_config():
    """
    What this node's health endpoint (``mfa_ha:endpoint``) runs with: its address and port,
    this node's PostgreSQL, TLS and the other node to ask for its role, the lease keeper's
    files to read. The state ``pgrepl.health_endpoint`` writes it to
    ``<mfa_ha:failover:run_dir>/endpoint.json``. ``{"enabled": false, "run_dir": ...}`` when it is off.

    CLI Example:

    .. code-block:: bash

        salt server_prod pgrepl.health_endpoint_config
    """
    wanted, settings = pgendpoint.endpoint_settings(_pillar("mfa_ha:endpoint", None)), _lease_settings()
    if not wanted.enabled:
        return {"enabled": False, "run_dir": settings.run_dir}
    nodes = _nodes()
    if __opts__["id"] not in nodes:
        raise InvalidInput(f"mfa_ha:nodes: this minion ({__opts__['id']}) is not one of the nodes ({', '.join(nodes)})")
    peers = sorted(_peers())
    if len(peers) != 1:
        raise InvalidInput(f"mfa_ha:nodes: the health endpoint needs exactly two nodes, found {len(peers) + 1}")
    peer = _upstream(peers[0], {})
    return {
        "enabled": True,
        "service": wanted.service,
        **pgendpoint.build_config(
            __opts__["id"],
            nodes[__opts__["id"]]["address"],
            wanted.port,
            _pillar("mfa_ha:postgres", {}) or {},
            _server({}).tls,
            {"host": peer.host, "port": peer.port, "user": peer.user},
            settings.run_dir,
            {
                "automatic": settings.automatic,
                "lease_seconds": settings.lease_seconds,
                "alive_within": settings.alive_within,
            },
        ),
    }


def _keeper_synchronous(server, standby_name):
    """With ``synchronous: on`` the keeper drops the standby with the witness's word and names
    it again (``mfa_ha.unattended.syncguard``): the names this node runs with, and the
    standby's application name (its slot)."""
    if _repl_cfg({}).synchronous != "on":
        return {}
    names = server.node_settings.get("synchronous_standby_names", "")
    return {"mode": "on", "names": names, "standby": standby_name}


@translate_errors
def pause_automation(record):
    """
    Record a pause of automatic failover on this node (``record``: what ``salt-run
    mfa_ha.pause`` made: ``id``, ``by``, ``at``, ``reason``): its lease keeper goes on
    measuring but does not fence until ``pgrepl.resume_automation``. Sent by ``salt-run
    mfa_ha.pause``, after the master itself stopped failing over.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.pause reason="patching server_dr"   # how an operator pauses
    """
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record.get("at"):
        raise InvalidInput(f"record: a pause record from salt-run mfa_ha.pause, not {record!r}")
    path = _lease_settings().pause_file
    changed = maintenance.write(path, dict(record))
    return {"paused": maintenance.read(path), "changed": changed}


@translate_errors
def paused():
    """
    The pause of automatic failover recorded on this node (``paused``: who, when, why; None
    when not paused) and its one-line ``summary``.

    CLI Example:

    .. code-block:: bash

        salt '*' pgrepl.paused
    """
    record = maintenance.read(_lease_settings().pause_file)
    return {"paused": record, "summary": maintenance.describe(record)}


@translate_errors
def resume_automation():
    """
    End a pause of automatic failover on this node: its lease keeper fences again when its
    lease runs out. Sent by ``salt-run mfa_ha.unpause`` before the master fails over again.

    CLI Example:

    .. code-block:: bash

        salt-run mfa_ha.unpause   # how an operator ends a pause
    """
    return {"paused": None, "changed": maintenance.clear(_lease_settings().pause_file)}
