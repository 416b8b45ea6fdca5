"""A switchover scheduled for later (``salt-run mfa_ha.switchover <target> at=...``) runs at
its time through Salt's own scheduler on the real master, with its prechecks then; it is
listed until then, can be cancelled, and is in the history; a time in the past is bad input
and schedules nothing."""

import datetime
import time

import pytest

from mfa_ha.adapters.master import EXIT_BAD_INPUT, EXIT_DONE, EXIT_REFUSED
from tests.integration.test_2_switchover import role, streams_from, switchover
from tests.integration.test_4_script_answers import answer
from tests.integration.test_7_health_endpoint import primary_and_standby
from tests.support import wait_for

pytestmark = pytest.mark.integration
LEAD_SECONDS = 25  # room for the salt-run calls between scheduling it and its time, on a busy machine


def local_iso(seconds_from_now):
    return datetime.datetime.fromtimestamp(time.time() + seconds_from_now).isoformat(timespec="seconds")


def listed(salt_run):
    code, found = answer(salt_run, "mfa_ha.scheduled_switchovers")
    assert code == EXIT_DONE, found
    return found["entries"]


def test_a_scheduled_switchover_runs_at_its_time_and_is_in_the_history(pair, salt_run):
    lab = pair
    primary, standby = primary_and_standby(lab)  # as the modules before left them
    code, bad = answer(salt_run, "mfa_ha.switchover", standby.minion_id, f"at={local_iso(-60)}")
    assert code == EXIT_BAD_INPUT and "in the past" in bad["error"], bad
    code, typo = answer(salt_run, "mfa_ha.switchover", "server_x", f"at={local_iso(60)}")
    assert code == EXIT_BAD_INPUT and "server_x" in typo["error"], typo
    assert listed(salt_run) == []

    code, later = answer(salt_run, "mfa_ha.switchover", standby.minion_id, f"at={local_iso(3600)}")
    assert code == EXIT_DONE and later["scheduled"] is True, later
    code, cancelled = answer(salt_run, "mfa_ha.unschedule", later["id"])
    assert code == EXIT_DONE and [e["id"] for e in cancelled["cancelled"]] == [later["id"]]
    code, again = answer(salt_run, "mfa_ha.unschedule", later["id"])
    assert code == EXIT_REFUSED, again

    due = time.time() + LEAD_SECONDS
    code, soon = answer(salt_run, "mfa_ha.switchover", standby.minion_id, f"at={local_iso(LEAD_SECONDS)}")
    assert code == EXIT_DONE and soon["scheduled"] is True, soon
    assert [e["id"] for e in listed(salt_run)] == [soon["id"]]
    assert role(primary) == "primary"  # nothing happens before its time
    wait_for(lambda: role(standby) == "primary", timeout=180, what="the scheduled switchover", ignore_errors=True)
    assert time.time() >= due - 1  # not before its time (to the second it was given in)
    wait_for(lambda: streams_from(primary, standby), timeout=60, what="the old primary streaming", ignore_errors=True)
    assert listed(salt_run) == []

    def recorded(outcome, text=""):
        code, history = answer(salt_run, "mfa_ha.history", "limit=20")
        return any(
            e["event"] == "switchover" and e["outcome"] == outcome and text in e.get("summary", "")
            for e in history["entries"]
        )

    assert recorded("scheduled", soon["id"]) and recorded("unscheduled")
    wait_for(lambda: recorded("done", f"scheduled (id {soon['id']})"), timeout=60, what="the run in the history")

    back = switchover(salt_run, primary.minion_id)  # the pair as the module found it
    assert back.returncode == 0, back.stdout
