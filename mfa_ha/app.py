"""The application daemon (pmfad): service-manager backends and the HTTPS health check.

AIX's System Resource Controller is driven through ``startsrc``/``stopsrc``/``lssrc``; its
exit codes are not trusted (``stopsrc`` returns before the daemon is gone, ``startsrc``
succeeds for a daemon that dies at once), so every action is checked with ``lssrc``
before and after. Linux uses systemd.
"""

from __future__ import annotations

import http.client
import logging
import os
import ssl
import time
from dataclasses import dataclass

from mfa_ha import proc, timing
from mfa_ha.errors import InvalidInput, ServiceError
from mfa_ha.roles import ServiceState
from mfa_ha.waiting import poll

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "pmfad"
DEFAULT_HEALTH_PORT = 6793
DEFAULT_HEALTH_PATH = "/policyAuth/"
MANAGERS = ("src", "systemd")


@dataclass(frozen=True)
class AppConfig:
    service: str = DEFAULT_SERVICE
    manager: str | None = None  # src | systemd; from grains when unset
    src_bin_dir: str = "/usr/bin"
    systemctl: str = "systemctl"
    health_host: str = "127.0.0.1"
    health_port: int = DEFAULT_HEALTH_PORT
    health_path: str = DEFAULT_HEALTH_PATH
    health_scheme: str = "https"
    health_verify_tls: bool = False  # MFA ships a self-signed certificate by default
    timeout: float = 30


def app_config(pillar: dict | None, os_family: str | None = None, **overrides) -> AppConfig:
    values = dict(pillar or {}) if isinstance(pillar, dict) else {}
    if pillar not in (None, "") and not isinstance(pillar, dict):
        raise InvalidInput(f"mfa_ha:pmfad: must be a mapping, got {type(pillar).__name__}")
    known = AppConfig.__dataclass_fields__
    unknown = set(values) - set(known)
    if unknown:
        raise InvalidInput(f"mfa_ha:pmfad: unknown key(s) {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None and k in known})
    manager = values.get("manager") or ("src" if os_family == "AIX" else "systemd")
    if manager not in MANAGERS:
        raise InvalidInput(f"mfa_ha:pmfad:manager: {manager!r} is not one of {', '.join(MANAGERS)}")
    values["manager"] = manager
    return AppConfig(**values)


# -- lssrc ----------------------------------------------------------------------
def parse_lssrc(text: str) -> dict[str, dict]:
    """Rows of ``lssrc`` output keyed by subsystem.

    Columns are ``Subsystem Group PID Status``; Group and PID may be empty, so each row is
    read from the right: the status is last, a number before it is the PID, and whatever
    sits between the name and the PID is the group.
    """
    rows = {}
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0] == "Subsystem" or tokens[0].startswith("0513-"):
            continue
        name, rest = tokens[0], tokens[1:]
        status = rest.pop() if rest else "unknown"
        pid = int(rest.pop()) if rest and rest[-1].isdigit() else None
        rows[name] = {"subsystem": name, "group": rest[0] if rest else None, "pid": pid, "status": status}
    return rows


class SrcBackend:
    """AIX System Resource Controller."""

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg

    def _cmd(self, name: str, *args, check=False) -> proc.Result:
        return proc.run([os.path.join(self.cfg.src_bin_dir, name), *args], timeout=self.cfg.timeout, check=check)

    def status(self) -> dict:
        result = self._cmd("lssrc", "-s", self.cfg.service)
        row = parse_lssrc(result.stdout).get(self.cfg.service)
        if row is None:
            raise ServiceError(f"lssrc does not know subsystem {self.cfg.service}: {result.output}")
        state = ServiceState.RUNNING if row["status"] == "active" else ServiceState.STOPPED
        return {"state": state.value, "pid": row["pid"], "detail": row["status"]}

    def start(self) -> bool:
        if self.status()["state"] == ServiceState.RUNNING:
            return False
        out = self._cmd("startsrc", "-s", self.cfg.service).output
        _wait(self, ServiceState.RUNNING, self.cfg.timeout, f"startsrc said: {out}")
        return True

    def stop(self) -> bool:
        if self.status()["state"] == ServiceState.STOPPED:
            return False
        out = self._cmd("stopsrc", "-s", self.cfg.service).output
        try:
            _wait(self, ServiceState.STOPPED, self.cfg.timeout, f"stopsrc said: {out}")
        except ServiceError:
            log.warning("%s did not stop in %s s; forcing with stopsrc -f", self.cfg.service, self.cfg.timeout)
            self._cmd("stopsrc", "-f", "-s", self.cfg.service)
            _wait(self, ServiceState.STOPPED, 10, "even after stopsrc -f")
        return True


class SystemdBackend:
    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        self.unit = cfg.service if "." in cfg.service else f"{cfg.service}.service"

    def _ctl(self, *args, check=False) -> proc.Result:
        return proc.run([self.cfg.systemctl, *args], timeout=self.cfg.timeout, check=check)

    def status(self) -> dict:
        out = self._ctl("show", "-p", "ActiveState,SubState,MainPID,LoadState", self.unit).stdout
        props = parse_systemctl_show(out)
        if props.get("LoadState") == "not-found":
            raise ServiceError(f"systemd has no unit {self.unit}")
        active = props.get("ActiveState") in ("active", "reloading", "activating")
        pid = int(props.get("MainPID") or 0) or None
        state = ServiceState.RUNNING if active else ServiceState.STOPPED
        return {"state": state.value, "pid": pid, "detail": f"{props.get('ActiveState')}/{props.get('SubState')}"}

    def start(self) -> bool:
        if self.status()["state"] == ServiceState.RUNNING:
            return False
        self._ctl("start", self.unit, check=True)
        _wait(self, ServiceState.RUNNING, self.cfg.timeout, "after systemctl start")
        return True

    def stop(self) -> bool:
        if self.status()["state"] == ServiceState.STOPPED:
            return False
        self._ctl("stop", self.unit, check=True)
        _wait(self, ServiceState.STOPPED, self.cfg.timeout, "after systemctl stop")
        return True


def parse_systemctl_show(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _wait(backend, wanted: ServiceState, timeout: float, context: str) -> None:
    def reached():
        current = backend.status()
        return current["state"] == wanted.value, current

    poll(
        reached,
        timeout,
        timing.APP_POLL_SECONDS,
        fail=lambda current: ServiceError(
            f"{backend.cfg.service} is {current['detail']}, not {wanted.value}, {timeout:g} s later ({context})"
        ),
    )


def backend(cfg: AppConfig):
    return SrcBackend(cfg) if cfg.manager == "src" else SystemdBackend(cfg)


# -- health ---------------------------------------------------------------------
def health(cfg: AppConfig, timeout: float = 5) -> dict:
    """GET the MFA policy endpoint; healthy when it answers below 500."""
    url = f"{cfg.health_scheme}://{cfg.health_host}:{cfg.health_port}{cfg.health_path}"
    started = time.monotonic()
    result = {"url": url, "healthy": False, "status_code": None, "error": None}
    try:
        conn = _http_connection(cfg, timeout)
        conn.request("GET", cfg.health_path)
        response = conn.getresponse()
        response.read()
        conn.close()
        result.update(status_code=response.status, healthy=response.status < 500)
        if response.status >= 500:
            result["error"] = f"HTTP {response.status} {response.reason}"
    except (OSError, http.client.HTTPException) as err:
        result["error"] = f"{type(err).__name__}: {err}"
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _http_connection(cfg: AppConfig, timeout: float):
    if cfg.health_scheme == "http":
        return http.client.HTTPConnection(cfg.health_host, cfg.health_port, timeout=timeout)
    context = ssl.create_default_context()
    if not cfg.health_verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(cfg.health_host, cfg.health_port, timeout=timeout, context=context)


def wait_healthy(cfg: AppConfig, timeout: float = 30) -> dict:
    def healthy():
        result = health(cfg, timeout=min(5, timeout))
        return result["healthy"], result

    return poll(healthy, timeout, timing.APP_POLL_SECONDS, fail=None)
