"""The one bounded wait, the one retry and the one deadline: poll a condition, report
progress now and then, and when the time is up fail with what was last seen (or hand it
back); try an action a bounded number of times with a pause between; give each step of a
long operation what is left of the operation's one bound."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import TypeVar

from mfa_ha.errors import MfaHaError

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


class DeadlinePassed(MfaHaError):
    """A long operation used up its one bound before its next step."""


class Deadline:
    """One bound for a whole operation: each step waits at most what is left of it, so the
    operation ends within its bound however many steps it takes."""

    def __init__(
        self, seconds: float, what: str, clock: Callable[[], float] = time.monotonic, step: float | None = None
    ):
        self.seconds, self.what, self._clock = float(seconds), what, clock
        self._step = step
        self._ends = clock() + self.seconds

    def left(self) -> int:
        """Whole seconds left (at least 1, so a step fails with its own message); raises
        DeadlinePassed once none are."""
        remaining = self._ends - self._clock()
        if remaining <= 0:
            raise DeadlinePassed(f"{self.what}: its bound of {self.seconds:g} s is used up")
        return max(1, math.ceil(remaining))

    def step(self, seconds: float | None = None) -> int:
        """One step's bound: ``seconds`` (or the deadline's own step bound) while that much is
        left, otherwise what is left."""
        cap = self._step if seconds is None else seconds
        left = self.left()
        return left if cap is None else min(max(1, math.ceil(cap)), left)

    @contextlib.contextmanager
    def excluding(self):
        """A step with a bound of its own (a copy of the database): its time is not the
        operation's, so the steps after it keep what was left before it."""
        started = self._clock()
        try:
            yield
        finally:
            self._ends += self._clock() - started
