"""The pgrepl beacon on the real minions, the reactors on the real master: lag and a
stopped server reach the alert file exactly once; forged events change nothing."""

import json
import os
import secrets
import time

import pytest

from mfa_ha_lab.lab import APP_DB
from tests import support as helpers

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout=60, what="condition"):
    return helpers.wait_for(predicate, timeout=timeout, what=what, interval=0.25)


def alert_lines(lab):
    path = os.path.join(lab.root, "alerts.log")
    return open(path, encoding="utf-8").read().splitlines() if os.path.exists(path) else []


def beacon_events(event_listener, master, minion, what, since):
    return list(event_listener.get_events([(master.id, f"salt/beacon/{minion}/pgrepl/{what}")], after_time=since))


def runner_returns(event_listener, master, fun, since, about=None):
    """Returns of the runner jobs the reactors started for ``fun`` since ``since`` (with
    ``about``: only those whose arguments carry that string, e.g. one event's id)."""
    events = event_listener.get_events([(master.id, "salt/run/*/ret")], after_time=since)
    return [
        e.data.get("return")
        for e in events
        if e.data.get("fun") == f"runner.{fun}"
        and (about is None or about in json.dumps(e.data.get("fun_args"), default=str))
    ]


def test_lag_raises_one_alert_and_one_ok(pair, master, event_listener):
    lab, since = pair, time.time()
    lab.dr.sql("SELECT pg_wal_replay_pause()")
    try:
        lab.prod.sql(
            "CREATE TABLE beacon_lag AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 5000) g",
            dbname=APP_DB,
        )
        wait_for(lambda: beacon_events(event_listener, master, "server_dr", "lag/alert", since), what="lag/alert")
        wait_for(
            lambda: any("server_dr: lag alert" in line for line in alert_lines(lab)), what="the alert in the alert file"
        )
        time.sleep(3)  # more polls with the lag still there: no second alert
    finally:
        lab.dr.sql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: beacon_events(event_listener, master, "server_dr", "lag/ok", since), what="lag/ok")
    alerts = beacon_events(event_listener, master, "server_dr", "lag/alert", since)
    assert len(alerts) == 1
    assert isinstance(alerts[0].data["lag_bytes"], float) and alerts[0].data["lag_bytes"] >= 262144
    assert alerts[0].data["thresholds"]["lag_warn_bytes"] == 262144
    assert len(beacon_events(event_listener, master, "server_dr", "lag/ok", since)) == 1


def test_a_stopped_standby_server_is_reported_down(pair, master, event_listener):
    lab, since = pair, time.time()
    lab.stop_db(lab.dr)
    try:
        wait_for(lambda: beacon_events(event_listener, master, "server_dr", "server/down", since), what="server/down")
        wait_for(lambda: any("server_dr: server down" in line for line in alert_lines(lab)), what="the alert")
    finally:
        lab.start_db(lab.dr)
    wait_for(lambda: beacon_events(event_listener, master, "server_dr", "server/up", since), what="server/up")
    wait_for(
        lambda: lab.dr.sql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0],
        what="dr streaming again",
    )


FORGEABLE = [
    "lag/alert",
    "lag/ok",
    "receiver/down",
    "receiver/up",
    "role/changed",
    "slot/alert",
    "server/down",
    "server/up",
]


@pytest.mark.parametrize("what", FORGEABLE)
def test_a_forged_event_naming_another_node_sends_no_alert(pair, master, intruder_call, event_listener, what):
    """The forged claims match the named node's current state where they can (server up,
    receiver up, lag ok, role standby): only that node's own word would confirm them."""
    lab, since = pair, time.time()
    before = alert_lines(lab)
    event_id = secrets.token_hex(16)  # the forger's guess; the runner's return for it is the one that counts
    forged = {
        "id": "server_dr",
        "severity": "critical",
        "lag_bytes": 1e12,
        "lag_seconds": 9999,
        "new": "standby",
        "slot": "server_prod",
        "event_id": event_id,
    }
    ret = intruder_call.run("event.send", f"salt/beacon/server_dr/pgrepl/{what}", data=forged)
    assert ret.returncode == 0
    handled = wait_for(
        lambda: runner_returns(event_listener, master, "mfa_ha.alert", since, about=event_id),
        what="the alert runner to handle the forged event",
    )
    assert handled[0]["confirmed"] is False and handled[0]["sent"] is False, handled[0]
    assert "did not fire this event" in handled[0]["measured"]
    assert alert_lines(lab) == before  # the runner has returned: nothing more will be written


def test_a_switchover_request_from_a_minion_not_allowed_is_ignored(
    pair, master, intruder_call, event_listener, salt_run
):
    lab, since = pair, time.time()
    ret = intruder_call.run("event.send", "mfa_ha/switchover/request", data={"target": "server_dr", "nonce": "0" * 32})
    assert ret.returncode == 0
    handled = wait_for(
        lambda: runner_returns(event_listener, master, "mfa_ha.switchover_request", since), what="the request runner"
    )
    assert handled[0]["accepted"] is False and "server_x" in handled[0]["reason"]
    assert lab.prod.sql("SELECT pg_is_in_recovery()")[0][0] is False
    assert lab.prod.app_pid()


def test_an_allowed_request_performs_the_switchover(pair, master, event_listener, salt_run):
    lab, since = pair, time.time()
    ret = salt_run.run("mfa_ha.request_switchover", "server_dr")
    assert ret.returncode == 0, ret.stdout
    handled = wait_for(
        lambda: runner_returns(event_listener, master, "mfa_ha.switchover_request", since),
        timeout=120,
        what="the requested switchover",
    )
    assert handled[0]["accepted"] is True and handled[0]["ok"] is True, json.dumps(handled)
    assert lab.dr.sql("SELECT pg_is_in_recovery()")[0][0] is False and lab.dr.app_pid()
    back = salt_run.run(
        "state.orchestrate", "mfa_ha.orch.switchover", pillar={"mfa_ha": {"target": "server_prod"}}, _timeout=300
    )
    assert back.returncode == 0, back.stdout


def kill_postmaster(node):
    import signal

    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        os.kill(int(fh.readline()), signal.SIGKILL)


def test_a_crashed_primary_raises_an_alert(pair, master, event_listener):
    """Right after a SIGKILL the node's status cannot be read; the alert
    rests on the node's own record of its server/down event, not on that status."""
    lab, since = pair, time.time()
    kill_postmaster(lab.prod)
    try:
        wait_for(
            lambda: beacon_events(event_listener, master, "server_prod", "server/down", since),
            what="server/down from prod",
        )
        wait_for(lambda: any("server_prod: server down" in line for line in alert_lines(lab)), what="the alert")
    finally:
        helpers.wait_for(lambda: not lab.prod.is_running(), what="the killed postmaster to be gone", ignore_errors=True)
        lab.start_db(lab.prod)  # crash recovery: a primary again
        lab.start_app(lab.prod)
    wait_for(
        lambda: lab.dr.sql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0],
        timeout=90,
        what="dr streaming again",
    )
    wait_for(lambda: lab.prod.app_pid(), what="pmfad on prod again")


def test_a_same_timeline_second_primary_gets_no_pmfad_from_highstate(pair, master, salt_cli):
    """A standby that lost standby.signal and was started is a second
    primary on the same timeline; highstate must not start pmfad on it (or anywhere), and
    changes no role."""
    lab = pair
    lab.stop_db(lab.dr)
    os.unlink(os.path.join(lab.dr.data_dir, "standby.signal"))
    lab.start_db(lab.dr)
    try:
        assert lab.dr.sql("SELECT pg_is_in_recovery()")[0][0] is False  # two primaries now
        for minion in ("server_dr", "server_prod"):
            ret = salt_cli.run("state.highstate", minion_tgt=minion, _timeout=300)
            assert ret.returncode != 0 and "SPLIT BRAIN" in ret.stdout, ret.stdout
        assert lab.dr.app_pid() is None, "pmfad started on the second primary"
        assert lab.prod.app_pid(), "highstate must not stop the app where the clients are"
        assert lab.dr.sql("SELECT pg_is_in_recovery()")[0][0] is False and lab.dr.is_running()
    finally:
        lab.stop_db(lab.dr)
        # Its WAL diverged on the same timeline, where pg_rewind finds no fork: clone afresh.
        os.rename(lab.dr.data_dir, lab.dr.data_dir + ".second-primary")
    rejoined = salt_cli.run(
        "state.sls",
        "mfa_ha.standby",
        minion_tgt="server_dr",
        pillar={"mfa_ha": {"primary": "server_prod"}},
        _timeout=300,
    )
    assert rejoined.returncode == 0, rejoined.stdout
    wait_for(
        lambda: lab.dr.sql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0],
        timeout=90,
        what="dr streaming again",
    )
