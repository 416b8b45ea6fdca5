"""The one way this project replaces a file: a temporary file in the same directory, written,
flushed to disk, given its mode and owner, then renamed over the old one. A reader sees the
old file or the new one, never half of either; a failed write leaves no temporary behind."""

from __future__ import annotations

import json
import os
import pwd
import tempfile


def chown_to(path: str, user: str) -> None:
    """Give ``path`` to ``user`` (and its primary group) when we are root."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def replace_file(
    path: str,
    text: str,
    mode: int = 0o600,
    user: str | None = None,
    owner: tuple[int, int] | None = None,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``text``, mode ``mode``; owned by ``user`` (when we are root) or
    by the ``(uid, gid)`` in ``owner``. ``durable=False`` skips the flush to disk, for what a
    reboot makes worthless anyway (times on this boot's monotonic clock)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if user:
            chown_to(tmp, user)
        if owner:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_keeping_owner(path: str, text: str) -> None:
    """Replace an existing file, keeping its owner and mode."""
    info = os.stat(path)
    replace_file(path, text, info.st_mode & 0o777, owner=(info.st_uid, info.st_gid))


def read_json(path: str) -> dict:
    """A JSON object from ``path``; empty when the file is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: str, data: dict, durable: bool = True) -> None:
    replace_file(path, json.dumps(data), 0o600, durable=durable)
