"""One computation at a time of a node's status, shared by every job that asks meanwhile.

However many status jobs a busy master leaves running on a node, they cost it one status
computation at a time: a job that asks while one is under way waits (bounded) for it and
takes its result, which is no older than the job itself (the computation had not ended when
it asked), and computes only when none was under way. A job that cannot get its turn in time
answers that the node is busy rather than adding to the load.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pwd
import time
from collections.abc import Callable

from mfa_ha import timing
from mfa_ha.boot import boot_id
from mfa_ha.errors import MfaHaError
from mfa_ha.files import read_json, replace_file

log = logging.getLogger(__name__)


class Busy(MfaHaError):
    """Another computation held the turn for longer than the caller may wait."""


def shared(path: str, compute: Callable[[], dict], wait_seconds: float, clock=time.monotonic) -> dict:
    """``compute()``, or the result of one that ended after this call began (``path`` holds
    it, ``path + ".lock"`` the turn). Raises Busy after ``wait_seconds`` without a turn."""
    asked_at = clock()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a+", encoding="ascii") as turn:
        _take_turn(turn, asked_at + wait_seconds, clock)
        try:
            latest = read_json(path)
            ended = latest.get("ended")
            if latest.get("boot") == boot_id() and isinstance(ended, (int, float)) and asked_at <= ended <= clock():
                return {**latest["result"], "shared": True}
            result = compute()
            text = json.dumps({"ended": clock(), "boot": boot_id(), "result": result}, default=str)
            try:
                replace_file(path, text, 0o600, pwd.getpwuid(os.geteuid()).pw_name)
            except OSError as err:  # a full disk: this job's answer still counts, the next computes again
                log.warning("status not shared (%s: %s)", path, err)
            return json.loads(text)["result"]  # the same types as a shared one
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)


def _take_turn(turn, deadline: float, clock) -> None:
    while True:
        try:
            fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if clock() >= deadline:
                raise Busy("busy: another status job on this node has not finished its turn") from None
            time.sleep(timing.STATUS_TURN_POLL_SECONDS)
