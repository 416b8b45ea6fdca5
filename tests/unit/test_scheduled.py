"""Switchovers scheduled for later: the time parsed or refused, each taken once, a late one missed."""

import pytest

from mfa_ha import scheduled
from mfa_ha.errors import InvalidInput

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def test_at_is_iso_8601_in_the_future():
    assert scheduled.parse_at("2027-01-15T09:00Z", NOW) == NOW + 3600
    assert scheduled.parse_at("2027-01-15T09:00:30+01:00", NOW) == NOW + 30
    with pytest.raises(InvalidInput, match="in the past"):
        scheduled.parse_at("2027-01-15T07:59Z", NOW)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        scheduled.parse_at("christmas", NOW)


def test_a_local_time_a_clock_change_skips_or_repeats_is_refused(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        march = 1_900_000_000.0  # 2030-03-17: before both clock changes of 2030
        with pytest.raises(InvalidInput, match="twice or never"):
            scheduled.parse_at("2030-03-31T02:30", march)  # skipped
        with pytest.raises(InvalidInput, match="twice or never"):
            scheduled.parse_at("2030-10-27T02:30", march)  # repeated
        assert scheduled.parse_at("2030-10-27T02:30+01:00", march) == scheduled.parse_at("2030-10-27T01:30Z", march)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_ids_are_never_numbers(tmp_path):
    ids = [scheduled.add(str(tmp_path / "s.json"), "server_dr", NOW + 60, "ops")["id"] for _ in range(20)]
    assert all(not i.isdigit() and i.startswith("s") for i in ids)


def test_the_master_schedule_must_run_it():
    assert not scheduled.scheduler_runs_it(None)
    assert not scheduled.scheduler_runs_it({"other": {"function": "test.ping"}})
    assert scheduled.scheduler_runs_it({"x": {"function": "mfa_ha.run_scheduled", "seconds": 30}})
    assert "function: mfa_ha.run_scheduled" in scheduled.SCHEDULE_RECIPE


def test_each_is_taken_once_and_a_late_one_is_missed(tmp_path):
    path = str(tmp_path / "scheduled.json")
    soon = scheduled.add(path, "server_dr", NOW + 60, "ops", clock=lambda: NOW)
    later = scheduled.add(path, "server_prod", NOW + 7200, "ops", clock=lambda: NOW)
    long_ago = scheduled.add(path, "server_prod", NOW - 3600, "ops", clock=lambda: NOW)
    assert [e["id"] for e in scheduled.listed(path)] == [long_ago["id"], soon["id"], later["id"]]
    run, missed = scheduled.take_due(path, NOW + 61)
    assert [e["id"] for e in run] == [soon["id"]] and [e["id"] for e in missed] == [long_ago["id"]]
    assert scheduled.take_due(path, NOW + 62) == ([], [])  # taken: never run twice
    assert [e["id"] for e in scheduled.listed(path)] == [later["id"]]


def test_cancel_by_id_or_all(tmp_path):
    path = str(tmp_path / "scheduled.json")
    a = scheduled.add(path, "server_dr", NOW + 60, "ops", clock=lambda: NOW)
    b = scheduled.add(path, "server_dr", NOW + 120, "ops", clock=lambda: NOW)
    assert scheduled.remove(path, [a["id"][:3]]) == []  # a prefix is no id
    assert [e["id"] for e in scheduled.remove(path, [a["id"]])] == [a["id"]]
    assert [e["id"] for e in scheduled.remove(path, "all")] == [b["id"]]
    assert scheduled.listed(path) == []
