"""Run external commands as the database's operating-system user.

``subprocess`` switches user itself (``user=``/``group=``), so no Python has to be
executable by that user and no password ever reaches an argument list: secrets travel
only through pgpass files.
"""

from __future__ import annotations

import logging
import os
import pwd
import select
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mfa_ha import timing
from mfa_ha.errors import CommandFailed

log = logging.getLogger(__name__)
REPORT_EVERY = 5.0  # seconds between progress reports of a long command


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
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Run ``args`` (as ``user`` when we are root and it differs), bounded by ``timeout``.
    With ``progress``, the command's latest status line (pg_basebackup -P, pg_rewind
    --progress) is passed to it every ``REPORT_EVERY`` seconds while it runs."""
    args = [str(a) for a in args]
    log.debug("running %s as %s", args, user or "current user")
    try:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=_environment(user, env),
            cwd=cwd,
            **_identity(user),
        )
    except FileNotFoundError:
        raise CommandFailed(f"command not found: {args[0]}") from None
    stdout, stderr = _collect(proc, os.path.basename(args[0]), timeout, progress)
    result = Result(args, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{os.path.basename(args[0])} failed (exit {proc.returncode}): {result.output or 'no output'}"
        )
    return result


def _collect(proc: subprocess.Popen, name: str, timeout: float, progress) -> tuple[str, str]:
    """Both output streams of ``proc`` once it exits; kills it when ``timeout`` runs out."""
    chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}
    readers = [threading.Thread(target=_drain, args=(getattr(proc, key), chunks[key]), daemon=True) for key in chunks]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            _wait(proc, min(REPORT_EVERY, max(deadline - time.monotonic(), 0.01)))
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                proc.kill()
                proc.wait()
                raise CommandFailed(f"{name} did not finish within {timeout:g} s") from None
            latest = _latest_line("".join(chunks["stderr"]) or "".join(chunks["stdout"]))
            if progress and latest:
                progress(f"{name}: {latest}")
    for reader in readers:
        reader.join(timeout=timing.OUTPUT_DRAIN_SECONDS)
    return "".join(chunks["stdout"]), "".join(chunks["stderr"])


def _wait(proc: subprocess.Popen, seconds: float) -> None:
    """Until ``proc`` ends, or ``subprocess.TimeoutExpired`` after ``seconds``: woken by its
    end itself where the kernel can tell (a pidfd, Linux 5.3+), not by ``Popen.wait``'s sleeps
    of up to 50 ms between looks."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # AIX, an older kernel: Popen's own wait
        proc.wait(timeout=seconds)
        return
    try:
        ended = select.select([pidfd], [], [], seconds)[0]
    finally:
        os.close(pidfd)
    if not ended:
        raise subprocess.TimeoutExpired(proc.args, seconds)
    proc.wait()


def _drain(stream, into: list[str]) -> None:
    with stream:
        for block in iter(lambda: os.read(stream.fileno(), 65536), b""):
            into.append(bytes(block).decode("utf-8", errors="replace"))


def _latest_line(text: str) -> str:
    """The last complete status line; progress meters rewrite theirs with a carriage return."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    return next((line for line in reversed(lines) if line), "")


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
