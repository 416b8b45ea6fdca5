"""Faults during a switchover, on hosts of their own, with the real salt-master (on the
master's site) and minions (on DC1 and DC2), while the checker writes from the clients' host.
Each case: no acknowledged write lost, never two addresses accepting writes, never pmfad on
two nodes, and the operator's documented command converges to one primary with pmfad and a
streaming standby; the figures go to the fault table (bench/results/faults.jsonl)."""

import contextlib
import datetime
import os
import re
import threading
import time

import pytest

from mfa_ha.postgres import keptaside
from mfa_ha_lab.checker import Checker, wait_until
from tests.faults.common import (
    CONVERGE_WITHIN,
    SWITCH_WAIT,
    assert_nothing_lost,
    converged,
    dc_link_cut_once_the_old_primary_stopped,
    divergent_named,
    hold_before_promotion,
    in_background,
    kill_postmaster,
    new_primary_killed_after_its_promotion,
    rejoin_converges,
    role,
    roles,
    switch_there_and_back,
    switchover,
    switchover_verb,
)
from tests.support import find_with_key, record


def test_planned_switchover_under_load(lab, salt_lab):
    with Checker(lab) as checker:
        wait_until(
            lambda: checker.app.acked and all(w.acked for w in [checker.direct["server_prod"]]),
            30,
            "the checker's first acknowledgements",
        )
        switches = switch_there_and_back(lab, salt_lab, checker)
    figures = checker.report(lab.prod)
    record("planned switchover there and back under load", outcome="switched, both ways", switches=switches, **figures)
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


@pytest.mark.slow
def test_target_postgres_killed_after_the_old_primary_stopped(lab, salt_lab):
    """kill -9 of the target's postgres once the old primary has stopped: the old primary
    stays stopped (the target's fate is unknown to it); the re-run brings it back."""
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct["server_prod"].acked, 30, "the checker's first acknowledgements")
        hold_before_promotion(lab.dr)
        thread, result = in_background(switchover, salt_lab, "server_dr")
        wait_until(lambda: not lab.prod.is_running(), 60, "the old primary to stop")
        fault_at = time.monotonic()
        kill_postmaster(lab.dr)
        thread.join(timeout=SWITCH_WAIT + 60)
        assert result["value"].get("retcode") != 0
        assert lab.prod.app_pid() is None and not lab.prod.is_running()  # no primary: nothing accepts writes
        rerun = switchover(salt_lab, "server_dr")  # the documented command
        assert rerun.get("retcode") != 0 and "comes back as the primary" in str(rerun)
        lab.start_db(lab.dr)  # the target's host is repaired
        wait_until(lambda: converged(lab, lab.prod, lab.dr), CONVERGE_WITHIN, "prod primary again, dr streaming")
        converge_s = time.monotonic() - fault_at
    figures = checker.report(lab.prod)
    record(
        "target's postgres killed (-9) after the old primary stopped",
        outcome="switch not done; the re-run resumed the old primary",
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


@pytest.mark.slow
def test_dc_link_cut_once_the_old_primary_stopped(lab, salt_lab, net):
    """The DC link goes silent once the old primary has stopped and before the target
    promoted: the old primary cannot reach the target and stays stopped, the target cannot
    prove the shutdown checkpoint and stays a standby. Link back, the re-run resumes."""
    figures, converge_s = dc_link_cut_once_the_old_primary_stopped(lab, salt_lab, net, lab.prod, lab.dr, settle(lab))
    record(
        "DC link cut after the old primary stopped, before the target promoted",
        outcome="switch not done; the re-run resumed the old primary",
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert_nothing_lost(figures)


def test_new_primary_postgres_killed_right_after_its_promotion(lab, salt_lab):
    """kill -9 of the target's postgres the moment it accepts writes (promoted; its app and the
    old primary's re-attach still to come): nothing serves until the target's host is
    repaired (its server started again: crash recovery, still the primary of the new
    timeline); the old primary, configured as its standby, never takes writes; the documented
    re-run finishes the switch."""
    old, target = roles(lab)
    figures, converge_s = new_primary_killed_after_its_promotion(lab, salt_lab, old, target, settle(lab))
    record(
        "new primary's postgres killed (-9) right after its promotion",
        outcome="switch failed; the target's "
        "server started again (crash recovery, still primary), the re-run finished the switch",
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert_nothing_lost(figures)


def settle(lab):
    """The pair converged: one primary with pmfad, the other streaming from it."""
    return lambda primary, standby: wait_until(
        lambda: converged(lab, primary, standby), CONVERGE_WITHIN, f"{primary.minion_id} primary, the other streaming"
    )


def test_old_primary_postgres_killed_while_it_re_attaches(lab, salt_lab):
    """kill -9 of the old primary's postgres once it has started again as the new primary's
    standby, before the switch saw it streaming: the new primary serves throughout; the
    documented re-run re-attaches the old one."""
    old, target = roles(lab)
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[old.minion_id].acked, 30, "the checker's first acknowledgements")
        thread, result = in_background(switchover, salt_lab, target.minion_id)
        wait_until(
            lambda: role(target) == "primary" and old.is_running() and role(old) == "standby",
            120,
            "the old primary starting as a standby",
            interval=0.02,
        )
        fault_at = time.monotonic()
        kill_postmaster(old)
        thread.join(timeout=SWITCH_WAIT + 60)
        assert role(target) == "primary" and target.app_pid()
        rerun = switchover(salt_lab, target.minion_id)  # the documented command
        assert rerun.get("retcode") == 0, str(rerun)[-3000:]
        wait_until(lambda: converged(lab, target, old), CONVERGE_WITHIN, "the target primary, the old one streaming")
        converge_s = time.monotonic() - fault_at
    figures = checker.report(target)
    record(
        "old primary's postgres killed (-9) while it re-attached as the new primary's standby",
        outcome=f"switch {'reported failed' if result['value'].get('retcode') else 'done'}; the new primary "
        "served throughout; the re-run re-attached the old one",
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


@pytest.mark.slow
def test_target_minion_killed_mid_switch(lab, salt_lab):
    """kill -9 of the target's minion (and its running job) once the old primary stopped:
    salt-run returns within the switch's own bound, names the node that did not answer and
    each node's state; the old primary serves again; the minion back, a re-run switches."""
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct["server_prod"].acked, 30, "the checker's first acknowledgements")
        hold_before_promotion(lab.dr)
        thread, result = in_background(switchover_verb, salt_lab, "server_dr")
        wait_until(lambda: not lab.prod.is_running(), 60, "the old primary to stop")
        fault_at = time.monotonic()
        salt_lab.kill("server_dr")
        thread.join(timeout=SWITCH_WAIT + 60)
        reported_after = time.monotonic() - fault_at
        report = result["value"] or {}
        assert report.get("retcode") == 1 and report.get("ok") is False, str(report)[-2000:]
        assert "no answer to the switch from server_dr" in report.get("after", []), report.get("after")
        wait_until(lambda: role(lab.prod) == "primary" and lab.prod.app_pid(), 60, "prod serving again")
        lab.dr.sql("SELECT pg_wal_replay_resume()")
        salt_lab.start_minion("server_dr")
        wait_until(lambda: converged(lab, lab.prod, lab.dr), CONVERGE_WITHIN, "prod primary, dr streaming")
        converge_s = time.monotonic() - fault_at
    figures = checker.report(lab.prod)
    record(
        "target's minion killed (-9, with its job) after the old primary stopped",
        outcome="switch not done; the old primary started again by its own part",
        reported_after_s=round(reported_after, 1),
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


def master_log(salt_lab, word):
    with open(os.path.join(salt_lab.master_dir, "master.log"), encoding="utf-8", errors="replace") as fh:
        return "\n".join(line.rstrip() for line in fh if word in line)


@pytest.mark.parametrize(
    "pollers", [pytest.param(0, id="quiet master"), pytest.param(4, id="four status pollers", marks=pytest.mark.slow)]
)
def test_failover_while_the_old_primary_is_cut_off_then_its_link_returns(lab, salt_lab, net, pollers):
    """DC1 cut off from DC2 and from the master, still reachable by the clients: the
    operator confirms the primary lost and fails over to dr. Two primaries then take writes
    (the documented window of a confirmed failover under partition, measured). When DC1's
    links return, without any minion restart, prod's first heartbeat as a primary has it
    fenced (pmfad and PostgreSQL stopped, standby config), and the fence names the writes it
    took after the fork as divergent. The documented rejoin converges. With four
    ``mfa_ha.status timeout=1`` loops running all along (status jobs queued for the cut-off
    node arrive together when its link returns), the fence does not wait behind them."""
    old, target = roles(lab)
    site, other_site = old.host, target.host
    with Checker(lab) as checker, StatusPoller(salt_lab, pollers) if pollers else contextlib.nullcontext():
        wait_until(
            lambda: checker.direct[old.minion_id].acked and checker.app.acked,
            30,
            "the checker's first acknowledgements",
        )
        net.cut(site, other_site)
        net.cut(site, "master")
        try:
            failover = salt_lab.run(
                "state.orchestrate",
                "mfa_ha.orch.failover",
                pillar={"mfa_ha": {"target": target.minion_id, "confirm_primary_lost": True}},
                timeout=300,
                check=False,
            )
            assert failover.get("retcode") == 0, str(failover)[-3000:]
            assert role(target) == "primary" and target.app_pid()
            assert role(old) == "primary" and old.app_pid()  # cut off, still serving its clients
            wait_until(lambda: checker.direct[target.minion_id].acked, 30, "the new primary acknowledging writes")
            time.sleep(3)  # both take writes: the window the operator accepted by confirming
        finally:
            net.restore(site, "master")
            net.restore(site, other_site)
        restored_at = time.monotonic()
        try:
            fenced_after = wait_until(
                lambda: not old.is_running() and old.app_pid() is None,
                120,
                "the old primary fenced after its links returned",
            )
        finally:
            print(master_log(salt_lab, "fence"))
        assert os.path.exists(os.path.join(old.data_dir, "standby.signal"))
        rejoin = rejoin_converges(lab, salt_lab, target, old)
        converge_s = time.monotonic() - restored_at
    figures = checker.report(target)
    divergent = divergent_named(rejoin)
    record(
        "failover confirmed while the primary's site was cut off from the other and the master (clients still reaching it); "
        f"links restored{f'; {pollers} status pollers (timeout=1) back to back throughout' if pollers else ''}",
        outcome="dr promoted; prod fenced once its links returned; the documented rejoin "
        "named its divergent transactions and rewound it",
        fenced_after_restore_s=round(fenced_after, 1),
        converge_s=round(converge_s, 1),
        divergent_transactions_named=divergent,
        **figures,
    )
    # Only what the cut-off primary acknowledged is missing, and the fence named at least that many.
    assert figures["lost_direct_by_node"][target.minion_id] == 0
    assert 0 < figures["lost_direct_by_node"][old.minion_id] + figures["lost_app"] <= divergent
    assert figures["two_primary_ms"] > 0  # measured: the confirmed window, ended by the fence


@pytest.mark.slow
def test_old_primary_minion_killed_before_it_re_attached(lab, salt_lab):
    """kill -9 of the old primary's minion (and its job) once its PostgreSQL stopped: the
    target, released, proves the clean shutdown and promotes; no one is left to re-attach the
    old primary. salt-run returns within the switch's bound naming the silent node; the
    target serves. The minion back, the documented re-run finishes the switch."""
    old, target = roles(lab)
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[old.minion_id].acked, 30, "the checker's first acknowledgements")
        target.sql("SELECT pg_wal_replay_pause()")
        thread, result = in_background(switchover_verb, salt_lab, target.minion_id)
        wait_until(lambda: not old.is_running(), 60, "the old primary to stop")
        fault_at = time.monotonic()
        salt_lab.kill(old.minion_id)
        target.sql("SELECT pg_wal_replay_resume()")
        wait_until(lambda: role(target) == "primary" and target.app_pid(), 90, "the target promoted and serving")
        thread.join(timeout=SWITCH_WAIT + 60)
        reported_after = time.monotonic() - fault_at
        report = result["value"] or {}
        assert report.get("retcode") == 1 and report.get("ok") is False, str(report)[-2000:]
        assert f"no answer to the switch from {old.minion_id}" in report.get("after", []), report.get("after")
        assert not old.is_running() and old.app_pid() is None
        salt_lab.start_minion(old.minion_id)
        rerun = switchover_verb(salt_lab, target.minion_id)  # documented
        assert rerun.get("retcode") == 0, str(rerun)[-2000:]
        wait_until(lambda: converged(lab, target, old), CONVERGE_WITHIN, "the target primary, the old one streaming")
        converge_s = time.monotonic() - fault_at
    figures = checker.report(target)
    record(
        "old primary's minion killed (-9, with its job) after its PostgreSQL stopped, before it re-attached",
        outcome="the target promoted (it proved the clean shutdown); the old primary stayed stopped; the "
        "re-run re-attached it",
        reported_after_s=round(reported_after, 1),
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


@pytest.mark.slow
def test_master_killed_mid_switch(lab, salt_lab):
    """kill -9 of the master once the old primary stopped: each node's part runs on without
    it (the target proves the clean shutdown and promotes, the old primary re-attaches).
    salt-run, which loses the master, notices within a second or two and returns with a
    failing exit code, saying each node's state is unknown because the master went away,
    instead of hanging; the master back, the documented re-run finds the switch done."""
    old, target = roles(lab)
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[old.minion_id].acked, 30, "the checker's first acknowledgements")
        target.sql("SELECT pg_wal_replay_pause()")
        thread, result = in_background(switchover_verb, salt_lab, target.minion_id)
        wait_until(lambda: not old.is_running(), 60, "the old primary to stop")
        fault_at = time.monotonic()
        salt_lab.kill("master")
        target.sql("SELECT pg_wal_replay_resume()")
        wait_until(lambda: converged(lab, target, old), CONVERGE_WITHIN, "the nodes finishing the switch themselves")
        switched_after = time.monotonic() - fault_at
        thread.join(timeout=60)
        reported_after = time.monotonic() - fault_at
        assert not thread.is_alive()
        assert salt_lab.last_returncode != 0, result.get("value")
        assert "unknown: the master went away" in str(result.get("value")), result.get("value")
        salt_lab.start_master()
        rerun = switchover_verb(salt_lab, target.minion_id)  # documented
        assert rerun.get("retcode") == 0, str(rerun)[-2000:]
        assert converged(lab, target, old)
        converge_s = time.monotonic() - fault_at
    figures = checker.report(target)
    record(
        "master killed (-9) after the old primary stopped",
        outcome="the nodes finished the switch without it; salt-run failed; the master back, the re-run found it done",
        switched_after_s=round(switched_after, 1),
        reported_after_s=round(reported_after, 1),
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


def test_a_same_timeline_second_primary_is_contained_and_rejoin_converges(lab, salt_lab):
    """A split brain on one timeline, with the checker writing: the standby loses its
    standby.signal and is started, a second primary on the same timeline (a fault outside the
    tool, so the checker's direct writer to it is acknowledged there: two-primary ms > 0).
    Highstate on both nodes fails naming the SPLIT BRAIN and starts pmfad on neither; the
    clients' app keeps writing to the primary it had. The documented rejoin, told which node
    to keep, moves the other's data aside and clones it."""
    primary, standby = roles(lab)
    app_pid = primary.app_pid()
    with Checker(lab) as checker:
        wait_until(
            lambda: checker.direct[primary.minion_id].acked and checker.app.acked,
            30,
            "the checker's first acknowledgements",
        )
        lab.stop_db(standby)
        os.unlink(os.path.join(standby.data_dir, "standby.signal"))
        lab.start_db(standby)
        fault_at = time.monotonic()
        wait_until(lambda: checker.direct[standby.minion_id].acked, 30, "the second primary acknowledging writes")
        highstates = {
            minion: salt_lab.salt(minion, "state.highstate", timeout=300, check=False)
            for minion in (standby.minion_id, primary.minion_id)
        }
        for minion, ret in highstates.items():
            assert "SPLIT BRAIN" in str(ret), (minion, str(ret)[-3000:])
        assert standby.app_pid() is None and primary.app_pid() == app_pid
        rejoin = salt_lab.run(
            "state.orchestrate",
            "mfa_ha.orch.rejoin",  # documented, with the operator's choice
            pillar={"mfa_ha": {"keep": primary.minion_id}},
            timeout=600,
            check=False,
        )
        assert rejoin.get("retcode") == 0, str(rejoin)[-3000:]
        wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the kept primary, the other streaming")
        converge_s = time.monotonic() - fault_at
    figures = checker.report(primary)
    moved = find_with_key(rejoin, "moved_aside")
    assert moved and os.path.isdir(moved["moved_aside"]), str(rejoin)[-3000:]  # never deleted
    record(
        "a standby started without its standby.signal: a second primary on the same timeline",
        outcome="highstate failed with SPLIT BRAIN on both nodes and started pmfad on neither; the rejoin with "
        "keep moved the second primary's data aside and cloned it",
        converge_s=round(converge_s, 1),
        **figures,
    )
    assert figures["lost_app"] == 0 and figures["lost_direct_by_node"][primary.minion_id] == 0
    assert figures["lost_direct_by_node"][standby.minion_id] > 0  # what the rogue primary took: moved aside
    assert figures["pmfad_on_two_nodes_ms"] == 0


class StatusPoller:
    """The master asking every node for its status: ``pollers`` loops of ``salt-run
    mfa_ha.status timeout=<timeout>`` back to back, for as long as the block runs (status
    jobs in flight on every minion, more than they can answer)."""

    def __init__(self, salt_lab, pollers=4, timeout=1):
        self.salt_lab, self.runs, self.timeout = salt_lab, 0, timeout
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(pollers)]

    def _loop(self):
        while not self._stop.is_set():
            self.salt_lab.run("mfa_ha.status", f"timeout={self.timeout}", timeout=30, check=False)
            self.runs += 1

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


JOB_LINE = re.compile(r"^(\S+ \S+) .*(?:Executing command (\S+) with jid (\d+)|Returning information for job: (\d+))")


def jobs_in_log(path: str) -> dict:
    """``{jid: [function, started, ended]}`` from a minion's log (wall clock, as it logs)."""
    jobs: dict = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            match = JOB_LINE.match(line)
            if not match:
                continue
            at = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if match[2]:
                jobs[match[3]] = [match[2], at, None]
            elif match[4] in jobs:
                jobs[match[4]][2] = at
    return jobs


def status_jobs_overlapping_the_fence(path: str, since: float) -> int:
    jobs = [job for job in jobs_in_log(path).values() if job[1] >= since and job[2]]
    fences = [job for job in jobs if job[0] in ("pgrepl.fence_if_stale", "state.sls", "state.apply")]
    return sum(
        1
        for job in jobs
        if job[0] == "pgrepl.node_status" and any(job[1] < fence[2] and fence[1] < job[2] for fence in fences)
    )


@pytest.mark.slow
def test_old_primary_minion_starting_while_status_jobs_run_is_fenced(lab, salt_lab):
    """On hosts of their own: the primary's host crashes (postgres and its
    minion killed), the operator confirms a failover; the host comes back and something
    starts its PostgreSQL before its minion, a second primary on the old timeline. Its minion
    starts while the master's status jobs run on every node: the fence on its start event is
    not lost (a compound job on the minion used to make it fail), pmfad never runs on two
    nodes, and the documented rejoin converges, naming the old primary's writes after the
    fork as divergent."""
    old, target = roles(lab)
    with Checker(lab) as checker:
        wait_until(
            lambda: checker.direct[old.minion_id].acked and checker.app.acked,
            30,
            "the checker's first acknowledgements",
        )
        salt_lab.kill(old.minion_id)
        lab.stop_app(old)
        kill_postmaster(old)
        failover = salt_lab.run(
            "state.orchestrate",
            "mfa_ha.orch.failover",
            pillar={"mfa_ha": {"target": target.minion_id, "confirm_primary_lost": True}},
            timeout=300,
            check=False,
        )
        assert failover.get("retcode") == 0, str(failover)[-3000:]
        lab.start_db(old)  # a second primary: its host's boot started PostgreSQL, not yet its minion
        stale_at = time.monotonic()
        wait_until(
            lambda: checker.direct[old.minion_id].acked[-1][1] > stale_at, 30, "the stale primary acknowledging writes"
        )
        with StatusPoller(salt_lab) as poller:
            wait_until(lambda: poller.runs >= 1, 120, "the first status run")
            started_at, started_wall, runs_before = time.monotonic(), time.time(), poller.runs
            salt_lab.start_minion(old.minion_id)
            wait_until(
                lambda: not old.is_running() and old.app_pid() is None,
                120,
                "the old primary fenced on its minion's start",
            )
            fenced_after = time.monotonic() - started_at
            status_runs = poller.runs - runs_before
        assert os.path.exists(os.path.join(old.data_dir, "standby.signal"))
        rejoin = rejoin_converges(lab, salt_lab, target, old)
        converge_s = time.monotonic() - stale_at
    figures = checker.report(target)
    divergent = divergent_named(rejoin)
    record(
        "old primary's host crashed, failover confirmed; its PostgreSQL started again before its minion, "
        "which started while status jobs ran",
        outcome="fenced on its minion's start; the documented rejoin named its divergent transactions and rewound it",
        fenced_after_minion_start_s=round(fenced_after, 1),
        status_runs_until_fenced=status_runs,
        status_jobs_overlapping_the_fence=status_jobs_overlapping_the_fence(
            os.path.join(salt_lab.minion_dir(old.minion_id), "minion.log"), started_wall
        ),
        converge_s=round(converge_s, 1),
        divergent_transactions_named=divergent,
        **figures,
    )
    assert figures["lost_direct_by_node"][target.minion_id] == 0
    assert figures["lost_direct_by_node"][old.minion_id] + figures["lost_app"] <= divergent
    assert figures["pmfad_on_two_nodes_ms"] == 0


def test_a_crashed_primary_fenced_by_a_confirmed_failover_is_rewound_not_cloned(lab, salt_lab):
    """The primary's PostgreSQL killed (-9) under load, its minion still answering: the
    confirmed failover fences it (standby files written into a data directory that was never
    shut down cleanly). The documented rejoin rewinds it (crash recovery first) or, when its
    WAL ends at the fork, re-attaches it as it is: a clone would copy the whole database."""
    old, target = roles(lab)
    with Checker(lab) as checker:
        wait_until(
            lambda: checker.direct[old.minion_id].acked and checker.app.acked,
            30,
            "the checker's first acknowledgements",
        )
        kill_postmaster(old)
        failover = salt_lab.run(
            "state.orchestrate",
            "mfa_ha.orch.failover",
            pillar={"mfa_ha": {"target": target.minion_id, "confirm_primary_lost": True}},
            timeout=300,
            check=False,
        )
        assert failover.get("retcode") == 0, str(failover)[-3000:]
        assert os.path.exists(os.path.join(old.data_dir, "standby.signal")) and not old.is_running()
        kept_before = set(os.listdir(os.path.dirname(old.data_dir)))
        started = time.monotonic()
        rejoin = rejoin_converges(lab, salt_lab, target, old)
        rejoin_s = time.monotonic() - started
    # pg_rewind when its WAL went past the fork; none at all when the target had received it all
    method = (find_with_key(rejoin, "rewind_method") or {}).get("rewind_method")
    assert method in ("rewind", None), str(rejoin)[-3000:]
    assert set(os.listdir(os.path.dirname(old.data_dir))) == kept_before, "cloned (moved aside), not rewound"
    figures = checker.report(target)
    record(
        "the primary's postgres killed (-9), failover confirmed (the old primary fenced), then the documented rejoin",
        outcome="crash recovery, then pg_rewind (no clone)"
        if method
        else "no WAL past the fork: re-attached as it was",
        rejoin_s=round(rejoin_s, 1),
        data_dir_bytes=keptaside.tree_bytes(old.data_dir),
        **figures,
    )
    assert figures["lost_direct_by_node"][target.minion_id] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0
