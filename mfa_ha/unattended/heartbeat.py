"""Heartbeats between the two nodes' lease keepers: a second proof that the standby hears the
primary, beside the WAL it streams.

Why: after an outage TCP resends on a timer that doubled at every loss (0.2, 0.4, 0.8 ... s),
so a replication connection can stay silent for seconds after the link is back, about as long
again as the outage. A proof of contact carried only by that connection makes a link that
flaps faster than the lease look like a lost one. A datagram carries no such memory.

Each poll the primary's keeper sends ``beat k`` (UDP, to the standby's address and
``heartbeat_port``) and notes when it sent it, ``t(k)``. The standby's keeper **records the
arrival first** (``peer.json``, this host's monotonic clock) and then answers ``ack k``; the
primary counts ``t(k)`` as contact when the answer comes back. The standby's minion reports the
record's age to the witness (``heard_quiet_s``), which counts the standby's loss of the primary
from the later of the last WAL and the last beat, so from no earlier than ``t(k)``: the same
argument as for the WAL markers (``mfa_ha.unattended.lease``).

Every datagram is signed (HMAC-SHA256) with a key derived from the replication password, which
both nodes already hold in pgpass: a forged answer could keep an isolated primary serving. A
replayed beat can only make the witness wait longer (it never fails over while the standby says it
hears the primary), never make it act sooner.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import time

from mfa_ha import timing
from mfa_ha.unattended import lease

log = logging.getLogger("mfa_ha.heartbeat")
KEY_CONTEXT = b"mfa_ha lease keeper heartbeat v1"
MAX_DATAGRAM = 1024
SENT_KEPT = 64
WARN_EVERY = 60  # s: at most one warning this often about datagrams not signed by the peer


def key_from_password(password: str) -> bytes:
    return hmac.new(password.encode(), KEY_CONTEXT, hashlib.sha256).digest()


def encode(key: bytes, kind: str, sender: str, seq: int, session: str) -> bytes:
    """``session``: the beating keeper's, echoed in the answer, so that an answer to a beat of
    a keeper before it (same port, numbers from 1 again) is never taken for one to its own."""
    body = json.dumps({"kind": kind, "from": sender, "seq": seq, "session": session}, separators=(",", ":")).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b" " + body


def decode(key: bytes, data: bytes) -> dict | None:
    """The message, or None when it is not one signed with ``key`` (or is malformed)."""
    mac, _, body = data.partition(b" ")
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).hexdigest().encode()):
        return None
    try:
        msg = json.loads(body)
    except ValueError:
        return None
    ok = (
        isinstance(msg, dict)
        and msg.get("kind") in ("beat", "ack")
        and isinstance(msg.get("from"), str)
        and isinstance(msg.get("seq"), int)
        and isinstance(msg.get("session"), str)
    )
    return msg if ok else None


class PeerLink:
    """One UDP socket on this node's address: a thread answers the peer's beats (each recorded
    before its answer: the answer proves the record) and collects the answers to this node's."""

    def __init__(
        self,
        me: str,
        peer: str,
        listen: str,
        peer_address: str,
        port: int,
        key: bytes,
        record_path: str,
        clock=time.monotonic,
    ):
        self.me, self.peer, self.key, self.record_path, self.clock = me, peer, key, record_path, clock
        self.listen, self.target = (listen, port), (peer_address, port)
        self.sock: socket.socket | None = None
        self.session = os.urandom(8).hex()
        self.seq = 0
        self.sent: dict[int, float] = {}
        self.answered_at: float | None = None  # t(k) of the newest beat the peer answered
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.bind_error: str | None = None
        self.warned_at: float | None = None

    def open(self) -> bool:
        """Binds (again, after a failure: the keeper before may still hold the port); True once bound."""
        if self.sock is not None:
            return True
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self.listen)
        except OSError as err:
            sock.close()
            if str(err) != self.bind_error:
                log.warning("mfa_ha heartbeat: cannot listen on %s:%s (%s); trying again each poll", *self.listen, err)
            self.bind_error = str(err)
            return False
        sock.settimeout(timing.HEARTBEAT_RECEIVE_SECONDS)
        self.sock, self.bind_error = sock, None
        threading.Thread(target=self._serve, name="mfa_ha-heartbeat", daemon=True).start()
        return True

    def beat(self) -> None:
        """Sends the next beat to the peer (when bound); never blocks."""
        if not self.open():
            return
        with self.lock:
            self.seq += 1
            self.sent[self.seq] = self.clock()
            for old in sorted(self.sent)[:-SENT_KEPT]:
                del self.sent[old]
        try:
            self.sock.sendto(encode(self.key, "beat", self.me, self.seq, self.session), self.target)
        except OSError as err:  # no route while the link is down: the lease only ages
            log.debug("mfa_ha heartbeat: send failed: %s", err)

    def answered(self) -> float | None:
        with self.lock:
            return self.answered_at

    def close(self) -> None:
        self.closed.set()
        if self.sock is not None:
            self.sock.close()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            msg = decode(self.key, data)
            if msg is None or msg["from"] != self.peer:
                self._ignored(sender)
            elif msg["kind"] == "beat":
                self._answer(msg, sender)
            elif msg["session"] == self.session:
                self._answered(msg["seq"])

    def _ignored(self, sender) -> None:
        now = self.clock()
        if self.warned_at is None or now - self.warned_at >= WARN_EVERY:
            self.warned_at = now
            log.warning(
                "mfa_ha heartbeat: ignoring datagrams from %s:%s not signed by %s (another replication "
                "password?); said at most once a minute",
                *sender[:2],
                self.peer,
            )

    def _answer(self, msg: dict, sender) -> None:
        try:
            lease.write_record(self.record_path, {"from": msg["from"], "at": self.clock()})
            self.sock.sendto(encode(self.key, "ack", self.me, msg["seq"], msg["session"]), sender)
        except OSError as err:
            log.warning("mfa_ha heartbeat: could not record or answer a beat: %s", err)

    def _answered(self, seq: int) -> None:
        with self.lock:
            sent = self.sent.get(seq)
            if sent is not None:
                self.answered_at = max(self.answered_at or 0.0, sent)
