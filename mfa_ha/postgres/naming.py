"""Names and connection strings: the one slot naming rule, validation, conninfo building."""

from __future__ import annotations

import hashlib
import ipaddress
import re

import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

from mfa_ha.errors import InvalidInput

MAX_NAME = 63  # NAMEDATALEN - 1
SLOT_NAME_RE = re.compile(r"^[a-z0-9_]{1,63}$")
ROLE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SECRET_KEYS = {"password"}


def slot_name(minion_id: str) -> str:
    """The replication slot a node streams through, derived from its minion id.

    Lower-case, every character outside ``[a-z0-9_]`` replaced by ``_``; ids longer than
    63 characters keep a hash suffix so that two long ids never share a slot.
    """
    if not minion_id or not str(minion_id).strip():
        raise InvalidInput("cannot derive a slot name from an empty minion id")
    name = re.sub(r"[^a-z0-9_]", "_", str(minion_id).strip().lower())
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    return name


def validate_slot_name(name: str) -> str:
    if not isinstance(name, str) or not SLOT_NAME_RE.match(name):
        raise InvalidInput(
            f"invalid replication slot name {name!r}: PostgreSQL allows only lower-case "
            f"letters, digits and underscores (a-z, 0-9, _), 1 to {MAX_NAME} characters"
        )
    return name


def validate_role_name(name: str) -> str:
    if not isinstance(name, str) or not ROLE_NAME_RE.match(name):
        raise InvalidInput(
            f"invalid role name {name!r}: use a lower-case letter or underscore followed by "
            f"letters, digits or underscores, at most {MAX_NAME} characters"
        )
    return name


def build_conninfo(**params) -> str:
    """A libpq ``key=value`` string, quoted by libpq's own rules (psycopg2's ``make_dsn``);
    ``None`` values are left out, secrets are refused."""
    leaked = SECRET_KEYS & {k for k, v in params.items() if v is not None}
    if leaked:
        raise InvalidInput("a password must not be written into a connection string; use a pgpass file")
    return make_dsn(**{k: str(v) for k, v in params.items() if v is not None})


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """A libpq ``key=value`` string as a dict (libpq's own parser, psycopg2's ``parse_dsn``).
    A string libpq rejects has no keys: it matches no wanted configuration."""
    try:
        return parse_dsn(conninfo or "")
    except psycopg2.ProgrammingError:
        return {}


HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_address(value, key: str) -> str:
    text = str(value).strip() if value is not None else ""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if HOSTNAME_RE.match(text) and not text.replace(".", "").isdigit():
        return text
    raise InvalidInput(f"{key}: {value!r} is not an IP address or host name")
