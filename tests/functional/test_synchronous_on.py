"""``synchronous: on`` on the lab's two real servers, the keeper ticking as its service does
and the witness's renewals sent by hand: with the standby down, commits wait; the keeper asks,
drops the standby only once the renewal brings the witness's word, and names it again once it
is back and has caught up. The keeper's own polls never wait for the standby."""

import threading
import time

import pytest

from mfa_ha import timing
from mfa_ha.unattended.keeper import Keeper
from mfa_ha_lab.lab import APP_DB
from tests.support import keeper_config, streaming_pair_as_nodes, synchronous_lab, wait_for

WAITING_SQL = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"


@pytest.fixture(scope="module")
def lab():
    with synchronous_lab("on") as lab:
        yield lab


@pytest.fixture(scope="module")
def pair(salt_factories, lab):
    prod, dr = streaming_pair_as_nodes(salt_factories, lab)
    prod.pgrepl.apply_settings()  # as the setup's last step: dr streams, so prod names it
    assert lab.prod.sql("SHOW synchronous_standby_names")[0][0] == '"server_dr"'
    return prod, dr


class Witness:
    """The witness's renewals to the primary, one per keeper poll, with the word it gives."""

    def __init__(self, prod):
        self.prod, self.seq, self.words = prod, 0, {}

    def renew(self) -> dict:
        self.seq += 1
        acked = self.seq - 1 if self.seq > 1 else None
        return self.prod.pgrepl.lease_renew(self.seq, acked=acked, session="wtest", words=dict(self.words))


@pytest.fixture(scope="module")
def keeper(lab, pair):
    config = keeper_config(
        lab, lease_seconds=30, synchronous={"mode": "on", "names": '"server_dr"', "standby": "server_dr"}
    )
    keeper = Keeper(config)
    yield keeper
    keeper.close()


def poll(keeper, witness, seconds, until=lambda answer: False):
    """Keeper polls and renewals for up to ``seconds``; returns the last renewal's answer and
    the longest poll."""
    longest, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        witness.renew()
        started = time.monotonic()
        assert keeper.tick()["action"] == "hold"
        longest = max(longest, time.monotonic() - started)
        if until(witness.renew()):
            break
        time.sleep(0.3)
    return witness.renew(), longest


def sync_state(answer):
    return (answer.get("sync") or {}).get("state")


def test_the_standby_is_dropped_only_with_the_witnesss_word_and_named_again_once_back(lab, pair, keeper):
    prod, dr = pair
    witness = Witness(prod)
    answer, _ = poll(keeper, witness, timing.SYNC_LOST_SECONDS + 2)
    assert sync_state(answer) == "sync" and keeper.sync.lost_since is None  # dr acknowledges
    dr.pgrepl.stop()
    done = {}
    writer = threading.Thread(
        target=lambda: done.update(
            at=lab.prod.sql("INSERT INTO auth_events (node, client_seq) VALUES ('on-wait', 1)", dbname=APP_DB)
        ),
        daemon=True,
    )
    writer.start()
    wait_for(lambda: lab.prod.sql(WAITING_SQL)[0][0] == 1, what="the commit waiting for dr")
    answer, longest = poll(keeper, witness, timing.SYNC_LOST_SECONDS + 10, until=lambda a: sync_state(a) == "asked")
    assert sync_state(answer) == "asked", answer
    assert longest < 3  # its marker and its queries never wait for the standby
    # without the word, however long: commits wait, nothing is acknowledged
    answer, _ = poll(keeper, witness, 3)
    assert sync_state(answer) == "asked" and "at" not in done
    assert lab.prod.sql("SHOW synchronous_standby_names")[0][0] == '"server_dr"'
    witness.words = {"server_prod": answer["sync"]["request"]}
    answer, _ = poll(keeper, witness, 5, until=lambda a: sync_state(a) == "degraded")
    assert sync_state(answer) == "degraded"
    writer.join(10)
    assert "at" in done  # acknowledged once dr was dropped
    assert lab.prod.sql("SHOW synchronous_standby_names")[0][0] == ""
    assert "synchronous_standby_names" not in prod.pgrepl.settings()["differ"]  # highstate leaves it dropped
    dr.pgrepl.start()
    answer, _ = poll(keeper, witness, 30, until=lambda a: sync_state(a) == "sync")
    assert sync_state(answer) == "sync", answer
    assert lab.prod.sql("SHOW synchronous_standby_names")[0][0] == '"server_dr"'
    rows = lab.prod.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'server_dr'")
    assert rows == [("sync",)]
    count = "SELECT count(*) FROM auth_events WHERE node = 'on-wait'"
    assert lab.dr.sql(count, dbname=APP_DB)[0][0] == 1
