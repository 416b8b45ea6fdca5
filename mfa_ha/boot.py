"""Which boot of this host a record of monotonic times belongs to."""

from __future__ import annotations

import time


def boot_id() -> str:
    """This boot of this host: monotonic times mean nothing across a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:  # not Linux (AIX): the boot's wall-clock time, to the minute
        return str(round((time.time() - time.monotonic()) / 60))
