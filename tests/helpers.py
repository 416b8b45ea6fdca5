"""Shared by the test tiers."""

import time


def wait_for(predicate, timeout=30, what="condition", interval=0.2, ignore_errors=False):
    """Poll ``predicate`` until it returns something true (returned), bounded by ``timeout``.
    With ``ignore_errors``, an exception counts as "not yet" (a server restarting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - only when the caller asked for it
            if not ignore_errors:
                raise
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
