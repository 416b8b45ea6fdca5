"""Shared by the test tiers."""

import time


def wait_for(predicate, timeout=30, what="condition", interval=0.2, ignore_errors=False):
    """Poll ``predicate`` until it returns something true (returned), bounded by ``timeout``.
    With ``ignore_errors``, an exception counts as "not yet" (a server restarting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:
            if not ignore_errors:
                raise
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def find_with_key(data, key):
    """The first mapping inside ``data`` (an orchestration's return) that has ``key``."""
    if isinstance(data, dict):
        if key in data:
            return data
        data = list(data.values())
    for item in data if isinstance(data, list) else []:
        found = find_with_key(item, key)
        if found is not None:
            return found
    return None
