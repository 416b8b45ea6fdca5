"""Alert confirmation: the event only says where to look; the named node's own word decides."""

import pytest

from mfa_ha.monitoring import alerts, health
from mfa_ha.monitoring.health import Thresholds

T = Thresholds(lag_warn_bytes=1000, lag_warn_seconds=30)
STANDBY = {
    "running": True,
    "state": "running",
    "role": "standby",
    "lag_bytes": 0,
    "lag_seconds": 0.0,
    "receiver": {"status": "streaming"},
    "slots": [],
}


@pytest.mark.parametrize(
    "tag, parsed",
    [
        ("salt/beacon/server_dr/pgrepl/lag/alert", ("server_dr", "lag", "alert")),
        ("salt/beacon/server_dr/pgrepl/heartbeat", None),
        ("salt/beacon/a b/pgrepl/lag/alert", None),
        ("salt/beacon/server_dr/pgrepl/lag/alert/../x", None),
    ],
)
def test_only_well_formed_beacon_tags_are_parsed(tag, parsed):
    assert alerts.parse_tag(tag) == parsed


def test_only_the_named_nodes_own_record_confirms_an_event():
    lagging = {**STANDBY, "lag_bytes": 5000}
    confirmed, text = alerts.confirm("lag", "alert", {"tag": "lag/alert", "severity": "warning"}, lagging)
    assert confirmed and "5000 bytes" in text


@pytest.mark.parametrize(
    "fired, why",
    [
        (None, "did not fire this event"),  # an id the node never gave out: forged
        ("no answer", "did not answer"),
        ({"tag": "lag/ok", "severity": "info"}, "fired lag/ok, not lag/alert"),  # a real id, another tag
    ],
)
def test_an_event_the_node_does_not_vouch_for_is_refused_whatever_its_state(fired, why):
    lagging = {**STANDBY, "lag_bytes": 10**9}  # the state matches the claim: still refused
    confirmed, text = alerts.confirm("lag", "alert", fired, lagging)
    assert confirmed is False and why in text


def test_the_figures_come_from_the_live_status_when_there_is_one():
    assert alerts.describe("server", {"running": False, "state": "stopped"}) == "PostgreSQL is stopped"
    assert alerts.describe("server", "failed: connection refused").startswith("status unavailable")
    assert alerts.describe("receiver", {**STANDBY, "receiver": None}) == "WAL receiver not running"


def test_fired_events_are_remembered_by_unguessable_ids_and_pruned():
    state = {}
    first = health.record_fired(state, {"tag": "lag/alert", "severity": "warning"}, 1.0)
    assert len(first) == 32 and health.fired(state, first)["tag"] == "lag/alert"
    for i in range(health.FIRED_KEPT):
        health.record_fired(state, {"tag": "server/up"}, 2.0 + i)
    assert health.fired(state, first) is None and len(state["fired"]) == health.FIRED_KEPT


def test_severity_is_not_taken_from_the_event_beyond_the_known_levels():
    assert alerts.severity_of("lag", "alert", {"severity": "critical"}) == "critical"
    assert alerts.severity_of("lag", "alert", {"severity": "<script>"}) == "warning"
    assert alerts.severity_of("server", "down", {"severity": "info"}) == "critical"


def test_two_primaries_are_a_split_brain():
    primary = {"running": True, "role": "primary"}
    assert alerts.split_brain({"a": primary, "b": STANDBY}) == ["a"]
    assert alerts.split_brain({"a": primary, "b": primary, "c": "no answer"}) == ["a", "b"]


def test_request_tokens_are_single_use_and_bound_to_their_target(tmp_path):
    nonce = alerts.new_nonce()
    alerts.store_nonce(str(tmp_path), nonce, "server_dr")
    assert alerts.take_nonce(str(tmp_path), nonce, "server_prod") is False
    alerts.store_nonce(str(tmp_path), nonce, "server_dr")
    assert alerts.take_nonce(str(tmp_path), nonce, "server_dr") is True
    assert alerts.take_nonce(str(tmp_path), nonce, "server_dr") is False
    assert alerts.take_nonce(str(tmp_path), "../../etc/passwd", "server_dr") is False


def test_a_pause_alert_is_told_in_the_nodes_own_words():
    fired = {"tag": "pause/alert", "severity": "warning", "summary": "automatic failover paused for 5.0 h"}
    assert alerts.parse_tag("salt/beacon/server_dr/pgrepl/pause/alert") == ("server_dr", "pause", "alert")
    assert alerts.confirm("pause", "alert", fired, {"running": True}) == (True, "automatic failover paused for 5.0 h")
