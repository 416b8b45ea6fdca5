"""The one bounded wait and the one retry: poll a condition, report progress now and then,
and when the time is up fail with what was last seen (or hand it back); try an action a
bounded number of times with a pause between."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

Seen = TypeVar("Seen")


def poll(
    probe: Callable[[], tuple[bool, Seen]],
    timeout: float,
    interval: float,
    fail: Callable[[Seen], Exception] | None,
    progress: Callable[[str], None] | None = None,
    report: Callable[[Seen], str] | None = None,
    report_every: float = 1.0,
) -> Seen:
    """Call ``probe()`` every ``interval`` seconds until it returns ``(True, seen)`` and return
    ``seen``. After ``timeout`` seconds raise ``fail(seen)`` for the last thing seen (with
    ``fail=None``, return it: the caller decides); every ``report_every`` seconds pass
    ``report(seen)`` to ``progress``."""
    deadline = time.monotonic() + float(timeout)
    next_report = time.monotonic() + report_every
    while True:
        done, seen = probe()
        if done:
            return seen
        now = time.monotonic()
        if now >= deadline:
            if fail is None:
                return seen
            raise fail(seen)
        if progress and report and now >= next_report:
            progress(report(seen))
            next_report = now + report_every
        time.sleep(interval)


def retry(attempt: Callable[[int], tuple[bool, Seen]], attempts: int, pause: float) -> tuple[bool, Seen, int]:
    """Call ``attempt(n)`` for n = 1, 2, ... up to ``attempts``, ``pause`` seconds apart, until it
    returns ``(True, seen)``. Returns whether one did, the last ``seen`` and the attempts made."""
    done, seen, n = False, None, 0
    for n in range(1, int(attempts) + 1):
        done, seen = attempt(n)
        if done or n == int(attempts):
            break
        time.sleep(float(pause))
    return done, seen, n
