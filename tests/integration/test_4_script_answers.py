"""What a script reads from the real ``salt-run ... --out=json``: exactly one JSON document on
stdout for every runner verb (progress on stderr), an exit code that says done (0), failed
(1), refused (2) or bad input (3), and no traceback; a node whose minion key is not accepted
is named in that document."""

import json
import os

import pytest

from mfa_ha.adapters.master import EXIT_BAD_INPUT, EXIT_DONE, EXIT_REFUSED
from tests.support import wait_for

pytestmark = pytest.mark.integration


def answer(salt_run, *args, **kwargs):
    """(exit code, the one JSON document on stdout)."""
    ret = salt_run.run(*args, **kwargs)
    assert "Traceback" not in ret.stdout + ret.stderr, ret.stdout + ret.stderr
    try:
        document = json.loads(ret.stdout)  # fails on a second document or a stray line
    except ValueError as err:
        raise AssertionError(f"stdout is not one JSON document ({err}):\n{ret.stdout}") from None
    return ret.returncode, document


def roles(salt_run):
    code, found = answer(salt_run, "mfa_ha.primary")
    assert code == 0, found
    primary = found["primary"]
    return primary, ({"server_prod", "server_dr"} - {primary}).pop()


def test_every_verb_prints_one_document_with_its_exit_code(pair, salt_run):
    primary, standby = roles(salt_run)
    code, status = answer(salt_run, "mfa_ha.status")
    assert code == EXIT_DONE and status["healthy"] is True
    code, precheck = answer(salt_run, "mfa_ha.precheck", standby)
    assert code == EXIT_DONE and precheck["action"] == "switch"
    code, rejoin = answer(salt_run, "mfa_ha.rejoin_decision")
    assert code == EXIT_DONE and rejoin["primary"] == primary
    code, resume = answer(salt_run, "mfa_ha.resume", standby)
    assert code == EXIT_DONE and resume["resumed"] is False
    code, failover = answer(salt_run, "mfa_ha.failover_precheck", standby)
    assert code == EXIT_REFUSED and failover["action"] == "refuse", failover
    code, root = answer(salt_run, "mfa_ha.formula_root")
    assert code == EXIT_DONE
    assert os.path.isfile(os.path.join(root["formula_root"], "mfa_ha", "orch", "switchover.sls"))


def test_a_missing_argument_and_a_bad_one_are_bad_input(pair, salt_run):
    code, missing = answer(salt_run, "mfa_ha.switchover")
    assert code == EXIT_BAD_INPUT and "target" in missing["error"], missing
    code, typo = answer(salt_run, "mfa_ha.fence_others", "server_dr_typo")
    assert code == EXIT_BAD_INPUT and "server_dr_typo" in typo["error"], typo
    assert all(node.is_running() for node in pair.nodes)  # nothing was fenced
    code, bad = answer(salt_run, "mfa_ha.precheck", "server_dr", nodes={"server_dr": {"address": "not an address!"}})
    assert code == EXIT_BAD_INPUT and "mfa_ha:nodes:server_dr:address" in bad["error"], bad


def test_a_switchover_to_the_primary_is_done_and_one_refused_exits_2_claiming_no_switch(pair, salt_run):
    primary, _ = roles(salt_run)
    code, done = answer(salt_run, "mfa_ha.switchover", primary, _timeout=300)
    assert code == EXIT_DONE and done["ok"] is True and not done["timings"], done  # nothing to do
    code, refused = answer(salt_run, "mfa_ha.switchover", "server_nobody", _timeout=300)
    assert code == EXIT_REFUSED and refused["ok"] is False, refused
    assert not any("no answer to the switch" in line for line in refused["after"]), refused["after"]


def test_a_node_without_an_accepted_key_is_an_answer_in_the_document(pair, salt_run):
    primary, standby = roles(salt_run)
    nodes = {node.minion_id: {"address": node.address, "port": node.port} for node in pair.nodes}
    nodes["server_spare"] = {"address": "127.0.0.9"}  # in the override only: no minion has this id
    code, refused = answer(salt_run, "mfa_ha.precheck", standby, nodes=nodes)
    assert code == EXIT_REFUSED, refused
    assert "server_spare" in refused["summary"] and "no accepted minion key" in refused["summary"], refused


def test_salt_documents_every_runner_function_and_none_is_the_engines(pair, salt_run):
    code, docs = answer(salt_run, "doc.runner")
    ours = {name: text for name, text in docs.items() if name.startswith("mfa_ha.")}
    assert code == 0 and {"mfa_ha.status", "mfa_ha.switchover", "mfa_ha.precheck"} <= set(ours)
    assert not [name for name in ours if "witness" in name or "lease_round" in name]
    assert [name for name, text in ours.items() if "CLI Example" not in text] == []


def test_the_history_tells_what_happened_and_falls_back_to_the_timelines(pair, salt_run, master):
    primary, standby = roles(salt_run)
    code, switched = answer(salt_run, "mfa_ha.switchover", standby, _timeout=300)
    assert code == EXIT_DONE, switched
    answer(salt_run, "mfa_ha.switchover", "server_nobody", _timeout=300)  # refused

    def recorded():
        return {(r["event"], r["outcome"], r.get("node") or r.get("target")) for r in history(salt_run)["entries"]}

    wait_for(lambda: ("role change", "now primary", standby) in recorded(), timeout=90, what="the role change recorded")
    events = recorded()
    assert ("switchover", "done", standby) in events and ("switchover", "refused", "server_nobody") in events
    assert ("role change", "now standby", primary) in events

    path = os.path.join(master.config["cachedir"], "mfa_ha", "history.jsonl")
    os.rename(path, path + ".away")  # the master's records gone
    try:
        fallback = history(salt_run)
    finally:
        os.rename(path + ".away", path)
    assert fallback["source"] == "timelines" and fallback["entries"], fallback
    newest = fallback["entries"][-1]
    assert newest["event"] == "promotion" and set(newest["known_to"]) == {primary, standby}, fallback


def history(salt_run):
    code, found = answer(salt_run, "mfa_ha.history", limit=1000)
    assert code == 0, found
    return found
