"""Synchronous replication ``"on"`` (the witness may let the primary drop a lost standby)
through the real master, its witness engine and a lease keeper on each node: setup names
each node's peer and the master records the standby as holding every commit; a switchover
there and back keeps it so with zero acknowledged writes lost; a stopped standby makes
commits wait only until the master has recorded it as behind, and ``mfa_ha.orch.rejoin``
makes it synchronous, and promotable, again."""

import json
import threading
import time

import pytest

from mfa_ha.unattended import lease
from mfa_ha_lab.lab import APP_DB, MASTER_ID
from mfa_ha_lab.salt_daemons import recorded_promotable
from tests.faults.common import alerts, witness_armed
from tests.integration.test_6_synchronous import by_role, names, switch_there_and_back_under_writers, sync_column
from tests.support import wait_for

pytestmark = pytest.mark.integration
EVERYONE = (MASTER_ID, "server_prod", "server_dr")
NODES = "server_prod,server_dr"
AUTOMATIC = {"automatic": True, "lease_seconds": 10, "margin_seconds": 32}


def recorded_since(lab, before: int, *words) -> bool:
    return any(all(w in line for w in words) for line in alerts(lab)[before:])


def highstate(salt_cli):
    ret = salt_cli.run("-L", "state.highstate", minion_tgt=NODES, _timeout=300)
    assert ret.returncode == 0, ret.stdout


@pytest.fixture(scope="module")
def synchronous_on(pair, salt_cli):
    lab = pair
    before = len(alerts(lab))

    def edit(mfa):
        mfa.setdefault("failover", {}).update(AUTOMATIC)
        mfa.setdefault("replication", {})["synchronous"] = "on"

    previous = lab.edit_overrides(EVERYONE, edit)
    assert salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=NODES).returncode == 0
    highstate(salt_cli)
    wait_for(lambda: witness_armed(lab), timeout=120, what="the witness armed")
    wait_for(
        lambda: recorded_since(lab, before, "promotable", "holds every commit"),
        timeout=120,
        what="the standby recorded as holding every commit",
    )
    yield lab
    lab.restore_overrides(previous)
    salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=NODES)
    highstate(salt_cli)
    assert all(names(n) == "" for n in lab.nodes)


def test_each_node_names_its_peer_and_status_shows_the_standby_sync(synchronous_on, salt_run):
    lab = synchronous_on
    primary, standby = by_role(lab)
    assert names(primary) == f'"{standby.minion_id}"'
    wait_for(lambda: sync_column(salt_run)[standby.minion_id] == "sync", what="the standby sync in mfa_ha.status")


def test_a_switchover_there_and_back_keeps_it_and_loses_nothing(synchronous_on, salt_run):
    """Each switch records the old primary as not promotable before the new primary takes
    writes without waiting for it; the new primary's keeper names it again, and the master
    records it promotable once it holds every commit."""
    lab = synchronous_on
    before = len(alerts(lab))
    switch_there_and_back_under_writers(lab, salt_run)
    for node in lab.nodes:
        assert recorded_since(lab, before, f"{node.minion_id} recorded as not promotable"), node.minion_id
    _, standby = by_role(lab)
    wait_for(
        lambda: recorded_promotable(lab, standby.minion_id),
        timeout=60,
        what="the old primary recorded promotable again",
    )


def test_a_stopped_standby_holds_commits_until_recorded_behind_and_the_rejoin_makes_it_promotable(
    synchronous_on, salt_run
):
    lab = synchronous_on
    primary, standby = by_role(lab)
    before = len(alerts(lab))
    lab.stop_db(standby)
    stopped_at = time.monotonic()
    done, failed = threading.Event(), []

    def commit():
        try:
            primary.sql("INSERT INTO auth_events (node, client_seq) VALUES ('on-wait', 1)", dbname=APP_DB)
            done.set()
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            failed.append(err)

    threading.Thread(target=commit, daemon=True).start()
    bound = lease.LeaseSettings(**AUTOMATIC).sync_lost_bound
    assert not done.wait(3) and not failed, failed  # no standby acknowledges: the commit waits
    assert done.wait(bound + 60), failed or f"the commit still waits {bound + 60:g} s after the standby stopped"
    waited = time.monotonic() - stopped_at
    # acknowledged only once the master had recorded the standby as behind
    assert recorded_since(lab, before, standby.minion_id, "recorded as not promotable"), alerts(lab)[before:]
    assert names(primary) == ""
    print(
        f"\nsynchronous on: the commit waited {waited:.1f} s for the stopped standby (bound {bound:g} s + Salt's rounds)"
    )

    marker = len(alerts(lab))
    rejoin = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=600)
    assert rejoin.returncode == 0, rejoin.stdout
    wait_for(lambda: sync_column(salt_run)[standby.minion_id] == "sync", timeout=120, what="the rejoined standby sync")
    wait_for(
        lambda: recorded_since(lab, marker, "promotable", "holds every commit"),
        timeout=120,
        what="the standby recorded promotable again",
    )
    assert names(primary) == f'"{standby.minion_id}"'
    count = "SELECT count(*) FROM auth_events WHERE node = 'on-wait'"
    assert standby.sql(count, dbname=APP_DB)[0][0] == 1
    status = json.loads(salt_run.run("mfa_ha.status", _timeout=60).stdout)
    assert status["healthy"] is True, status
