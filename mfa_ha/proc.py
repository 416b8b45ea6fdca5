"""Run external commands as the database's operating-system user.

``subprocess`` switches user itself (``user=``/``group=``), so no Python has to be
executable by that user and no password ever reaches an argument list: secrets travel
only through pgpass files.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass

from mfa_ha.errors import CommandFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def run(
    args: list[str],
    user: str | None = None,
    env: dict | None = None,
    timeout: float = 60,
    check: bool = True,
    cwd: str = "/",
) -> Result:
    """Run ``args`` (as ``user`` when we are root and it differs), bounded by ``timeout``."""
    args = [str(a) for a in args]
    log.debug("running %s as %s", args, user or "current user")
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_environment(user, env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            **_identity(user),
        )
    except FileNotFoundError:
        raise CommandFailed(f"command not found: {args[0]}") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{os.path.basename(args[0])} did not finish within {timeout:g} s") from None
    result = Result(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{os.path.basename(args[0])} failed (exit {proc.returncode}): {result.output or 'no output'}"
        )
    return result


def _identity(user: str | None) -> dict:
    if not user or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        return {}
    groups = os.getgrouplist(user, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


def _environment(user: str | None, extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    if user:
        entry = pwd.getpwnam(user)
        env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    env.update(extra or {})
    return env


def chown_to(path: str, user: str) -> None:
    """Give ``path`` to ``user`` (and its primary group) when we are root."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def write_file(path: str, text: str, mode: int, user: str, prefix: str = ".mfa_ha.") -> None:
    """Replace ``path`` atomically with ``text``, mode ``mode``, owned by ``user`` when we are
    root; a failed write leaves the old file and no temporary behind."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        chown_to(tmp, user)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
