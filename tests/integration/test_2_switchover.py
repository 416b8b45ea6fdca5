"""Switchover through ``state.orchestrate mfa_ha.orch.switchover`` with the real master and
minions, while two clients keep writing: zero acknowledged writes lost, both ways; and
refusals that leave everything as it was."""

import pytest

from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD
from mfa_ha_lab.writer import AppWriter, DbWriter, lost
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def switchover(salt_run, target, **pillar):
    return salt_run.run("state.orchestrate", "mfa_ha.orch.switchover",
                        pillar={"mfa_ha": {"target": target, **pillar}}, _timeout=300)


def role(node):
    return "standby" if node.sql("SELECT pg_is_in_recovery()")[0][0] else "primary"


def streams_from(node, upstream):
    rows = node.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0] == ("streaming", upstream.address)


def test_switchover_there_and_back_loses_no_acknowledged_write(pair, salt_run):
    lab = pair
    app = AppWriter([n.address for n in lab.nodes], APP_PORT)
    direct = DbWriter([n.address for n in lab.nodes], 5432, APP_USER, LAB_PASSWORD, APP_DB)
    app.start()
    direct.start()
    try:
        there = switchover(salt_run, "server_dr")
        assert there.returncode == 0, there.stdout
        assert role(lab.dr) == "primary" and role(lab.prod) == "standby"
        assert streams_from(lab.prod, lab.dr)
        assert lab.dr.app_pid() and lab.prod.app_pid() is None
        back = switchover(salt_run, "server_prod")
        assert back.returncode == 0, back.stdout
    finally:
        app.stop()
        direct.stop()
    assert role(lab.prod) == "primary" and streams_from(lab.dr, lab.prod)
    assert len(app.acked) > 20 and len(direct.acked) > 20
    assert lost(lambda q, p: lab.prod.sql(q, p, dbname=APP_DB), app) == []
    assert lost(lambda q, p: lab.prod.sql(q, p, dbname=APP_DB), direct) == []


def assert_untouched(lab, app_pid):
    assert role(lab.prod) == "primary" and lab.prod.app_pid() == app_pid
    assert lab.dr.app_pid() is None


def test_switchover_refused_when_the_standby_is_stopped(pair, salt_run):
    lab = pair
    app_pid = lab.prod.app_pid()
    lab.stop_db(lab.dr)
    try:
        ret = switchover(salt_run, "server_dr")
        assert ret.returncode != 0
        assert "target is a running standby" in ret.stdout and "server_dr: stopped" in ret.stdout
        assert_untouched(lab, app_pid)
        assert not lab.dr.is_running()
    finally:
        lab.start_db(lab.dr)
    wait_for(lambda: streams_from(lab.dr, lab.prod), what="dr streaming again", ignore_errors=True)


def test_switchover_refused_when_the_standby_lags(pair, salt_run):
    lab = pair
    app_pid = lab.prod.app_pid()
    lab.dr.sql("SELECT pg_wal_replay_pause()")
    try:
        lab.prod.sql("CREATE TABLE IF NOT EXISTS lag_probe AS SELECT generate_series(1, 20000) AS n", dbname=APP_DB)
        wait_for(lambda: lab.prod.sql("SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) "
                                      "FROM pg_stat_replication")[0][0] > 100000, what="lag on dr")
        ret = switchover(salt_run, "server_dr", switchover={"max_lag_bytes": 65536})
        assert ret.returncode != 0
        assert "replay lag within mfa_ha:switchover:max_lag_bytes" in ret.stdout
        assert "limit 65536" in ret.stdout
        assert_untouched(lab, app_pid)
        assert lab.dr.sql("SELECT pg_is_wal_replay_paused()")[0][0] is True
    finally:
        lab.dr.sql("SELECT pg_wal_replay_resume()")




def accepts_writes(node):
    try:
        node.sql("CREATE TABLE IF NOT EXISTS fence_probe (x int); INSERT INTO fence_probe VALUES (1)")
        return True
    except Exception:  # noqa: BLE001 - down or read-only both count as "no"
        return False


def kill_postmaster(node):
    """The lab started it; kill -9 by the PID in its postmaster.pid (a crashed primary)."""
    import os
    import signal

    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        os.kill(int(fh.readline()), signal.SIGKILL)
    wait_for(lambda: not node.is_running(), what="the killed server to be gone")


def test_failover_fencing_and_rejoin(pair, salt_run, minions):
    lab = pair
    prod_minion = minions["server_prod"]
    failover = ("state.orchestrate", "mfa_ha.orch.failover")
    with prod_minion.stopped():
        lab.stop_app(lab.prod)
        kill_postmaster(lab.prod)
        refused = salt_run.run(*failover, pillar={"mfa_ha": {"target": "server_dr"}}, _timeout=300)
        assert refused.returncode != 0 and "confirm_primary_lost" in refused.stdout
        assert role(lab.dr) == "standby"

        done = salt_run.run(*failover, pillar={"mfa_ha": {"target": "server_dr", "confirm_primary_lost": True}},
                            _timeout=300)
        assert done.returncode == 0, done.stdout
        assert "last_received_lsn" in done.stdout
        assert role(lab.dr) == "primary" and lab.dr.app_pid()
        # The old primary's host comes back and something starts its PostgreSQL: a primary again.
        lab.start_db(lab.prod)
        assert accepts_writes(lab.prod)
    # Its minion starts: the reactor on salt/minion/server_prod/start fences it.
    wait_for(lambda: not lab.prod.is_running(), timeout=90, what="the reactor to fence prod", ignore_errors=True)
    lab.start_db(lab.prod)  # whatever starts it now brings it up read-only
    assert not accepts_writes(lab.prod)
    lab.stop_db(lab.prod)

    rejoin = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=600)
    assert rejoin.returncode == 0, rejoin.stdout
    wait_for(lambda: streams_from(lab.prod, lab.dr), what="prod streaming from dr", ignore_errors=True)

    back = switchover(salt_run, "server_prod")
    assert back.returncode == 0, back.stdout
    assert role(lab.prod) == "primary" and streams_from(lab.dr, lab.prod)


def test_failover_again_on_a_healthy_pair_leaves_the_standby_streaming(pair, salt_run):
    """Re-running a failover that is done (target already the primary) only finishes: the
    other node, a streaming standby, is not fenced."""
    lab = pair
    again = salt_run.run("state.orchestrate", "mfa_ha.orch.failover",
                         pillar={"mfa_ha": {"target": "server_prod"}}, _timeout=300)
    assert again.returncode == 0, again.stdout
    assert "not a primary" in again.stdout
    assert role(lab.prod) == "primary" and lab.prod.app_pid()
    assert streams_from(lab.dr, lab.prod)
