"""The switchover and failover prechecks are pure decisions: each refusal names the check
and what was measured."""

import copy

import pytest

from mfa_ha import roles
from mfa_ha.adapters.pillar import validate_nodes
from mfa_ha.pair import failover, switchover
from mfa_ha.pair import standby as pgstandby
from mfa_ha.pair.service_address import Hooks

NODES = validate_nodes({"server_prod": {"address": "10.0.0.1"}, "server_dr": {"address": "10.0.0.2"}})
PRIMARY = {
    "running": True,
    "role": "primary",
    "state": "running",
    "system_identifier": "71",
    "rewind_ready": True,
    "current_lsn": "0/3000100",
    "peers": {"server_dr": "standby"},
    "replicas": [{"application_name": "server_dr", "lag_bytes": 120}],
}
STANDBY = {
    "running": True,
    "role": "standby",
    "state": "running",
    "system_identifier": "71",
    "receiver": {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432, "slot_name": "server_dr"},
}


def statuses(**changes):
    found = {"server_prod": copy.deepcopy(PRIMARY), "server_dr": copy.deepcopy(STANDBY)}
    for node, value in changes.items():
        found[node] = value if not isinstance(value, dict) else {**found[node], **value}
    return found


def test_a_healthy_pair_may_switch():
    decision = switchover.decide(statuses(), NODES, "server_dr", 1024)
    assert decision.action == "switch" and decision.primary == "server_prod"
    assert all(c.ok for c in decision.checks) and len(decision.checks) >= 8


@pytest.mark.parametrize(
    "changes, check, measured",
    [
        ({"server_dr": "no answer"}, "every node answers", "no answer from server_dr"),
        (
            {"server_prod": {"peers": {"server_dr": "unreachable"}}},
            "the old primary reaches the target",
            "server_prod sees server_dr as unreachable",
        ),
        ({"server_dr": {"running": False, "state": "stopped"}}, "target is a running standby", "server_dr: stopped"),
        ({"server_dr": {"system_identifier": "99"}}, "system identifier", "99 vs 71"),
        (
            {
                "server_dr": {
                    "receiver": {
                        "status": "waiting",
                        "sender_host": "10.0.0.1",
                        "sender_port": 5432,
                        "slot_name": "server_dr",
                    }
                }
            },
            "streams from the primary",
            "receiver waiting",
        ),
        ({"server_dr": {"receiver": {**STANDBY["receiver"], "slot_name": "other"}}}, "through its slot", "'other'"),
        (
            {"server_prod": {"replicas": [{"application_name": "server_dr", "lag_bytes": 5000}]}},
            "max_lag_bytes",
            "5000 bytes behind, limit 1024",
        ),
        ({"server_prod": {"rewind_ready": False}}, "pg_rewind possible", "wal_log_hints and data_checksums off"),
    ],
)
def test_each_failed_precheck_is_named_with_its_measurement(changes, check, measured):
    decision = switchover.decide(statuses(**changes), NODES, "server_dr", 1024)
    assert decision.action == "refuse"
    failed = [c for c in decision.failed if check in c.name]
    assert failed and measured in failed[0].measured, decision.summary


def test_two_primaries_refuse_and_a_done_switch_only_finishes():
    both = statuses(server_dr={"role": "primary"})
    assert switchover.decide(both, NODES, "server_dr", 1024).action == "refuse"
    done = statuses(server_prod={"running": False, "state": "stopped"}, server_dr={"role": "primary"})
    assert switchover.decide(done, NODES, "server_dr", 1024).action == "finish"


def test_unknown_target_is_refused():
    decision = switchover.decide(statuses(), NODES, "server_x", 1024)
    assert decision.action == "refuse" and "server_x" in decision.summary


def test_failover_refuses_while_the_old_primary_answers_as_primary():
    decision = failover.decide(statuses(), NODES, "server_dr", confirm_primary_lost=True)
    assert decision.action == "refuse" and "server_prod still accepts writes" in decision.summary


def test_failover_needs_confirmation_when_the_old_primary_is_silent():
    lost = statuses(server_prod="no answer")
    assert failover.decide(lost, NODES, "server_dr", False).action == "refuse"
    assert "confirm_primary_lost" in failover.decide(lost, NODES, "server_dr", False).summary
    assert failover.decide(lost, NODES, "server_dr", True).action == "failover"


def test_failover_when_the_old_primary_answers_but_its_server_is_down():
    down = statuses(server_prod={"running": False, "state": "stopped"})
    assert failover.decide(down, NODES, "server_dr", False).action == "failover"


def test_service_address_hooks_run_without_a_shell_and_name_their_key_on_failure(tmp_path):
    from mfa_ha.errors import CommandFailed, InvalidInput

    hooks = Hooks.from_pillar({"acquire": f"touch {tmp_path}/{{node}}", "release": "false"})
    hooks.run("acquire", "server_dr")
    assert (tmp_path / "server_dr").exists()
    with pytest.raises(CommandFailed, match="mfa_ha:service_address:release failed"):
        hooks.run("release", "server_prod")
    assert Hooks.from_pillar("none").run("acquire", "x") is None
    with pytest.raises(InvalidInput, match="mfa_ha:service_address"):
        Hooks.from_pillar({"acquire": "x", "move": "y"})


# -- rejoin after a split brain -----------------------------------------------------------------
from mfa_ha.pair.failover import rejoin_decision  # noqa: E402

REJOIN_NODES = {"server_prod": {}, "server_dr": {}}
PRIMARY_A = {"running": True, "role": "primary", "timeline": 1, "current_lsn": "0/5000060"}
PRIMARY_B = {"running": True, "role": "primary", "timeline": 2, "current_lsn": "0/6000100"}


def test_rejoin_refuses_a_split_brain_naming_both_primaries_and_their_positions():
    d = rejoin_decision({"server_prod": PRIMARY_A, "server_dr": PRIMARY_B}, REJOIN_NODES)
    assert d["action"] == "refuse" and d["reason"].startswith("SPLIT BRAIN")
    assert "server_prod (timeline 1, wrote up to 0/5000060)" in d["reason"]
    assert "server_dr (timeline 2, wrote up to 0/6000100)" in d["reason"] and '"keep"' in d["reason"]


def test_rejoin_with_keep_discards_the_other_primary_first():
    d = rejoin_decision({"server_prod": PRIMARY_A, "server_dr": PRIMARY_B}, REJOIN_NODES, keep="server_prod")
    assert (d["action"], d["primary"], d["rejoining"], d["discard"]) == (
        "rejoin",
        "server_prod",
        ["server_dr"],
        ["server_dr"],
    )


def test_rejoin_refuses_a_keep_that_does_not_accept_writes():
    standby = {"running": True, "role": "standby"}
    d = rejoin_decision({"server_prod": PRIMARY_A, "server_dr": standby}, REJOIN_NODES, keep="server_dr")
    assert d["action"] == "refuse" and "mfa_ha:keep: server_dr does not accept writes" in d["reason"]


def test_rejoin_of_a_healthy_pair_reattaches_the_others_and_discards_nothing():
    stopped = {"running": False, "role": "primary"}
    d = rejoin_decision({"server_prod": stopped, "server_dr": PRIMARY_B}, REJOIN_NODES)
    assert (d["action"], d["primary"], d["rejoining"], d["discard"]) == ("rejoin", "server_dr", ["server_prod"], [])


def test_a_switch_whose_target_failed_is_resumed_not_refused_blindly():
    stopped_old = {
        "running": False,
        "role": "primary",
        "state": "stopped",
        "cluster_state": "shut down",
        "checkpoint_lsn": "0/3000028",
    }
    dead_target = {"running": False, "role": "standby", "state": "stopped", "cluster_state": "in archive recovery"}
    d = switchover.decide(statuses(server_prod=stopped_old, server_dr=dead_target), NODES, "server_dr", 1024)
    assert (d.action, d.primary) == ("resume", "server_prod") and "comes back as the primary" in d.summary
    crashed_old = {**stopped_old, "cluster_state": "in production"}  # not shut down cleanly: no proof
    d = switchover.decide(statuses(server_prod=crashed_old, server_dr=dead_target), NODES, "server_dr", 1024)
    assert d.action == "refuse"
    promoted = {**dead_target, "role": "primary"}  # the target may have taken writes: no resume
    d = switchover.decide(statuses(server_prod=stopped_old, server_dr=promoted), NODES, "server_dr", 1024)
    assert d.action == "refuse"


def test_rejoin_names_a_silent_node_and_suggests_no_failover():
    standby = {"running": True, "role": "standby", "timeline": 2}
    d = rejoin_decision({"server_prod": "no answer", "server_dr": standby}, REJOIN_NODES)
    assert d["action"] == "refuse" and "server_prod is unknown (no answer from server_prod" in d["reason"]
    assert "failover" not in d["reason"] and "not a primary" not in d["reason"]


def test_rejoin_with_no_primary_offers_to_keep_the_fenced_nodes_writes_or_fail_over():
    fenced = {"running": False, "role": "standby", "timeline": 1, "checkpoint_lsn": "0/5000060"}
    standby = {"running": True, "role": "standby", "timeline": 1}
    d = rejoin_decision({"server_prod": fenced, "server_dr": standby}, REJOIN_NODES)
    assert d["action"] == "refuse" and "start the primary first" not in d["reason"]
    keep, lose = d["reason"].split("; or ")
    assert "keep the writes of server_prod" in keep and "salt server_prod pgrepl.start" in keep
    assert '"target": "server_prod"' in keep
    assert "fail over to server_dr, losing" in lose and '"target": "server_dr"' in lose


def test_a_switchover_refused_for_a_nodes_pillar_error_names_the_key():
    broken = "failed: mfa_ha:postgres:data_dir: must be an absolute path, got 'mfadb'"
    d = switchover.decide(statuses(server_prod=broken), NODES, "server_dr", 1024)
    assert d.action == "refuse"
    assert "server_prod failed: mfa_ha:postgres:data_dir: must be an absolute path" in d.summary
    assert "no answer from server_prod" not in d.summary
    assert "unknown: server_prod" in d.summary


def test_only_a_running_primary_accepts_writes_and_error_texts_say_nothing():
    answers = {
        "a": {"running": True, "role": "primary"},
        "b": {"running": False, "role": "primary"},  # stopped: would start as a primary, accepts nothing now
        "c": {"running": True, "role": "standby"},
        "d": "no answer",
        "e": None,
        "f": {"running": True, "role": "primary"},
    }
    assert roles.primaries(answers) == ["a", "f"]
    assert not roles.accepts_writes("failed: primary") and roles.accepts_writes(answers["a"])


@pytest.mark.parametrize(
    "result, method",
    [
        ({"done": ["stop", "clone", "start"]}, "cloned"),
        ({"done": ["rewind", "start"], "rewind_method": "basebackup", "cloned_because": "pg_rewind failed"}, "cloned"),
        ({"done": ["rewind", "start"], "rewind_method": "rewind"}, "rewound"),
        ({"done": ["configure", "start"]}, "re-attached as it was"),
        ({"done": []}, "already streaming"),
    ],
)
def test_what_a_re_attach_did_is_named(result, method):
    found = pgstandby.outcome({**result, "receiver": {"received_tli": 4}})
    assert found["method"] == method and found["timeline"] == 4 and found["steps"] == result["done"]
