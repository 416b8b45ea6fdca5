"""``synchronous: "on"`` with the unattended failover, on hosts of their own with the real
master (and its witness), a minion and a lease keeper on each node's host, the data centres
WAN_RTT_MS apart (the lab's delay line; the other fault modules run on the plain link), while
the checker writes from the clients' host: the primary's site cut off, its clients still reaching it,
fails over with no acknowledged write lost; the standby's site lost alone makes commits wait
for a bounded time, until the master recorded the standby as behind, and loses nothing; the
standby is promotable again once it caught up."""

import time

import pytest

from mfa_ha.unattended import lease
from mfa_ha_lab.checker import Checker, wait_until
from mfa_ha_lab.lab import MASTER_ID, Lab
from tests.faults.common import (
    AUTOMATIC,
    CONVERGE_WITHIN,
    OBSERVE,
    alerts,
    converged,
    cut_off,
    no_failover_since,
    restore,
    role,
    roles,
    site_cut_off_fails_over,
    witness_armed,
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


def promotable_since(lab, before: int) -> bool:
    return any("promotable" in line and "holds every commit" in line for line in alerts(lab)[before:])


@pytest.fixture(scope="module")
def synchronous_on(lab, salt_lab):
    before = len(alerts(lab))

    def edit(mfa):
        mfa.setdefault("failover", {}).update(AUTOMATIC)
        mfa.setdefault("replication", {})["synchronous"] = "on"

    lab.edit_overrides([MASTER_ID, *(n.minion_id for n in lab.nodes)], edit)
    salt_lab.salt("*", "saltutil.refresh_pillar", wait=True)
    applied = salt_lab.salt("*", "state.apply", "mfa_ha", timeout=300, check=False)
    for minion, states in applied.items():
        assert isinstance(states, dict) and all(s["result"] for s in states.values()), (minion, str(states)[-3000:])
    wait_until(lambda: witness_armed(lab), 90, "the witness armed")
    wait_until(lambda: promotable_since(lab, before), 90, "the standby recorded as holding every commit")
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
