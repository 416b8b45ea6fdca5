"""Synchronous replication (``mfa_ha:replication:synchronous: strict``) through the real master
and minions: a highstate names each node's peer, ``mfa_ha.status`` shows the standby as
``sync``, a switchover there and back keeps it so with zero acknowledged writes lost, and a
standby re-attached by ``mfa_ha.orch.rejoin`` is a synchronous standby again; back to
``off``, a highstate clears it."""

import json
import threading

import pytest

from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD, MASTER_ID
from mfa_ha_lab.writer import AppWriter, DbWriter, lost
from tests.support import wait_for

pytestmark = pytest.mark.integration
EVERYONE = (MASTER_ID, "server_prod", "server_dr")
NODES = "server_prod,server_dr"  # not '*': other modules accept a minion that is not a node


def highstate(salt_cli):
    ret = salt_cli.run("-L", "state.highstate", minion_tgt=NODES, _timeout=300)
    assert ret.returncode == 0, ret.stdout


def names(node) -> str:
    return node.sql("SHOW synchronous_standby_names")[0][0]


def sync_column(salt_run) -> dict:
    view = json.loads(salt_run.run("mfa_ha.status", _timeout=60).stdout)
    return {row["node"]: row.get("sync_state") for row in view["nodes"]}


def by_role(lab):
    primary = next(n for n in lab.nodes if not n.sql("SELECT pg_is_in_recovery()")[0][0])
    return primary, next(n for n in lab.nodes if n is not primary)


@pytest.fixture(scope="module")
def strict(pair, salt_cli):
    lab = pair
    previous = lab.edit_overrides(EVERYONE, lambda mfa: mfa["replication"].update(synchronous="strict"))
    assert salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=NODES).returncode == 0
    highstate(salt_cli)
    yield lab
    lab.restore_overrides(previous)
    salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=NODES)
    highstate(salt_cli)
    assert all(names(n) == "" for n in lab.nodes)


def test_a_highstate_names_each_nodes_peer_and_status_shows_the_standby_sync(strict, salt_run):
    lab = strict
    primary, standby = by_role(lab)
    assert names(primary) == f'"{standby.minion_id}"' and names(standby) == f'"{primary.minion_id}"'
    wait_for(lambda: sync_column(salt_run)[standby.minion_id] == "sync", what="the standby sync in mfa_ha.status")


def switch_there_and_back_under_writers(lab, salt_run):
    """A switchover to the standby and back while both writers write: each time the new
    primary names the new standby, which is ``sync`` in ``mfa_ha.status``; nothing lost."""
    primary, standby = by_role(lab)
    app = AppWriter([n.address for n in lab.nodes], APP_PORT, enter=lab.on_clients)
    direct = DbWriter([n.address for n in lab.nodes], 5432, APP_USER, LAB_PASSWORD, APP_DB, enter=lab.on_clients)
    app.start()
    direct.start()
    try:
        for target, other in ((standby, primary), (primary, standby)):
            ret = salt_run.run(
                "state.orchestrate", "mfa_ha.orch.switchover", pillar={"mfa_ha": {"target": target.minion_id}}
            )
            assert ret.returncode == 0, ret.stdout
            wait_for(lambda other=other: sync_column(salt_run)[other.minion_id] == "sync", what="the new standby sync")
            assert names(target) == f'"{other.minion_id}"'
    finally:
        app.stop()
        direct.stop()
    assert by_role(lab) == (primary, standby)
    assert len(app.acked) > 20 and len(direct.acked) > 20
    assert lost(lambda q, p: primary.sql(q, p, dbname=APP_DB), app) == []
    assert lost(lambda q, p: primary.sql(q, p, dbname=APP_DB), direct) == []


def test_a_switchover_there_and_back_keeps_it_and_loses_nothing(strict, salt_run):
    switch_there_and_back_under_writers(strict, salt_run)


def test_commits_wait_for_a_stopped_standby_and_the_rejoin_makes_it_sync_again(strict, salt_run):
    lab = strict
    primary, standby = by_role(lab)
    lab.stop_db(standby)
    done = threading.Event()
    writer = threading.Thread(
        target=lambda: (
            primary.sql("INSERT INTO auth_events (node, client_seq) VALUES ('strict-wait', 1)", dbname=APP_DB),
            done.set(),
        ),
        daemon=True,
    )
    writer.start()
    assert not done.wait(3)  # strict: no standby, no acknowledgement
    rejoin = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=600)
    assert rejoin.returncode == 0, rejoin.stdout
    assert done.wait(60)
    wait_for(lambda: sync_column(salt_run)[standby.minion_id] == "sync", what="the rejoined standby sync")
    count = "SELECT count(*) FROM auth_events WHERE node = 'strict-wait'"
    assert standby.sql(count, dbname=APP_DB)[0][0] == 1
