"""Synchronous replication dropped only with the witness's word (``synchronous: on``): the
keeper's steps (``syncguard.step``) and the witness's record, as pure logic."""

from mfa_ha import timing
from mfa_ha.lsn import to_int
from mfa_ha.unattended.syncguard import CATCH_UP_BYTES, Observed, SyncState, step

LOST = timing.SYNC_LOST_SECONDS


def seen(sync=True, waiting=0.0, flush="0/5000000", current="0/5000000", state="streaming", names=True):
    return Observed(to_int(current), state, sync, to_int(flush) if flush else None, waiting, names)


def test_a_standby_that_acknowledges_keeps_the_state():
    state, action = step(SyncState("sync", since=5.0), seen(), None, 100.0, 1e9, LOST)
    assert (state.state, action, state.since) == ("sync", None, 5.0)


def test_a_keeper_new_to_its_primary_says_sync_only_once_the_standby_flushed_what_it_first_saw():
    first, _ = step(SyncState(), seen(flush="0/4000000", current="0/5000000"), None, 100.0, 1e9, LOST)
    assert (first.state, first.lsn) == ("resyncing", "0/5000000")
    later, _ = step(first, seen(flush="0/5000000", current="0/5100000"), None, 101.0, 1e9, LOST)
    assert later.state == "sync"


def test_a_lost_standby_is_asked_for_only_after_the_bound_and_never_dropped_without_the_word():
    state, _ = step(SyncState("sync"), seen(sync=False, state=None, flush=None), None, 100.0, 1e9, LOST)
    assert state.state == "sync" and state.lost_since == 100.0
    state, _ = step(state, seen(sync=False, state=None, flush=None), None, 100.0 + LOST - 0.1, 1e9, LOST)
    assert state.state == "sync"
    asked, action = step(state, seen(sync=False, state=None, flush=None), None, 100.0 + LOST, 1e9, LOST)
    assert asked.state == "asked" and asked.request and asked.lsn == "0/5000000" and action is None
    for word in (None, "another request"):
        still, action = step(asked, seen(sync=False, state=None, flush=None), word, 200.0, 1e9, LOST)
        assert (still.state, action) == ("asked", None)
    dropped, action = step(asked, seen(sync=False, state=None, flush=None), asked.request, 200.0, 1e9, LOST)
    assert (dropped.state, action) == ("degraded", "degrade") and dropped.lsn == asked.lsn


def test_commits_waiting_too_long_count_as_lost_even_while_the_standby_is_listed_as_sync():
    state, _ = step(SyncState(), seen(waiting=LOST), None, 100.0, 1e9, LOST)
    state, _ = step(state, seen(waiting=LOST + 5), None, 100.0 + LOST, 1e9, LOST)
    assert state.state == "asked"


def test_a_standby_back_before_the_word_resyncs_rather_than_counting_as_promotable_at_once():
    asked = SyncState("asked", "r1", "0/5000000", 1e9)
    state, action = step(asked, seen(current="0/6000000", flush="0/6000000"), None, 200.0, 1e9, LOST)
    assert (state.state, action, state.lsn) == ("resyncing", None, None)
    later, _ = step(state, seen(current="0/6100000", flush="0/6000000"), None, 201.0, 1e9, LOST)
    assert (later.state, later.lsn) == ("resyncing", "0/6100000")  # from the first poll it acknowledges in


def test_a_degraded_primary_names_the_standby_again_once_it_is_close_then_reports_sync_once_it_holds_all():
    degraded = SyncState("degraded", "r1", "0/5000000", 1e9)
    far = seen(sync=False, flush="0/5000000", current=f"0/{0x5000000 + CATCH_UP_BYTES + 1:X}", names=False)
    assert step(degraded, far, "r1", 300.0, 1e9, LOST) == (degraded, None)
    near = seen(sync=False, flush="0/5800000", current="0/5880000", names=False)
    resyncing, action = step(degraded, near, "r1", 300.0, 1e9, LOST)
    assert (resyncing.state, action, resyncing.lsn) == ("resyncing", "resync", None)
    # the names take effect: the point to reach is the WAL position the first time it acknowledges
    named = seen(sync=True, flush="0/5870000", current="0/5890000")
    resyncing, _ = step(resyncing, named, "r1", 301.0, 1e9, LOST)
    assert (resyncing.state, resyncing.lsn) == ("resyncing", "0/5890000")
    holds = seen(sync=True, flush="0/5890000", current="0/5900000")
    assert step(resyncing, holds, "r1", 302.0, 1e9, LOST)[0].state == "sync"


def test_a_degraded_primary_named_again_by_someone_else_drops_the_standby_again():
    degraded = SyncState("degraded", "r1", "0/5000000", 1e9)
    named = seen(sync=False, state=None, flush=None, names=True)
    assert step(degraded, named, "r1", 300.0, 1e9, LOST) == (degraded, "degrade")


def test_a_new_primary_whose_names_were_cleared_names_its_standby_once_it_is_close():
    """After a switchover or a failover that recorded the old primary as behind first, the new
    primary runs with no standby named: its keeper names it as soon as it streams close by,
    not after a lost-standby round with the witness."""
    new = SyncState()
    far = seen(sync=False, flush="0/5000000", current=f"0/{0x5000000 + CATCH_UP_BYTES + 1:X}", names=False)
    assert step(new, far, None, 100.0, 1e9, LOST)[1] is None
    near = seen(sync=False, flush="0/5800000", current="0/5880000", names=False)
    resyncing, action = step(new, near, None, 100.0, 1e9, LOST)
    assert (resyncing.state, action, resyncing.lsn) == ("resyncing", "resync", None)
    not_streaming = seen(sync=False, state=None, flush=None, names=False)
    assert step(new, not_streaming, None, 100.0, 1e9, LOST)[1] is None
