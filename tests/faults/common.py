"""What the fault cases check the lab's pair with, the operator's documented rejoin, and the
unattended failover's pillar, alerts and site cuts."""

import os
import signal
import threading
import time

from mfa_ha.app import app_config
from mfa_ha.pair import switchover as sw
from mfa_ha_lab.checker import Checker, wait_until
from mfa_ha_lab.salt_daemons import alert_lines as alerts
from mfa_ha_lab.salt_daemons import witness_armed
from tests.support import find_with_key

CONVERGE_WITHIN = 180  # s
AUTOMATIC = {"automatic": True, "lease_seconds": 10, "margin_seconds": 32}  # fails over 42 s after the loss
OBSERVE = 45  # s a fault is held where nothing may happen: past lease + margin, and the receiver's 30 s timeout


# How long a switch may take before the master gives up on a node that does not answer: the
# switch job's own bound as the lab's master computes it (its pillar has no mfa_ha:pmfad), and
# the status of every node after it.
SWITCH_WAIT = sw.switch_job_seconds({}, app_config({})) + 60


def switchover(salt_lab, target):
    return salt_lab.run(
        "state.orchestrate",
        "mfa_ha.orch.switchover",
        pillar={"mfa_ha": {"target": target}},
        timeout=SWITCH_WAIT,
        check=False,
    )


def switchover_verb(salt_lab, target):
    """``salt-run mfa_ha.switchover <target>``, as an operator types it."""
    return salt_lab.run("mfa_ha.switchover", target, timeout=SWITCH_WAIT, check=False)


def in_background(function, *args):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=function(*args)), daemon=True)
    thread.start()
    return thread, result


def kill_postmaster(node) -> None:
    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        os.kill(int(fh.readline()), signal.SIGKILL)
    wait_until(lambda: not node.is_running(), 30, "the killed postmaster to be gone")


def hold_before_promotion(target) -> None:
    """The target's replay paused: it cannot replay the old primary's shutdown checkpoint, so
    it cannot prove it and does not promote; a fault then strikes at a known phase (the old
    primary stopped, the target not yet promoted) instead of racing a 50 ms window."""
    target.sql("SELECT pg_wal_replay_pause()")


def role(node) -> str:
    return "standby" if node.sql("SELECT pg_is_in_recovery()")[0][0] else "primary"


def roles(lab):
    """(the node that is the primary, the other one)."""
    primary = next(node for node in lab.nodes if role(node) == "primary")
    return primary, next(node for node in lab.nodes if node is not primary)


def converged(lab, primary, standby) -> bool:
    """One primary with pmfad, the other a standby streaming from it, pmfad only there."""
    receiver = standby.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return (
        role(primary) == "primary"
        and primary.app_pid() is not None
        and standby.app_pid() is None
        and receiver == [("streaming", primary.address)]
    )


def dc_link_cut_once_the_old_primary_stopped(lab, salt_lab, net, old, target, settle) -> tuple[dict, float]:
    """A switchover struck once the old primary stopped and before the target promoted: the
    DC link goes silent. The switch fails and nothing serves; link back, the documented re-run
    resumes the old primary. ``settle(primary, standby)`` waits for the pair as the case wants
    it. Returns the checker's figures and the seconds from the fault to a settled pair."""
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[old.minion_id].acked, 30, "the checker's first acknowledgements")
        hold_before_promotion(target)
        thread, result = in_background(switchover, salt_lab, target.minion_id)
        wait_until(lambda: not old.is_running(), 60, "the old primary to stop")
        net.cut("dc1", "dc2")
        fault_at = time.monotonic()
        try:
            thread.join(timeout=SWITCH_WAIT + 60)
            assert result["value"].get("retcode") != 0
            assert role(target) == "standby" and not old.is_running()
        finally:
            net.restore("dc1", "dc2")
            target.sql("SELECT pg_wal_replay_resume()")
        rerun = switchover(salt_lab, target.minion_id)  # the documented command
        assert "comes back as the primary" in str(rerun)
        settle(old, target)
        converge_s = time.monotonic() - fault_at
    return checker.report(old), converge_s


def new_primary_killed_after_its_promotion(lab, salt_lab, old, target, settle) -> tuple[dict, float]:
    """kill -9 of the target's postgres the moment it accepts writes: the switch fails and the
    old primary never takes writes; the target's host repaired (its server started again),
    the documented re-run finishes the switch. ``settle`` and the answer as above."""
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[old.minion_id].acked, 30, "the checker's first acknowledgements")
        thread, result = in_background(switchover, salt_lab, target.minion_id)
        wait_until(lambda: role(target) == "primary", 90, "the target's promotion", interval=0.01)
        fault_at = time.monotonic()
        kill_postmaster(target)
        thread.join(timeout=SWITCH_WAIT + 60)
        assert result["value"].get("retcode") != 0, str(result["value"])[-2000:]
        assert old.app_pid() is None and (not old.is_running() or role(old) == "standby")
        lab.start_db(target)  # the target's host is repaired
        rerun = switchover(salt_lab, target.minion_id)  # the documented command
        assert rerun.get("retcode") == 0, str(rerun)[-3000:]
        settle(target, old)
        converge_s = time.monotonic() - fault_at
    return checker.report(target), converge_s


def assert_nothing_lost(figures: dict) -> None:
    """No acknowledged write lost, never two primaries, never pmfad on two nodes."""
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


def switch_there_and_back(lab, salt_lab, checker, settled=lambda primary, standby: True) -> list[dict]:
    """A switchover to the standby and back under the checker's writers: each succeeds and
    converges (and is ``settled``); per switch, the command's wall and the longest write gaps."""
    primary, standby = roles(lab)
    switches = []
    for target, other in ((standby, primary), (primary, standby)):
        started = time.monotonic()
        done = switchover(salt_lab, target.minion_id)
        ended = time.monotonic()
        assert done.get("retcode") == 0, str(done)[-3000:]
        wait_until(
            lambda target=target, other=other: converged(lab, target, other) and settled(target, other),
            CONVERGE_WITHIN,
            f"{target.minion_id} primary, {other.minion_id} streaming from it",
        )
        switches.append(
            {"to": target.minion_id, "wall_s": round(ended - started, 2), **checker.write_gap(started, ended)}
        )
    return switches


def rejoin_converges(lab, salt_lab, primary, standby) -> dict:
    """``salt-run state.orchestrate mfa_ha.orch.rejoin`` succeeds and the pair converges."""
    rejoin = salt_lab.run("state.orchestrate", "mfa_ha.orch.rejoin", timeout=600, check=False)
    assert rejoin.get("retcode") == 0, str(rejoin)[-3000:]
    wait_until(
        lambda: converged(lab, primary, standby),
        CONVERGE_WITHIN,
        f"{primary.minion_id} primary, {standby.minion_id} streaming from it",
    )
    return rejoin


def divergent_named(rejoin: dict) -> int:
    """The transactions the rejoin named as divergent (committed on the old primary after the fork)."""
    named = find_with_key(rejoin, "divergent")
    assert named, str(rejoin)[-3000:]
    return named["divergent"]["transactions_after_fork"]


def no_failover_since(lab, before: int) -> bool:
    """No failover decided since alert line ``before`` (a decision is alerted before it runs)."""
    return not [line for line in alerts(lab)[before:] if "failing over to" in line]


def apply_failover_pillar(salt_lab, failover: dict) -> None:
    salt_lab.apply_pillar(lambda mfa: mfa.setdefault("failover", {}).update(failover))


def cut_off(net, host):
    """``host`` loses the other data centre and the master's site; its clients still reach it."""
    net.cut(host, "dc2" if host == "dc1" else "dc1")
    net.cut(host, "master")


def restore(net, host):
    net.restore(host, "master")
    net.restore(host, "dc2" if host == "dc1" else "dc1")


def site_cut_off_fails_over(lab, salt_lab, net, automatic, before_cut=None) -> dict:
    primary, standby = roles(lab)
    wait_until(lambda: witness_armed(lab), 60, "the witness armed")
    with Checker(lab) as checker:
        wait_until(
            lambda: checker.direct[primary.minion_id].acked and checker.app.acked,
            30,
            "the checker's first acknowledgements",
        )
        if before_cut:
            before_cut()
        cut_off(net, primary.host)
        cut_at = time.monotonic()
        try:
            fenced_after = wait_until(lambda: not primary.is_running(), 60, "the isolated primary fencing itself")
            assert os.path.exists(os.path.join(primary.data_dir, "standby.signal"))
            failover_after = (
                wait_until(lambda: checker.direct[standby.minion_id].acked, 180, "the new primary accepting writes")
                + fenced_after
            )
            wait_until(lambda: standby.app_pid(), 60, "pmfad on the new primary")
            writes_ended_after = checker.last_acked_at(primary.minion_id) - cut_at
        finally:
            restore(net, primary.host)
        salt_lab.wait_for_minions(120)  # as an operator would: salt '*' test.ping
        rejoin_converges(lab, salt_lab, standby, primary)
        converge_s = time.monotonic() - cut_at
    figures = checker.report(standby)
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0
    assert figures["lost_direct_by_node"][standby.minion_id] == 0
    # Gone before the witness may act (lease + margin), so before the new primary took a write.
    assert fenced_after < automatic["lease_seconds"] + automatic["margin_seconds"] and fenced_after < failover_after
    assert any("failover to" in line and "done" in line for line in alerts(lab))
    assert writes_ended_after < fenced_after
    return {
        "old_primary_last_write_after_s": round(writes_ended_after, 1),
        "fenced_after_s": round(fenced_after, 1),
        "new_primary_writes_after_s": round(failover_after, 1),
        "rpo_writes": figures["lost_direct_by_node"][primary.minion_id] + figures["lost_app"],
        "converge_s": round(converge_s, 1),
        **figures,
    }
