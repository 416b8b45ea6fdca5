"""Streaming replication on one node: status, slots, replication user, clone, standby
configuration, shutdown checkpoint, promotion and rewind."""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from mfa_ha import lsn as lsnlib
from mfa_ha import timing
from mfa_ha.errors import (
    CommandFailed,
    ConnectionFailed,
    InvalidInput,
    LsnNotReached,
    MfaHaError,
    NotCleanlyShutDown,
    NotStandbyError,
    VersionMismatch,
)
from mfa_ha.files import chown_to, replace_file
from mfa_ha.postgres import keptaside
from mfa_ha.postgres.config import ReplicationConfig
from mfa_ha.postgres.naming import build_conninfo, validate_role_name, validate_slot_name
from mfa_ha.postgres.secrets import scram_matches, write_pgpass
from mfa_ha.postgres.server import CLEAN_SHUTDOWN_STATES, PEER_SESSION_OPTIONS, Server
from mfa_ha.postgres.versions import (
    AUTO_CONF,
    LAG_SECONDS,
    RECEIVER_SENDER_HOST,
    RECEIVER_SENDER_PORT,
    RECOVERY_CONF,
    STANDBY_SIGNAL,
    PgVersion,
    parse_conf,
    primary_cleanup,
    render_auto_conf,
    standby_files,
)
from mfa_ha.roles import Role, ServerState
from mfa_ha.waiting import poll

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# One WAL segment: a standby further behind is not ready for a switchover (mfa_ha:switchover:max_lag_bytes)
# and the beacon warns (lag_warn_bytes).
DEFAULT_LAG_LIMIT_BYTES = 16 * 1024 * 1024
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
    "pg_catalog.pg_control_checkpoint()",  # to see that a new primary's control file is current
)
PROGRESS_LOG = logging.getLogger("mfa_ha.progress")


def log_progress(message: str) -> None:
    """Long steps report here, at WARNING so that Salt's default log level shows them (the
    console of ``salt-call``, the minion log); ``log_granular_levels: {mfa_ha.progress: error}``
    silences them."""
    PROGRESS_LOG.warning("%s", message)


# -- status -------------------------------------------------------------------
def role(server: Server) -> Role:
    if server.is_running():
        in_recovery = server.query_one("SELECT pg_is_in_recovery() AS r")["r"]
        return Role.STANDBY if in_recovery else Role.PRIMARY
    return configured_role(server)


def configured_role(server: Server) -> Role:
    """The role a stopped server will start in, from its signal files and control file."""
    if not server.has_cluster():
        return Role.UNKNOWN
    for marker in (STANDBY_SIGNAL, RECOVERY_CONF):
        if os.path.exists(os.path.join(server.data_dir, marker)):
            return Role.STANDBY
    return Role.PRIMARY


STATUS_SQL = f"""
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('server_version_num')::int AS version_num,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       current_setting('wal_log_hints') = 'on' OR current_setting('data_checksums') = 'on' AS rewind_ready,
       CASE WHEN pg_is_in_recovery() THEN {LAG_SECONDS} END AS lag_seconds,
       CASE WHEN pg_is_in_recovery()
            THEN (SELECT timeline_id FROM pg_control_checkpoint())
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS timeline
"""
RECEIVER_SQL = f"""
SELECT status, {RECEIVER_SENDER_HOST} AS sender_host, {RECEIVER_SENDER_PORT} AS sender_port,
       slot_name, received_tli, extract(epoch FROM now() - last_msg_receipt_time)::float8 AS last_message_age
FROM pg_stat_wal_receiver r
"""
REPLICAS_SQL = """
SELECT application_name, client_addr::text AS client_addr, state, sync_state,
       sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       extract(epoch FROM replay_lag)::float8 AS lag_seconds
FROM pg_stat_replication ORDER BY application_name
"""
SLOTS_SQL = """
SELECT slot_name, slot_type, active, restart_lsn::text,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots ORDER BY slot_name
"""


def status(server: Server) -> dict:
    """Everything an operator checks on one node, running or not, never a secret."""
    state = server.state()
    result = {"data_dir": server.data_dir, "port": server.cfg.port, "state": state.value}
    if state is ServerState.MISSING:
        return {**result, "running": False, "role": Role.UNKNOWN.value}
    if state is ServerState.STOPPED:
        return {**result, **_stopped_status(server)}
    row = server.query_one(STATUS_SQL)
    is_standby = row["in_recovery"]
    result.update(
        running=True,
        role=(Role.STANDBY if is_standby else Role.PRIMARY).value,
        version=PgVersion.parse(row["version_num"]).major,
        system_identifier=row["system_identifier"],
        timeline=row["timeline"],
        current_lsn=row["current_lsn"],
        receive_lsn=row["receive_lsn"],
        replay_lsn=row["replay_lsn"],
        rewind_ready=row["rewind_ready"],
        slots=list_slots(server),
    )
    if is_standby:
        receiver = server.query_one(RECEIVER_SQL) or None
        result.update(
            receiver=receiver,
            lag_bytes=_pending_bytes(row["receive_lsn"], row["replay_lsn"]),
            lag_seconds=row["lag_seconds"],
        )
        if receiver and receiver.get("received_tli"):
            result["timeline"] = max(result["timeline"], receiver["received_tli"])
    else:
        replicas = server.query(REPLICAS_SQL)
        result.update(
            replicas=replicas,
            lag_bytes=max((r["lag_bytes"] or 0 for r in replicas), default=0),
            lag_seconds=max((r["lag_seconds"] or 0 for r in replicas), default=0),
        )
    return result


def _pending_bytes(receive_lsn: str | None, replay_lsn: str | None) -> int | None:
    """Received WAL not yet replayed; right after a start the receive position is the start of
    the segment streaming resumed from, behind the replay position: nothing is pending."""
    pending = lsnlib.diff(receive_lsn, replay_lsn)
    return None if pending is None else max(pending, 0)


def _stopped_status(server: Server) -> dict:
    control = server.controldata()
    return {
        "running": False,
        "role": configured_role(server).value,
        "version": server.data_version().major,
        "system_identifier": control.get("Database system identifier"),
        "timeline": int(control.get("Latest checkpoint's TimeLineID", 0) or 0),
        "cluster_state": control.get("Database cluster state"),
        "checkpoint_lsn": control.get("Latest checkpoint location"),
    }


# -- slots --------------------------------------------------------------------
def list_slots(server: Server) -> list[dict]:
    return server.query(SLOTS_SQL)


def create_slot(server: Server, name: str) -> bool:
    """Create a physical slot that reserves WAL at once; False when it already exists."""
    validate_slot_name(name)
    server.require_running()
    if any(s["slot_name"] == name for s in list_slots(server)):
        return False
    server.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
    return True


def stale_standby_slots(server: Server, names) -> list[dict]:
    """On a running standby: the inactive slots among ``names`` (the nodes' own slots, left
    from when this node was the primary). A standby serves no standby of its own, and an
    inactive slot holds every WAL segment written since its restart_lsn."""
    if not server.is_running() or role(server) is not Role.STANDBY:
        return []
    wanted = set(names or ())
    return [s for s in list_slots(server) if s["slot_name"] in wanted and not s["active"]]


def drop_stale_standby_slots(server: Server, names, progress: Progress = log_progress) -> list[str]:
    """Drop ``stale_standby_slots``; the names dropped. A promotion creates them again."""
    dropped = []
    for slot in stale_standby_slots(server, names):
        if drop_slot(server, slot["slot_name"]):
            progress(
                f"dropped slot {slot['slot_name']} on this standby (it held {slot['retained_bytes']} bytes of WAL)"
            )
            dropped.append(slot["slot_name"])
    return dropped


def drop_slot(server: Server, name: str) -> bool:
    """Drop a slot; False when there is none. Refuses an active slot."""
    validate_slot_name(name)
    server.require_running()
    slot = next((s for s in list_slots(server) if s["slot_name"] == name), None)
    if slot is None:
        return False
    if slot["active"]:
        raise MfaHaError(f"replication slot {name} is in use by a connected standby; stop it first")
    server.execute("SELECT pg_drop_replication_slot(%s)", (name,))
    return True


# -- replication user -----------------------------------------------------------
def replication_user(server: Server, user: str) -> dict | None:
    rows = server.query(
        "SELECT rolname, rolreplication, rolcanlogin, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = %s",
        (user,),
    )
    if not rows:
        return None
    functions = REWIND_FUNCTIONS if server.data_version().can_grant_rewind_functions else ()
    rows[0]["missing_grants"] = [
        f
        for f in functions
        if not server.query_one("SELECT has_function_privilege(%s, %s, 'EXECUTE') AS ok", (user, f))["ok"]
    ]
    return rows[0]


def user_needs(current: dict | None, rcfg: ReplicationConfig, password: str) -> list[str]:
    """What differs between the role as it is and as wanted (never the password itself)."""
    if current is None:
        return ["create"]
    needs = []
    if not current["rolreplication"] or not current["rolcanlogin"]:
        needs.append("replication login")
    if current["rolconnlimit"] != rcfg.connection_limit:
        needs.append(f"connection limit {current['rolconnlimit']} -> {rcfg.connection_limit}")
    if not scram_matches(current["rolpassword"], password):
        needs.append("password")
    if current.get("missing_grants"):
        needs.append("pg_rewind grants")
    return needs


def set_replication_user(server: Server, rcfg: ReplicationConfig, password: str) -> list[str]:
    """Make the replication role exist as wanted; returns what was changed (empty: nothing).

    The password is hashed (SCRAM-SHA-256) on this side, so the clear text reaches neither
    the server's log nor ``pg_stat_activity``.
    """
    validate_role_name(rcfg.user)
    if not password:
        raise InvalidInput("mfa_ha:replication:password is empty or missing")
    server.require_running()
    needs = user_needs(replication_user(server, rcfg.user), rcfg, password)
    if not needs:
        return []
    with server.connect() as conn, conn.cursor() as cur:
        verifier = psycopg2.extensions.encrypt_password(password, rcfg.user, conn, "scram-sha-256")
        verb = "CREATE" if needs == ["create"] else "ALTER"
        cur.execute(
            sql.SQL("{} ROLE {} WITH REPLICATION LOGIN CONNECTION LIMIT {} PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(rcfg.user), sql.Literal(rcfg.connection_limit), sql.Literal(verifier)
            )
        )
        if server.data_version().can_grant_rewind_functions:
            for function in REWIND_FUNCTIONS:
                cur.execute(
                    sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), sql.Identifier(rcfg.user))
                )
    return needs


def set_pgpass(server: Server, host: str, port: int, user: str, password: str) -> bool:
    if not password:
        raise InvalidInput("mfa_ha:replication:password is empty or missing")
    return write_pgpass(server.cfg.pgpass_path, server.cfg.os_user, host, port, user, password)


# -- upstream checks ------------------------------------------------------------
def upstream_conninfo(server: Server, host: str, port: int, user: str, application_name: str | None, **extra) -> str:
    return build_conninfo(
        host=host, port=port, user=user, application_name=application_name, **server.peer_params(), **extra
    )


def upstream_connection(
    server: Server,
    host: str,
    port: int,
    user: str,
    replication: bool = False,
    connect_timeout: float | None = None,
    application_name: str = "mfa_ha_check",
):
    """The one way this tool connects to another node: as the replication user (password
    from pgpass), over TLS as configured, database ``postgres`` or the replication protocol,
    its statements bounded. Raises ConnectionFailed naming the cause."""
    kind = (
        {"connection_factory": psycopg2.extras.PhysicalReplicationConnection} if replication else {"dbname": "postgres"}
    )
    params = {**server.check_params(), **({"connect_timeout": connect_timeout} if connect_timeout else {})}
    try:
        return psycopg2.connect(
            host=host,
            port=port,
            user=user,
            application_name=application_name,
            options=PEER_SESSION_OPTIONS,
            **kind,
            **params,
        )
    except psycopg2.OperationalError as err:
        raise ConnectionFailed(f"cannot reach {host}:{port} as {user}: {_first_line(err)}") from None


def upstream_database_bytes(server: Server, host: str, port: int, user: str) -> int | None:
    """The size of the upstream's databases (what a clone copies), or None when the
    replication user may not read it."""
    try:
        conn = upstream_connection(server, host, port, user)
    except ConnectionFailed as err:  # the clone itself will say why it cannot connect
        log.info("size of %s:%s's databases unknown (%s): no free-space check before the clone", host, port, err)
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT sum(pg_database_size(oid))::bigint FROM pg_database WHERE datallowconn")
            return cur.fetchone()[0]
    except psycopg2.Error as err:
        log.info(
            "size of %s:%s's databases unknown (%s): no free-space check before the clone", host, port, _first_line(err)
        )
        return None
    finally:
        conn.close()


def identify_upstream(server: Server, host: str, port: int, user: str) -> dict:
    """Connect to the upstream as the replication user (password from pgpass) and read its
    system identifier, timeline and version. Raises ConnectionFailed naming the cause."""
    conn = upstream_connection(server, host, port, user, replication=True)
    try:
        with conn.cursor() as cur:
            cur.execute("IDENTIFY_SYSTEM")
            system_id, timeline, xlogpos, _ = cur.fetchone()
        return {
            "system_identifier": str(system_id),
            "timeline": int(timeline),
            "lsn": xlogpos,
            "version": PgVersion.parse(conn.server_version).major,
        }
    finally:
        conn.close()


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# -- clone and standby configuration --------------------------------------------
def basebackup(
    server: Server,
    host: str,
    port: int,
    user: str,
    slot: str | None,
    application_name: str | None = None,
    timeout: int = timing.COPY_SECONDS,
    progress: Progress = log_progress,
) -> dict:
    """Clone the primary into the data directory and configure it as its standby.

    Refuses while a server runs on the data directory, and when the free space cannot hold
    the primary's databases (``mfa_ha.postgres.keptaside``). An existing directory is moved aside with
    a timestamp; if the clone fails, it is put back and the failed copy kept.
    """
    if slot:
        validate_slot_name(slot)
    server.require_stopped("replacing its data directory")
    upstream = identify_upstream(server, host, port, user)
    progress(f"primary {host}:{port} answers: system {upstream['system_identifier']}, timeline {upstream['timeline']}")
    keptaside.require_clone_space(server.data_dir, upstream_database_bytes(server, host, port, user))
    old = keptaside.move_aside(server.data_dir) if _non_empty(server.data_dir) else None
    if os.path.isdir(server.data_dir):
        os.rmdir(server.data_dir)  # empty directory: nothing to keep
    os.makedirs(server.data_dir, mode=0o700)
    chown_to(server.data_dir, server.cfg.os_user)
    conninfo = upstream_conninfo(server, host, port, user, application_name)
    args = ["-d", conninfo, "-D", server.data_dir, "-X", "stream", "-c", "fast", "-w", "-P"]
    if slot:
        args += ["-S", slot]
    started = time.monotonic()
    try:
        server.run("pg_basebackup", *args, timeout=timeout, progress=progress)
    except CommandFailed as err:
        failed = keptaside.move_aside(server.data_dir, "failed")
        if old:
            os.rename(old, server.data_dir)
        raise CommandFailed(f"{err} (the failed copy is in {failed}; the data directory was restored)") from None
    progress(f"cloned {host}:{port} into {server.data_dir} in {time.monotonic() - started:.1f} s")
    configure_standby(server, host, port, user, slot, application_name)
    return {
        "moved_aside": old,
        "system_identifier": upstream["system_identifier"],
        "seconds": round(time.monotonic() - started, 3),
    }


def _non_empty(path: str) -> bool:
    return os.path.isdir(path) and bool(os.listdir(path)) or os.path.isfile(path)


def configure_standby(
    server: Server,
    host: str,
    port: int,
    user: str,
    slot: str | None,
    application_name: str | None = None,
    trigger_file: str | None = None,
) -> dict:
    """Write the standby configuration for the server's version; returns what changed."""
    if slot:
        validate_slot_name(slot)
    version = server.data_version()
    server.tls.require_files()
    conninfo = upstream_conninfo(server, host, port, user, application_name or slot)
    wanted = standby_files(version, conninfo, slot, trigger_file, server.local_settings())
    changed = _apply_files(server, wanted)
    return {"changed": changed, "primary_conninfo": conninfo, "version": version.major}


def standby_config(server: Server) -> dict:
    """The standby settings the data directory holds now (conninfo is secret-free by design)."""
    version = server.data_version()
    name = AUTO_CONF if version.uses_standby_signal else RECOVERY_CONF
    settings = parse_conf(_read(os.path.join(server.data_dir, name)))
    keys = ("primary_conninfo", "primary_slot_name", "recovery_target_timeline")
    return {k: settings.get(k) for k in keys}


def _apply_files(server: Server, wanted) -> list[str]:
    changed = []
    for name, content in wanted.files.items():
        if _write_if_different(server, name, content):
            changed.append(name)
    if wanted.auto_conf:
        current = _read(os.path.join(server.data_dir, AUTO_CONF))
        if _write_if_different(server, AUTO_CONF, render_auto_conf(current, wanted.auto_conf)):
            changed.append(AUTO_CONF)
    for name in wanted.remove:
        path = os.path.join(server.data_dir, name)
        if os.path.exists(path):
            os.unlink(path)
            changed.append(f"-{name}")
    return changed


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def _write_if_different(server: Server, name: str, content: str) -> bool:
    path = os.path.join(server.data_dir, name)
    if os.path.exists(path) and _read(path) == content:
        return False
    replace_file(path, content, 0o600, server.cfg.os_user)
    return True


# -- switchover pieces ----------------------------------------------------------
def shutdown_checkpoint_lsn(server: Server) -> str:
    """The LSN of a cleanly stopped server's shutdown checkpoint, from pg_controldata."""
    server.require_stopped("reading its shutdown checkpoint")
    control = server.controldata()
    state = control.get("Database cluster state", "")
    if state not in CLEAN_SHUTDOWN_STATES:
        raise NotCleanlyShutDown(
            f"{server.data_dir} was not shut down cleanly (cluster state: {state or 'unknown'}); "
            "its last WAL may not have reached the standby"
        )
    return control["Latest checkpoint location"]


def wait_for_lsn(
    server: Server, target: str, timeout: float = 30, beyond: bool = False, progress: Progress = log_progress
) -> dict:
    """Wait until this standby has received and replayed ``target`` (bounded).

    With ``beyond`` the record starting at ``target`` must be replayed in full, as for a
    shutdown checkpoint whose start LSN pg_controldata reports.
    """
    wanted = lsnlib.to_int(target)

    def probe():
        row = server.query_one(
            "SELECT pg_is_in_recovery() AS r, pg_last_wal_receive_lsn()::text AS rx, "
            "pg_last_wal_replay_lsn()::text AS rp"
        )
        if not row["r"]:
            raise NotStandbyError(f"{server.data_dir} is not a standby (it accepts writes)")
        reached = min(lsnlib.to_int(v) if v else 0 for v in (row["rx"], row["rp"]))
        return reached > wanted or (not beyond and reached == wanted), {**row, "short": wanted - reached}

    row = poll(
        probe,
        timeout,
        timing.REPLICATION_POLL_SECONDS,
        progress=progress,
        fail=lambda row: LsnNotReached(
            f"standby did not reach {target} within {timeout:g} s: received {row['rx']}, "
            f"replayed {row['rp']} ({row['short']} bytes short)"
        ),
        report=lambda row: f"waiting for {target}: received {row['rx']}, replayed {row['rp']}",
    )
    return {"target": target, "receive_lsn": row["rx"], "replay_lsn": row["rp"]}


def promote(server: Server, timeout: int = 60) -> dict:
    """Promote this standby and wait until it accepts writes. Refuses on a primary."""
    server.require_running()
    if role(server) is Role.PRIMARY:
        raise NotStandbyError(f"{server.data_dir} is already a primary; nothing to promote")
    started = time.monotonic()
    version = server.data_version()
    with server.connect() as conn, conn.cursor() as cur:
        if version.has_pg_promote:
            cur.execute("SELECT pg_promote(false)")
        else:
            server.run("pg_ctl", "promote", "-D", server.data_dir, timeout=timeout + 10)

        def left_recovery():
            cur.execute("SELECT pg_is_in_recovery()")
            return not cur.fetchone()[0], None

        poll(
            left_recovery,
            timeout,
            timing.PROMOTE_POLL_SECONDS,
            fail=lambda _: MfaHaError(f"{server.data_dir} did not leave recovery within {timeout} s"),
        )
    _apply_files(server, primary_cleanup(version))
    row = server.query_one(STATUS_SQL)
    return {"timeline": row["timeline"], "lsn": row["current_lsn"], "seconds": round(time.monotonic() - started, 3)}


def _wait_source_checkpoint(server: Server, host: str, port: int, user: str, timeline: int, progress: Progress) -> None:
    """pg_rewind reads the source's timeline from its control file, which a promoted server
    updates only at its next checkpoint: wait (bounded) until that has happened."""

    def probe():
        try:
            conn = upstream_connection(server, host, port, user, application_name="pg_rewind")
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT timeline_id FROM pg_control_checkpoint()")
                    current = cur.fetchone()[0]
            finally:
                conn.close()
        except (ConnectionFailed, psycopg2.Error) as err:
            progress(f"cannot read the source's checkpoint timeline ({_first_line(err)}); running pg_rewind anyway")
            return True, None
        return current >= timeline, current

    poll(
        probe,
        timing.SOURCE_CHECKPOINT_SECONDS,
        0.5,
        progress=progress,
        fail=lambda current: MfaHaError(
            f"the source's control file still shows timeline {current}, not {timeline}, after "
            f"{timing.SOURCE_CHECKPOINT_SECONDS} s: run CHECKPOINT on it, then rewind again"
        ),
        report=lambda current: f"waiting for the source's first checkpoint on timeline {timeline}",
    )


def rewind(
    server: Server,
    host: str,
    port: int,
    user: str,
    slot: str | None,
    application_name: str | None = None,
    fallback: str | None = None,
    timeout: int = timing.COPY_SECONDS,
    progress: Progress = log_progress,
) -> dict:
    """Rewind this stopped former primary onto the new primary and make it its standby.

    pg_rewind copies configuration files and skips slots, so the standby configuration is
    written afterwards. With ``fallback="basebackup"`` a failed rewind is followed by a
    fresh clone (the old directory moved aside, never deleted).
    """
    if fallback not in (None, "basebackup"):
        raise InvalidInput(f"fallback must be 'basebackup' or empty, not {fallback!r}")
    server.require_cluster()
    server.require_stopped("rewinding it")
    server.binary("pg_rewind")  # a missing or mismatched pg_rewind is named before anything else
    upstream = identify_upstream(server, host, port, user)
    local = server.controldata()
    if upstream["version"] != server.data_version().major:
        raise VersionMismatch(
            f"{host}:{port} runs PostgreSQL {upstream['version']}, {server.data_dir} is {server.data_version().major}"
        )
    if local.get("Database system identifier") != upstream["system_identifier"]:
        if fallback != "basebackup":
            raise MfaHaError(
                f"{server.data_dir} belongs to another cluster (system "
                f"{local.get('Database system identifier')} vs {upstream['system_identifier']}); "
                "rewind is impossible, re-clone it with fallback=basebackup"
            )
        return {
            "method": "basebackup",
            **basebackup(server, host, port, user, slot, application_name, timeout, progress),
        }
    source = upstream_conninfo(server, host, port, user, "pg_rewind", dbname="postgres")  # named in the logs
    _wait_source_checkpoint(server, host, port, user, upstream["timeline"], progress)
    started = time.monotonic()
    try:
        recovered = recover_crashed(server, local, timeout, progress)
        out = server.run(
            "pg_rewind",
            "--target-pgdata",
            server.data_dir,
            "--source-server",
            source,
            "--progress",
            timeout=timeout,
            progress=progress,
        ).output
    except CommandFailed as err:
        if fallback != "basebackup":
            raise
        log.warning("%s: pg_rewind failed, cloning the whole database instead: %s", server.data_dir, err)
        progress(f"pg_rewind failed ({err}); cloning afresh")
        return {
            "method": "basebackup",
            "rewind_error": str(err),
            **basebackup(server, host, port, user, slot, application_name, timeout, progress),
        }
    progress(f"pg_rewind done in {time.monotonic() - started:.1f} s")
    configure_standby(server, host, port, user, slot, application_name)
    return {
        "method": "rewind",
        "seconds": round(time.monotonic() - started, 3),
        "rewind_required": "no rewind required" not in out,
        "crash_recovered": recovered,
    }


def recover_crashed(server: Server, control: dict, timeout: float, progress: Progress = log_progress) -> bool:
    """Bring a stopped data directory that was not shut down cleanly (a crashed primary) to a
    clean shutdown, as pg_rewind requires; False when it already was. One that would start as
    a standby (a fence wrote its standby files) is started as one, reachable by no one, until
    it is consistent, then stopped: the files stay where they are throughout, so a crash at
    any moment leaves a node that starts read-only. Single-user mode, pg_rewind's own way,
    refuses standby files; it serves one that would start as a primary."""
    if control.get("Database cluster state") in CLEAN_SHUTDOWN_STATES:
        return False
    progress(
        f"{server.data_dir} was not shut down cleanly ({control.get('Database cluster state')}): "
        "crash recovery before pg_rewind"
    )
    if configured_role(server) is Role.STANDBY:
        _recover_unreachable(server, timeout)
    else:
        server.run(
            "postgres",
            "--single",
            "-D",
            server.data_dir,
            *shlex.split(server.cfg.options or ""),
            "template1",
            timeout=timeout,
        )
    state = server.controldata().get("Database cluster state")
    if state not in CLEAN_SHUTDOWN_STATES:
        raise CommandFailed(f"crash recovery of {server.data_dir} ended in state {state!r}, not a clean shutdown")
    return True


# What PostgreSQL logs (10 and later) once replay is consistent, and when it runs out of WAL
# with no upstream (13 and later; before, a recovery that lacks WAL waits out its bound).
CONSISTENT_LOGGED = "consistent recovery state reached"
WAITING_LOGGED = "waiting for WAL to become available"


def _recover_unreachable(server: Server, timeout: float) -> None:
    """Start the standby with no TCP listener, its socket in a private directory and no
    upstream, until it opens for reads or its log says it is consistent and has replayed
    every local record, then stop it: "shut down in recovery". Out of WAL before it is
    consistent, it fails at once: it needs WAL only the primary holds."""
    private = tempfile.mkdtemp(prefix="mfa_ha-recovery-")
    chown_to(private, server.cfg.os_user)
    options = [
        server.cfg.options or "",
        "-c listen_addresses=''",
        f"-c unix_socket_directories={private}",
        "-c hot_standby=on",
    ]
    if server.data_version().uses_standby_signal:
        options.append("-c primary_conninfo=''")  # before 12 it lives in recovery.conf: a retry is harmless
    recovering = Server(
        dataclasses.replace(server.cfg, options=" ".join(o for o in options if o), host=private), server.tls
    )
    logged_from = recovering.log_size()

    def replay(since_start: str) -> tuple[int, int]:
        """Where the log says consistency was reached and where it last waited for WAL (-1: not)."""
        return since_start.find(CONSISTENT_LOGGED), since_start.rfind(WAITING_LOGGED)

    def replayed_all() -> bool:  # consistent, then out of WAL: every local record is replayed
        consistent, waiting = replay(recovering.log_since(logged_from))
        return 0 <= consistent < waiting

    def missing_wal() -> str | None:
        text = recovering.log_since(logged_from)
        consistent, waiting = replay(text)
        if consistent >= 0 or waiting < 0:
            return None
        return f"could not finish: it needs WAL it does not hold ({text[waiting:].splitlines()[0]})"

    try:
        recovering.start(timeout=int(timeout), give_up=missing_wal, ready_when=replayed_all)
    finally:
        try:
            if recovering.is_running():
                recovering.stop(mode="fast", timeout=int(timeout))
        finally:
            shutil.rmtree(private, ignore_errors=True)
