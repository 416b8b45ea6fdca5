"""The keepers' heartbeats (mfa_ha.heartbeat): signed datagrams, recorded before they are
answered. Real UDP sockets on 127.0.0.2-4; no PostgreSQL needed."""

import os
import socket

import pytest

from mfa_ha.postgres.secrets import pgpass_line, pgpass_password
from mfa_ha.unattended import lease
from mfa_ha.unattended.heartbeat import PeerLink, decode, encode, key_from_password
from mfa_ha.unattended.lease import StreamProof
from tests.support import wait_for

KEY = key_from_password("s3cret")


def test_a_datagram_counts_only_with_the_key_it_was_signed_with():
    data = encode(KEY, "beat", "server_prod", 7, "abc")
    assert decode(KEY, data) == {"kind": "beat", "from": "server_prod", "seq": 7, "session": "abc"}
    assert decode(key_from_password("other"), data) is None
    assert decode(KEY, data.replace(b'"seq":7', b'"seq":8')) is None  # tampered
    assert decode(KEY, b"garbage") is None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answered(link, seq=None):
    """Waits (bounded) until ``link`` counted an answer (to beat ``seq``, when given)."""
    wait_for(
        lambda: link.answered() is not None and (seq is None or link.answered() == link.sent[seq]),
        timeout=5,
        interval=0.02,
        what=f"an answer to beat {seq or 'any'}",
    )


def handled_before(link, sock):
    """Everything sent to ``link`` from ``sock`` so far was handled: an unsigned datagram sent
    after it (one socket, handled in order) has been seen and warned about."""
    link.warned_at = None
    sock.sendto(b"unsigned", link.listen)
    wait_for(lambda: link.warned_at is not None, timeout=5, interval=0.02, what="the unsigned datagram handled")


@pytest.fixture
def pair(tmp_path):
    """The primary's link on 127.0.0.2, the standby's on 127.0.0.3, the same port."""
    port = _free_port()
    links = {
        "primary": PeerLink(
            "server_prod", "server_dr", "127.0.0.2", "127.0.0.3", port, KEY, str(tmp_path / "prod-peer.json")
        ),
        "standby": PeerLink(
            "server_dr", "server_prod", "127.0.0.3", "127.0.0.2", port, KEY, str(tmp_path / "dr-peer.json")
        ),
    }
    yield links
    for link in links.values():
        link.close()


def test_the_standby_records_a_beat_before_the_primary_counts_its_answer(pair):
    assert pair["standby"].open()
    pair["primary"].beat()
    answered(pair["primary"])
    sent_at = pair["primary"].sent[1]
    assert pair["primary"].answered() == sent_at
    record = lease.read_record(pair["standby"].record_path)
    assert record["from"] == "server_prod" and record["at"] >= sent_at  # same host's clock here
    proof = StreamProof()
    proof.heard(pair["primary"].answered())
    assert proof.streamed_at == sent_at


def test_a_beat_signed_with_another_key_is_neither_recorded_nor_answered(pair, tmp_path):
    assert pair["standby"].open()
    port = pair["standby"].listen[1]
    impostor = PeerLink(
        "server_prod", "server_dr", "127.0.0.4", "127.0.0.3", port, key_from_password("guess"), str(tmp_path / "x.json")
    )
    try:
        impostor.beat()
        pair["primary"].beat()  # a real one after it: once that is answered, the forged one was handled
        answered(pair["primary"], 1)
        assert impostor.answered() is None
        assert lease.read_record(pair["standby"].record_path)["at"] >= pair["primary"].sent[1]
    finally:
        impostor.close()


def test_an_answer_to_the_keeper_before_is_not_taken_for_one_to_this_keeper(pair):
    """A replacement keeper numbers its beats from 1 again on the same port: a late answer to
    its predecessor's beat 1 must not prove contact at the new beat 1's time."""
    predecessor_session = "f" * 16
    pair["primary"].beat()  # opens the socket; nobody listens yet, so no answer
    late = encode(KEY, "ack", "server_dr", 1, predecessor_session)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.3", 0))
        sock.sendto(late, pair["primary"].listen)
        handled_before(pair["primary"], sock)
    assert pair["primary"].answered() is None


def test_a_port_still_held_is_retried(pair):
    pair["primary"].beat()  # lost: the standby's keeper is not listening yet
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(pair["standby"].listen)  # the keeper before still holds the port
    try:
        assert not pair["standby"].open() and "in use" in pair["standby"].bind_error
    finally:
        taken.close()
    assert pair["standby"].open()
    pair["primary"].beat()
    answered(pair["primary"], 2)


def test_the_password_keying_the_beats_is_read_from_pgpass(tmp_path):
    path = tmp_path / "pgpass"
    path.write_text(pgpass_line("198.18.2.2", 5432, "replicamfa", "pa:ss\\word") + "\n")
    os.chmod(path, 0o600)
    assert pgpass_password(str(path), "198.18.2.2", 5432, "replicamfa") == "pa:ss\\word"
    assert pgpass_password(str(path), "198.18.2.2", 5433, "replicamfa") is None
    assert pgpass_password(str(tmp_path / "missing"), "198.18.2.2", 5432, "replicamfa") is None
