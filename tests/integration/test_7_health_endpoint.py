"""The health endpoint (``mfa_ha:endpoint``) through the real master and minions: a highstate
starts it on each node; ``GET /primary`` answers 200 on the primary only, ``/replica`` on the
streaming standby, ``/metrics`` in the Prometheus format; and a real HAProxy (Debian's) on
the clients' host, routing by ``/primary``, takes clients through a switchover and a
confirmed failover with a stale primary back on line: every write it acknowledged is on the
primary (none accepted by a node that was not the primary), the outage measured."""

import http.client
import json
import shutil
import ssl
import time

import pytest

from mfa_ha_lab.haproxy import PORT, Haproxy
from mfa_ha_lab.lab import APP_DB, APP_USER, LAB_PASSWORD, MASTER_ID
from mfa_ha_lab.writer import DbWriter, lost
from tests.integration.test_2_switchover import kill_postmaster, role, streams_from, switchover
from tests.support import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("haproxy"), reason="HAProxy (Debian's haproxy) is not installed"),
]
EVERYONE = (MASTER_ID, "server_prod", "server_dr")
NODES = "server_prod,server_dr"
CHECK_PORT = 8008


def get(lab, node, path):
    """``(status, body)`` of the node's endpoint, asked from the clients' host over TLS, the
    certificate verified against the lab's CA."""
    if lab.ca:
        context = ssl.create_default_context(cadata=lab.ca.pem)
        conn = http.client.HTTPSConnection(node.address, CHECK_PORT, timeout=5, context=context)
    else:
        conn = http.client.HTTPConnection(node.address, CHECK_PORT, timeout=5)
    with lab.on_clients():
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


def answers(lab, node, path):
    try:
        return get(lab, node, path)[0]
    except OSError:
        return None


@pytest.fixture(scope="module")
def endpoint(pair, salt_cli):
    lab = pair
    previous = lab.edit_overrides(EVERYONE, lambda mfa: mfa.update(endpoint={"enabled": True, "port": CHECK_PORT}))
    assert salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=NODES).returncode == 0
    ret = salt_cli.run("-L", "state.highstate", minion_tgt=NODES, _timeout=300)
    assert ret.returncode == 0, ret.stdout
    yield lab
    lab.restore_overrides(previous)
    salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=NODES)
    off = salt_cli.run("-L", "state.highstate", minion_tgt=NODES, _timeout=300)
    assert off.returncode == 0, off.stdout
    wait_for(lambda: all(answers(lab, n, "/health") is None for n in lab.nodes), what="the endpoints ended")


def primary_and_standby(lab):
    """The pair's primary and standby; a clear failure when it is not one of each."""
    roles = {n.minion_id: role(n) for n in lab.nodes}
    assert sorted(roles.values()) == ["primary", "standby"], f"not a pair of a primary and a standby: {roles}"
    primary = next(n for n in lab.nodes if roles[n.minion_id] == "primary")
    return primary, next(n for n in lab.nodes if n is not primary)


def test_primary_replica_health_and_metrics_answer_by_role(endpoint):
    lab = endpoint
    primary, standby = primary_and_standby(lab)
    wait_for(lambda: answers(lab, primary, "/primary") == 200, what="the primary's endpoint to answer 200")
    wait_for(lambda: answers(lab, standby, "/replica") == 200, what="the standby's endpoint to answer 200")
    status, body = get(lab, standby, "/primary")
    assert status == 503 and json.loads(body)["role"] == "standby"
    assert get(lab, standby, "/replica")[0] == 200 and get(lab, primary, "/replica")[0] == 503
    assert get(lab, standby, "/replica?lag=abc")[0] == 400
    assert all(get(lab, n, "/health")[0] == 200 for n in lab.nodes)
    status, metrics = get(lab, primary, "/metrics")
    assert status == 200
    assert f'mfa_ha_primary{{node="{primary.minion_id}"}} 1' in metrics.splitlines()
    assert f'mfa_ha_primary_agreed{{node="{primary.minion_id}"}} 1' in metrics.splitlines()
    assert "# TYPE mfa_ha_slot_retained_bytes gauge" in metrics


def writer(lab, proxy):
    w = DbWriter([proxy.address], PORT, APP_USER, LAB_PASSWORD, APP_DB, enter=lab.on_clients)
    w.dsn["target_session_attrs"] = "any"  # HAProxy alone chooses the node
    return w


def outage(w, since):
    """The longest wait between acknowledged writes from the last one before ``since`` on."""
    before = [t for _, t in w.acked if t < since]
    return w.longest_gap(since=before[-1] if before else since)


def test_haproxy_follows_a_switchover_and_a_failover_and_no_write_reaches_a_non_primary(endpoint, salt_run, minions):
    lab = endpoint
    primary, standby = primary_and_standby(lab)
    with Haproxy(lab, CHECK_PORT) as proxy:
        first = writer(lab, proxy)
        first.start()
        try:
            wait_for(lambda: len(first.acked) > 5, what="writes through HAProxy")
            started = time.monotonic()
            there = switchover(salt_run, standby.minion_id)
            assert there.returncode == 0, there.stdout
            wait_for(lambda: first.acked[-1][1] > time.monotonic() - 0.5, what="writes again after the switchover")
            switch_outage = outage(first, started)
        finally:
            first.stop()
        assert lost(lambda q, p: standby.sql(q, p, dbname=APP_DB), first) == []
        wait_for(
            lambda: (
                standby.sql("SELECT pg_current_wal_lsn()::text")[0][0]
                == primary.sql("SELECT pg_last_wal_replay_lsn()::text")[0][0]
            ),
            what="the standby caught up",
        )

        # The new primary (the former standby) crashes; the operator fails over to the other node.
        crashed, target = standby, primary
        second = writer(lab, proxy)
        with minions[crashed.minion_id].stopped():
            started = time.monotonic()
            lab.stop_app(crashed)
            kill_postmaster(crashed)  # with no writer: asynchronous replication loses what it had not sent
            second.start()  # clients keep trying through HAProxy from the crash on
            try:
                done = salt_run.run(
                    "state.orchestrate",
                    "mfa_ha.orch.failover",
                    pillar={"mfa_ha": {"target": target.minion_id, "confirm_primary_lost": True}},
                    _timeout=300,
                )
                assert done.returncode == 0, done.stdout
                failover_wall = round(time.monotonic() - started, 3)
                wait_for(lambda: second.acked and second.acked[-1][1] > started, what="writes after the failover")
                failover_outage = round(second.acked[0][1] - started, 3)
                lab.start_db(crashed)  # its host back: a stale primary on the older timeline
                assert role(crashed) == "primary"
                stale_status = 200
                for _ in range(10):  # a second of HAProxy checks (inter 500 ms) while both are primaries
                    try:
                        stale_status, body = get(lab, crashed, "/primary")
                    except OSError as err:
                        stale_status, body = None, str(err)
                    assert stale_status != 200, body
                    time.sleep(0.1)
                time.sleep(1.5)
            finally:
                second.stop()
        assert len(second.acked) > 20
        assert lost(lambda q, p: target.sql(q, p, dbname=APP_DB), second) == []
    print(
        f"\nHAProxy by GET /primary: switchover outage {switch_outage} s, {len(first.acked)} writes, 0 lost; "
        f"failover outage {failover_outage} s (the failover command's own wall from the crash: {failover_wall} s), "
        f"{len(second.acked)} writes, 0 lost; stale primary's /primary: "
        f"{stale_status}"
    )
    # The pair as it was: the crashed node fenced by its minion's start, then rejoined.
    wait_for(lambda: not crashed.is_running(), timeout=90, what="the stale primary fenced", ignore_errors=True)
    rejoin = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=600)
    assert rejoin.returncode == 0, rejoin.stdout
    wait_for(lambda: streams_from(crashed, target), what="the old primary streaming again", ignore_errors=True)
