"""The operator's view after a failed switch: who did not answer, and where each node is."""

from mfa_ha import status
from mfa_ha.pillar import validate_nodes

NODES = validate_nodes({"server_prod": {"address": "10.0.0.1"}, "server_dr": {"address": "10.0.0.2"}})


def test_a_failed_switch_names_the_silent_node_and_every_nodes_state():
    answers = status.switch_answers({"data": {"master": {"salt_|-switch_|-pgrepl.switchover_|-function": {
        "__id__": "switch", "changes": {"ret": {"server_prod": "SwitchoverAborted: ...",
                            "server_dr": False}}}}}})  # how salt.function records no return
    gathered = {
        "server_prod": {"pgrepl.status": {"running": False, "role": "primary", "state": "stopped",
                                          "timeline": 3, "checkpoint_lsn": "0/3000028"},
                        "pmfad.status": {"state": "stopped"}},
        "server_dr": {"pgrepl.status": "no answer", "pmfad.status": "no answer"},
    }
    lines = status.after_failure(NODES, answers, gathered)
    assert lines[0] == "no answer to the switch from server_dr"
    assert "server_prod now: primary, stopped, pmfad stopped" in lines
    assert "server_dr now: ?, no answer (no answer), pmfad ?" in lines
