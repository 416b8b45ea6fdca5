"""Synchronous replication's pillar and the settings each node gets from it (pure logic)."""

import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.monitoring import status
from mfa_ha.postgres import synchronous
from mfa_ha.postgres.config import replication_config

NODES = {"server_prod": {"slot": "server_prod"}, "server_dr": {"slot": "server_dr"}}


def test_strict_names_the_other_node_and_the_commit_level():
    cfg = replication_config({"synchronous": "strict", "synchronous_commit": "remote_apply"})
    assert synchronous.node_settings(cfg, NODES, "server_prod") == {
        "synchronous_standby_names": '"server_dr"',
        "synchronous_commit": "remote_apply",
    }
    assert synchronous.node_settings(cfg, NODES, "server_dr")["synchronous_standby_names"] == '"server_prod"'


def test_with_more_peers_any_one_of_them_acknowledges():
    cfg = replication_config({"synchronous": "strict"})
    nodes = {**NODES, "server_3": {"slot": "server_3"}}
    assert synchronous.node_settings(cfg, nodes, "server_prod")["synchronous_standby_names"] == (
        'ANY 1 ("server_3", "server_dr")'
    )


@pytest.mark.parametrize("value", [None, False, "off", "OFF"])
def test_off_manages_nothing_but_keeps_the_server_from_waiting(value):
    cfg = replication_config({"synchronous": value})
    assert cfg.synchronous == "off"
    assert synchronous.node_settings(cfg, NODES, "server_prod") == {}
    assert synchronous.wanted_when_off(cfg.synchronous) == {"synchronous_standby_names": ""}
    assert synchronous.wanted_when_off("strict") == {}


@pytest.mark.parametrize(
    ("replication", "message"),
    [
        ({"synchronous": "always"}, "synchronous: 'always' is not one of off, on, strict"),
        ({"synchronous": "strict", "synchronous_commit": "local"}, "synchronous_commit: 'local' is not one of"),
        ({"synchronous": "strict", "synchronous_commit": "remote_write"}, "synchronous_commit: 'remote_write'"),
    ],
)
def test_a_mode_or_level_not_offered_is_refused_naming_the_key(replication, message):
    with pytest.raises(InvalidInput, match=f"mfa_ha:replication:{message}"):
        replication_config(replication)


def test_status_shows_each_standbys_sync_state_as_the_primary_sees_it():
    nodes = {
        "server_prod": {"address": "198.18.1.1", "port": 5432},
        "server_dr": {"address": "198.18.2.1", "port": 5432},
    }
    primary = {
        "role": "primary",
        "running": True,
        "state": "running",
        "current_lsn": "0/3000000",
        "replicas": [{"application_name": "server_dr", "sync_state": "sync"}],
    }
    standby = {"role": "standby", "running": True, "state": "running", "replay_lsn": "0/3000000", "receiver": {}}
    found = status.rows(nodes, {"server_prod": {"pgrepl.status": primary}, "server_dr": {"pgrepl.status": standby}})
    by_node = {row["node"]: row for row in found}
    assert by_node["server_dr"]["sync_state"] == "sync"
    assert "sync_state" not in by_node["server_prod"]
