"""Server settings: read what the server runs with, diff against what replication needs, apply."""

from __future__ import annotations

import re

from psycopg2 import sql

from mfa_ha.postgres.server import Server
from mfa_ha.postgres.versions import replication_settings

NAME_RE = re.compile(r"^[a-z_][a-z0-9_.]*$")
UNITS = {
    "kB": 1,
    "MB": 1024,
    "GB": 1024**2,
    "TB": 1024**3,
    "us": 0.001,
    "ms": 1,
    "s": 1000,
    "min": 60000,
    "h": 3600000,
    "d": 86400000,
}


def normalise(value) -> str:
    """Compare '1GB' with '1024MB', 'on' with 'true', ' 10 ' with '10'."""
    text = str(value).strip().strip("'")
    lowered = text.lower()
    if lowered in ("on", "true", "yes", "1") and not text.isdigit():
        return "on"
    if lowered in ("off", "false", "no"):
        return "off"
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(kB|MB|GB|TB|us|ms|s|min|h|d)", text)
    if match:
        number = float(match.group(1)) * UNITS[match.group(2)]
        return f"{number:g}{'kB' if match.group(2) in ('kB', 'MB', 'GB', 'TB') else 'ms'}"
    return text


CURRENT_SQL = """
SELECT s.name, current_setting(s.name) AS value, s.pending_restart, s.context, s.source,
       f.setting AS file_value
FROM pg_settings s
LEFT JOIN LATERAL (SELECT setting FROM pg_file_settings f
                   WHERE f.name = s.name AND (f.error IS NULL OR f.error = %s)
                   ORDER BY f.seqno DESC LIMIT 1) f ON true
WHERE s.name = ANY(%s)
"""
# pg_file_settings' word for a valid value of a restart-only setting that waits for the
# restart: it is what the server will run with next, so it counts as the files' value.
WAITS_FOR_RESTART = "setting could not be applied"


def current(server: Server, names) -> dict[str, dict]:
    """Running value of each setting and the value its config files give it now
    (``pg_file_settings``), so an ALTER SYSTEM not yet reloaded or restarted is seen."""
    return {r["name"]: r for r in server.query(CURRENT_SQL, (WAITS_FOR_RESTART, list(names)))}


def wanted(server: Server, overrides: dict | None = None) -> dict[str, str]:
    """What replication needs on this version, this node's TLS settings, pillar overrides."""
    return replication_settings(server.data_version(), {**server.local_settings(), **(overrides or {})})


def diff(current_rows: dict[str, dict], wanted_values: dict[str, str]) -> dict[str, dict]:
    """Settings whose running value, or the value the files give at the next reload or
    restart, differs from the wanted one: ``{name: {old, new}}``."""
    changes = {}
    for name, value in wanted_values.items():
        row = current_rows.get(name) or {}
        old, from_files = row.get("value"), _from_files(row)
        if old is None or normalise(old) != normalise(value):
            changes[name] = {"old": old, "new": str(value)}
        elif from_files is not None and normalise(from_files) != normalise(value):
            changes[name] = {"old": f"{old} (config files: {from_files})", "new": str(value)}
    return changes


def _from_files(row: dict) -> str | None:
    """A command-line option (``pg_ctl -o``) beats every file, so files do not matter then."""
    return None if row.get("source") == "command line" else row.get("file_value")


def apply(server: Server, values: dict[str, str]) -> dict:
    """ALTER SYSTEM each value, reload, and say which ones wait for a restart."""
    if set(values) & set(server.tls.server_settings()):
        server.tls.require_files()
    for name, value in values.items():
        if not NAME_RE.match(name):
            raise ValueError(f"invalid setting name {name!r}")
        server.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(str(value))))
    server.execute("SELECT pg_reload_conf()")
    rows = current(server, list(values))
    return {
        "restart_pending": sorted(
            n
            for n, r in rows.items()
            if r["pending_restart"] or r["context"] == "postmaster" and normalise(r["value"]) != normalise(values[n])
        )
    }


def restart_pending(server: Server, names=None) -> list[str]:
    """Settings (of ``names``, or all) whose new value waits for a restart."""
    rows = server.query("SELECT name FROM pg_settings WHERE pending_restart")
    return [r["name"] for r in rows if names is None or r["name"] in names]
