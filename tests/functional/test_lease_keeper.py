"""The lease keeper against a real streaming pair: it holds while the standby
streams from the primary, and fences the primary once, for a lease, neither the master nor
the standby renewed it — standby configuration first, then PostgreSQL stopped."""

import os
import time

import pytest

from mfa_ha import files
from mfa_ha.unattended.keeper import Keeper
from tests.support import LEASE_SECONDS, keeper_config, setup_replication, wait_for


@pytest.fixture(scope="module")
def pair(lab, prod, dr):
    setup_replication(lab, prod, dr)
    return lab


@pytest.fixture(scope="module")
def keeper(pair, prod):
    config = keeper_config(pair)
    assert "key" not in config["tls"] and "password" not in str(config)  # no secret in the file
    keeper = Keeper(config)
    yield keeper
    keeper.close()  # its heartbeat socket: the next module's keepers bind the same port


def ticks(keeper, seconds):
    actions = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        actions.append(keeper.tick()["action"])
        time.sleep(0.5)
    return actions


def test_a_renewal_answers_with_the_role_and_the_receiver(pair, prod, dr):
    lab = pair
    first = dr.pgrepl.lease_renew(1)
    assert first["role"] == "standby" and first["receiver"] == {
        "status": "streaming",
        "from": "server_prod",
        "quiet_s": 0.0,
        "heard_from": None,
        "heard_quiet_s": None,
    }  # no keeper beats here
    assert first["keeper_alive"] is False  # no keeper runs on dr
    assert prod.pgrepl.lease_renew(1)["role"] == "primary"
    prod.pgrepl.lease_renew(2, acked=1)
    renewals = files.read_json(os.path.join(lab.prod.lease_dir, "lease.json"))
    assert renewals["renewed_at"] == renewals["arrived"]["1"]  # renewal 1 proven heard by renewal 2


def test_a_restarted_master_renews_the_lease_at_once(pair, prod):
    """The previous master sent more renewals than a node keeps; the new one's, numbered from
    1 under its own session, count from its second renewal on."""
    lab = pair
    for seq in range(1, 70):
        prod.pgrepl.lease_renew(seq, acked=seq - 1 if seq > 1 else None, session="wbefore")
    before = files.read_json(os.path.join(lab.prod.lease_dir, "lease.json"))["renewed_at"]
    prod.pgrepl.lease_renew(1, session="wafter")
    prod.pgrepl.lease_renew(2, acked=1, session="wafter")
    renewals = files.read_json(os.path.join(lab.prod.lease_dir, "lease.json"))
    assert renewals["renewed_at"] == renewals["arrived"]["wafter/1"] > before


def test_the_keeper_holds_while_the_standby_streams(lab, keeper):
    actions = ticks(keeper, LEASE_SECONDS * 2.5)
    assert set(actions) == {"hold"} and lab.prod.is_running()
    assert keeper.proof.streamed_at is not None  # the standby flushed its markers
    beat = files.read_json(os.path.join(lab.prod.lease_dir, "keeper.json"))
    assert beat["action"] == "hold" and beat["pid"] == os.getpid()


def test_a_paused_keeper_holds_past_its_lease_and_says_so(lab, keeper, prod, dr):
    """Maintenance: with automatic failover paused on the node, a keeper whose lease ran out
    keeps its primary and says in its heartbeat that only the pause kept it from fencing."""
    record = {"id": "a1b2c3", "by": "operator", "at": time.time(), "reason": "patching the master"}
    assert prod.pgrepl.pause_automation(record) == {"paused": record, "changed": True}
    assert prod.pgrepl.pause_automation(record)["changed"] is False  # the same pause: nothing to do
    lab.stop_db(lab.dr)
    try:
        actions = ticks(keeper, LEASE_SECONDS + 5)
        beat = files.read_json(os.path.join(lab.prod.lease_dir, "keeper.json"))
        assert set(actions) == {"hold"} and lab.prod.is_running()
        assert beat["fence_suspended"] is True and beat["paused"]["id"] == "a1b2c3"
        assert prod.pgrepl.paused()["summary"].startswith("automatic failover paused by operator")
    finally:
        assert prod.pgrepl.resume_automation()["changed"] is True
        lab.start_db(lab.dr)
    wait_for(
        lambda: keeper.tick()["verdict"]["action"] == "hold" and not keeper.last["fence_suspended"],
        timeout=60,
        interval=0.5,
        what="the standby's proof renewing the lease again",
    )
    assert prod.pgrepl.paused() == {"paused": None, "summary": "automatic failover not paused"}


def test_the_keeper_fences_its_primary_when_no_one_renews_the_lease(lab, keeper):
    lab.stop_db(lab.dr)  # the standby is gone; no master renews in this tier
    stopped_at = time.monotonic()
    wait_for(
        lambda: keeper.tick()["action"] == "fenced",
        timeout=LEASE_SECONDS + 15,
        interval=0.5,
        what="the keeper to fence its primary",
    )
    fenced_after = time.monotonic() - stopped_at
    assert LEASE_SECONDS - 2 <= fenced_after <= LEASE_SECONDS + 10  # it waited out the lease (from its last proof)
    assert not lab.prod.is_running() and lab.prod.app_pid() is None
    assert os.path.exists(os.path.join(lab.prod.data_dir, "standby.signal"))  # whatever starts it: read-only
    reasons = keeper.last["verdict"]["checks"]
    assert [c["ok"] for c in reasons] == [False, False, True]  # no renewal, no stream, not paused
    assert keeper.tick()["action"] == "idle"  # fenced: no longer a primary, nothing more to do
