"""The one bounded wait: poll a condition, report progress now and then, and fail with
what was last seen when the time is up."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

Seen = TypeVar("Seen")


def poll(probe: Callable[[], tuple[bool, Seen]], timeout: float, interval: float,
         fail: Callable[[Seen], Exception], progress: Callable[[str], None] | None = None,
         report: Callable[[Seen], str] | None = None, report_every: float = 1.0) -> Seen:
    """Call ``probe()`` every ``interval`` seconds until it returns ``(True, seen)`` and return
    ``seen``. After ``timeout`` seconds raise ``fail(seen)`` for the last thing seen; every
    ``report_every`` seconds pass ``report(seen)`` to ``progress``."""
    deadline = time.monotonic() + float(timeout)
    next_report = time.monotonic() + report_every
    while True:
        done, seen = probe()
        if done:
            return seen
        now = time.monotonic()
        if now >= deadline:
            raise fail(seen)
        if progress and report and now >= next_report:
            progress(report(seen))
            next_report = now + report_every
        time.sleep(interval)
