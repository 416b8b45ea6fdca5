"""Unattended failover, on hosts of their own with the real master (and its
``mfa_ha_witness`` engine) on the master's site, a minion and a lease keeper on each node's
host, while the checker writes from the clients' host: never two primaries accepting writes,
the time from the fault to the new primary accepting writes, the writes the old primary
took that the new one lacks (the RPO), and the documented rejoin converging."""

import os
import signal
import time

import pytest

from mfa_ha.unattended import lease
from mfa_ha_lab.checker import Checker, wait_until
from tests.faults.common import (
    AUTOMATIC,
    CONVERGE_WITHIN,
    OBSERVE,
    alerts,
    apply_failover_pillar,
    converged,
    cut_off,
    no_failover_since,
    rejoin_converges,
    restore,
    role,
    roles,
    site_cut_off_fails_over,
    witness_armed,
)
from tests.support import record


@pytest.mark.slow
def test_with_the_option_off_nothing_automatic_happens(lab, salt_lab, net):
    """The default: the primary's data centre cut off from the other and from the master for
    longer than a lease and its margin: no failover, no fence, no witness alert."""
    primary, standby = roles(lab)
    before = len(alerts(lab))
    app_pid = primary.app_pid()
    cut_off(net, primary.host)
    try:
        time.sleep(OBSERVE)
        assert role(standby) == "standby" and standby.app_pid() is None
        assert role(primary) == "primary" and primary.app_pid() == app_pid and primary.keeper_pid() is None
    finally:
        restore(net, primary.host)
    assert not [line for line in alerts(lab)[before:] if "witness" in line]
    wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")


@pytest.fixture(scope="module")
def automatic(lab, salt_lab):
    before = len(alerts(lab))
    apply_failover_pillar(salt_lab, AUTOMATIC)
    wait_until(lambda: any("witness armed" in line for line in alerts(lab)[before:]), 60, "the witness armed")
    assert witness_armed(lab)
    primary, _ = roles(lab)
    assert primary.keeper_pid() and all(n.keeper_pid() for n in lab.nodes)
    return AUTOMATIC


@pytest.mark.slow
def test_paused_the_primary_site_cut_off_is_neither_fenced_nor_failed_over_and_unpause_waits_for_it(
    lab, salt_lab, net, automatic
):
    """Maintenance: paused, the primary's site cut off from the standby and the master for
    longer than lease + margin: its keeper holds (and says only the pause kept it from
    fencing), the witness does not fail over (and says why). The pause cannot end while the
    cut-off node cannot confirm; links back, it ends and the pair is as before."""
    primary, standby = roles(lab)
    wait_until(lambda: witness_armed(lab), 60, "the witness armed")
    before, app_pid = len(alerts(lab)), primary.app_pid()
    paused = salt_lab.run("mfa_ha.pause", reason="patching the master")
    assert paused["retcode"] == 0 and paused["left_out"] == [], paused
    cut_off(net, primary.host)
    try:
        time.sleep(OBSERVE)
        assert role(primary) == "primary" and primary.app_pid() == app_pid and role(standby) == "standby"
        beat = lease.read_record(os.path.join(primary.lease_dir, "keeper.json"))
        assert beat["fence_suspended"] is True and beat["paused"]["id"] == paused["record"]["id"], beat
        kept = salt_lab.run("mfa_ha.unpause", check=False, timeout=120)
        assert kept["retcode"] == 1 and kept["unpaused"] is False and primary.minion_id in kept["reason"], kept
    finally:
        restore(net, primary.host)
    salt_lab.wait_for_minions(120)
    ended = salt_lab.run("mfa_ha.unpause")
    assert ended["unpaused"] is True and ended["was"]["id"] == paused["record"]["id"], ended
    wait_until(  # automation back: the keeper fences again when its lease runs out
        lambda: lease.read_record(os.path.join(primary.lease_dir, "keeper.json")).get("paused") is None,
        10,
        "the keeper's heartbeat without the pause",
    )
    assert no_failover_since(lab, before)
    assert any("no failover" in line and "paused" in line for line in alerts(lab)[before:])
    wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")
    assert primary.app_pid() == app_pid


def test_dc_link_cut_with_the_master_on_a_third_site_only_alerts(lab, salt_lab, net, automatic):
    """The master reaches both nodes: the primary's lease is renewed, so it keeps serving;
    the standby's receiver lost it, which the witness reports, and nothing else happens."""
    primary, standby = roles(lab)
    app_pid = primary.app_pid()
    before = len(alerts(lab))
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked, 30, "the checker's first acknowledgements")
        net.cut("dc1", "dc2")
        try:
            wait_until(lambda: any("no failover" in line for line in alerts(lab)[before:]), 120, "the witness's alert")
            time.sleep(max(0, OBSERVE - 30))
            assert role(primary) == "primary" and primary.app_pid() == app_pid and role(standby) == "standby"
        finally:
            net.restore("dc1", "dc2")
        wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")
    figures = checker.report(primary)
    record(
        "automatic on: DC link cut both ways, the master on a third site (it reaches both)",
        outcome="no failover, no fence: the witness alerted (standby lost its receiver, primary answers)",
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0 and figures["two_primary_ms"] == 0
    assert no_failover_since(lab, before)


def _one_way(a, b):
    return lambda net, salt_lab, primary: (net.cut(a, b, both=False), lambda: net.restore(a, b))[1]


def _cut_off_standby(net, salt_lab, primary):
    cut_off(net, "dc2" if primary.host == "dc1" else "dc1")
    return lambda: restore(net, "dc2" if primary.host == "dc1" else "dc1")


def _master_lost(net, salt_lab, primary):
    net.isolate("master")
    return lambda: net.reconnect("master")


def _primary_minion_killed(net, salt_lab, primary):
    salt_lab.kill(primary.minion_id)
    return lambda: salt_lab.start_minion(primary.minion_id)


NO_FAILOVER = {  # fault -> (inject(net, salt_lab, primary) -> undo)
    "the DC link cut from DC1 to DC2 only, the master on a third site": _one_way("dc1", "dc2"),
    "the DC link cut from DC2 to DC1 only, the master on a third site": _one_way("dc2", "dc1"),
    "the standby's site cut off from the primary and the master": _cut_off_standby,
    "the master's site lost alone": _master_lost,
    "the primary's minion killed (-9), its PostgreSQL running": _primary_minion_killed,
}


@pytest.mark.slow  # five cases of 45 s each held: with the fault command, not in CI (docs/testing.md: what runs where)
@pytest.mark.parametrize("fault", list(NO_FAILOVER))
def test_faults_the_primary_survives_change_nothing(lab, salt_lab, net, automatic, fault):
    """Held past lease + margin: the primary keeps its lease (the master or the standby still
    renews it) and serves; the witness does not fail over."""
    primary, standby = roles(lab)
    app_pid = primary.app_pid()
    before = len(alerts(lab))
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked, 30, "the checker's first acknowledgements")
        undo = NO_FAILOVER[fault](net, salt_lab, primary)
        try:
            time.sleep(OBSERVE)
            assert role(primary) == "primary" and primary.app_pid() == app_pid and role(standby) == "standby"
        finally:
            undo()
        wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")
    figures = checker.report(primary)
    record(f"automatic on: {fault}", outcome="no failover, no fence", **figures)
    assert figures["lost_direct"] == figures["lost_app"] == 0 and figures["two_primary_ms"] == 0
    assert no_failover_since(lab, before)


@pytest.mark.slow
def test_a_flapping_link_faster_than_the_lease_changes_nothing(lab, salt_lab, net, automatic):
    """Cut for half a lease, restored for 4 s, five times. The keeper needs one proven contact
    per lease; the keepers' heartbeats prove it within a poll of the link's return, where the
    replication connection waits for TCP's backed-off retransmission (without them, a link
    flapping like this can leave a lease without proof long enough to fence)."""
    primary, standby = roles(lab)
    app_pid = primary.app_pid()
    before = len(alerts(lab))
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked, 30, "the checker's first acknowledgements")
        for _ in range(5):
            cut_off(net, primary.host)
            time.sleep(automatic["lease_seconds"] / 2)
            restore(net, primary.host)
            time.sleep(4)
        assert role(primary) == "primary" and primary.app_pid() == app_pid and role(standby) == "standby"
        wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")
    figures = checker.report(primary)
    keeper = lease.read_record(os.path.join(primary.lease_dir, "keeper.json"))
    record(
        "automatic on: the primary's site cut off for half a lease and back, five times",
        outcome="no failover, no fence",
        longest_quiet_s=keeper.get("longest_quiet_s"),
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0 and figures["two_primary_ms"] == 0
    assert no_failover_since(lab, before)


def test_primary_site_cut_off_from_the_standby_and_the_master_fails_over_without_two_primaries(
    lab, salt_lab, net, automatic
):
    """The primary's data centre loses the other one and the master (its clients still reach
    it): its keeper fences it once the lease runs out; the witness, lease + margin later and
    once the standby says its receiver lost the primary, fails over. The checker never sees
    two primaries. Links back, the documented rejoin converges."""
    figures = site_cut_off_fails_over(lab, salt_lab, net, automatic)
    record(
        "automatic on: the primary's site cut off from the standby and the master, its clients still reaching it",
        outcome="the old primary fenced itself when its lease ran out; the witness failed over; the documented "
        "rejoin re-attached the old one",
        **figures,
    )


@pytest.mark.slow
def test_a_keeper_frozen_as_its_site_is_cut_off_is_replaced_and_the_primary_still_fences_first(
    lab, salt_lab, net, automatic
):
    """As above, with the primary's lease keeper frozen (SIGSTOP) just before the cut: its
    watchdog replaces it, the replacement fences on the lease the frozen one held, before
    the witness acts."""
    primary, _ = roles(lab)
    frozen = {}

    def freeze():
        frozen.update(lease.read_record(os.path.join(primary.lease_dir, "keeper.json")))
        os.kill(frozen["pid"], signal.SIGSTOP)

    figures = site_cut_off_fails_over(lab, salt_lab, net, automatic, before_cut=freeze)
    now = lease.read_record(os.path.join(primary.lease_dir, "keeper.json"))
    assert now["pid"] != frozen["pid"] and now["last_fence"]["armed_at"] == frozen["armed_at"]  # replaced, same lease
    record(
        "automatic on: the primary's keeper frozen (SIGSTOP) as its site is cut off from the standby and the master",
        outcome="its watchdog replaced it; the replacement fenced on the same lease; the witness failed over; "
        "the documented rejoin re-attached the old one",
        **figures,
    )


@pytest.mark.slow
def test_primary_host_lost_fails_over_and_the_lease_fenced_it(lab, salt_lab, net, automatic):
    """The primary's host loses its link entirely (no one reaches it, it reaches no one):
    its keeper fences it within the lease, the witness fails over after lease + margin.
    The host back, the documented rejoin converges."""
    primary, standby = roles(lab)
    wait_until(lambda: witness_armed(lab), 60, "the witness armed again")
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked, 30, "the checker's first acknowledgements")
        net.isolate(primary.host)
        try:
            fenced_after = wait_until(lambda: not primary.is_running(), 60, "the isolated primary fencing itself")
            failover_after = (
                wait_until(lambda: checker.direct[standby.minion_id].acked, 180, "the new primary accepting writes")
                + fenced_after
            )
        finally:
            net.reconnect(primary.host)
        salt_lab.wait_for_minions(120)
        rejoin_converges(lab, salt_lab, standby, primary)
    figures = checker.report(standby)
    record(
        "automatic on: the primary's host lost (its link down)",
        outcome="fenced by its lease; the witness failed over; the documented rejoin re-attached it",
        fenced_after_s=round(fenced_after, 1),
        new_primary_writes_after_s=round(failover_after, 1),
        **figures,
    )
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0
    assert figures["lost_direct_by_node"][standby.minion_id] == 0
