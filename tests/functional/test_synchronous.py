"""Synchronous replication (``mfa_ha:replication:synchronous: strict``) on the lab's two real
servers: each node names the other as its synchronous standby, so a commit on the primary
returns only once the standby holds it, waits while the standby is down, and a switchover
leaves the new primary waiting for the old one, with no step of its own."""

import copy
import threading

import pytest
from salt.exceptions import SaltInvocationError

from mfa_ha_lab.lab import APP_DB
from mfa_ha_lab.measure import direct_switchover
from tests.support import node_loaders, streaming_pair_as_nodes, synchronous_lab, wait_for


@pytest.fixture(scope="module")
def lab():
    with synchronous_lab("strict") as lab:
        yield lab


@pytest.fixture(scope="module")
def pair(salt_factories, lab):
    return streaming_pair_as_nodes(salt_factories, lab)


def setting(node, name):
    return node.sql(f"SHOW {name}")[0][0]


def sync_states(node) -> dict:
    return dict(node.sql("SELECT application_name, sync_state FROM pg_stat_replication"))


def test_strict_names_the_other_node_on_each_and_a_clone_keeps_its_own(lab, pair):
    prod, dr = pair
    # set up before dr existed, prod named no one (every commit of the setup would have waited)
    assert setting(lab.prod, "synchronous_standby_names") == ""
    assert prod.pgrepl.settings()["differ"]["synchronous_standby_names"]["new"] == '"server_dr"'  # dr streams now
    prod.pgrepl.apply_settings()
    for loaders in (prod, dr):
        assert loaders.pgrepl.settings()["differ"] == {}
    assert setting(lab.prod, "synchronous_standby_names") == '"server_dr"'
    # dr was cloned from prod, whose files name dr: the clone re-wrote dr's own
    assert setting(lab.dr, "synchronous_standby_names") == '"server_prod"'
    wait_for(lambda: sync_states(lab.prod).get("server_dr") == "sync", what="dr a synchronous standby")


def test_a_commit_waits_while_the_standby_is_down_and_returns_once_it_streams(lab, pair):
    prod, dr = pair
    dr.pgrepl.stop()
    done = {}

    def commit():
        lab.prod.sql("INSERT INTO auth_events (node, client_seq) VALUES ('sync-wait', 1)", dbname=APP_DB)
        done["at"] = True

    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    wait_for(
        lambda: lab.prod.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0] == 1,
        what="the commit waiting for the standby",
    )
    writer.join(1)
    assert "at" not in done  # not acknowledged while no standby holds it
    dr.pgrepl.start()
    writer.join(30)
    assert done.get("at") is True
    count = "SELECT count(*) FROM auth_events WHERE node = 'sync-wait'"
    wait_for(lambda: lab.dr.sql(count, dbname=APP_DB)[0][0] == 1, what="the row on dr")


def test_a_switchover_leaves_the_new_primary_waiting_for_the_old_one(lab, pair):
    ok, parts, errors = direct_switchover(lab, lab.dr.minion_id)()
    assert ok, errors
    assert parts["server_prod"]["part"] == "old primary" and parts["server_dr"]["part"] == "new primary"
    assert setting(lab.dr, "synchronous_standby_names") == '"server_prod"'
    wait_for(lambda: sync_states(lab.dr).get("server_prod") == "sync", what="prod a synchronous standby of dr")
    lab.dr.sql("INSERT INTO auth_events (node, client_seq) VALUES ('after-switch', 1)", dbname=APP_DB)
    count = "SELECT count(*) FROM auth_events WHERE node = 'after-switch'"
    wait_for(lambda: lab.prod.sql(count, dbname=APP_DB)[0][0] == 1, what="the row on prod")


def test_a_weaker_commit_level_or_an_unknown_mode_is_refused_naming_the_key(lab, salt_factories):
    for i, (replication, named) in enumerate(
        (
            ({"synchronous_commit": "local"}, "mfa_ha:replication:synchronous_commit"),
            ({"synchronous": "sometimes"}, "mfa_ha:replication:synchronous"),
        )
    ):
        pillar = copy.deepcopy(lab.pillar(lab.prod))
        pillar["mfa_ha"]["replication"].update(replication)
        loaders = node_loaders(salt_factories, lab, lab.prod, pillar, variant=f"-bad-sync{i}").modules
        with pytest.raises(SaltInvocationError, match=named):
            loaders.pgrepl.settings()


def test_on_without_the_witness_is_a_pillar_problem(lab, salt_factories):
    pillar = copy.deepcopy(lab.pillar(lab.prod))
    pillar["mfa_ha"]["replication"]["synchronous"] = True  # YAML's bare on
    loaders = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-on-alone").modules
    problems = loaders.pgrepl.pillar_problems()
    assert any("synchronous: 'on' needs mfa_ha:failover:automatic: true" in p for p in problems), problems
