"""The fault suite's checker: from the clients' host it writes every 20 ms to each node's
address separately (one row per write, acknowledged only by a server that accepts writes)
and through the app, and watches where pmfad runs. Afterwards it reports what a fault cost:
acknowledged writes missing from the final primary, the milliseconds during which two
addresses accepted writes, and the milliseconds during which pmfad ran on more than one node.
"""

from __future__ import annotations

import threading
import time

from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD, Lab
from mfa_ha_lab.writer import AppWriter, DbWriter, lost

INTERVAL = 0.02
APP_WATCH_INTERVAL = 0.05


class AppWatcher(threading.Thread):
    """Samples on which nodes pmfad runs; counts the time it ran on more than one."""

    def __init__(self, lab: Lab):
        super().__init__(daemon=True)
        self.lab = lab
        self.multi_seconds = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(APP_WATCH_INTERVAL):
            if sum(1 for node in self.lab.nodes if node.app_pid()) > 1:
                self.multi_seconds += APP_WATCH_INTERVAL

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class Checker:
    def __init__(self, lab: Lab, interval: float = INTERVAL):
        self.lab, self.interval = lab, interval
        self.direct = {
            node.minion_id: DbWriter(
                [node.address], node.port, APP_USER, LAB_PASSWORD, APP_DB, interval, enter=lab.on_clients
            )
            for node in lab.nodes
        }
        self.app = AppWriter([n.address for n in lab.nodes], APP_PORT, interval, enter=lab.on_clients)
        self.watcher = AppWatcher(lab)

    def __enter__(self) -> Checker:
        for writer in [*self.direct.values(), self.app]:
            writer.start()
        self.watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        for writer in [*self.direct.values(), self.app]:
            writer.stop()
        self.watcher.stop()

    def two_primary_ms(self) -> int:
        """Milliseconds in which more than one address acknowledged a write (per interval)."""
        slots: dict[int, set[str]] = {}
        for node, writer in self.direct.items():
            for _, at in list(writer.acked):
                slots.setdefault(int(at / self.interval), set()).add(node)
        return round(sum(1 for nodes in slots.values() if len(nodes) > 1) * self.interval * 1000)

    def last_acked_at(self, node_id: str) -> float | None:
        """When (monotonic) the last write straight to ``node_id`` was acknowledged."""
        acked = self.direct[node_id].acked
        return acked[-1][1] if acked else None

    def write_gap(self, since: float, until: float) -> dict:
        """The longest time between acknowledged writes from ``since`` to ``until`` (monotonic):
        straight to the servers (either address) and through the app."""
        times = sorted(t for w in self.direct.values() for _, t in list(w.acked) if since <= t <= until)
        direct = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
        return {"direct_gap_s": round(direct, 3), "app_gap_s": self.app.longest_gap(since, until)}

    def report(self, primary) -> dict:
        """What the fault cost, counted against the final primary (a lab node)."""

        def sql(query, params):
            return primary.sql(query, params, dbname=APP_DB)

        missing = {name: lost(sql, writer) for name, writer in self.direct.items()}
        return {
            "acked_direct": sum(len(w.acked) for w in self.direct.values()),
            "acked_app": len(self.app.acked),
            "lost_direct": sum(len(m) for m in missing.values()),
            "lost_app": len(lost(sql, self.app)),
            "lost_direct_by_node": {name: len(m) for name, m in missing.items()},
            "two_primary_ms": self.two_primary_ms(),
            "pmfad_on_two_nodes_ms": round(self.watcher.multi_seconds * 1000),
        }


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Bounded wait for a condition (errors count as "not yet"); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a server restarting answers with errors
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
