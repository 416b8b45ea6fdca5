"""The operator's view after a failed switch: who did not answer, and where each node is."""

from mfa_ha.adapters.pillar import validate_nodes
from mfa_ha.monitoring import status

NODES = validate_nodes({"server_prod": {"address": "10.0.0.1"}, "server_dr": {"address": "10.0.0.2"}})


def test_a_failed_switch_names_the_silent_node_and_every_nodes_state():
    answers = {"server_prod": "failed: SwitchoverAborted: ..."}  # server_dr's "no answer" left out, as the runner does
    gathered = {
        "server_prod": {
            "pgrepl.status": {
                "running": False,
                "role": "primary",
                "state": "stopped",
                "timeline": 3,
                "checkpoint_lsn": "0/3000028",
            },
            "pmfad.status": {"state": "stopped"},
        },
        "server_dr": {"pgrepl.status": "no answer", "pmfad.status": "no answer"},
    }
    lines = status.after_failure(NODES, answers, gathered)
    assert lines[0] == "no answer to the switch from server_dr"
    assert "server_prod now: primary, stopped, pmfad stopped" in lines
    assert "server_dr now: ?, no answer, pmfad ?" in lines


def _node(role, running=True, receiver=None, pmfad="stopped", **pg):
    status = {"role": role, "running": running, "state": "running" if running else "stopped", "timeline": 1, **pg}
    if receiver:
        status["receiver"] = receiver
    return {"pgrepl.status": status, "pmfad.status": {"state": pmfad}}


PRIMARY = _node("primary", pmfad="running", current_lsn="0/5000000", slots=[{"slot_name": "server_dr", "active": True}])


def test_a_healthy_pair_is_values_with_no_problems_and_exit_code_zero():
    streaming = {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432, "slot_name": "server_dr"}
    found = status.view(
        NODES,
        {
            "server_prod": PRIMARY,
            "server_dr": _node(
                "standby", receiver=streaming, replay_lsn="0/5000000", receive_lsn="0/5000000", lag_seconds=0.1
            ),
        },
        1 << 24,
    )
    assert found["healthy"] is True and found["retcode"] == 0
    dr = next(r for r in found["nodes"] if r["node"] == "server_dr")
    assert dr["upstream"] == "10.0.0.1:5432" and dr["lag_bytes"] == 0 and dr["port"] == 5432
    assert dr["problems"] == [] and isinstance(dr["lag_bytes"], int) and dr["receiver"] == "streaming"
    assert "cluster: healthy" in status.table(found) and "10.0.0.1:5432" in status.table(found)


def test_a_standby_streaming_from_the_wrong_host_is_unhealthy():
    elsewhere = {"status": "streaming", "sender_host": "10.0.0.9", "sender_port": 5432, "slot_name": "server_dr"}
    found = status.view(
        NODES,
        {"server_prod": PRIMARY, "server_dr": _node("standby", receiver=elsewhere, replay_lsn="0/5000000")},
        1 << 24,
    )
    assert found["healthy"] is False and found["retcode"] == 1
    dr = next(r for r in found["nodes"] if r["node"] == "server_dr")
    assert dr["problems"] == ["streams from 10.0.0.9:5432, not from the primary 10.0.0.1:5432"]
    assert "UNHEALTHY" in status.table(found)


def test_each_unhealthy_condition_is_named():
    lagging = {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432}
    cases = {
        "not streaming (receiver not running)": {"server_prod": PRIMARY, "server_dr": _node("standby")},
        "bytes behind": {
            "server_prod": PRIMARY,
            "server_dr": _node("standby", receiver=lagging, replay_lsn="0/4000000"),
        },
        "pmfad runs on a node that is not the primary": {
            "server_prod": PRIMARY,
            "server_dr": _node("standby", receiver=lagging, replay_lsn="0/5000000", pmfad="running"),
        },
        "SPLIT BRAIN: 2 primaries": {"server_prod": PRIMARY, "server_dr": PRIMARY},
        "no primary": {"server_prod": _node("primary", running=False), "server_dr": _node("standby")},
        "no answer": {"server_prod": PRIMARY, "server_dr": {"pgrepl.status": "no answer"}},
    }
    for problem, gathered in cases.items():
        found = status.view(NODES, gathered, 1 << 20)
        named = [p for row in found["nodes"] for p in row["problems"]]
        assert found["retcode"] == 1 and any(problem in p for p in named), (problem, named)


def test_an_inactive_slot_left_on_a_standby_is_named_with_the_wal_it_holds():
    streaming = {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432, "slot_name": "server_dr"}
    standby = _node(
        "standby",
        receiver=streaming,
        replay_lsn="0/5000000",
        receive_lsn="0/5000000",
        lag_seconds=0.1,
        slots=[{"slot_name": "server_prod", "active": False, "retained_bytes": 1_690_000_000}],
    )
    found = status.view(NODES, {"server_prod": PRIMARY, "server_dr": standby}, 1 << 24)
    assert found["healthy"] is False and found["retcode"] != 0
    dr = next(row for row in found["nodes"] if row["node"] == "server_dr")
    assert "slot server_prod inactive on a standby, holding 1690000000 bytes of WAL" in "; ".join(dr["problems"])


def test_after_refused_prechecks_no_node_is_said_to_have_missed_the_switch():
    gathered = {
        "server_prod": {
            "pgrepl.status": {
                "running": True,
                "role": "primary",
                "state": "running",
                "timeline": 1,
                "current_lsn": "0/5000000",
            },
            "pmfad.status": {"state": "running"},
        },
        "server_dr": {"pgrepl.status": "no answer", "pmfad.status": "no answer"},
    }
    lines = status.after_failure(NODES, None, gathered)  # None: the switch job never ran
    assert not any("no answer to the switch" in line for line in lines)
    assert "server_prod now: primary, running, pmfad running" in lines
