"""The health endpoint's answers, decided from one reading of the node (pure)."""

import os

import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.monitoring import endpoint

PRIMARY = {"role": "primary", "timeline": 3, "slots": [{"name": "server_dr", "active": True, "retained_bytes": 512}]}
STANDBY = {"role": "standby", "timeline": 3, "lag_bytes": 4096, "lag_seconds": 0.2, "receiver": {"status": "streaming"}}


def reading(pg=PRIMARY, peer=None, keeper=None, automatic=False, renewed_at=None, paused=None, now=100.0):
    return {
        "node": "server_prod",
        "now": now,
        "pg": pg,
        "keeper": keeper or {},
        "renewals": {"renewed_at": renewed_at} if renewed_at is not None else {},
        "paused": paused,
        "peer": {"reachable": False, "error": "cut", "at": now} if peer is None else {**peer, "at": now},
        "automatic": automatic,
        "lease_seconds": 30.0,
        "alive_within": 4.0,
    }


def failed(answer):
    return [c.name for c in answer.failed]


def test_a_primary_with_a_standby_peer_is_the_primary():
    answer = endpoint.primary_answer(reading(peer={"reachable": True, "primary": False, "timeline": None}))
    assert answer.status == 200, answer.checks


def test_a_primary_whose_peer_is_unreachable_is_the_primary_without_automatic_failover():
    assert endpoint.primary_answer(reading()).status == 200


def test_a_primary_beside_a_primary_on_the_same_or_a_newer_timeline_is_not():
    for timeline in (3, 4):
        answer = endpoint.primary_answer(reading(peer={"reachable": True, "primary": True, "timeline": timeline}))
        assert answer.status == 503 and failed(answer) == ["no other primary"], timeline
    newer = endpoint.primary_answer(reading(peer={"reachable": True, "primary": True, "timeline": 2}))
    assert newer.status == 200  # the other one is the stale former primary


def test_a_peer_answer_too_old_counts_as_unreachable():
    old = reading(peer={"reachable": True, "primary": False, "timeline": None})
    old["peer"]["at"] = old["now"] - endpoint.PEER_ANSWER_VALID_SECONDS - 1
    assert endpoint.primary_answer(old).status == 200


def test_a_peer_last_seen_as_a_newer_primary_keeps_the_503_while_it_does_not_answer():
    seen = endpoint.peer_record({}, {"reachable": True, "primary": True, "timeline": 4}, now=90.0)
    for silent in ({"reachable": False, "error": "timeout expired"}, {"reachable": False, "error": "refused"}):
        seen = endpoint.peer_record(seen, silent, now=95.0)
    assert seen["seen_primary"] == {"timeline": 4, "at": 90.0}
    answer = endpoint.primary_answer({**reading(), "peer": seen})
    assert failed(answer) == ["no other primary"] and "last seen 10.0 s ago as a primary on timeline 4" in str(
        answer.checks_as_dicts()
    )
    too_old = {**reading(), "peer": {**seen, "at": 100.0 - endpoint.PEER_ANSWER_VALID_SECONDS - 1}}
    assert endpoint.primary_answer(too_old).status == 503

    older = endpoint.peer_record({}, {"reachable": True, "primary": True, "timeline": 2}, now=90.0)
    older = endpoint.peer_record(older, {"reachable": False, "error": "refused"}, now=95.0)
    assert endpoint.primary_answer({**reading(), "peer": older}).status == 200  # it is the stale one


def test_only_an_answer_clears_the_sighting_of_another_primary():
    seen = endpoint.peer_record({}, {"reachable": True, "primary": True, "timeline": 4}, now=90.0)
    standby = endpoint.peer_record(seen, {"reachable": True, "primary": False, "timeline": None}, now=91.0)
    assert standby["seen_primary"] is None
    cut = endpoint.peer_record(standby, {"reachable": False, "error": "refused"}, now=92.0)
    assert endpoint.primary_answer({**reading(), "peer": cut}).status == 200


def test_a_standby_or_a_stopped_server_is_not_the_primary():
    assert failed(endpoint.primary_answer(reading(pg=STANDBY))) == ["this node is a primary"]
    assert failed(endpoint.primary_answer(reading(pg=None))) == ["PostgreSQL answers"]


HOLD = {"role": "primary", "action": "hold", "armed_at": 10.0}


@pytest.mark.parametrize(
    "keeper, renewed_at, why",
    [
        ({}, None, "its lease keeper beats"),
        ({**HOLD, "at": 99.0, "action": "fencing"}, 99.0, "its lease keeper is not fencing it"),
        ({**HOLD, "at": 99.0, "action": "fenced"}, 99.0, "its lease keeper is not fencing it"),
        ({**HOLD, "at": 90.0}, 99.0, "its lease keeper beats"),  # a stale beat
        ({**HOLD, "at": 120.0}, 99.0, "its lease keeper beats"),  # a beat from the future: another boot's
        ({"at": 99.0, "role": "not a primary", "action": "idle"}, 99.0, "its lease keeper holds its lease"),
        ({**HOLD, "at": 99.0, "armed_at": None}, 99.0, "its lease keeper holds its lease"),
        ({**HOLD, "at": 99.0, "streamed_at": 60.0, "fence_suspended": True}, 65.0, "its lease has not run out"),
    ],
)
def test_with_automatic_failover_a_primary_needs_its_lease(keeper, renewed_at, why):
    answer = endpoint.primary_answer(reading(keeper=keeper, renewed_at=renewed_at, automatic=True))
    assert answer.status == 503 and failed(answer) == [why]


def test_with_automatic_failover_a_held_lease_is_the_primary():
    keeper = {**HOLD, "at": 99.5, "streamed_at": 99.0}
    answer = endpoint.primary_answer(reading(keeper=keeper, renewed_at=98.0, automatic=True))
    assert answer.status == 200, answer.checks
    assert endpoint.lease_left(reading(keeper=keeper, renewed_at=98.0, automatic=True)) == 29.0


def test_no_200_before_the_other_node_was_asked():
    fresh = reading()
    fresh["peer"] = {"reachable": False, "error": "not asked yet", "at": None}
    assert failed(endpoint.primary_answer(fresh)) == ["no other primary"]


def test_a_primary_back_from_down_waits_for_an_answer_asked_since():
    standby_peer = {"reachable": True, "primary": False, "timeline": None}
    before = {**reading(peer={**standby_peer, "asked": 99.0}), "pg_back_at": 99.5}  # asked while it was down
    answer = endpoint.primary_answer(before)
    assert failed(answer) == ["no other primary"]
    assert "not asked since this server answered again" in str(answer.checks_as_dicts())
    after = {**reading(peer={**standby_peer, "asked": 99.6}), "pg_back_at": 99.5}
    assert endpoint.primary_answer(after).status == 200


def _config(tmp_path, peer_port=5433, port=8008):
    from mfa_ha.postgres.tls import TlsConfig

    return endpoint.build_config(
        "server_prod",
        "127.0.0.1",
        port,
        {"data_dir": str(tmp_path / "nodb"), "port": 5432},
        TlsConfig(enabled=False),
        {"host": "127.0.0.1", "port": peer_port, "user": "replicamfa"},
        str(tmp_path),
        {"automatic": False, "lease_seconds": 30.0, "alive_within": 4.0},
    )


def test_the_observer_notes_when_the_server_answers_again_or_started_anew(monkeypatch, tmp_path):
    """The first answer, an answer after none (down, or a crash restarting it in place), and
    an answer with a new start time (a restart between two readings) each need a fresh ask;
    the same server answering again and again does not. Stamped once the reading is in."""
    answers = iter(
        [
            {**PRIMARY, "started_at": 10.0},
            {**PRIMARY, "started_at": 10.0},
            None,
            {**PRIMARY, "started_at": 10.0},
            {**PRIMARY, "started_at": 50.0},
        ]
    )
    clock = iter([1.5, 3.5, 5.5])  # read after each reading that answers anew
    monkeypatch.setattr(endpoint.health, "read", lambda cfg: next(answers))
    observer = endpoint.Observer(_config(tmp_path), clock=lambda: next(clock))
    back = [observer._read(now)["pg_back_at"] for now in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert back == [1.5, 1.5, None, 3.5, 5.5]


def test_a_sighting_of_the_other_primary_outlives_a_rebind(monkeypatch, tmp_path):
    monkeypatch.setattr(endpoint.health, "read", lambda cfg: PRIMARY)
    seen = {"timeline": 4, "at": 90.0}
    old = endpoint.server(_config(tmp_path, port=_free_port()), seen_primary=seen)
    try:
        old.RequestHandlerClass.observer.close()
        assert endpoint._sighting((old, None)) == (_config(tmp_path)["peer"], seen)
        observer = endpoint.Observer(_config(tmp_path), clock=lambda: 100.0, seen_primary=seen)
        observer._peer = endpoint.peer_record(observer._peer, {"reachable": False, "error": "refused"}, 100.0, 100.0)
        assert failed(endpoint.primary_answer(observer._read(100.0))) == ["no other primary"]
    finally:
        old.server_close()


def test_the_keepers_records_of_another_boot_are_not_read(tmp_path, monkeypatch):
    path = tmp_path / "keeper.json"
    path.write_text('{"at": 5.0, "action": "hold", "boot": "another"}')
    assert endpoint.this_boots(str(path)) == {}
    monkeypatch.setattr(endpoint, "boot_id", lambda: "another")
    assert endpoint.this_boots(str(path))["action"] == "hold"


def test_a_replica_answers_by_its_stream_and_lag():
    assert endpoint.replica_answer(reading(pg=STANDBY), None).status == 200
    assert endpoint.replica_answer(reading(pg=STANDBY), 8192).status == 200
    assert failed(endpoint.replica_answer(reading(pg=STANDBY), 1024)) == ["it replays within the lag asked"]
    stopped = {**STANDBY, "receiver": None}
    assert failed(endpoint.replica_answer(reading(pg=stopped), None)) == ["it streams from a primary"]
    assert failed(endpoint.replica_answer(reading(), None)) == ["this node is a standby"]


def test_health_is_a_server_that_answers_and_is_not_being_fenced():
    assert endpoint.health_answer(reading(pg=STANDBY)).status == 200
    assert endpoint.health_answer(reading(pg=None)).status == 503
    fencing = reading(keeper={"at": 99.0, "action": "fencing"})
    assert failed(endpoint.health_answer(fencing)) == ["its lease keeper is not fencing it"]


def test_routes_and_bad_queries():
    status, _, body = endpoint.respond("/replica?lag=lots", lambda: reading(pg=STANDBY))
    assert status == 400 and "lag" in body
    assert endpoint.respond("/nope", reading)[0] == 404
    status, kind, body = endpoint.respond("/primary", lambda: reading(pg=STANDBY))
    assert status == 503 and kind == "application/json" and '"role": "standby"' in body


def test_metrics_in_the_prometheus_text_format():
    keeper = {**HOLD, "at": 99.5, "streamed_at": 99.0, "last_fence": {"at": 50.0}}
    text = endpoint.metrics(reading(keeper=keeper, renewed_at=98.0, automatic=True, paused={"at": 1.0, "id": "x"}))
    lines = text.splitlines()
    assert 'mfa_ha_primary{node="server_prod"} 1' in lines
    assert 'mfa_ha_primary_agreed{node="server_prod"} 1' in lines
    assert 'mfa_ha_slot_retained_bytes{node="server_prod",slot="server_dr"} 512' in lines
    assert 'mfa_ha_lease_seconds_left{node="server_prod"} 29' in lines
    assert 'mfa_ha_paused{node="server_prod"} 1' in lines
    assert any(line.startswith("mfa_ha_last_fence_timestamp_seconds{") for line in lines)
    assert lines.count("# TYPE mfa_ha_slot_active gauge") == 1
    standby = endpoint.metrics(reading(pg=STANDBY)).splitlines()
    assert 'mfa_ha_lag_bytes{node="server_prod"} 4096' in standby and 'mfa_ha_primary{node="server_prod"} 0' in standby
    assert 'mfa_ha_up{node="server_prod"} 0' in endpoint.metrics(reading(pg=None)).splitlines()


@pytest.mark.parametrize(
    "raw, named",
    [
        ("yes", "mfa_ha:endpoint: must be a mapping"),
        ({"enabled": "yes"}, "mfa_ha:endpoint:enabled"),
        ({"port": 70000}, "mfa_ha:endpoint:port"),
        ({"service": "a b"}, "mfa_ha:endpoint:service"),
        ({"prot": 1}, "unknown key(s) prot"),
    ],
)
def test_bad_pillar_is_named(raw, named):
    with pytest.raises(InvalidInput, match=named.replace("(", r"\(").replace(")", r"\)")):
        endpoint.endpoint_settings(raw)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_service_rebinds_on_a_new_config_and_ends_when_it_is_removed(tmp_path):
    """The service itself, on loopback with no PostgreSQL behind it: it answers 503, moves to
    a new port when its config changes, keeps trying a port it cannot bind, and ends once
    the endpoint is turned off (its config removed)."""
    import http.client
    import json
    import socket
    import threading
    import time

    from mfa_ha import timing
    from mfa_ha.files import write_json
    from mfa_ha.postgres.tls import TlsConfig

    def config(port):
        return endpoint.build_config(
            "server_prod",
            "127.0.0.1",
            port,
            {"data_dir": str(tmp_path / "nodb"), "port": _free_port()},
            TlsConfig(enabled=False),
            {"host": "127.0.0.1", "port": _free_port(), "user": "replicamfa"},
            str(tmp_path),
            {"automatic": False, "lease_seconds": 30.0, "alive_within": 4.0},
        )

    def status(port, path="/health"):
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                response = conn.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    path = str(tmp_path / "endpoint.json")
    first, second = _free_port(), _free_port()
    write_json(path, config(first))
    stop = threading.Event()
    service = threading.Thread(target=endpoint.serve, args=(path, stop), daemon=True)
    service.start()
    try:
        code, body = status(first)
        assert code == 503 and body["checks"][0] == {
            "check": "PostgreSQL answers",
            "ok": False,
            "measured": "no connection",
        }
        with socket.socket() as taken:  # a port another process holds: logged and tried again
            taken.bind(("127.0.0.1", second))
            taken.listen()
            write_json(path, config(second))
            time.sleep(3 * timing.ENDPOINT_RELOAD_SECONDS)
        assert status(second, "/nope")[0] == 404
        os.unlink(path)
        service.join(timeout=10)
        assert not service.is_alive()
    finally:
        stop.set()
