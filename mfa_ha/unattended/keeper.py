"""The lease keeper: a service of its own on each node (``python -m mfa_ha.unattended.keeper --config
FILE``), so that it keeps running when its minion dies or cannot reach the master.

While its node is the primary it polls every ``poll_seconds``: it writes a marker into the
WAL and reads how far the standby flushed, sends a beat to the standby's keeper
(``mfa_ha.unattended.heartbeat``; on the standby the keeper records and answers them), reads the
renewals the master's witness left through the minion (``pgrepl.lease_renew``), and fences
the node when ``keeper_verdict`` says so. Its own heartbeat file (``keeper.json`` in
``run_dir``) tells the witness and the watchdog it is alive. The config file is written by the
formula (state ``pgrepl.lease_keeper``) from the pillar.

The service's own process is a watchdog (``supervise``): it runs the keeper as its child and
replaces a child that exits or stops beating (frozen, hung on a call) within
``LeaseSettings.watchdog_bound``. The replacement takes over the lease where the last one left it
(``handed_over``): a keeper that died never grants its primary a fresh lease. Only a keeper
stopped on request hands over nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from mfa_ha import app as applib
from mfa_ha import files, maintenance, timing
from mfa_ha.app import app_config
from mfa_ha.errors import MfaHaError
from mfa_ha.lsn import to_int
from mfa_ha.pair.peer import Upstream
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres.config import postgres_config
from mfa_ha.postgres.secrets import pgpass_password
from mfa_ha.postgres.server import Server
from mfa_ha.postgres.tls import TlsConfig
from mfa_ha.roles import Role
from mfa_ha.unattended import heartbeat, lease, syncguard

log = logging.getLogger("mfa_ha.keeper")
MARKER_SQL = "SELECT pg_logical_emit_message(false, 'mfa_ha.lease', '')::text AS lsn"
APP_WATCH_AFTER_FENCE = 60  # s after a fence during which the keeper keeps pmfad stopped here
FLUSHED_SQL = (
    "SELECT max(flush_lsn)::text AS flush_lsn FROM pg_stat_replication "
    "WHERE application_name IN (%s, %s) AND state = 'streaming'"
)


def build_config(
    settings: lease.LeaseSettings,
    postgres: dict,
    pmfad: dict,
    tls: TlsConfig,
    os_family: str | None,
    standby_id: str,
    standby: Upstream,
    me: str,
    address: str,
    synchronous: dict | None = None,
) -> dict:
    """What the keeper needs, as the formula writes it: no secret (the TLS files' directory,
    not their contents; the replication password, which keys the heartbeats, stays in pgpass).
    ``me``/``address``: this node's id and address (its heartbeats' source); ``synchronous``:
    with ``mfa_ha:replication:synchronous: on``, ``{"mode": "on", "names": ..., "standby": ...}``:
    the ``synchronous_standby_names`` this node runs with and the standby's application name
    (``mfa_ha.unattended.syncguard``)."""
    return {
        "settings": lease.settings_dict(settings),
        "postgres": postgres,
        "pmfad": pmfad,
        "os_family": os_family,
        "tls": {"enabled": tls.enabled, "mode": tls.mode, "dir": tls.dir},
        "standby_id": standby_id,
        "standby": {"host": standby.host, "port": standby.port, "user": standby.user, "slot": standby.slot},
        "heartbeat": {"me": me, "listen": address},
        "synchronous": synchronous or {},
    }


def handed_over(previous: dict) -> dict:
    """What a keeper takes over from the one before it on this boot: the lease it counted
    (``armed_at``, ``streamed_at``) unless that one stopped on request or was not keeping a
    primary's lease."""
    if previous.get("role") != "primary" or previous.get("action") not in ("hold", "fencing", "fenced"):
        return {}
    return {k: previous[k] for k in ("armed_at", "streamed_at") if isinstance(previous.get(k), (int, float))}


class Keeper:
    def __init__(self, config: dict, clock=time.monotonic):
        self.settings = lease.LeaseSettings(**config["settings"])
        self.server = Server(postgres_config(config["postgres"]), TlsConfig(**config["tls"]))
        self.app_cfg = app_config(config["pmfad"], config.get("os_family"))
        self.standby_id = config["standby_id"]
        self.standby = Upstream(**config["standby"])
        self.clock = clock
        self.armed_at: float | None = None
        self.fenced_at: float | None = None
        self.proof = lease.StreamProof()
        self.handover = handed_over(lease.read_record(self.settings.keeper_file))
        self.last_fence: dict | None = None  # kept in every heartbeat after: why this node was fenced
        self.quiet = lease.QuietSpell()  # how close a held lease came to its end
        self.last: dict = {}
        self.link = self._peer_link(config.get("heartbeat"))
        sync = config.get("synchronous") or {}
        self.sync_names = sync.get("names") if sync.get("mode") == "on" else None
        self.sync_standby = sync.get("standby") or self.standby_id
        self.sync: syncguard.SyncState | None = None  # read from sync_file once this node is the primary

    def _peer_link(self, wanted: dict | None) -> heartbeat.PeerLink | None:
        """Heartbeats to the other node's keeper, keyed by the replication password in pgpass;
        without that entry (or a ``heartbeat`` section), the WAL alone proves contact."""
        if not wanted:
            return None
        s = self.standby
        try:
            password = pgpass_password(self.server.cfg.pgpass_path, s.host, s.port, s.user)
        except OSError as err:
            log.error("mfa_ha heartbeat: cannot read pgpass (%s)", err)
            password = None
        if password is None:
            log.error(
                "mfa_ha heartbeat: no pgpass entry for %s@%s:%s to key the heartbeats with; the WAL alone "
                "proves contact with the standby",
                s.user,
                s.host,
                s.port,
            )
            return None
        return heartbeat.PeerLink(
            wanted["me"],
            self.standby_id,
            wanted["listen"],
            s.host,
            self.settings.heartbeat_port,
            heartbeat.key_from_password(password),
            self.settings.peer_file,
            self.clock,
        )

    def close(self) -> None:
        if self.link is not None:
            self.link.close()

    def tick(self) -> dict:
        now = self.clock()
        if self.link is not None:
            self.link.open()  # a standby's keeper answers the primary's beats
        if not self._is_primary():
            self.armed_at, self.proof, self.handover, self.quiet = None, lease.StreamProof(), {}, lease.QuietSpell()
            self._forget_sync()
            if self.fenced_at is not None and now - self.fenced_at <= APP_WATCH_AFTER_FENCE:
                self._step("pmfad stopped", self._stop_app)  # a stop that failed during the fence
            return self._beat(
                now, role="not a primary", action="idle", paused=maintenance.read(self.settings.pause_file)
            )
        self.fenced_at = None
        if self.armed_at is None:
            self._arm(now)
        if self.link is not None:
            self.link.beat()  # before the marker's queries: its answer is often back by their end
        self._mark(now)
        if self.link is not None:
            self.proof.heard(self.link.answered())
        renewals = lease.read_record(self.settings.renewals_file)
        renewed_at = renewals.get("renewed_at")
        paused = maintenance.read(self.settings.pause_file)
        verdict = lease.keeper_verdict(
            now,
            self.armed_at,
            renewed_at,
            self.proof.streamed_at,
            self.settings.lease_seconds,
            paused=maintenance.describe(paused) if paused else None,
        )
        self.quiet.seen(
            {
                "master": now - max(self.armed_at, renewed_at or 0.0),
                "standby": now - max(self.armed_at, self.proof.streamed_at or 0.0),
            },
            self.settings.lease_seconds,
        )
        if verdict.action == "fence":
            # armed_at is kept: a primary still running at the next poll is fenced again at once
            log.critical("mfa_ha lease expired: fencing this primary. %s", verdict.summary)
            self.fenced_at = now
            self.last_fence = {"at": now, "armed_at": self.armed_at, "reason": verdict.summary}
            fenced = self.fence(
                lambda phase, bound: self._beat(  # the watchdog waits for each part
                    self.clock(),
                    role="primary",
                    action="fencing",
                    phase=phase,
                    phase_bound_s=bound,
                    verdict=verdict.as_dict(),
                )
            )
            return self._beat(self.clock(), role="primary", action="fenced", verdict=verdict.as_dict(), fenced=fenced)
        if self.sync_names is not None:  # after the fence decision: nothing here may hold it up
            self._guard_sync(now, renewals.get("sync_word"))
        suspended = lease.fence_suspended(verdict)
        if suspended and not self.last.get("fence_suspended"):
            log.critical("mfa_ha lease expired, not fencing while paused. %s", verdict.summary)
        return self._beat(
            now, role="primary", action="hold", verdict=verdict.as_dict(), paused=paused, fence_suspended=suspended
        )

    def _arm(self, now: float) -> None:
        if self.handover.get("armed_at") is not None:
            self.armed_at = self.handover["armed_at"]
            self.proof.streamed_at = self.handover.get("streamed_at")
            log.warning(
                "mfa_ha lease: took over the lease of the keeper before (armed %.1f s ago, standby's last proof %s)",
                now - self.armed_at,
                "none" if self.proof.streamed_at is None else f"{now - self.proof.streamed_at:.1f} s ago",
            )
        else:
            self.armed_at = now
            log.warning("mfa_ha lease: this node is the primary; lease of %g s armed", self.settings.lease_seconds)
        self.handover = {}

    def fence(self, announce=lambda phase, bound: None) -> dict:
        """Writes end first: the standby configuration is written (whatever starts the server
        again brings it up read-only), PostgreSQL stopped (fast, then immediate), then pmfad.
        Each step is tried whatever the one before it did; ``announce(phase, bound)`` tells
        the watchdog how long each part may take (``mfa_ha.timing``)."""
        s = self.standby
        announce("ending writes", timing.writes_end_bound())
        done = {
            "standby_config": self._step(
                "standby configuration",
                lambda: repl.configure_standby(self.server, s.host, s.port, s.user, s.slot)["changed"],
            ),
            "db_stopped": self._step("PostgreSQL stopped", self._stop_db),
        }
        announce("stopping pmfad", timing.app_stop_bound(self.app_cfg.timeout, self.app_cfg.manager))
        return {**done, "app_stopped": self._step("pmfad stopped", self._stop_app)}

    def _stop_db(self) -> bool:
        try:
            return self.server.stop(
                mode="fast", timeout=timing.FAST_STOP_SECONDS, command_timeout=timing.PG_CTL_SECONDS
            )
        except MfaHaError as err:  # with the DC link cut, a fast stop waits for the unreachable standby
            log.critical("mfa_ha lease: fast stop failed (%s); stopping immediately", err)
        # a signal, not another command: a host stalled enough to fail the first may not start one in time
        return self.server.stop_now(timeout=timing.IMMEDIATE_STOP_SECONDS, command_timeout=timing.PG_CTL_SECONDS)

    def _stop_app(self) -> bool:
        return applib.backend(self.app_cfg).stop()

    @staticmethod
    def _step(what: str, action):
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - the fence goes on; the next poll tries again
            log.critical("mfa_ha lease: fence step failed (%s): %s", what, err)
            return f"failed: {err}"

    def _is_primary(self) -> bool:
        try:
            return self.server.is_running() and repl.role(self.server) is Role.PRIMARY
        except Exception:  # noqa: BLE001 - a server going down between the two reads: not a primary now
            return False

    def _mark(self, now: float) -> None:
        """A WAL marker written now; the standby's flush position proves what it received."""
        try:
            self.proof.written(to_int(self.server.query_one(MARKER_SQL)["lsn"]), now)
            row = self.server.query_one(FLUSHED_SQL, (self.standby_id, self.standby.slot or self.standby_id))
            self.proof.flushed(to_int(row["flush_lsn"]) if row.get("flush_lsn") else None)
        except Exception as err:  # noqa: BLE001 - a failed poll proves nothing: the lease only ages
            log.warning("mfa_ha lease: poll failed: %s", err)

    def _guard_sync(self, now: float, word: str | None) -> None:
        """One step of ``syncguard``: drop to asynchronous with the witness's word, name the
        standby again once it caught up."""
        try:
            if self.sync is None:  # a keeper before this one, on this primary and boot: go on from its state
                self.sync = syncguard.SyncState.from_dict(lease.read_record(self.settings.sync_file))
            seen = syncguard.observe(self.server, self.sync_standby)
            following, action = syncguard.step(self.sync, seen, word, now, time.time(), timing.SYNC_LOST_SECONDS)
            if following.state == "asked" and self.sync.state != "asked":
                log.critical(
                    "mfa_ha synchronous replication: %s stopped acknowledging for %g s: asking the witness to "
                    "drop it (commits wait, at most %g s in all while the master answers)",
                    self.standby_id,
                    timing.SYNC_LOST_SECONDS,
                    self.settings.sync_lost_bound,
                )
            self._keep_sync(following)  # first: what reads it (highstate) must see a drop before it happens
            if action:
                syncguard.apply(self.server, action, self.sync_names)
                log.critical(
                    "mfa_ha synchronous replication: %s",
                    f"dropped {self.standby_id} with the witness's word (from {following.lsn})"
                    if action == "degrade"
                    else f"{self.standby_id} named again as the synchronous standby",
                )
        except Exception as err:  # noqa: BLE001 - commits keep waiting; the next poll tries again from the state kept
            log.warning("mfa_ha synchronous replication: poll failed: %s", err)

    def _keep_sync(self, following: syncguard.SyncState) -> None:
        if following != self.sync or not os.path.exists(self.settings.sync_file):
            lease.write_record(self.settings.sync_file, following.as_dict())
        self.sync = following

    def _forget_sync(self) -> None:
        """Not the primary: its state belongs to the primary it was (a later promotion starts anew)."""
        self.sync = None
        if self.sync_names is not None:
            with contextlib.suppress(OSError):  # missing, mostly
                os.unlink(self.settings.sync_file)

    def _beat(self, now: float, **state) -> dict:
        lease_state = {"armed_at": self.armed_at, "streamed_at": self.proof.streamed_at} if self.armed_at else {}
        fence = {"last_fence": self.last_fence} if self.last_fence else {}
        quiet = {"longest_quiet_s": round(self.quiet.longest, 1)} if self.armed_at else {}
        self.last = {
            "at": now,
            "pid": os.getpid(),
            "lease_seconds": self.settings.lease_seconds,
            **lease_state,
            **quiet,
            **fence,
            **state,
        }
        lease.write_record(self.settings.keeper_file, self.last)
        return self.last


def run(config_path: str, stop: threading.Event | None = None, watched_by: int | None = None) -> None:
    """Poll until stopped; the config file is read at every poll (a new one re-arms).
    ``watched_by``: the watchdog's PID; the keeper ends when its watchdog is gone (the service
    manager starts both again), leaving its lease to the next keeper."""
    stop = _stop_on_signals(stop)
    log.warning("mfa_ha lease keeper started (pid %s, config %s)", os.getpid(), config_path)
    config, keeper, settings = None, None, None
    while not stop.is_set() and (watched_by is None or os.getppid() == watched_by):
        started = time.monotonic()
        latest = files.read_json(config_path) or config or _missing(config_path)
        if latest != config:
            config = latest
            settings = lease.LeaseSettings(**config["settings"])
            if keeper is not None:
                keeper.close()
            keeper = Keeper(config) if settings.automatic else None  # off: it idles, saying so
        try:
            if keeper is not None:
                keeper.tick()
            else:
                lease.write_record(settings.keeper_file, {"at": time.monotonic(), "pid": os.getpid(), "action": "off"})
        except Exception:
            log.exception("mfa_ha lease: poll failed")
        stop.wait(max(0.0, settings.poll_seconds - (time.monotonic() - started)))
    if keeper is not None:
        keeper.close()
    if stop.is_set() and settings is not None:  # stopped on request: the next keeper starts a lease of its own
        lease.write_record(settings.keeper_file, {"at": time.monotonic(), "pid": os.getpid(), "action": "stopped"})


def supervise(config_path: str, stop: threading.Event | None = None) -> None:
    """The service's process: runs the keeper as a child and replaces it when it exits or
    its heartbeat stalls (``lease.keeper_stall``); on SIGTERM stops it and waits for it."""
    stop = _stop_on_signals(stop)
    config = files.read_json(config_path) or _missing(config_path)
    child, started = None, 0.0
    try:
        while not stop.is_set():
            config = files.read_json(config_path) or config
            settings = lease.LeaseSettings(**config["settings"])
            if child is None or child.poll() is not None:
                if child is not None:
                    log.critical("mfa_ha lease keeper %s exited (%s): starting another", child.pid, child.returncode)
                child, started = _start_keeper(config_path), time.monotonic()
            else:
                stall = lease.keeper_stall(
                    lease.read_record(settings.keeper_file), child.pid, started, time.monotonic(), settings
                )
                if stall:
                    log.critical(
                        "mfa_ha lease keeper %s stalled (%s): killed; the next one takes over its lease",
                        child.pid,
                        stall,
                    )
                    _end(child, signal.SIGKILL)
                    child, started = _start_keeper(config_path), time.monotonic()
            stop.wait(settings.poll_seconds)
    finally:
        if child is not None:
            _end(child, signal.SIGTERM)


def _start_keeper(config_path: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mfa_ha.unattended.keeper", "--config", config_path, "--watched-by", str(os.getpid())]
    )


def _end(child: subprocess.Popen, signum: int, timeout: float = 15) -> None:
    if child.poll() is None:
        child.send_signal(signum)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=timeout)


def _stop_on_signals(stop: threading.Event | None) -> threading.Event:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    return stop


def _missing(path: str) -> dict:
    raise SystemExit(f"mfa_ha lease keeper: no config at {path} (written by the state pgrepl.lease_keeper)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mfa_ha.unattended.keeper", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the JSON file the state pgrepl.lease_keeper writes")
    parser.add_argument("--watched-by", type=int, help=argparse.SUPPRESS)  # set by the watchdog for its child
    args = parser.parse_args(argv)
    # force: an imported library (Salt, or a test harness's sitecustomize) may have set handlers already
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s", force=True
    )
    if args.watched_by:
        run(args.config, watched_by=args.watched_by)
    else:
        supervise(args.config)


if __name__ == "__main__":
    main()
