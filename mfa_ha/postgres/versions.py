"""PostgreSQL version differences, decided once.

Everything that depends on the server's major version is a capability property of
``PgVersion`` or a row of ``REPLICATION_SETTINGS``; the rest of the code asks these,
never compares version numbers itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mfa_ha.errors import InvalidInput

OLDEST_SUPPORTED = 10
RECOVERY_CONF = "recovery.conf"
STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"
AUTO_CONF = "postgresql.auto.conf"

# pg_stat_wal_receiver (aliased ``r``) names its sender from 11 on; 10 shows only its conninfo.
# One expression serves every version (a missing column reads as NULL through to_jsonb).
RECEIVER_SENDER_HOST = "coalesce(to_jsonb(r) ->> 'sender_host', substring(r.conninfo from 'host=([^ ]+)'))"
RECEIVER_SENDER_PORT = "coalesce(to_jsonb(r) ->> 'sender_port', substring(r.conninfo from 'port=([0-9]+)'))::int"

# A standby's replay lag in seconds: none while nothing received waits to be replayed. Right
# after a standby starts, pg_last_wal_receive_lsn() is the start of the segment streaming
# resumed from, behind what was replayed; an idle primary's last commit may be minutes old.
LAG_SECONDS = (
    "CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() "
    "THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
)


@dataclass(frozen=True)
class PgVersion:
    major: int

    @classmethod
    def parse(cls, text: str | int) -> PgVersion:
        """From ``PG_VERSION`` contents, ``server_version_num`` or a ``--version`` string."""
        token = str(text).strip().split()[-1] if str(text).strip() else ""
        try:
            number = int(token.split(".")[0])
        except ValueError:
            raise InvalidInput(f"cannot read a PostgreSQL version from {text!r}") from None
        major = number // 10000 if number >= 10000 else number
        if major < OLDEST_SUPPORTED:
            raise InvalidInput(f"PostgreSQL {token} is not supported: mfa-ha needs {OLDEST_SUPPORTED} or newer")
        return cls(major)

    @property
    def uses_standby_signal(self) -> bool:
        """12 moved recovery.conf into postgresql.conf plus standby.signal."""
        return self.major >= 12

    @property
    def has_promote_trigger_file(self) -> bool:
        return 12 <= self.major <= 15

    @property
    def has_pg_promote(self) -> bool:
        """12 added the SQL function pg_promote(): no pg_ctl process, no 100 ms poll step."""
        return self.major >= 12

    @property
    def conninfo_reloadable(self) -> bool:
        """From 13 a reload applies a new primary_conninfo/primary_slot_name (no restart)."""
        return self.major >= 13

    @property
    def can_grant_rewind_functions(self) -> bool:
        """From 11 a non-superuser can run pg_rewind when granted the file functions."""
        return self.major >= 11


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    min_major: int = OLDEST_SUPPORTED
    max_major: int = 99

    def applies_to(self, version: PgVersion) -> bool:
        return self.min_major <= version.major <= self.max_major


REPLICATION_SETTINGS = (
    Setting("wal_level", "replica"),
    Setting("max_wal_senders", "10"),
    Setting("max_replication_slots", "10"),
    Setting("hot_standby", "on"),
    Setting("hot_standby_feedback", "on"),
    Setting("wal_log_hints", "on"),
    Setting("wal_keep_segments", "64", max_major=12),
    Setting("wal_keep_size", "1GB", min_major=13),
    Setting("max_slot_wal_keep_size", "10GB", min_major=13),
    # A silent link (no FIN, no RST) ends the replication connection within these bounds.
    Setting("wal_sender_timeout", "30s"),
    Setting("wal_receiver_timeout", "30s"),
)


def replication_settings(version: PgVersion, overrides: dict | None = None) -> dict[str, str]:
    """The settings a replicating node needs on this version, pillar overrides applied."""
    wanted = {s.name: s.value for s in REPLICATION_SETTINGS if s.applies_to(version)}
    wanted.update({k: str(v) for k, v in (overrides or {}).items()})
    return wanted


@dataclass(frozen=True)
class StandbyFiles:
    """What makes a data directory a standby: files to write, auto.conf keys, files to remove."""

    files: dict[str, str] = field(default_factory=dict)
    auto_conf: dict[str, str | None] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


def standby_files(
    version: PgVersion,
    primary_conninfo: str,
    slot: str | None,
    trigger_file: str | None = None,
    local_settings: dict[str, str] | None = None,
) -> StandbyFiles:
    """Render the standby configuration for this server version, plus this node's own
    settings (``local_settings``, in postgresql.auto.conf on every version) that a clone or
    rewind overwrote with the peer's."""
    local = dict(local_settings or {})
    settings = {
        "primary_conninfo": primary_conninfo,
        "primary_slot_name": slot,
        "recovery_target_timeline": "latest",
    }
    if not version.uses_standby_signal:
        lines = ["# written by mfa-ha", "standby_mode = 'on'"]
        if trigger_file:
            settings["trigger_file"] = trigger_file
        lines += [f"{k} = {quote_conf_value(v)}" for k, v in settings.items() if v is not None]
        return StandbyFiles(files={RECOVERY_CONF: "\n".join(lines) + "\n"}, auto_conf=local)
    if trigger_file and version.has_promote_trigger_file:
        settings["promote_trigger_file"] = trigger_file
    return StandbyFiles(files={STANDBY_SIGNAL: ""}, auto_conf={**settings, **local}, remove=(RECOVERY_CONF,))


def primary_cleanup(version: PgVersion) -> StandbyFiles:
    """What to remove so that a data directory starts as a primary."""
    if not version.uses_standby_signal:
        return StandbyFiles(remove=(RECOVERY_CONF,))
    return StandbyFiles(remove=(STANDBY_SIGNAL, RECOVERY_SIGNAL))


def quote_conf_value(value: str) -> str:
    """Quote a value for postgresql.conf / recovery.conf."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def render_auto_conf(text: str, updates: dict[str, str | None]) -> str:
    """Set (or with ``None`` remove) keys in postgresql.auto.conf text, keeping other lines."""
    out, seen = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if key in updates:
            if key not in seen and updates[key] is not None:
                out.append(f"{key} = {quote_conf_value(updates[key])}")
            seen.add(key)
            continue
        out.append(line)
    out += [f"{k} = {quote_conf_value(v)}" for k, v in updates.items() if k not in seen and v is not None]
    return "\n".join(out) + "\n"


def parse_conf(text: str) -> dict[str, str]:
    """Read ``key = 'value'`` lines (the last one wins, as PostgreSQL reads them)."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1].replace("''", "'").replace("\\\\", "\\")
        result[key] = value
    return result
