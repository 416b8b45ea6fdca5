"""The health endpoint: a small HTTP(S) service on each node (``python -m
mfa_ha.monitoring.endpoint --config FILE``) that a load balancer polls to find the primary,
and Prometheus scrapes for metrics.

- ``GET /primary``: 200 only on a primary the pair agrees on; 503 on a standby, on a primary
  whose lease keeper is fencing it or whose lease ran out (also while paused), on a primary
  back (answering again, or started anew) since the other node was last asked, and on a
  primary in split brain (the other node is a primary on the same or a newer timeline, or
  was last seen as one and has not answered since).
- ``GET /replica[?lag=<bytes>]``: 200 on a standby that streams, replaying within ``lag``.
- ``GET /health``: 200 while PostgreSQL answers and the node is not being fenced.
- ``GET /metrics``: the Prometheus text format.

Every answer carries a JSON body with the checks behind it. It is a service of its own,
beside the lease keeper rather than inside it: it runs with automatic failover off, and no
slow client or crash of it can delay a keeper's poll or fence. The formula writes its config
(state ``pgrepl.health_endpoint``) from ``mfa_ha:endpoint``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from mfa_ha import maintenance, timing
from mfa_ha.boot import boot_id
from mfa_ha.checks import Checked
from mfa_ha.errors import InvalidInput, MfaHaError
from mfa_ha.files import read_json
from mfa_ha.monitoring import health
from mfa_ha.postgres import replication as repl
from mfa_ha.postgres.config import postgres_config
from mfa_ha.postgres.server import Server
from mfa_ha.postgres.tls import TlsConfig

log = logging.getLogger("mfa_ha.endpoint")
PEER_SQL = (
    "SELECT NOT pg_is_in_recovery() AS primary, CASE WHEN NOT pg_is_in_recovery() THEN "
    "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline"
)
FENCING = ("fencing", "fenced")
# the other node's last answer counts this long (an ask that takes longer, a peer that hangs
# on its query, leaves it older: then the peer counts as unreachable)
PEER_ANSWER_VALID_SECONDS = 2 * (timing.ENDPOINT_PEER_SECONDS + timing.ENDPOINT_PEER_CONNECT_SECONDS)


ENDPOINT_KEYS = {"enabled", "port", "service"}


@dataclass(frozen=True)
class EndpointSettings:
    enabled: bool = False
    port: int = 8008
    service: str = "mfahahealth"  # its SRC subsystem / systemd unit


def endpoint_settings(raw) -> EndpointSettings:
    """``mfa_ha:endpoint`` checked; every bad key or value named."""
    if raw is None:
        return EndpointSettings()
    if not isinstance(raw, dict):
        raise InvalidInput("mfa_ha:endpoint: must be a mapping (enabled, port, service)")
    problems = []
    unknown = set(raw) - ENDPOINT_KEYS
    if unknown:
        problems.append(f"mfa_ha:endpoint: unknown key(s) {', '.join(sorted(unknown))}")
    enabled, port, service = raw.get("enabled", False), raw.get("port", 8008), raw.get("service", "mfahahealth")
    if not isinstance(enabled, bool):
        problems.append(f"mfa_ha:endpoint:enabled: true or false, not {enabled!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"mfa_ha:endpoint:port: a TCP port (1-65535), not {port!r}")
    if not isinstance(service, str) or not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", service):
        problems.append(f"mfa_ha:endpoint:service: a service name (letters, digits, _.@-), not {service!r}")
    if problems:
        raise InvalidInput("; ".join(problems))
    return EndpointSettings(enabled, port, service)


def build_config(
    node: str,
    listen: str,
    port: int,
    postgres: dict,
    tls: TlsConfig,
    peer: dict,
    run_dir: str,
    lease: dict,
) -> dict:
    """What the service needs, as the formula writes it (no secret: the peer is asked as the
    replication user, its password in pgpass). ``lease``: ``{"automatic", "lease_seconds",
    "alive_within"}`` of ``mfa_ha:failover``, to read the keeper's heartbeat by."""
    return {
        "node": node,
        "listen": listen,
        "port": int(port),
        "postgres": postgres,
        "tls": {"enabled": tls.enabled, "mode": tls.mode, "dir": tls.dir},
        "peer": peer,
        "run_dir": run_dir,
        "lease": lease,
    }


# -- what the node knows now --------------------------------------------------------------
class Observer:
    """One reading of the node (its server, its keeper's heartbeat, the pause) shared by every
    request within ``ENDPOINT_CACHE_SECONDS``, and the other node's role, asked beside the
    requests every ``ENDPOINT_PEER_SECONDS`` (a request never waits on an unreachable peer)."""

    def __init__(self, config: dict, clock=time.monotonic, seen_primary: dict | None = None):
        self.config = config
        self.server = Server(postgres_config(config["postgres"]), TlsConfig(**config["tls"]))
        self.clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, dict] | None = None
        self._peer: dict = {"reachable": False, "error": "not asked yet", "at": None, "seen_primary": seen_primary}
        self._pg_started: float | None = None  # PostgreSQL's start time as it last answered
        self._pg_back_at: float | None = None  # when it answered again, or with a new start time
        self._stop = threading.Event()
        self._asker = threading.Thread(target=self._ask_peer, daemon=True)

    def start(self) -> Observer:
        self._asker.start()
        return self

    def close(self) -> None:
        """Stop asking; an ask under way ends first (its answer counts for ``seen_primary``)."""
        self._stop.set()
        if self._asker.is_alive():
            self._asker.join(timeout=PEER_ANSWER_VALID_SECONDS)

    def reading(self) -> dict:
        with self._lock:
            now = self.clock()
            if self._last is None or now - self._last[0] > timing.ENDPOINT_CACHE_SECONDS:
                self._last = (now, self._read(now))
            return self._last[1]

    def seen_primary(self) -> dict | None:
        """The other node's last sighting as a primary, for the observer that replaces this one."""
        return self._peer.get("seen_primary")

    def _read(self, now: float) -> dict:
        run_dir = self.config["run_dir"]
        pg = health.read(self.server.cfg)
        started = (pg or {}).get("started_at")
        if started != self._pg_started:  # down, back, or started anew (a crash and a restart)
            self._pg_started = started
            self._pg_back_at = self.clock() if pg is not None else None
        return {
            "node": self.config["node"],
            "now": now,
            "pg": pg,
            "pg_back_at": self._pg_back_at,
            "keeper": this_boots(os.path.join(run_dir, "keeper.json")),
            "renewals": this_boots(os.path.join(run_dir, "lease.json")),
            "paused": maintenance.read(os.path.join(run_dir, maintenance.FILE_NAME)),
            "peer": self._peer,
            **self.config["lease"],
        }

    def _ask_peer(self) -> None:
        while not self._stop.is_set():
            asked = self.clock()
            self._peer = peer_record(self._peer, self._peer_role(), self.clock(), asked)
            self._stop.wait(timing.ENDPOINT_PEER_SECONDS)

    def _peer_role(self) -> dict:
        peer = self.config["peer"]
        try:
            conn = repl.upstream_connection(
                self.server,
                peer["host"],
                peer["port"],
                peer["user"],
                connect_timeout=timing.ENDPOINT_PEER_CONNECT_SECONDS,
                application_name="mfa_ha_endpoint",
            )
        except MfaHaError as err:
            return {"reachable": False, "error": str(err)}
        try:
            with conn.cursor() as cur:
                cur.execute(PEER_SQL)
                primary, timeline = cur.fetchone()
            return {"reachable": True, "primary": bool(primary), "timeline": timeline}
        except Exception as err:  # noqa: BLE001 - a peer that fails its query is as good as unreachable
            return {"reachable": False, "error": str(err).strip()}
        finally:
            conn.close()


def peer_record(previous: dict, answer: dict, now: float, asked: float = 0.0) -> dict:
    """The other node's latest answer (``now``: when it came; ``asked``: when it was asked;
    both on the observer's clock), and when the other node was last seen as a primary (on
    which timeline). Only an answer overrules that sighting: a peer that stops answering (a
    busy link, a connect timeout) is not thereby a standby."""
    if answer.get("reachable"):
        seen = {"timeline": answer.get("timeline"), "at": now} if answer.get("primary") else None
    else:
        seen = previous.get("seen_primary")
    return {**answer, "at": now, "asked": asked, "seen_primary": seen}


def this_boots(path: str) -> dict:
    """A record of the keeper's (monotonic times), empty when written before the last reboot:
    its times would look recent, or in the future."""
    data = read_json(path)
    return data if data.get("boot") == boot_id() else {}


# -- the answers (pure) --------------------------------------------------------------------
class Answer(Checked):
    """An HTTP status and the checks behind it."""

    @property
    def status(self) -> int:
        return 503 if self.failed else 200

    def body(self, reading: dict) -> dict:
        return {
            "node": reading["node"],
            "status": self.status,
            "role": (reading["pg"] or {}).get("role"),
            "timeline": (reading["pg"] or {}).get("timeline"),
            "checks": self.checks_as_dicts(),
        }


def lease_left(reading: dict) -> float | None:
    """Seconds until this primary's lease runs out (its keeper's view), None without one."""
    keeper, renewals = reading.get("keeper") or {}, reading.get("renewals") or {}
    armed_at = keeper.get("armed_at")
    if not reading.get("automatic") or not isinstance(armed_at, (int, float)):
        return None
    renewed = max(armed_at, renewals.get("renewed_at") or armed_at)
    streamed = max(armed_at, keeper.get("streamed_at") or armed_at)
    return round(reading["lease_seconds"] - (reading["now"] - max(renewed, streamed)), 1)


def keeper_fresh(reading: dict) -> dict | None:
    """The keeper's last heartbeat, when it is alive (it beat within ``alive_within``)."""
    keeper = reading.get("keeper") or {}
    at = keeper.get("at")
    fresh = isinstance(at, (int, float)) and 0 <= reading["now"] - at <= reading.get("alive_within", 0)
    return keeper if fresh else None


def _in_role(a: Answer, pg: dict | None, role: str) -> bool:
    """PostgreSQL answers, in ``role``."""
    if not a.check("PostgreSQL answers", pg is not None, "yes" if pg else "no connection"):
        return False
    return a.check(f"this node is a {role}", pg["role"] == role, pg["role"])


def primary_answer(reading: dict) -> Answer:
    a = Answer()
    pg = reading["pg"]
    if not _in_role(a, pg, "primary"):
        return a
    if reading.get("automatic") and not _lease_checks(a, reading):
        return a
    peer = reading.get("peer") or {}
    if peer.get("at") is None:
        a.check("no other primary", False, "the other node not asked yet")
        return a
    if (peer.get("asked") or 0) < (reading.get("pg_back_at") or 0):
        # a primary back from down (or started anew) may be a crashed one, replaced meanwhile:
        # the answer in hand may be older than that replacement
        a.check("no other primary", False, "the other node not asked since this server answered again")
        return a
    recent = reading["now"] - peer["at"] <= PEER_ANSWER_VALID_SECONDS
    if not (recent and peer.get("reachable")):
        seen = peer.get("seen_primary") or {}
        newer = bool(seen) and (seen.get("timeline") or 0) >= (pg.get("timeline") or 0)
        a.check(
            "no other primary",
            not newer,
            f"the other node, last seen {round(reading['now'] - seen['at'], 1)} s ago as a primary on timeline "
            f"{seen.get('timeline')}, does not answer now ({peer.get('error', 'no recent answer')})"
            if newer
            else f"the other node is unreachable ({peer.get('error', 'no recent answer')})",
        )
        return a
    stale = peer.get("primary") and (peer.get("timeline") or 0) >= (pg.get("timeline") or 0)
    a.check(
        "no other primary",
        not stale,
        f"the other node is a primary on timeline {peer.get('timeline')} (split brain)"
        if stale
        else ("the other node is a primary on an older timeline" if peer.get("primary") else "the other is a standby"),
    )
    return a


def _lease_checks(a: Answer, reading: dict) -> bool:
    """With automatic failover: the keeper beats, holds this primary's lease (armed, not
    fencing), and the lease has not run out."""
    keeper = keeper_fresh(reading)
    if not a.check("its lease keeper beats", keeper is not None, "silent" if keeper is None else "yes"):
        return False
    action = keeper.get("action")
    if not a.check("its lease keeper is not fencing it", action not in FENCING, action):
        return False
    holds = keeper.get("role") == "primary" and action == "hold" and isinstance(keeper.get("armed_at"), (int, float))
    if not a.check("its lease keeper holds its lease", holds, f"{keeper.get('role')}, {action}"):
        return False
    left = lease_left(reading)
    return a.check("its lease has not run out", left is not None and left > 0, f"{left} s left")


def replica_answer(reading: dict, max_lag: int | None) -> Answer:
    a = Answer()
    pg = reading["pg"]
    if not _in_role(a, pg, "standby"):
        return a
    receiver = (pg.get("receiver") or {}).get("status")
    a.check("it streams from a primary", receiver == "streaming", receiver or "no WAL receiver")
    if max_lag is not None:
        lag = int(pg.get("lag_bytes") or 0)
        a.check("it replays within the lag asked", lag <= max_lag, f"{lag} bytes behind, at most {max_lag}")
    return a


def health_answer(reading: dict) -> Answer:
    a = Answer()
    pg = reading["pg"]
    if not a.check("PostgreSQL answers", pg is not None, "yes" if pg else "no connection"):
        return a
    action = (keeper_fresh(reading) or {}).get("action")
    a.check("its lease keeper is not fencing it", action not in FENCING, action or "no keeper beating")
    return a


def metrics(reading: dict) -> str:
    """The Prometheus text format (version 0.0.4)."""
    node, pg = reading["node"], reading["pg"] or {}
    label = f'node="{node}"'
    keeper = keeper_fresh(reading) or {}
    fence = keeper.get("last_fence") or {}
    paused = reading.get("paused")
    lines = []

    def gauge(name, doc, value, extra=""):
        if value is None:
            return
        if not any(line.startswith(f"# TYPE {name} ") for line in lines):
            lines.extend([f"# HELP {name} {doc}", f"# TYPE {name} gauge"])
        labels = label + (f",{extra}" if extra else "")
        lines.append(f"{name}{{{labels}}} {float(value):g}")

    gauge("mfa_ha_up", "1 when PostgreSQL answers on this node", 1 if reading["pg"] else 0)
    gauge("mfa_ha_primary", "1 on a primary, 0 on a standby", {"primary": 1, "standby": 0}.get(pg.get("role")))
    gauge("mfa_ha_primary_agreed", "1 when GET /primary answers 200", 1 if primary_answer(reading).status == 200 else 0)
    gauge("mfa_ha_timeline", "the timeline this node is on", pg.get("timeline"))
    gauge("mfa_ha_lag_bytes", "WAL received and not yet replayed (standby)", pg.get("lag_bytes"))
    gauge("mfa_ha_lag_seconds", "seconds since the last replayed commit (standby)", pg.get("lag_seconds"))
    for slot in pg.get("slots") or []:
        extra = f'slot="{slot["name"]}"'
        gauge("mfa_ha_slot_retained_bytes", "WAL a replication slot holds", slot.get("retained_bytes"), extra)
        gauge("mfa_ha_slot_active", "1 when a replication slot is in use", 1 if slot.get("active") else 0, extra)
    gauge("mfa_ha_lease_held", "1 while this primary's keeper holds its lease", _lease_held(keeper))
    gauge("mfa_ha_lease_seconds_left", "seconds until this primary's lease runs out", lease_left(reading))
    if isinstance(fence.get("at"), (int, float)):
        fenced_at = time.time() - (reading["now"] - fence["at"])
        gauge("mfa_ha_last_fence_timestamp_seconds", "when this node's keeper last fenced it", round(fenced_at, 3))
    gauge("mfa_ha_paused", "1 while automatic failover is paused", 1 if paused else 0)
    if paused:
        gauge("mfa_ha_paused_seconds", "how long automatic failover has been paused", time.time() - paused["at"])
    return "\n".join(lines) + "\n"


def _lease_held(keeper: dict) -> int | None:
    if not keeper or keeper.get("action") in (None, "off", "idle", "stopped"):
        return None
    return 1 if keeper.get("action") == "hold" and not keeper.get("fence_suspended") else 0


def respond(path: str, reading_of) -> tuple[int, str, str]:
    """``(status, content type, body)`` for a GET of ``path`` (with its query)."""
    url = urlsplit(path)
    query = parse_qs(url.query)
    if url.path == "/metrics":
        return 200, "text/plain; version=0.0.4", metrics(reading_of())
    if url.path == "/replica":
        try:
            max_lag = int(query["lag"][0]) if "lag" in query else None
        except ValueError:
            return 400, "application/json", json.dumps({"error": f"lag: a number of bytes, not {query['lag'][0]!r}"})
        reading = reading_of()
        answer = replica_answer(reading, max_lag)
    elif url.path in ("/primary", "/health"):
        reading = reading_of()
        answer = primary_answer(reading) if url.path == "/primary" else health_answer(reading)
    else:
        return (
            404,
            "application/json",
            json.dumps({"error": f"no such path {url.path}: /primary, /replica, /health, /metrics"}),
        )
    return answer.status, "application/json", json.dumps(answer.body(reading))


# -- the service ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    observer: Observer
    timeout = timing.ENDPOINT_REQUEST_SECONDS  # a client that sends nothing holds no thread for long

    def do_GET(self):
        try:
            status, kind, body = respond(self.path, self.observer.reading)
        except Exception as err:
            log.exception("mfa_ha endpoint: %s failed", self.path)
            status, kind, body = 503, "application/json", json.dumps({"error": str(err)})
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # a load balancer polls every second: no access log
        pass


def server(config: dict, seen_primary: dict | None = None) -> ThreadingHTTPServer:
    """The service bound to the node's address and port, over TLS with the node's certificate
    when TLS is on. ``seen_primary``: what the observer it replaces knew of the other node."""
    tls = TlsConfig(**config["tls"])
    context = None
    if tls.enabled:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_path, tls.key_path)
    httpd = _Server(
        (config["listen"], config["port"]),
        type("Handler", (_Handler,), {"observer": Observer(config, seen_primary=seen_primary)}),
    )
    if context is not None:
        # the handshake in the request's thread (its first read, under the handler's timeout)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    httpd.RequestHandlerClass.observer.start()
    return httpd


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # noqa: ARG002 - a port scan or a plain-HTTP probe of the TLS port
        log.debug("mfa_ha endpoint: request from %s failed", client_address, exc_info=True)


def serve(config_path: str, stop: threading.Event) -> None:
    """Serve until ``stop``. A changed config or TLS certificate (looked at every
    ``timing.ENDPOINT_RELOAD_SECONDS``) re-binds the service; one that cannot bind is logged
    and tried again. Ends when the config is removed (the endpoint turned off)."""
    serving, running = None, None  # (config, certificate stamp), (server, thread)
    sighting = (None, None)  # (the other node's config, its last sighting as a primary)
    try:
        while not stop.is_set():
            config = read_json(config_path)
            if not config:
                log.warning("mfa_ha endpoint: no config at %s (mfa_ha:endpoint:enabled off): ending", config_path)
                return
            wanted = (config, _certificate_stamp(config))
            if wanted != serving:
                if running is not None:
                    _shut(*running)
                    sighting = _sighting(running)
                    running = None
                running = _start(config, sighting[1] if sighting[0] == config["peer"] else None)
                serving = wanted if running is not None else None
            stop.wait(timing.ENDPOINT_RELOAD_SECONDS)
    finally:
        if running is not None:
            _shut(*running)


def _sighting(running) -> tuple[dict, dict | None]:
    """What a shut service knew of the other node as a primary, and which node that is: the
    next service for the same node starts with it (a new certificate, or one that failed to
    bind meanwhile, does not make the endpoint forget)."""
    observer = running[0].RequestHandlerClass.observer
    return observer.config["peer"], observer.seen_primary()


def _shut(httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    httpd.RequestHandlerClass.observer.close()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=timing.ENDPOINT_REQUEST_SECONDS)


def _certificate_stamp(config: dict) -> tuple:
    tls = TlsConfig(**config["tls"])
    if not tls.enabled:
        return ()
    return tuple(os.stat(p).st_mtime_ns if os.path.exists(p) else None for p in (tls.cert_path, tls.key_path))


def _start(config: dict, seen_primary: dict | None = None) -> tuple[ThreadingHTTPServer, threading.Thread] | None:
    try:
        httpd = server(config, seen_primary)
    except (OSError, ssl.SSLError, ValueError, MfaHaError) as err:
        log.error(
            "mfa_ha endpoint: cannot serve on %s:%s (%s); trying again", config.get("listen"), config.get("port"), err
        )
        return None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    thread.start()
    log.warning("mfa_ha endpoint serving on %s:%s (pid %s)", config["listen"], config["port"], os.getpid())
    return httpd, thread


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mfa_ha.monitoring.endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the JSON file the state pgrepl.health_endpoint writes")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s", force=True
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if not read_json(args.config):
        raise SystemExit(f"mfa_ha endpoint: no config at {args.config} (written by the state pgrepl.health_endpoint)")
    serve(args.config, stop)


if __name__ == "__main__":
    main()
