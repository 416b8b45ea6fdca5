"""The runner's own branches: every answer is one document with a documented exit code, a
missing argument or a bad input is a one-line error (no traceback), progress leaves stdout
alone under ``--out=json``, and a node no accepted key matches is named as such."""

import time

import pytest

from mfa_ha import timing
from mfa_ha.adapters import master
from mfa_ha.errors import CommandFailed, InvalidPillar, MfaHaError
from mfa_ha.pair import switchover as sw
from tests.support import load_face


@pytest.fixture
def runner():
    face = load_face("runners", "mfa_ha")
    face.__context__ = {}
    face.__opts__ = {"output": "json"}
    return face


def test_a_missing_argument_is_an_error_with_a_failing_exit_code(runner):
    answer = runner.switchover()
    assert answer["retcode"] == master.EXIT_BAD_INPUT == runner.__context__["retcode"]
    assert "target" in answer["error"] and "doc.runner mfa_ha.switchover" in answer["error"]


def test_a_bad_pillar_is_bad_input_and_a_failure_is_a_failure(runner, monkeypatch):
    def bad_pillar():
        raise InvalidPillar("invalid mfa_ha pillar:\n- mfa_ha:nodes: must map each minion id to its address")

    monkeypatch.setattr(runner, "_pillar", bad_pillar)
    answer = runner.status()
    assert answer["retcode"] == master.EXIT_BAD_INPUT and "mfa_ha:nodes" in answer["error"]

    def unreachable(*args, **kwargs):
        raise CommandFailed("pg_ctl failed")

    monkeypatch.setattr(runner, "_pillar", lambda: {"nodes": {"server_dr": {"address": "127.0.0.2"}}})
    monkeypatch.setattr(runner, "_gather", unreachable)
    failed = runner.primary()
    assert failed == {"error": "pg_ctl failed", "retcode": master.EXIT_FAILED}


def test_a_refused_precheck_exits_2_and_a_passed_one_0(runner, monkeypatch):
    nodes = {"server_prod": {"address": "127.0.0.1"}, "server_dr": {"address": "127.0.0.2"}}
    monkeypatch.setattr(runner, "_pillar", lambda: {"nodes": nodes})
    monkeypatch.setattr(runner, "validate_pillar", lambda pillar: nodes)
    monkeypatch.setattr(runner, "_gather", lambda nodes: {n: {"pgrepl.status": master.NO_KEY} for n in nodes})
    refused = runner.precheck("server_dr")
    assert refused["action"] == "refuse" and refused["retcode"] == master.EXIT_REFUSED
    assert "no accepted minion key" in refused["summary"]


def test_progress_goes_to_stderr_under_a_machine_readable_outputter(runner, capsys):
    runner._progress("prechecks, then the switch")
    out, err = capsys.readouterr()
    assert out == "" and "prechecks, then the switch" in err


def test_silent_answers_are_told_apart_from_failures():
    assert master.silent(master.NO_ANSWER) and master.silent(master.NO_KEY)
    assert not master.silent("failed: pg_ctl failed") and not master.silent({"running": True})


def test_only_nodes_without_an_accepted_key_are_named_so(monkeypatch):
    class Keys:
        def __init__(self, opts):
            pass

        def check_minions(self, targets, tgt_type):
            assert tgt_type == "list"
            return {"minions": [t for t in targets if t == "server_prod"]}

    monkeypatch.setattr(master.salt.utils.minions, "CkMinions", Keys)
    named = master._named_unaccepted({}, {"server_prod": "no answer", "server_dr": "no answer", "x": {"ok": 1}})
    assert named == {"server_prod": "no answer", "server_dr": master.NO_KEY, "x": {"ok": 1}}


@pytest.mark.parametrize(
    "wanted, switch_back, steps",
    [
        ({"a", "b"}, False, [("restart", "b", "a"), ("switch", "b", "a"), ("restart", "a", "b")]),
        (
            {"a", "b"},
            True,
            [("restart", "b", "a"), ("switch", "b", "a"), ("restart", "a", "b"), ("switch", "a", "b")],
        ),
        ({"b"}, True, [("restart", "b", "a")]),  # only the standby waits: no switchover at all
        ({"a"}, False, [("switch", "b", "a"), ("restart", "a", "b")]),
        (set(), True, []),
    ],
)
def test_a_rolling_restart_restarts_only_standbys_and_switches_only_for_the_primary(runner, wanted, switch_back, steps):
    assert runner._restart_steps("a", "b", wanted, switch_back) == steps


def test_any_failure_inside_a_verb_fails_it_and_a_malformed_argument_is_bad_input(runner, monkeypatch):
    nodes = {"server_prod": {"address": "127.0.0.1"}, "server_dr": {"address": "127.0.0.2"}}
    monkeypatch.setattr(runner, "_pillar", lambda: {"nodes": nodes})
    malformed = runner.fence_others("server_dr", lost=[["server_prod"]])  # unhashable: a TypeError inside
    assert malformed["retcode"] == master.EXIT_BAD_INPUT, malformed

    def crash(*args, **kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(runner, "_gather", crash)
    failed = runner.primary()
    assert failed == {"error": "RuntimeError: unexpected (the master log has the details)", "retcode": 1}


NODES = {"server_prod": {"address": "127.0.0.1", "port": 5432}, "server_dr": {"address": "127.0.0.2", "port": 5432}}


@pytest.fixture
def recorded(runner, monkeypatch):
    """The runner with two nodes, ``server_prod`` answering ``last_rejoin`` with what the test
    puts in ``node``; the history entries it made land in ``entries``."""
    node, entries = {}, []
    monkeypatch.setattr(runner, "_pillar", lambda: {"nodes": NODES})
    monkeypatch.setattr(
        runner, "_returns_within", lambda targets, fn, args, s: {t: node.get("answer") for t in targets}
    )
    monkeypatch.setattr(
        master, "remember", lambda opts, event, outcome, summary, **d: entries.append((event, outcome, d))
    )
    return node, entries


def test_a_rejoin_is_recorded_with_what_the_node_did(runner, recorded):
    node, entries = recorded
    node["answer"] = {"method": "rewound", "steps": ["rewind", "start"], "divergent_transactions": 12, "at": 200.0}
    answer = runner.rejoined("server_prod", "server_dr", 100)
    assert answer["method"] == "rewound" and answer["divergent_transactions"] == 12
    assert entries == [
        (
            "rejoin",
            "rewound",
            {"node": "server_prod", "primary": "server_dr", "steps": ["rewind", "start"], "divergent_transactions": 12},
        )
    ]


def test_a_record_older_than_the_decision_means_it_already_streamed(runner, recorded):
    node, entries = recorded
    node["answer"] = {"method": "cloned", "at": 50.0}
    assert runner.rejoined("server_prod", "server_dr", 100)["method"] == "already streaming"
    node["answer"] = "no answer"
    assert runner.rejoined("server_prod", "server_dr", 100)["method"] == "unknown"
    assert [outcome for _, outcome, _ in entries] == ["already streaming", "unknown"]


def test_a_rejoin_record_for_a_stranger_is_bad_input_and_records_nothing(runner, recorded):
    _, entries = recorded
    assert runner.rejoined("server_nobody", "server_dr", 100)["retcode"] == master.EXIT_BAD_INPUT
    assert runner.rejoined("server_prod", "server_dr", "yesterday")["retcode"] == master.EXIT_BAD_INPUT
    assert entries == []


@pytest.fixture
def on_pair(runner, monkeypatch, tmp_path):
    """Two nodes with ``synchronous: on``; dr a running standby, prod's minion silent; the
    master's records in a cachedir of the test's own."""
    nodes = {"server_prod": {"address": "127.0.0.1"}, "server_dr": {"address": "127.0.0.2"}}
    pillar = {"nodes": nodes, "replication": {"synchronous": "on"}}
    runner.__opts__ = {"output": "json", "cachedir": str(tmp_path)}
    monkeypatch.setattr(runner, "_pillar", lambda: pillar)
    monkeypatch.setattr(runner, "validate_pillar", lambda pillar: nodes)
    standby = {"running": True, "role": "standby", "state": "running", "receive_lsn": "0/9000000"}
    monkeypatch.setattr(
        runner,
        "_gather",
        lambda nodes, lost=None: {
            "server_dr": {"pgrepl.status": standby},
            "server_prod": {"pgrepl.status": master.NO_ANSWER},
        },
    )
    return runner


def test_a_failover_to_a_standby_recorded_as_behind_is_refused_saying_since_when_and_from_where(on_pair):
    master.record_standby(
        on_pair.__opts__,
        "server_dr",
        {"promotable": False, "primary": "server_prod", "lsn": "0/7000000", "since": 1796320000, "request": "r1"},
    )
    refused = on_pair.failover_precheck("server_dr", confirm_primary_lost=True)
    assert refused["action"] == "refuse" and refused["retcode"] == master.EXIT_REFUSED
    assert "server_dr is behind since 2026-12-03" in refused["summary"]
    assert "from LSN 0/7000000" in refused["summary"] and "confirm_data_loss" in refused["summary"]
    assert master.standby_records(on_pair.__opts__)["server_dr"]["promotable"] is False  # nothing changed
    assert "server_prod" not in master.standby_records(on_pair.__opts__)
    confirmed = on_pair.failover_precheck("server_dr", confirm_primary_lost=True, confirm_data_loss=True)
    assert confirmed["action"] == "failover" and confirmed["retcode"] == 0


def test_a_standby_never_recorded_as_holding_every_commit_is_not_promoted(on_pair):
    refused = on_pair.failover_precheck("server_dr", confirm_primary_lost=True)
    assert refused["action"] == "refuse" and "never recorded as holding every acknowledged commit" in refused["summary"]


def test_a_decided_failover_records_the_old_primary_behind_and_keeps_the_witness_from_dropping_the_target(on_pair):
    master.record_standby(on_pair.__opts__, "server_dr", {"promotable": True, "primary": "server_prod"})
    decided = on_pair.failover_precheck("server_dr", confirm_primary_lost=True)
    assert decided["action"] == "failover" and decided["retcode"] == 0
    left = master.standby_records(on_pair.__opts__)["server_prod"]
    assert left["promotable"] is False and left["primary"] == "server_dr" and left["lsn"] == "0/9000000"
    # the witness, asked by server_prod's keeper to drop server_dr now, may not record it
    with pytest.raises(MfaHaError, match="a failover to server_dr is decided"):
        master.record_standby(on_pair.__opts__, "server_dr", {"promotable": False, "primary": "server_prod"})
    assert master.standby_records(on_pair.__opts__)["server_dr"]["promotable"] is True


def test_a_decided_failover_holds_off_the_witness_for_its_bound_only(on_pair, monkeypatch):
    master.record_standby(on_pair.__opts__, "server_dr", {"promotable": True, "primary": "server_prod"})
    assert on_pair.failover_precheck("server_dr", confirm_primary_lost=True)["action"] == "failover"
    later = time.time() + timing.FAILOVER_DECIDED_SECONDS + 1  # the failover failed: the old primary serves on
    monkeypatch.setattr(master.time, "time", lambda: later)
    master.record_standby(on_pair.__opts__, "server_dr", {"promotable": False, "primary": "server_prod"})
    assert master.standby_records(on_pair.__opts__)["server_dr"]["promotable"] is False


@pytest.fixture
def switch_on(runner, monkeypatch, tmp_path):
    """Prechecks that pass for a switch from prod to dr (``synchronous: on``), the master's
    records in a cachedir of the test's own."""
    nodes = {"server_prod": {"address": "127.0.0.1"}, "server_dr": {"address": "127.0.0.2"}}
    pillar = {"nodes": nodes, "replication": {"synchronous": "on"}}
    runner.__opts__ = {"output": "json", "cachedir": str(tmp_path / "cache")}
    monkeypatch.setattr(runner, "_pillar", lambda: pillar)
    monkeypatch.setattr(runner, "validate_pillar", lambda pillar: nodes)
    primary = {"role": "primary", "current_lsn": "0/9000000"}
    monkeypatch.setattr(
        runner, "_gather", lambda nodes: {"server_prod": {"pgrepl.status": primary}, "server_dr": {"pgrepl.status": {}}}
    )

    def decide(statuses, nodes, target, limit):
        return sw.Decision(target, action="switch", primary="server_prod")

    monkeypatch.setattr(runner.sw, "decide", decide)
    pillar["sent"] = []
    monkeypatch.setattr(runner, "_deliver", lambda severity, summary, *_: pillar["sent"].append((severity, summary)))
    return pillar


def test_a_switch_with_synchronous_on_records_the_old_primary_as_not_promotable_first(runner, switch_on):
    assert runner.precheck("server_dr")["retcode"] == 0
    assert master.standby_records(runner.__opts__) == {}  # a precheck alone records nothing
    decided = runner.precheck("server_dr", record_old_primary=True)
    assert decided["action"] == "switch" and decided["retcode"] == 0
    record = master.standby_records(runner.__opts__)["server_prod"]
    assert record["promotable"] is False and record["primary"] == "server_dr" and record["lsn"] == "0/9000000"
    assert any("recorded as not promotable" in c["measured"] for c in decided["checks"])
    assert [severity for severity, summary in switch_on["sent"] if "server_prod recorded as not" in summary] == ["info"]


def test_a_switch_whose_old_primary_cannot_be_recorded_is_refused(runner, switch_on, tmp_path):
    (tmp_path / "cache").write_text("a file where the master's cachedir should be")
    refused = runner.precheck("server_dr", record_old_primary=True)
    assert refused["action"] == "refuse" and refused["retcode"] == master.EXIT_REFUSED
    assert "recorded on the master as not promotable first" in refused["summary"]


def test_a_switch_with_synchronous_strict_records_nothing(runner, switch_on):
    switch_on["replication"]["synchronous"] = "strict"  # never drops: the new primary waits for the old one
    assert runner.precheck("server_dr", record_old_primary=True)["retcode"] == 0
    assert master.standby_records(runner.__opts__) == {}
