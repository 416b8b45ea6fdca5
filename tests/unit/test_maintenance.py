"""Maintenance mode: the pause record, what status says of it, and the runner's order (the
master paused before the nodes, resumed after them) and refusals."""

import os

import pytest

from mfa_ha import maintenance
from mfa_ha.adapters import master
from mfa_ha.errors import InvalidInput
from mfa_ha.monitoring import status
from tests.support import load_face

NODES = {"server_prod": {"address": "10.0.0.1", "port": 5432}, "server_dr": {"address": "10.0.0.2", "port": 5432}}


def test_a_pause_is_recorded_once_and_ended_once(tmp_path):
    path = str(tmp_path / "run" / maintenance.FILE_NAME)
    record = maintenance.new_record("operator", "patching the master", clock=lambda: 1_700_000_000)
    assert maintenance.write(path, record) is True and maintenance.write(path, record) is False
    assert maintenance.read(path) == record
    assert maintenance.describe(record, now=1_700_000_600) == (
        "automatic failover paused by operator since 2023-11-14 22:13:20 UTC (10 min): patching the master"
    )
    assert maintenance.clear(path) is True and maintenance.clear(path) is False
    assert maintenance.read(path) is None and maintenance.describe(None) == "automatic failover not paused"


def test_a_reason_is_one_short_line():
    with pytest.raises(InvalidInput, match="reason: one line"):
        maintenance.new_record("operator", "two\nlines")
    with pytest.raises(InvalidInput, match="reason: one line"):
        maintenance.new_record("operator", "x" * 201)


def _gathered(paused_prod, paused_dr):
    def node(role, paused):
        pg = {"role": role, "running": True, "state": "running", "timeline": 1, "current_lsn": "0/1"}
        return {
            "pgrepl.status": pg,
            "pmfad.status": {"state": "running" if role == "primary" else "stopped"},
            "paused": paused,
        }

    return {"server_prod": node("primary", paused_prod), "server_dr": node("standby", paused_dr)}


def test_status_names_a_node_whose_pause_differs_from_the_masters():
    record = maintenance.new_record("operator", "")
    found = status.view(NODES, _gathered(record, None), 1 << 24, paused=record)
    dr = next(row for row in found["nodes"] if row["node"] == "server_dr")
    assert found["paused"] == record
    assert any("paused on the master but not here: this keeper still fences" in p for p in dr["problems"])
    found = status.view(NODES, _gathered(record, None), 1 << 24, paused=None)
    prod = next(row for row in found["nodes"] if row["node"] == "server_prod")
    assert any("paused here but not on the master" in p for p in prod["problems"])
    assert "maintenance: automatic failover paused by operator" in status.table(
        status.view(NODES, _gathered(record, record), 1 << 24, paused=record)
    )


@pytest.fixture
def runner(tmp_path, monkeypatch):
    face = load_face("runners", "mfa_ha")
    face.__context__ = {}
    face.__opts__ = {"output": "json", "cachedir": str(tmp_path)}
    monkeypatch.setattr(face, "_pillar", lambda: {"nodes": NODES})
    monkeypatch.setattr(face, "_operator", lambda: "operator")
    return face


def test_a_pause_with_a_silent_node_is_refused_and_pauses_nothing(runner, monkeypatch):
    sent = []
    monkeypatch.setattr(runner, "_returns_within", lambda nodes, *a: {"server_prod": True, "server_dr": "no answer"})
    monkeypatch.setattr(runner, "_cmd", lambda *a: sent.append(a))
    refused = runner.pause(reason="patching")
    assert refused["retcode"] == master.EXIT_REFUSED and refused["silent"] == ["server_dr"]
    assert "server_dr does not answer" in refused["reason"] and "force=True" in refused["reason"]
    assert sent == [] and not os.path.exists(master.pause_path(runner.__opts__))


def test_a_pause_reaches_the_master_before_the_nodes(runner, monkeypatch):
    seen_by_nodes = []

    def cmd(targets, function, args, timeout):
        seen_by_nodes.append(maintenance.read(master.pause_path(runner.__opts__)))  # the master already paused?
        return {node: {"paused": args[0], "changed": True} for node in targets}

    monkeypatch.setattr(runner, "_returns_within", lambda nodes, *a: dict.fromkeys(nodes, True))
    monkeypatch.setattr(runner, "_cmd", cmd)
    done = runner.pause(reason="patching")
    assert done["retcode"] == master.EXIT_DONE and done["left_out"] == []
    assert seen_by_nodes == [done["record"]]


def test_an_unpause_not_confirmed_by_every_node_keeps_the_master_paused(runner, monkeypatch):
    record = maintenance.new_record("operator", "")
    maintenance.write(master.pause_path(runner.__opts__), record)
    monkeypatch.setattr(runner, "_cmd", lambda *a: {"server_prod": {"paused": None}, "server_dr": "no answer"})
    kept = runner.unpause()
    assert kept["retcode"] == master.EXIT_FAILED and kept["unpaused"] is False and "server_dr" in kept["reason"]
    assert maintenance.read(master.pause_path(runner.__opts__)) == record
    monkeypatch.setattr(runner, "_cmd", lambda *a: dict.fromkeys(NODES, {"paused": None, "changed": True}))
    ended = runner.unpause()
    assert ended["retcode"] == master.EXIT_DONE and ended["was"] == record
    assert maintenance.read(master.pause_path(runner.__opts__)) is None
