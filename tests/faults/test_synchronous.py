"""``synchronous: "on"`` with the unattended failover, on hosts of their own with the real
master (and its witness), a minion and a lease keeper on each node's host, the data centres
WAN_RTT_MS apart (the lab's delay line; the other fault modules run on the plain link), while
the checker writes from the clients' host: the primary's site cut off, its clients still reaching it,
fails over with no acknowledged write lost; the standby's site lost alone, or the link between
the data centres alone, makes commits wait for a bounded time, until the master recorded the
standby as behind, and loses nothing; the standby is promotable again once it caught up. A
planned switchover there and back, and a switchover struck by a cut link or a killed new
primary, lose nothing either."""

import time

import pytest

from mfa_ha.unattended import lease
from mfa_ha_lab.checker import Checker, wait_until
from mfa_ha_lab.lab import Lab
from mfa_ha_lab.salt_daemons import promotable_since, recorded_promotable
from tests.faults.common import (
    AUTOMATIC,
    CONVERGE_WITHIN,
    OBSERVE,
    alerts,
    assert_nothing_lost,
    converged,
    cut_off,
    dc_link_cut_once_the_old_primary_stopped,
    new_primary_killed_after_its_promotion,
    no_failover_since,
    restore,
    role,
    roles,
    site_cut_off_fails_over,
    switch_there_and_back,
)
from tests.support import record

SETTINGS = lease.LeaseSettings(**AUTOMATIC)
WAN_RTT_MS, WAN_JITTER_MS = 10, 1  # a realistic round trip between two data centres


@pytest.fixture(scope="module")
def lab(net):
    net.delay("dc1", "dc2", WAN_RTT_MS, WAN_JITTER_MS)
    measured = sorted(net.round_trip_ms("dc1", "dc2", 20))
    assert measured[0] >= WAN_RTT_MS - WAN_JITTER_MS, measured  # the delay is really there
    with Lab(network=net, synchronous="strict") as lab:  # "on" needs the witness: turned on with it below
        lab.wan_rtt_ms = round(measured[len(measured) // 2], 2)
        yield lab
    net.undelay()


def sync_standby(primary) -> bool:
    return primary.sql("SELECT sync_state FROM pg_stat_replication") == [("sync",)]


def settled(lab, primary, standby) -> None:
    wait_until(lambda: converged(lab, primary, standby) and sync_standby(primary), CONVERGE_WITHIN, "the pair in sync")
    wait_until(lambda: recorded_promotable(lab, standby.minion_id), 120, "the standby recorded as holding every commit")


@pytest.fixture(scope="module")
def synchronous_on(lab, salt_lab):
    salt_lab.synchronous_on(AUTOMATIC)
    return AUTOMATIC


def test_the_primary_site_cut_off_with_its_clients_fails_over_losing_no_acknowledged_write(
    lab, salt_lab, net, synchronous_on
):
    """As without synchronous replication, the isolated primary fences itself and the
    witness fails over; its commits waited for the standby meanwhile, so what its clients
    were told is done is on the new primary."""
    figures = site_cut_off_fails_over(lab, salt_lab, net, synchronous_on)
    record(
        'synchronous "on", automatic on: the primary\'s site cut off from the standby and the master, its clients '
        "still reaching it",
        outcome="commits on the isolated primary waited (no word from the master); it fenced itself; the witness "
        "failed over; the rejoin re-attached the old one",
        wan_rtt_ms=lab.wan_rtt_ms,
        **figures,
    )
    assert figures["rpo_writes"] == 0 and figures["lost_direct"] == figures["lost_app"] == 0


def test_the_standby_site_lost_alone_commits_wait_a_bounded_time_and_nothing_is_lost(
    lab, salt_lab, net, synchronous_on
):
    """The standby's site cut off from the primary and the master: commits wait until the
    primary's keeper has the witness's word (the master recorded the standby as behind), then
    go on; no failover. Back, the standby catches up and is recorded promotable again."""
    primary, standby = roles(lab)
    wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming")
    before = len(alerts(lab))
    wait_until(lambda: promotable_since(lab, 0), 90, "the standby recorded as holding every commit")
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked, 30, "the checker's first acknowledgements")
        cut_at = time.monotonic()
        cut_off(net, standby.host)
        try:
            waited = wait_until(
                lambda: checker.last_acked_at(primary.minion_id) > cut_at + 1, 60, "commits going on again"
            )
            assert any("recorded as not promotable" in line for line in alerts(lab)[before:])
            time.sleep(max(0, OBSERVE - waited))
            assert role(primary) == "primary" and primary.app_pid() is not None
        finally:
            restore(net, standby.host)
        back = len(alerts(lab))
        wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")
        wait_until(lambda: promotable_since(lab, back), 120, "the standby recorded as promotable again")
    figures = checker.report(primary)
    record(
        'synchronous "on", automatic on: the standby\'s site cut off from the primary and the master',
        outcome="commits waited until the master recorded the standby as behind, then went on; no failover; "
        "back, the standby caught up and was recorded promotable",
        commits_waited_s=round(waited, 1),
        wan_rtt_ms=lab.wan_rtt_ms,
        **figures,
    )
    assert waited < SETTINGS.sync_lost_bound + 5  # the bound, and the witness's job round trips
    assert figures["lost_direct"] == figures["lost_app"] == 0 and figures["two_primary_ms"] == 0
    assert no_failover_since(lab, before)


def test_a_planned_switchover_there_and_back_under_load_loses_nothing(lab, salt_lab, synchronous_on):
    """Each new primary names the new standby before it takes a write: every commit it
    acknowledges waits for the old primary to stream from it again."""
    primary, standby = roles(lab)
    settled(lab, primary, standby)
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked and checker.app.acked, 30, "first acknowledgements")
        switches = switch_there_and_back(lab, salt_lab, checker, settled=lambda p, _s: sync_standby(p))
    figures = checker.report(primary)
    record(
        'synchronous "on", automatic on: planned switchover there and back under load',
        outcome="switched, both ways; the new standby sync after each",
        switches=switches,
        wan_rtt_ms=lab.wan_rtt_ms,
        **figures,
    )
    assert figures["lost_direct"] == figures["lost_app"] == 0
    assert figures["two_primary_ms"] == 0 and figures["pmfad_on_two_nodes_ms"] == 0


@pytest.mark.slow  # as the standby's site lost, seen from the primary; CI runs that one
def test_a_silent_dc_link_makes_commits_wait_until_the_standby_is_recorded_behind(lab, salt_lab, net, synchronous_on):
    """Only the link between the data centres goes silent; both still reach the master. The
    primary keeps its lease, so no failover; its commits wait until the master recorded the
    standby as behind; back, the standby catches up and is recorded promotable again."""
    primary, standby = roles(lab)
    settled(lab, primary, standby)
    before = len(alerts(lab))
    with Checker(lab) as checker:
        wait_until(lambda: checker.direct[primary.minion_id].acked, 30, "the checker's first acknowledgements")
        cut_at = time.monotonic()
        net.cut("dc1", "dc2")
        try:
            waited = wait_until(
                lambda: checker.last_acked_at(primary.minion_id) > cut_at + 1, 60, "commits going on again"
            )
            assert any("recorded as not promotable" in line for line in alerts(lab)[before:])
            time.sleep(max(0, OBSERVE - waited))
            assert role(primary) == "primary" and primary.app_pid() is not None and role(standby) == "standby"
        finally:
            net.restore("dc1", "dc2")
        back = len(alerts(lab))
        wait_until(lambda: converged(lab, primary, standby), CONVERGE_WITHIN, "the pair streaming again")
        wait_until(lambda: promotable_since(lab, back), 120, "the standby recorded as promotable again")
        caught_up_s = time.monotonic() - cut_at - OBSERVE
    figures = checker.report(primary)
    record(
        'synchronous "on", automatic on: the DC link silent (both sites still reach the master), then back',
        outcome="commits waited until the master recorded the standby as behind, then went on; no failover; "
        "back, the standby caught up and was recorded promotable",
        commits_waited_s=round(waited, 1),
        promotable_again_after_restore_s=round(caught_up_s, 1),
        wan_rtt_ms=lab.wan_rtt_ms,
        **figures,
    )
    assert waited < SETTINGS.sync_lost_bound + 5  # the bound, and the witness's job round trips
    assert figures["lost_direct"] == figures["lost_app"] == 0 and figures["two_primary_ms"] == 0
    assert no_failover_since(lab, before)


@pytest.mark.slow
def test_dc_link_cut_once_the_old_primary_stopped_loses_nothing(lab, salt_lab, net, synchronous_on):
    """A switchover struck as in the switchover fault table: the old primary stopped, the
    target held before its promotion, then the DC link silent. The switch fails, nothing
    serves; link back, the documented re-run resumes the old primary, its standby sync again."""
    old, target = roles(lab)
    settled(lab, old, target)
    figures, converge_s = dc_link_cut_once_the_old_primary_stopped(
        lab, salt_lab, net, old, target, lambda primary, standby: settled(lab, primary, standby)
    )
    record(
        'synchronous "on", automatic on: DC link cut after the old primary stopped, before the target promoted',
        outcome="switch not done; the re-run resumed the old primary, its standby sync again",
        converge_s=round(converge_s, 1),
        wan_rtt_ms=lab.wan_rtt_ms,
        **figures,
    )
    assert_nothing_lost(figures)


@pytest.mark.slow
def test_new_primary_killed_right_after_its_promotion_loses_nothing(lab, salt_lab, synchronous_on):
    """kill -9 of the target's postgres the moment it accepts writes: what it acknowledged
    waited for the old primary to stream from it; its host repaired, the re-run finishes the
    switch, the old primary its sync standby."""
    old, target = roles(lab)
    settled(lab, old, target)
    figures, converge_s = new_primary_killed_after_its_promotion(
        lab, salt_lab, old, target, lambda primary, standby: settled(lab, primary, standby)
    )
    record(
        'synchronous "on", automatic on: new primary\'s postgres killed (-9) right after its promotion',
        outcome="switch failed; the target's server started again, the re-run finished the switch, the old "
        "primary its sync standby",
        converge_s=round(converge_s, 1),
        wan_rtt_ms=lab.wan_rtt_ms,
        **figures,
    )
    assert_nothing_lost(figures)
