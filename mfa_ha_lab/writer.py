"""Clients that keep writing during a switchover and remember what was acknowledged.

``AppWriter`` sends one authentication request every ``interval`` to the pmfad stand-in,
trying each node's address in turn (the lab's client routing); ``DbWriter`` commits one
row every ``interval`` straight to whichever server accepts writes (libpq multi-host with
``target_session_attrs=read-write``). Afterwards ``lost(...)`` lists acknowledged writes
missing from the primary, and ``longest_gap`` is the longest time between two
acknowledgements.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import ssl
import threading
import time

import psycopg2

DIRECT_TAG = "direct-writer"
_WRITER_NUMBERS = itertools.count()


class _Writer(threading.Thread):
    def __init__(self, interval: float = 0.02, enter=contextlib.nullcontext):
        """``enter``: a context the writing thread runs in (the clients' host in a
        namespaced lab: every connection it opens starts there)."""
        super().__init__(daemon=True)
        self.interval = interval
        self.enter = enter
        # unique sequence numbers across runs, and a range of its own for each writer
        self.base = int(time.time() * 1000) * 1000 + next(_WRITER_NUMBERS) * 100_000_000
        self.acked: list[tuple[int, float]] = []
        self.failures = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with self.enter():
            self._loop()

    def _loop(self) -> None:
        seq, next_tick = self.base, time.monotonic()
        while not self._stop_event.is_set():
            if self._write(seq):
                self.acked.append((seq, time.monotonic()))
            else:
                self.failures += 1
            seq += 1
            next_tick += self.interval
            time.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick, time.monotonic() - self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def _write(self, seq: int) -> bool:
        raise NotImplementedError

    def longest_gap(self, since: float | None = None, until: float | None = None) -> float:
        times = [t for _, t in self.acked if (since is None or t >= since) and (until is None or t <= until)]
        return round(max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0), 3)

    def acked_seqs(self) -> set[int]:
        return {seq for seq, _ in self.acked}


class AppWriter(_Writer):
    def __init__(
        self,
        addresses: list[str],
        port: int,
        interval: float = 0.02,
        timeout: float = 0.5,
        enter=contextlib.nullcontext,
    ):
        super().__init__(interval, enter)
        self.addresses, self.port, self.timeout = list(addresses), port, timeout
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def _write(self, seq: int) -> bool:
        for _ in range(len(self.addresses)):
            if self._request(self.addresses[0], seq):
                return True
            self.addresses.append(self.addresses.pop(0))
        return False

    def _request(self, address: str, seq: int) -> bool:
        try:
            conn = http.client.HTTPSConnection(address, self.port, timeout=self.timeout, context=self.context)
            conn.request("GET", f"/policyAuth/?seq={seq}")
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status == 200 and json.loads(body).get("seq") == seq
        except (OSError, http.client.HTTPException, ValueError):
            return False


class DbWriter(_Writer):
    def __init__(
        self,
        hosts: list[str],
        port: int,
        user: str,
        password: str,
        dbname: str,
        interval: float = 0.02,
        enter=contextlib.nullcontext,
    ):
        super().__init__(interval, enter)
        self.dsn = {
            "host": ",".join(hosts),
            "port": ",".join([str(port)] * len(hosts)),
            "user": user,
            "password": password,
            "dbname": dbname,
            "target_session_attrs": "read-write",
            "connect_timeout": 1,
            "application_name": DIRECT_TAG,
        }
        self.conn = None

    def _write(self, seq: int) -> bool:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg2.connect(**self.dsn)
                self.conn.autocommit = True
            with self.conn.cursor() as cur:
                cur.execute("INSERT INTO auth_events (node, client_seq) VALUES (%s, %s)", (DIRECT_TAG, seq))
            return True
        except psycopg2.Error:
            if self.conn is not None:
                self.conn.close()
            return False

    def stop(self) -> None:
        super().stop()
        if self.conn is not None:
            self.conn.close()


def lost(node_sql, writer: _Writer) -> list[int]:
    """Acknowledged sequence numbers absent from the database ``node_sql`` queries."""
    acked = {seq for seq, _ in list(writer.acked)}  # before the query: later acks are not yet checkable
    if not acked:
        return []
    present = {
        row[0]
        for row in node_sql(
            "SELECT client_seq FROM auth_events WHERE client_seq BETWEEN %s AND %s", (min(acked), max(acked))
        )
    }
    return sorted(acked - present)
