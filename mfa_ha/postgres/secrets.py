"""Passwords: pgpass files and SCRAM verifiers. Nothing here logs or returns a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from mfa_ha.files import replace_file

PGPASS_MODE = 0o600


def pgpass_escape(field: str) -> str:
    return str(field).replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(host: str, port: int, user: str, password: str) -> str:
    return ":".join(pgpass_escape(f) for f in (host, port, "*", user, password))


def write_pgpass(path: str, os_user: str, host: str, port: int, user: str, password: str) -> bool:
    """Make ``path`` hold exactly one entry for host:port:*:user with this password.

    Returns True when the file changed. Written atomically, mode 0600, owned by ``os_user``.
    """
    prefix = ":".join(pgpass_escape(f) for f in (host, port, "*", user)) + ":"
    wanted = pgpass_line(host, port, user, password)
    lines = _read_lines(path)
    kept = [line for line in lines if not line.startswith(prefix)]
    new = kept + [wanted]
    if new == lines and _mode(path) == PGPASS_MODE:
        return False
    replace_file(path, "\n".join(new) + "\n", PGPASS_MODE, os_user)
    return True


def pgpass_has(path: str, host: str, port: int, user: str, password: str) -> bool:
    return pgpass_line(host, port, user, password) in _read_lines(path) and _mode(path) == PGPASS_MODE


def pgpass_password(path: str, host: str, port: int, user: str) -> str | None:
    """The password of the host:port:*:user entry, or None (also when the file is missing)."""
    prefix = ":".join(pgpass_escape(f) for f in (host, port, "*", user)) + ":"
    found = [line[len(prefix) :] for line in _read_lines(path) if line.startswith(prefix)]
    return _pgpass_unescape(found[-1]) if found else None


def _pgpass_unescape(field: str) -> str:
    out, escaped = [], False
    for char in field:
        if escaped or char != "\\":
            out.append(char)
        escaped = not escaped and char == "\\"
    return "".join(out)


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip("\n") for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def _mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return None


def scram_matches(verifier: str | None, password: str) -> bool:
    """Does a stored ``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`` verifier match ``password``?"""
    try:
        method, iter_salt, keys = verifier.split("$")
        iterations, salt = iter_salt.split(":")
        stored_key, server_key = keys.split(":")
    except (AttributeError, ValueError):
        return False
    if method != "SCRAM-SHA-256":
        return False
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    return hmac.compare_digest(
        base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key
    ) and hmac.compare_digest(base64.b64encode(server).decode(), server_key)
