"""The keepers' heartbeats against a real streaming pair: with the standby's PostgreSQL gone
(no WAL can prove contact) but its keeper answering, the primary keeps its lease; once that
keeper stops answering too, the primary fences itself within the lease. The standby's keeper
records each beat, which its minion reports to the witness."""

import os
import threading
import time

import pytest

from mfa_ha.unattended import lease
from mfa_ha.unattended.keeper import Keeper
from tests.support import keeper_config, setup_replication, wait_for

LEASE_SECONDS = 3


class Ticking:
    """A keeper polling in a thread, as its service would (one poll a second)."""

    def __init__(self, keeper: Keeper):
        self.keeper, self.stop = keeper, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(self.keeper.settings.poll_seconds):
            self.keeper.tick()

    def end(self):
        self.stop.set()
        self.thread.join(timeout=15)
        self.keeper.close()


@pytest.fixture(scope="module")
def keepers(lab, prod, dr):
    setup_replication(lab, prod, dr)
    for node in (lab.prod, lab.dr):
        os.makedirs(node.lease_dir, exist_ok=True)
    primary = Keeper(keeper_config(lab, LEASE_SECONDS))
    standby = Ticking(Keeper(keeper_config(lab, LEASE_SECONDS, node=lab.dr, other=lab.prod)))
    assert primary.link is not None and standby.keeper.link is not None  # keyed from pgpass, both ways
    try:
        yield primary, standby
    finally:
        standby.end()
        primary.close()


def test_the_standby_keeper_answering_keeps_the_lease_without_wal(lab, dr, keepers):
    primary, standby = keepers
    wait_for(
        lambda: primary.tick()["action"] == "hold" and primary.link.answered() is not None,
        timeout=15,
        interval=0.5,
        what="the primary's keeper holding, its beats answered",
    )
    lab.stop_db(lab.dr)  # no WAL reaches the standby from now on; no master renews in this tier
    held_until = time.monotonic() + 3 * LEASE_SECONDS
    while time.monotonic() < held_until:
        assert primary.tick()["action"] == "hold"
        time.sleep(primary.settings.poll_seconds)
    assert lab.prod.is_running()
    record = lease.read_record(standby.keeper.settings.peer_file)
    assert record["from"] == "server_prod" and time.monotonic() - record["at"] < 2 * primary.settings.poll_seconds + 1
    renewal = dr.pgrepl.lease_renew(1)
    assert renewal["receiver"]["heard_from"] == "server_prod" and renewal["receiver"]["heard_quiet_s"] < 3


def test_once_the_standby_keeper_stops_answering_the_primary_fences_within_the_lease(lab, keepers):
    primary, standby = keepers
    standby.end()
    stopped_at = time.monotonic()
    wait_for(
        lambda: primary.tick()["action"] == "fenced",
        timeout=LEASE_SECONDS + 15,
        interval=0.5,
        what="the keeper to fence its primary",
    )
    fenced_after = time.monotonic() - stopped_at
    assert LEASE_SECONDS - 2 <= fenced_after <= LEASE_SECONDS + 10
    assert not lab.prod.is_running()
