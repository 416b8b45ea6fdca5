"""The beacon's rule: events on transitions only, hysteresis, heartbeat, config errors named."""

import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.monitoring import health

T = health.Thresholds(
    report_interval=60,
    lag_warn_bytes=1000,
    lag_crit_bytes=10000,
    lag_warn_seconds=30,
    lag_crit_seconds=300,
    receiver_down_after=3,
)
STREAMING = {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432, "slot": "server_dr"}


def standby(lag_bytes=0, lag_seconds=0.0, receiver=STREAMING):
    return {
        "role": "standby",
        "timeline": 1,
        "lag_bytes": lag_bytes,
        "lag_seconds": lag_seconds,
        "receiver": receiver,
        "slots": [],
        "replicas": [],
    }


def run(readings, state=None, start=1000.0, step=1.0):
    """Feed readings one poll apart; return the event tags of each poll and the last state."""
    tags, state = [], state or {"last_report": start, "role": "standby"}
    for i, reading in enumerate(readings):
        events, state = health.transitions(state, reading, T, start + i * step)
        tags.append([e["tag"] for e in events if e["tag"] != "heartbeat"])
    return tags, state


def test_lag_alerts_once_then_ok_once_below_the_hysteresis():
    tags, _ = run([standby(0), standby(2000), standby(3000), standby(900), standby(700), standby(700)])
    assert tags == [[], ["lag/alert"], [], [], ["lag/ok"], []]


def test_lag_escalates_from_warning_to_critical_once():
    events, state = health.transitions({"role": "standby", "last_report": 0}, standby(2000), T, 10)
    assert [(e["tag"], e["severity"]) for e in events if e["tag"] != "heartbeat"] == [("lag/alert", "warning")]
    events, state = health.transitions(state, standby(20000), T, 11)
    alert = next(e for e in events if e["tag"] == "lag/alert")
    assert alert["severity"] == "critical" and alert["thresholds"] == {"lag_warn_bytes": 1000, "lag_crit_bytes": 10000}
    assert isinstance(alert["lag_bytes"], float)


def test_seconds_alone_raise_an_alert():
    tags, _ = run([standby(0, 45.0)])
    assert tags == [["lag/alert"]]


def test_receiver_down_after_n_polls_and_up_once():
    down = {"status": "waiting", "sender_host": None, "sender_port": None, "slot": None}
    tags, _ = run(
        [
            standby(receiver=down),
            standby(receiver=None),
            standby(receiver=down),
            standby(receiver=down),
            standby(),
            standby(),
        ]
    )
    assert tags == [[], [], ["receiver/down"], [], ["receiver/up"], []]


def test_server_down_and_up_are_reported_once():
    tags, _ = run([standby(), None, None, standby(), standby()])
    assert tags == [[], ["server/down"], [], ["server/up"], []]


def test_role_change_is_reported_with_old_and_new():
    events, _ = health.transitions({"role": "standby", "last_report": 0}, {**standby(), "role": "primary"}, T, 1)
    change = next(e for e in events if e["tag"] == "role/changed")
    assert (change["old"], change["new"]) == ("standby", "primary")


def test_heartbeat_every_report_interval_with_figures():
    state = {"role": "standby", "last_report": 0}
    beats = []
    for now in (100, 130, 161, 200, 222):
        events, state = health.transitions(state, standby(5), T, now)
        beats += [now for e in events if e["tag"] == "heartbeat"]
    assert beats == [100, 161, 222]


def test_a_primary_with_no_standby_streaming_beats_every_few_seconds():
    """A primary cut off during a confirmed failover is fenced by its first heartbeat once its
    links return: alone, it beats every ``alone_report_interval``; with its standby, as usual."""
    alone = {"role": "primary", "timeline": 2, "replicas": [], "slots": []}
    paired = {**alone, "replicas": [{"name": "server_dr", "state": "streaming"}]}
    catching_up = {**alone, "replicas": [{"name": "server_dr", "state": "catchup"}]}
    for reading, expected in ((alone, [100, 105, 110]), (catching_up, [100, 105, 110]), (paired, [100])):
        state, beats = {"role": "primary", "last_report": 0}, []
        for now in (100, 103, 105, 108, 110):
            events, state = health.transitions(state, reading, T, now)
            beats += [now for e in events if e["tag"] == "heartbeat"]
        assert beats == expected, reading["replicas"]


def test_slot_alert_once_while_it_retains_too_much():
    primary = {
        "role": "primary",
        "timeline": 1,
        "replicas": [],
        "slots": [{"name": "server_dr", "active": True, "retained_bytes": 2 * 1024**3}],
    }
    tags, _ = run([primary, primary], state={"role": "primary", "last_report": 1000})
    assert tags == [["slot/alert"], []]


@pytest.mark.parametrize(
    "config, named",
    [
        ({"lag_warn_bytes": "lots"}, "beacons:pgrepl:lag_warn_bytes"),
        ({"lag_warn_byte": 10}, "unknown key(s) lag_warn_byte"),
        ({"hysteresis": 1.5}, "beacons:pgrepl:hysteresis"),
        ({"receiver_down_after": 0}, "beacons:pgrepl:receiver_down_after"),
    ],
)
def test_bad_config_is_named(config, named):
    with pytest.raises(InvalidInput, match=named.replace("(", r"\(").replace(")", r"\)")):
        health.thresholds(config)


def test_a_pause_longer_than_its_limit_is_alerted_once_and_its_end_once():
    t = health.Thresholds(pause_warn_seconds=3600)
    paused = {"id": "a1", "by": "operator", "at": 1000.0, "reason": "patching the master"}
    state = {"role": "standby", "last_report": 10**9}
    tags = []
    for now, record in ((2000.0, paused), (4700.0, paused), (4800.0, paused), (4900.0, None), (5000.0, None)):
        events, state = health.transitions(state, standby(), t, now, paused=record)
        tags.append([e["tag"] for e in events if e["tag"].startswith("pause/")])
    assert tags == [[], ["pause/alert"], [], ["pause/ok"], []]
    events, _ = health.transitions({}, standby(), t, 4700.0, paused=paused)
    assert "paused for 1.0 h (limit 1 h) by operator: patching the master" in events[0]["summary"]
    again = {**paused, "id": "b2", "at": 5000.0}  # a new pause is alerted in its turn
    events, _ = health.transitions(state, standby(), t, 8700.0, paused=again)
    assert [e["tag"] for e in events if e["tag"].startswith("pause/")] == ["pause/alert"]
