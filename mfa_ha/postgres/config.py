"""Node configuration: pillar values merged with MFA defaults and call overrides, validated.

Every problem is reported with the pillar key it came from, before anything is changed.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, fields

from mfa_ha.errors import InvalidInput
from mfa_ha.postgres import synchronous
from mfa_ha.postgres.naming import validate_role_name

MFA_DATA_DIR = "/opt/IBM/powersc/MFA/mfadb"


@dataclass(frozen=True)
class PostgresConfig:
    """Where a node's PostgreSQL server lives and how to reach it locally."""

    data_dir: str = MFA_DATA_DIR
    bin_dir: str | None = None  # found from PG_VERSION or PATH when unset
    port: int = 5432
    host: str | None = None  # socket directory (or address) for local admin connections
    os_user: str = "postgres"
    superuser: str = "postgres"
    dbname: str = "postgres"
    pgpass: str | None = None  # default: ~os_user/.pgpass
    log_file: str | None = None  # default: <data_dir>/pg_ctl.log
    # Node-specific server options for ``pg_ctl start -o`` (e.g. ``-c listen_addresses=...``):
    # kept out of the data directory because pg_basebackup and pg_rewind copy its config files.
    options: str | None = None
    keep_moved_aside: int = 2  # copies of the data directory a clone kept aside: the newest N stay

    @property
    def pgpass_path(self) -> str:
        return self.pgpass or os.path.join(pwd.getpwnam(self.os_user).pw_dir, ".pgpass")

    @property
    def log_path(self) -> str:
        return self.log_file or os.path.join(self.data_dir, "pg_ctl.log")


@dataclass(frozen=True)
class ReplicationConfig:
    user: str = "replicamfa"
    connection_limit: int = 5
    synchronous: str = "off"  # off | strict (mfa_ha.postgres.synchronous)
    synchronous_commit: str = "on"  # on | remote_apply, with synchronous replication


def postgres_config(pillar: dict | None, **overrides) -> PostgresConfig:
    """Merge ``mfa_ha:postgres`` pillar with keyword overrides and validate the result."""
    values = _known(PostgresConfig, pillar, "mfa_ha:postgres")
    values.update({k: v for k, v in overrides.items() if v is not None and k in _names(PostgresConfig)})
    cfg = PostgresConfig(**values)
    _check_absolute(cfg.data_dir, "mfa_ha:postgres:data_dir")
    if cfg.bin_dir is not None:
        _check_absolute(cfg.bin_dir, "mfa_ha:postgres:bin_dir")
    object.__setattr__(cfg, "port", check_port(cfg.port, "mfa_ha:postgres:port"))
    keep = cfg.keep_moved_aside
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInput(
            f"mfa_ha:postgres:keep_moved_aside: must be a whole number of copies (1 or more), not {keep!r}"
        )
    try:
        pwd.getpwnam(cfg.os_user)
    except KeyError:
        raise InvalidInput(f"mfa_ha:postgres:os_user: no such operating system user {cfg.os_user!r}") from None
    return cfg


def replication_config(pillar: dict | None, **overrides) -> ReplicationConfig:
    values = _known(ReplicationConfig, pillar, "mfa_ha:replication", ignore=("password",))
    values.update({k: v for k, v in overrides.items() if v is not None and k in _names(ReplicationConfig)})
    validate_role_name(values.get("user", ReplicationConfig.user))
    limit = values.get("connection_limit", ReplicationConfig.connection_limit)
    try:
        values["connection_limit"] = int(limit)
    except (TypeError, ValueError):
        raise InvalidInput(f"mfa_ha:replication:connection_limit: not a number: {limit!r}") from None
    values["synchronous"] = synchronous.mode(values.get("synchronous"))
    values["synchronous_commit"] = synchronous.commit_level(values.get("synchronous_commit"))
    return ReplicationConfig(**values)


def check_port(value, key: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key}: not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise InvalidInput(f"{key}: port {port} is outside 1-65535")
    return port


def _check_absolute(path, key: str) -> None:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidInput(f"{key}: must be an absolute path, got {path!r}")


def _names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def _known(cls, pillar, key: str, ignore=()) -> dict:
    if pillar is None or pillar == "":
        return {}
    if not isinstance(pillar, dict):
        raise InvalidInput(f"{key}: must be a mapping, got {type(pillar).__name__}")
    unknown = set(pillar) - _names(cls) - set(ignore) - {"settings"}
    if unknown:
        raise InvalidInput(f"{key}: unknown key(s) {', '.join(sorted(unknown))}")
    return {k: v for k, v in pillar.items() if k in _names(cls)}
