"""Every state of ``pgrepl`` and ``pmfad`` without a master: ``__salt__`` stubbed with mocks of
the execution functions (``Mock(spec=...)``), in test and real mode, failure branches included.
A state reports under test=True without acting, acts in real mode and reads back, and when it
fails after it began to act it says what it had begun."""

from __future__ import annotations

import json
from unittest.mock import Mock

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import load_face

STATES = load_face("states", "pgrepl")
MODULES = load_face("modules", "pgrepl")
PMFAD_STATES = load_face("states", "pmfad")
PMFAD = load_face("modules", "pmfad")


class Seq(tuple):
    """Successive returns of one function."""


def _stub(state_module, execution_module, test, **returns):
    """``__salt__`` of mocks shaped like the real functions; ``returns``: name -> value, ``Seq``
    (successive returns) or an exception."""
    salt = {}
    for name, value in returns.items():
        function = getattr(execution_module, name.split(".", 1)[1])
        mock = Mock(spec=function)
        if isinstance(value, Exception):
            mock.side_effect = value
        elif isinstance(value, Seq):
            mock.side_effect = list(value)
        else:
            mock.return_value = value
        salt[name] = mock
    state_module.__salt__ = salt
    state_module.__opts__ = {"test": test}
    return salt


@pytest.fixture(params=[False, True], ids=["real", "test"])
def test_mode(request):
    yield request.param
    for module in (STATES, PMFAD_STATES):
        for dunder in ("__salt__", "__opts__"):
            if hasattr(module, dunder):
                delattr(module, dunder)


def _expect_acted(ret, test_mode, acted_mock, comment_real):
    if test_mode:
        assert ret["result"] is None and ret["comment"].startswith("would ")
        acted_mock.assert_not_called()
    else:
        assert ret["result"] is True and ret["comment"].startswith(comment_real), ret
        acted_mock.assert_called()
    assert ret["changes"]
    assert "_acting" not in ret


# -- slots ------------------------------------------------------------------------------------
def test_a_missing_slot_is_created_or_would_be(test_mode):
    salt = _stub(
        STATES,
        MODULES,
        test_mode,
        **{"pgrepl.slots": Seq([[], [{"slot_name": "server_dr"}]]), "pgrepl.create_slot": True},
    )
    ret = STATES.slot_present("server_dr")
    _expect_acted(ret, test_mode, salt["pgrepl.create_slot"], "created slot server_dr")
    assert ret["changes"] == {"slot": {"old": None, "new": "server_dr"}}


def test_a_present_slot_changes_nothing(test_mode):
    salt = _stub(
        STATES, MODULES, test_mode, **{"pgrepl.slots": [{"slot_name": "server_dr"}], "pgrepl.create_slot": True}
    )
    ret = STATES.slot_present("server_dr")
    assert ret["result"] is True and ret["changes"] == {} and ret["comment"] == "slot server_dr is present"
    salt["pgrepl.create_slot"].assert_not_called()


def test_a_slot_drop_that_fails_says_it_had_begun():
    _stub(
        STATES,
        MODULES,
        False,
        **{
            "pgrepl.slots": [{"slot_name": "server_dr"}],
            "pgrepl.drop_slot": CommandExecutionError("slot server_dr is active"),
        },
    )
    ret = STATES.slot_absent("server_dr")
    assert ret["result"] is False and ret["comment"] == "slot server_dr is active"
    assert ret["changes"] == {"begun": {"slot": {"old": "server_dr", "new": None}}}


def test_a_slot_that_does_not_appear_fails_the_state():
    _stub(STATES, MODULES, False, **{"pgrepl.slots": [], "pgrepl.create_slot": True})
    ret = STATES.slot_present("server_dr")
    assert ret["result"] is False and ret["comment"] == "slot server_dr did not create"


def test_a_bad_slot_name_fails_before_anything_is_asked(test_mode):
    salt = _stub(STATES, MODULES, test_mode, **{"pgrepl.slots": []})
    ret = STATES.slot_present("Server-DR")
    assert ret["result"] is False and "invalid replication slot name 'Server-DR'" in ret["comment"]
    assert ret["changes"] == {}
    salt["pgrepl.slots"].assert_not_called()


# -- pillar -----------------------------------------------------------------------------------
def test_the_pillar_state_names_the_nodes_or_every_problem(test_mode):
    _stub(STATES, MODULES, test_mode, **{"pgrepl.validate_pillar": {"server_prod": {}, "server_dr": {}}})
    assert STATES.pillar_valid()["comment"] == "mfa_ha pillar is valid (2 nodes: server_prod, server_dr)"
    _stub(STATES, MODULES, test_mode, **{"pgrepl.validate_pillar": SaltInvocationError("- mfa_ha:nodes: missing")})
    ret = STATES.pillar_valid()
    assert ret["result"] is False and ret["comment"] == "- mfa_ha:nodes: missing" and ret["changes"] == {}


# -- needs, then apply: replication user, pgpass, TLS ----------------------------------------
NEEDS_THEN_APPLY = [
    ("replication_user", "pgrepl.replication_user_needs", "pgrepl.set_replication_user", ["password"]),
    ("pgpass", "pgrepl.pgpass_needs", "pgrepl.set_peer_pgpass", ["server_dr"]),
    ("tls", "pgrepl.tls_needs", "pgrepl.apply_tls", ["server.crt"]),
]


@pytest.mark.parametrize("state, needs_fn, apply_fn, needs", NEEDS_THEN_APPLY, ids=[c[0] for c in NEEDS_THEN_APPLY])
def test_what_is_missing_is_applied_and_read_back(test_mode, state, needs_fn, apply_fn, needs):
    salt = _stub(STATES, MODULES, test_mode, **{needs_fn: Seq([needs, []]), apply_fn: None})
    ret = getattr(STATES, state)()
    _expect_acted(ret, test_mode, salt[apply_fn], "changed ")
    assert needs[0] in ret["comment"]


@pytest.mark.parametrize("state, needs_fn, apply_fn, needs", NEEDS_THEN_APPLY, ids=[c[0] for c in NEEDS_THEN_APPLY])
def test_what_still_differs_after_applying_fails_and_keeps_what_was_begun(state, needs_fn, apply_fn, needs):
    _stub(STATES, MODULES, False, **{needs_fn: Seq([needs, needs]), apply_fn: None})
    ret = getattr(STATES, state)()
    assert ret["result"] is False and "still differ" in ret["comment"]
    assert list(ret["changes"]) == ["begun"]


@pytest.mark.parametrize("state, needs_fn, apply_fn, needs", NEEDS_THEN_APPLY, ids=[c[0] for c in NEEDS_THEN_APPLY])
def test_nothing_missing_applies_nothing(test_mode, state, needs_fn, apply_fn, needs):
    salt = _stub(STATES, MODULES, test_mode, **{needs_fn: [], apply_fn: None})
    ret = getattr(STATES, state)()
    assert ret["result"] is True and ret["changes"] == {} and ret["comment"].endswith("as wanted")
    salt[apply_fn].assert_not_called()


def test_a_pgpass_state_never_shows_the_password():
    _stub(STATES, MODULES, False, **{"pgrepl.pgpass_needs": Seq([["server_dr"], []]), "pgrepl.set_peer_pgpass": None})
    assert "secret" not in json.dumps(STATES.pgpass())


# -- settings ---------------------------------------------------------------------------------
def _settings(differ, pending):
    return {"differ": differ, "restart_pending": pending}


def test_settings_are_set_and_read_back(test_mode):
    wanted = {"wal_keep_size": {"old": "0", "new": "1GB"}}
    salt = _stub(
        STATES,
        MODULES,
        test_mode,
        **{
            "pgrepl.settings": Seq([_settings(wanted, []), _settings({}, []), _settings({}, [])]),
            "pgrepl.apply_settings": None,
            "pgrepl.restart": None,
        },
    )
    ret = STATES.settings()
    _expect_acted(ret, test_mode, salt["pgrepl.apply_settings"], "set wal_keep_size")
    salt["pgrepl.restart"].assert_not_called()


def test_a_setting_that_waits_for_a_restart_is_not_called_converged():
    wanted = {"max_wal_senders": {"old": "5", "new": "10"}}
    salt = _stub(
        STATES,
        MODULES,
        False,
        **{
            "pgrepl.settings": Seq(
                [
                    _settings(wanted, []),
                    _settings(wanted, ["max_wal_senders"]),
                    _settings(wanted, ["max_wal_senders"]),
                ]
            ),
            "pgrepl.apply_settings": None,
            "pgrepl.restart": None,
        },
    )
    ret = STATES.settings()
    assert ret["result"] is False and "not converged until PostgreSQL restarts" in ret["comment"]
    assert ret["changes"] == wanted
    salt["pgrepl.restart"].assert_not_called()


def test_a_pending_restart_is_done_when_allowed():
    wanted = {"max_wal_senders": {"old": "5", "new": "10"}}
    salt = _stub(
        STATES,
        MODULES,
        False,
        **{
            "pgrepl.settings": Seq([_settings(wanted, []), _settings({}, ["max_wal_senders"]), _settings({}, [])]),
            "pgrepl.apply_settings": None,
            "pgrepl.restart": None,
        },
    )
    ret = STATES.settings(restart=True)
    assert ret["result"] is True and ret["changes"]["restarted"] is True
    salt["pgrepl.restart"].assert_called_once_with()


def test_a_failed_restart_keeps_the_settings_already_applied():
    wanted = {"max_wal_senders": {"old": "5", "new": "10"}}
    _stub(
        STATES,
        MODULES,
        False,
        **{
            "pgrepl.settings": Seq([_settings(wanted, []), _settings({}, ["max_wal_senders"])]),
            "pgrepl.apply_settings": None,
            "pgrepl.restart": CommandExecutionError("pg_ctl restart failed"),
        },
    )
    ret = STATES.settings(restart=True)
    assert ret["result"] is False and ret["comment"] == "pg_ctl restart failed"
    assert ret["changes"]["begun"]["max_wal_senders"] == wanted["max_wal_senders"]


# -- pg_hba.conf ------------------------------------------------------------------------------
def _hba(differs):
    return {
        "differs": differs,
        "path": "/d/pg_hba.conf",
        "missing": ["host replication ..."] if differs else [],
        "unexpected": [],
        "foreign": [],
    }


def test_the_hba_block_is_written_or_would_be(test_mode):
    salt = _stub(STATES, MODULES, test_mode, **{"pgrepl.hba": Seq([_hba(True), _hba(False)]), "pgrepl.apply_hba": None})
    _expect_acted(STATES.hba(), test_mode, salt["pgrepl.apply_hba"], "updated the mfa-ha block of /d/pg_hba.conf")


def test_an_hba_block_postgresql_rejects_fails_saying_it_had_begun():
    _stub(
        STATES,
        MODULES,
        False,
        **{
            "pgrepl.hba": _hba(True),
            "pgrepl.apply_hba": CommandExecutionError(
                "PostgreSQL rejects the new /d/pg_hba.conf (line 3); the old file is back"
            ),
        },
    )
    ret = STATES.hba()
    assert ret["result"] is False and "the old file is back" in ret["comment"]
    assert "begun" in ret["changes"]


# -- standby, follows, fenced -----------------------------------------------------------------
PLAN = {"steps": [{"action": "clone", "reason": "the data directory is empty"}]}


def test_a_standby_is_made_or_would_be(test_mode):
    done = {"done": ["clone", "start"], "plan": PLAN["steps"]}
    salt = _stub(STATES, MODULES, test_mode, **{"pgrepl.standby_plan": PLAN, "pgrepl.make_standby": done})
    ret = STATES.standby("server_prod")
    _expect_acted(ret, test_mode, salt["pgrepl.make_standby"], "streaming from server_prod after clone, start")


def test_a_standby_with_nothing_to_do_is_checked_streaming_under_test():
    salt = _stub(
        STATES,
        MODULES,
        True,
        **{"pgrepl.standby_plan": {"steps": []}, "pgrepl.wait_streaming": {}, "pgrepl.make_standby": None},
    )
    ret = STATES.standby("server_prod", timeout=300)
    assert ret["result"] is True and ret["comment"] == "streaming from server_prod"
    salt["pgrepl.make_standby"].assert_not_called()
    assert salt["pgrepl.wait_streaming"].call_args.args[1] <= 5  # test=True waits briefly, not the state's timeout


def test_a_clone_that_fails_midway_says_it_had_begun():
    _stub(
        STATES,
        MODULES,
        False,
        **{"pgrepl.standby_plan": PLAN, "pgrepl.make_standby": CommandExecutionError("pg_basebackup failed")},
    )
    ret = STATES.standby("server_prod")
    assert ret["result"] is False and ret["comment"] == "pg_basebackup failed"
    assert ret["changes"] == {"begun": {"standby": PLAN["steps"]}}


def test_a_node_that_still_does_not_follow_fails(test_mode):
    steps = [{"action": "configure", "reason": "it points at server_x"}]
    salt = _stub(
        STATES, MODULES, test_mode, **{"pgrepl.follow_plan": {"steps": steps}, "pgrepl.follow": {"done": ["configure"]}}
    )
    ret = STATES.follows("server_prod")
    if test_mode:
        assert ret["result"] is None
        salt["pgrepl.follow"].assert_not_called()
    else:
        assert ret["result"] is False and ret["comment"].startswith("still not following server_prod")
        assert list(ret["changes"]) == ["begun"]


def test_a_stale_primary_is_fenced_or_would_be(test_mode):
    decision = {"action": "fence", "primary": "server_dr", "reason": "server_dr is the primary on timeline 3"}
    salt = _stub(
        STATES,
        MODULES,
        test_mode,
        **{"pgrepl.fence_decision": decision, "pgrepl.fence_if_stale": {"action": "fenced", "reason": "fenced"}},
    )
    ret = STATES.fenced()
    _expect_acted(ret, test_mode, salt["pgrepl.fence_if_stale"], "fenced: fenced; run mfa_ha.orch.rejoin")


def test_a_split_brain_is_refused_not_fenced(test_mode):
    refused = {"action": "refuse", "reason": "split brain: pmfad runs here"}
    salt = _stub(STATES, MODULES, test_mode, **{"pgrepl.fence_decision": refused, "pgrepl.fence_if_stale": None})
    ret = STATES.fenced()
    assert ret["result"] is False and ret["comment"] == refused["reason"] and ret["changes"] == {}
    salt["pgrepl.fence_if_stale"].assert_not_called()


# -- the lease keeper's config ----------------------------------------------------------------
def test_the_keeper_config_is_written_only_when_it_differs(tmp_path, test_mode):
    wanted = {"settings": {"run_dir": str(tmp_path), "automatic": True}, "node": "server_prod"}
    _stub(STATES, MODULES, test_mode, **{"pgrepl.lease_keeper_config": wanted})
    ret = STATES.lease_keeper()
    path = tmp_path / "config.json"
    assert ret["changes"]["config"] == {"old": "missing", "new": str(path)}
    if test_mode:
        assert ret["result"] is None and not path.exists()
        return
    assert ret["result"] is True and json.loads(path.read_text()) == wanted and path.stat().st_mode & 0o777 == 0o600
    again = STATES.lease_keeper()
    assert again["changes"] == {} and again["comment"] == f"{path} is as wanted"


def test_with_automatic_failover_off_no_keeper_config_is_written(tmp_path, test_mode):
    _stub(
        STATES,
        MODULES,
        test_mode,
        **{"pgrepl.lease_keeper_config": {"settings": {"run_dir": str(tmp_path), "automatic": False}}},
    )
    ret = STATES.lease_keeper()
    assert ret["result"] is True and ret["changes"] == {} and not (tmp_path / "config.json").exists()


# -- pmfad --------------------------------------------------------------------------------------
def test_pmfad_is_started_or_would_be(test_mode):
    salt = _stub(
        PMFAD_STATES,
        PMFAD,
        test_mode,
        **{"pmfad.status": Seq([{"state": "stopped"}, {"state": "running"}]), "pmfad.start": None},
    )
    ret = PMFAD_STATES.running()
    _expect_acted(ret, test_mode, salt["pmfad.start"], "started pmfad")
    assert ret["changes"] == {"state": {"old": "stopped", "new": "running"}}


def test_pmfad_that_does_not_stop_fails_saying_it_was_asked_to():
    _stub(PMFAD_STATES, PMFAD, False, **{"pmfad.status": {"state": "running"}, "pmfad.stop": None})
    ret = PMFAD_STATES.dead()
    assert ret["result"] is False and ret["comment"] == "pmfad is running after stop"
    assert ret["changes"] == {"begun": {"state": {"old": "running", "new": "stopped"}}}


def test_pmfad_whose_status_cannot_be_read_fails_with_no_changes(test_mode):
    _stub(PMFAD_STATES, PMFAD, test_mode, **{"pmfad.status": CommandExecutionError("lssrc failed (exit 1)")})
    ret = PMFAD_STATES.running()
    assert ret["result"] is False and ret["comment"] == "lssrc failed (exit 1)" and ret["changes"] == {}


def test_a_watched_change_restarts_pmfad_or_would(test_mode):
    salt = _stub(PMFAD_STATES, PMFAD, test_mode, **{"pmfad.restart": None})
    ret = PMFAD_STATES.mod_watch("pmfad", sfun="running")
    assert ret["changes"] == {"restarted": "pmfad"}
    assert ret["result"] is (None if test_mode else True)
    assert salt["pmfad.restart"].called is (not test_mode)
