"""Alert confirmation: the event only says where to look; the named node's own status decides."""

import pytest

from mfa_ha import alerts
from mfa_ha.health import Thresholds

T = Thresholds(lag_warn_bytes=1000, lag_warn_seconds=30)
STANDBY = {"running": True, "state": "running", "role": "standby", "lag_bytes": 0, "lag_seconds": 0.0,
           "receiver": {"status": "streaming"}, "slots": []}


@pytest.mark.parametrize("tag, parsed", [
    ("salt/beacon/server_dr/pgrepl/lag/alert", ("server_dr", "lag", "alert")),
    ("salt/beacon/server_dr/pgrepl/heartbeat", None),
    ("salt/beacon/a b/pgrepl/lag/alert", None),
    ("salt/beacon/server_dr/pgrepl/lag/alert/../x", None),
])
def test_only_well_formed_beacon_tags_are_parsed(tag, parsed):
    assert alerts.parse_tag(tag) == parsed


def test_a_lag_alert_is_confirmed_only_by_real_lag():
    assert alerts.confirm("lag", "alert", {"lag_bytes": 1e12}, STANDBY, T)[0] is False
    lagging = {**STANDBY, "lag_bytes": 5000}
    confirmed, text = alerts.confirm("lag", "alert", {}, lagging, T)
    assert confirmed and "5000 bytes" in text


def test_nothing_is_confirmed_by_a_silent_node():
    assert alerts.confirm("server", "down", {}, "no answer", T) == (False, "the node did not answer (no answer)")


def test_server_down_receiver_down_and_role_change_are_checked_live():
    assert alerts.confirm("server", "down", {}, {"running": False, "state": "stopped"}, T)[0]
    assert not alerts.confirm("receiver", "down", {}, STANDBY, T)[0]
    assert alerts.confirm("receiver", "down", {}, {**STANDBY, "receiver": None}, T)[0]
    assert alerts.confirm("role", "changed", {"new": "primary"}, {**STANDBY, "role": "primary"}, T)[0]
    assert not alerts.confirm("role", "changed", {"new": "primary"}, STANDBY, T)[0]


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
