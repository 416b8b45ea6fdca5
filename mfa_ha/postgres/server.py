"""One PostgreSQL server on this node: its binaries, data directory, process and connection."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Callable

import psycopg2
import psycopg2.extras

from mfa_ha import proc, timing
from mfa_ha.errors import (
    CommandFailed,
    ConnectionFailed,
    DataDirMissing,
    ServerNotRunning,
    ServerRunning,
)
from mfa_ha.postgres.config import PostgresConfig
from mfa_ha.postgres.tls import TlsConfig
from mfa_ha.postgres.versions import PgVersion
from mfa_ha.roles import ServerState
from mfa_ha.waiting import poll

log = logging.getLogger(__name__)

PM_STATUS_LINE = 7  # 0-based line of postmaster.pid with the status (PostgreSQL 10+)
PID_FILE_IDENTITY = 3  # its first lines: PID, data directory, start time (epoch seconds)
READY_STATES = ("ready", "standby")
CLEAN_SHUTDOWN_STATES = ("shut down", "shut down in recovery")
SESSION_OPTIONS = f"-c statement_timeout={timing.LOCAL_STATEMENT_SECONDS}s -c lock_timeout={timing.LOCK_WAIT_SECONDS}s"
PEER_SESSION_OPTIONS = f"-c statement_timeout={timing.PEER_STATEMENT_SECONDS}s"
# Tools that read or write this cluster's own files, so only its major version's copy will do.
# (pg_basebackup and psql speak to older servers: a newer copy serves.)
VERSION_BOUND_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_controldata", "pg_rewind", "pg_waldump", "pg_resetwal")
_BINARY_MAJORS: dict[tuple[str, float], int | None] = {}


class Server:
    def __init__(self, cfg: PostgresConfig, tls: TlsConfig | None = None, node_settings: dict | None = None):
        self.cfg = cfg
        self.tls = tls or TlsConfig()
        self.node_settings = dict(node_settings or {})  # this node's own (synchronous_standby_names names the peer)

    def peer_params(self) -> dict:
        """libpq parameters for every connection to a peer: password from pgpass, TLS as
        configured, keepalives, a connect timeout."""
        return {
            "passfile": self.cfg.pgpass_path,
            "connect_timeout": timing.PEER_TOOL_CONNECT_SECONDS,
            **self.tls.client_params(),
        }

    def check_params(self) -> dict:
        """``peer_params`` for the tool's own connections to a peer (psycopg2's libpq knows
        ``tcp_user_timeout``; the server's walreceiver, on 10 and 11, would not)."""
        return {**self.peer_params(), "tcp_user_timeout": timing.PEER_TCP_USER_TIMEOUT_MS}

    def local_settings(self) -> dict[str, str]:
        """Server settings of this node's own, re-written after a clone or rewind copied the
        peer's: its TLS files, and the peer it names as its synchronous standby."""
        return {**self.node_settings, **self.tls.server_settings()}

    # -- files and binaries -------------------------------------------------
    @property
    def data_dir(self) -> str:
        return self.cfg.data_dir

    def has_cluster(self) -> bool:
        return os.path.isfile(os.path.join(self.data_dir, "PG_VERSION"))

    def require_cluster(self) -> None:
        if not os.path.isdir(self.data_dir):
            raise DataDirMissing(f"data directory {self.data_dir} does not exist")
        if not self.has_cluster():
            raise DataDirMissing(f"{self.data_dir} is not a PostgreSQL data directory (no PG_VERSION)")

    def data_version(self) -> PgVersion:
        self.require_cluster()
        with open(os.path.join(self.data_dir, "PG_VERSION"), encoding="ascii") as fh:
            return PgVersion.parse(fh.read())

    def binary(self, name: str) -> str:
        """The path of PostgreSQL tool ``name``; one that reads this cluster's files must be of
        the cluster's own major version (another's misreads or refuses them)."""
        path = self._find_binary(name)
        if name in VERSION_BOUND_TOOLS and self.has_cluster():
            wanted, found = self.data_version().major, _binary_major(path)
            if found != wanted:
                raise CommandFailed(
                    f"{name} at {path} is PostgreSQL {found}, but {self.data_dir} is "
                    f"PostgreSQL {wanted}: set mfa_ha:postgres:bin_dir to its {wanted} bin directory"
                )
        return path

    def _find_binary(self, name: str) -> str:
        directories = self._bin_dirs()
        for directory in directories:
            path = os.path.join(directory, name)
            if os.access(path, os.X_OK):
                return path
        found = shutil.which(name)
        if not found:
            where = " or ".join(directories + ["PATH"])
            needed = f"PostgreSQL {self.data_version().major}'s own {name}" if self.has_cluster() else name
            raise CommandFailed(
                f"{name} not found in {where}: {needed} is needed for this step; "
                "set mfa_ha:postgres:bin_dir to a PostgreSQL bin directory that has it"
            )
        return found

    def _bin_dirs(self) -> list[str]:
        if self.cfg.bin_dir:
            return [self.cfg.bin_dir]
        if self.has_cluster():
            major = self.data_version().major
            return glob.glob(f"/usr/lib/postgresql/{major}/bin") + glob.glob(f"/usr/pgsql-{major}/bin")
        return []

    def run(self, name: str, *args, timeout: float = 60, check: bool = True, env=None, progress=None) -> proc.Result:
        extra = {"PGPASSFILE": self.cfg.pgpass_path, **(env or {})}
        return proc.run(
            [self.binary(name), *args],
            user=self.cfg.os_user,
            env=extra,
            timeout=timeout,
            check=check,
            progress=progress,
        )

    # -- process ------------------------------------------------------------
    def state(self, timeout: float = 60) -> ServerState:
        if not self.has_cluster():
            return ServerState.MISSING
        rc = self.run("pg_ctl", "status", "-D", self.data_dir, check=False, timeout=timeout).returncode
        return ServerState.RUNNING if rc == 0 else ServerState.STOPPED

    def is_running(self) -> bool:
        return self.state() is ServerState.RUNNING

    def require_running(self) -> None:
        self.require_cluster()
        if not self.is_running():
            raise ServerNotRunning(f"PostgreSQL is not running on {self.data_dir}")

    def require_stopped(self, why: str) -> None:
        if self.has_cluster() and self.is_running():
            raise ServerRunning(f"PostgreSQL is running on {self.data_dir}: stop it before {why}")

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid"), encoding="ascii") as fh:
                return int(fh.readline().strip())
        except (OSError, ValueError):
            return None

    def start(
        self,
        timeout: int = 60,
        give_up: Callable[[], str | None] | None = None,
        ready_when: Callable[[], bool] | None = None,
    ) -> bool:
        """Start and wait until it accepts connections (or, for a standby, read-only
        connections); False when it already ran. ``give_up`` and ``ready_when`` are asked on
        every look: a reason ``give_up`` returns ends the wait as a failed start (the server is
        left running); ``ready_when()`` true ends it as started."""
        self.require_cluster()
        if self.is_running():
            return False
        options = ["-o", self.cfg.options] if self.cfg.options else []
        # A postmaster that was killed leaves its postmaster.pid (saying "ready"): only the one
        # the new postmaster writes (another PID or start time) tells how the start goes.
        stale = self._pid_file_identity()
        # pg_ctl's own wait (-w) polls every 100 ms; postmaster.pid tells us within 10 ms.
        self.run("pg_ctl", "start", "-D", self.data_dir, "-l", self.cfg.log_path, *options, "-W", timeout=timeout + 10)
        started, seen_pid_file = time.monotonic(), False

        def ready():
            nonlocal seen_pid_file
            status = self._pm_status(not_from=stale)
            seen_pid_file = seen_pid_file or status is not None
            if status is None and (seen_pid_file or time.monotonic() - started > timing.PID_FILE_GRACE_SECONDS):
                raise self._start_failed("exited")
            if status in READY_STATES or (ready_when and ready_when()):
                return True, status
            reason = give_up() if give_up else None
            if reason:
                raise self._start_failed(reason)
            return False, status

        poll(
            ready,
            timeout,
            timing.PID_FILE_POLL_SECONDS,
            fail=lambda _: self._start_failed(f"did not start within {timeout} s"),
        )
        return True

    def _start_failed(self, why: str) -> CommandFailed:
        return CommandFailed(
            f"PostgreSQL on {self.data_dir} {why}\nlast lines of {self.cfg.log_path}:\n{self.log_tail()}"
        )

    def stop(self, mode: str = "fast", timeout: int = 60, command_timeout: float | None = None) -> bool:
        """Stop and wait until it is gone; False when it was not running. ``command_timeout``
        bounds each pg_ctl call (``mfa_ha.timing.server_stop_bound``)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown shutdown mode {mode!r}: use smart, fast or immediate")
        self.require_cluster()
        each = command_timeout if command_timeout is not None else timeout + 10
        if self.state(timeout=each) is not ServerState.RUNNING:
            return False
        self.run("pg_ctl", "stop", "-D", self.data_dir, "-m", mode, "-W", timeout=each)
        return self._wait_stopped(timeout, mode)

    def stop_now(self, timeout: float, command_timeout: float) -> bool:
        """An immediate stop without another command: SIGQUIT to the postmaster named in
        postmaster.pid (what ``pg_ctl stop -m immediate`` sends), once that PID is proven to
        be this data directory's postmaster; then wait until it is gone. Where that cannot be
        proven (no /proc), ``pg_ctl stop -m immediate`` with each call bounded by
        ``command_timeout``. False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        if not self._is_own_postmaster(pid):
            return self.stop(mode="immediate", timeout=int(timeout), command_timeout=command_timeout)
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return False
        return self._wait_stopped(timeout, "SIGQUIT")

    def _wait_stopped(self, timeout: float, how: str) -> bool:
        """Until postmaster.pid is gone (the postmaster removes it last), bounded."""
        poll(
            lambda: (not os.path.exists(self._pid_file), None),
            timeout,
            timing.PID_FILE_POLL_SECONDS,
            fail=lambda _: CommandFailed(f"PostgreSQL on {self.data_dir} did not stop within {timeout:g} s ({how})"),
        )
        return True

    def _is_own_postmaster(self, pid: int) -> bool:
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            cwd = os.path.realpath(f"/proc/{pid}/cwd")
        except OSError:
            return False
        return exe in ("postgres", "postmaster") and cwd == os.path.realpath(self.data_dir)

    @property
    def _pid_file(self) -> str:
        return os.path.join(self.data_dir, "postmaster.pid")

    def _pm_status(self, not_from: tuple | None = None) -> str | None:
        """The postmaster's status line in postmaster.pid (ready, standby, starting, stopping);
        None while there is none, or only the file of the postmaster ``not_from`` identifies."""
        lines = self._pid_file_lines()
        if lines is None or (not_from is not None and tuple(lines[:PID_FILE_IDENTITY]) == not_from):
            return None
        return lines[PM_STATUS_LINE].strip() if len(lines) > PM_STATUS_LINE else "starting"

    def _pid_file_identity(self) -> tuple | None:
        """PID, data directory and start time of the postmaster that wrote postmaster.pid."""
        lines = self._pid_file_lines()
        return tuple(lines[:PID_FILE_IDENTITY]) if lines else None

    def _pid_file_lines(self) -> list[str] | None:
        try:
            with open(self._pid_file, encoding="ascii", errors="replace") as fh:
                return fh.read().splitlines()
        except OSError:
            return None

    def reload(self) -> None:
        self.require_running()
        self.run("pg_ctl", "reload", "-D", self.data_dir)

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(self.cfg.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:]).strip()
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.cfg.log_path)
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """What the server logged after ``offset`` (a ``log_size()``)."""
        try:
            with open(self.cfg.log_path, encoding="utf-8", errors="replace") as fh:
                fh.seek(offset)
                return fh.read()
        except OSError:
            return ""

    def log_errors(self, count: int = 3, window: int = 400) -> str:
        """The last ``count`` FATAL/ERROR/PANIC lines among the log's last ``window`` lines:
        the cause, rather than whatever the server wrote last."""
        try:
            with open(self.cfg.log_path, encoding="utf-8", errors="replace") as fh:
                tail = fh.readlines()[-window:]
        except OSError:
            return ""
        return "".join(
            [line for line in tail if any(w in line for w in ("FATAL:", "ERROR:", "PANIC:"))][-count:]
        ).strip()

    # -- control file -------------------------------------------------------
    def controldata(self) -> dict[str, str]:
        self.require_cluster()
        out = self.run("pg_controldata", "-D", self.data_dir).stdout
        return dict(
            (key.strip(), value.strip())
            for key, value in (line.split(":", 1) for line in out.splitlines() if ":" in line)
        )

    # -- SQL ----------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, dbname: str | None = None):
        self.require_running()
        try:
            conn = psycopg2.connect(
                host=self.cfg.host,
                port=self.cfg.port,
                user=self.cfg.superuser,
                dbname=dbname or self.cfg.dbname,
                connect_timeout=timing.LOCAL_CONNECT_SECONDS,
                application_name="mfa_ha",
                options=SESSION_OPTIONS,
            )
        except psycopg2.OperationalError as err:
            raise ConnectionFailed(
                f"cannot connect to the local server (port {self.cfg.port}, "
                f"host {self.cfg.host or 'default socket'}): {str(err).strip()}"
            ) from None
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params=None, dbname: str | None = None) -> list[dict]:
        with self.connect(dbname) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()] if cur.description else []

    def query_one(self, sql: str, params=None) -> dict:
        rows = self.query(sql, params)
        return rows[0] if rows else {}

    def execute(self, sql, params=None) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, params)


def _binary_major(path: str) -> int | None:
    """The major version a PostgreSQL tool reports (``--version``), cached per file."""
    key = (os.path.realpath(path), os.stat(path).st_mtime)
    if key not in _BINARY_MAJORS:
        out = proc.run([path, "--version"], check=False, timeout=timing.TOOL_VERSION_SECONDS).stdout
        match = re.search(r"\(PostgreSQL\) (\d+)", out)
        _BINARY_MAJORS[key] = int(match.group(1)) if match else None
    return _BINARY_MAJORS[key]
