"""The lease keeper: a service of its own on each node (``python -m mfa_ha.keeper --config
FILE``), so that it keeps running when its minion dies or cannot reach the master.

While its node is the primary it polls every ``poll_seconds``: it writes a marker into the
WAL and reads how far the standby flushed, reads the renewals the master's witness left
through the minion (``pgrepl.lease_renew``), and fences the node when ``keeper_verdict``
says so. Its heartbeat (``keeper.json`` in ``run_dir``) tells the witness it is alive. The
config file is written by the formula (state ``pgrepl.lease_keeper``) from the pillar.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

from mfa_ha import app as applib
from mfa_ha import lease
from mfa_ha import replication as repl
from mfa_ha.app import app_config
from mfa_ha.config import postgres_config
from mfa_ha.errors import MfaHaError
from mfa_ha.lsn import to_int
from mfa_ha.roles import Role
from mfa_ha.server import Server
from mfa_ha.standby import Upstream
from mfa_ha.tls import TlsConfig

log = logging.getLogger("mfa_ha.keeper")
MARKER_SQL = "SELECT pg_logical_emit_message(false, 'mfa_ha.lease', '')::text AS lsn"
FAST_STOP_SECONDS = 8  # then immediate: writes end within lease.FENCE_BOUND
APP_WATCH_AFTER_FENCE = 60  # s after a fence during which the keeper keeps pmfad stopped here
FLUSHED_SQL = ("SELECT max(flush_lsn)::text AS flush_lsn FROM pg_stat_replication "
               "WHERE application_name IN (%s, %s) AND state = 'streaming'")


def build_config(settings: lease.LeaseSettings, postgres: dict, pmfad: dict, tls: TlsConfig, os_family: str | None,
                 standby_id: str, standby: Upstream) -> dict:
    """What the keeper needs, as the formula writes it: no secret (the TLS files' directory,
    not their contents; the replication password stays in pgpass)."""
    return {"settings": lease.settings_dict(settings), "postgres": postgres, "pmfad": pmfad,
            "os_family": os_family, "tls": {"enabled": tls.enabled, "mode": tls.mode, "dir": tls.dir},
            "standby_id": standby_id,
            "standby": {"host": standby.host, "port": standby.port, "user": standby.user, "slot": standby.slot}}


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
        self.last: dict = {}

    def tick(self) -> dict:
        now = self.clock()
        if not self._is_primary():
            self.armed_at, self.proof = None, lease.StreamProof()
            if self.fenced_at is not None and now - self.fenced_at <= APP_WATCH_AFTER_FENCE:
                self._step("pmfad stopped", self._stop_app)  # a stop that failed during the fence
            return self._beat(now, role="not a primary", action="idle")
        self.fenced_at = None
        if self.armed_at is None:
            self.armed_at = now
            log.warning("mfa_ha lease: this node is the primary; lease of %g s armed", self.settings.lease_seconds)
        self._mark(now)
        renewed_at = lease.read_record(self.settings.renewals_file).get("renewed_at")
        verdict = lease.keeper_verdict(now, self.armed_at, renewed_at, self.proof.streamed_at,
                                       self.settings.lease_seconds)
        if verdict.action == "fence":
            # armed_at is kept: a primary still running at the next poll is fenced again at once
            log.critical("mfa_ha lease expired: fencing this primary. %s", verdict.summary)
            self.fenced_at = now
            return self._beat(now, role="primary", action="fenced", verdict=verdict.as_dict(), fenced=self.fence())
        return self._beat(now, role="primary", action="hold", verdict=verdict.as_dict())

    def fence(self) -> dict:
        """Writes end first: the standby configuration is written (whatever starts the server
        again brings it up read-only), PostgreSQL stopped (fast, then immediate), then pmfad.
        Each step is tried whatever the one before it did."""
        s = self.standby
        return {
            "standby_config": self._step("standby configuration", lambda: repl.configure_standby(
                self.server, s.host, s.port, s.user, s.slot)["changed"]),
            "db_stopped": self._step("PostgreSQL stopped", self._stop_db),
            "app_stopped": self._step("pmfad stopped", self._stop_app),
        }

    def _stop_db(self) -> bool:
        try:
            return self.server.stop(mode="fast", timeout=FAST_STOP_SECONDS)
        except MfaHaError as err:  # with the DC link cut, a fast stop waits for the unreachable standby
            log.critical("mfa_ha lease: fast stop failed (%s); stopping immediately", err)
            return self.server.stop(mode="immediate", timeout=FAST_STOP_SECONDS)

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

    def _beat(self, now: float, **state) -> dict:
        self.last = {"at": now, "pid": os.getpid(), "lease_seconds": self.settings.lease_seconds, **state}
        lease.write_record(self.settings.keeper_file, self.last)
        return self.last


def run(config_path: str, stop: threading.Event | None = None) -> None:
    """Poll until stopped; the config file is read at every poll (a new one re-arms)."""
    stop = stop or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.warning("mfa_ha lease keeper started (pid %s, config %s)", os.getpid(), config_path)
    config, keeper, settings = None, None, None
    while not stop.is_set():
        started = time.monotonic()
        latest = lease.read_json(config_path) or config or _missing(config_path)
        if latest != config:
            config = latest
            settings = lease.LeaseSettings(**config["settings"])
            keeper = Keeper(config) if settings.automatic else None  # off: it idles, saying so
        try:
            if keeper is not None:
                keeper.tick()
            else:
                lease.write_record(settings.keeper_file, {"at": time.monotonic(), "pid": os.getpid(), "action": "off"})
        except Exception:  # noqa: BLE001 - the keeper must outlive any one poll's failure
            log.exception("mfa_ha lease: poll failed")
        stop.wait(max(0.0, settings.poll_seconds - (time.monotonic() - started)))


def _missing(path: str) -> dict:
    raise SystemExit(f"mfa_ha lease keeper: no config at {path} (written by the state pgrepl.lease_keeper)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mfa_ha.keeper", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the JSON file the state pgrepl.lease_keeper writes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(args.config)


if __name__ == "__main__":
    main()
