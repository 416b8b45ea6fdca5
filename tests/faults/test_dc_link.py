"""The link between the data centres goes silent (packets dropped, no reset): both sides
notice within the bound docs/faults.md states, and once it is back the standby catches up with
every write the primary took meanwhile."""

import threading
import time

import psycopg2

from mfa_ha.adapters.pillar import validate_nodes
from mfa_ha.pair.peer import Upstream, peer_connect
from mfa_ha.postgres.config import postgres_config
from mfa_ha.postgres.server import Server
from mfa_ha.postgres.tls import tls_config
from mfa_ha.timing import PEER_TCP_USER_TIMEOUT_MS
from mfa_ha_lab.lab import APP_DB, REPLICATION_USER
from tests.support import record, setup_replication, wait_for

NOTICED_WITHIN = 40  # s: wal_receiver_timeout/wal_sender_timeout 30 s, keepalives ~25 s, plus a poll's slack


def receiver_streaming(node) -> bool:
    rows = node.sql("SELECT status FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0][0] == "streaming"


def walsender_for(node, application) -> bool:
    return bool(node.sql("SELECT 1 FROM pg_stat_replication WHERE application_name = %s", (application,)))


def test_replication_runs_between_hosts_of_their_own_over_tls(lab, net, prod, dr):
    setup_replication(lab, prod, dr)
    row = lab.prod.sql("SELECT host(r.client_addr), s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    assert row == [(net.address("dc2"), True)]  # dr's real address, not 127.0.0.1; TLS verify-full
    assert lab.dr.sql("SELECT sender_host FROM pg_stat_wal_receiver")[0][0] == net.address("dc1")


def test_a_silent_dc_link_is_noticed_within_the_bound_and_nothing_is_lost(lab, net):
    assert receiver_streaming(lab.dr) and walsender_for(lab.prod, lab.dr.slot)
    net.cut("dc1", "dc2")
    cut_at = time.monotonic()
    try:
        for i in range(20):  # the primary keeps taking writes: they must reach dr afterwards
            lab.prod.sql("INSERT INTO auth_events (node, client_seq) VALUES ('during-cut', %s)", (i,), dbname=APP_DB)
        wait_for(
            lambda: not receiver_streaming(lab.dr),
            timeout=NOTICED_WITHIN + 30,
            interval=0.5,
            what="dr's WAL receiver to notice the silent link",
        )
        standby_noticed = time.monotonic() - cut_at
        wait_for(
            lambda: not walsender_for(lab.prod, lab.dr.slot),
            timeout=NOTICED_WITHIN + 30,
            interval=0.5,
            what="prod's WAL sender to notice the silent link",
        )
        primary_noticed = time.monotonic() - cut_at
    finally:
        net.restore("dc1", "dc2")
    restored_at = time.monotonic()
    wait_for(lambda: receiver_streaming(lab.dr), timeout=90, interval=0.2, what="dr streaming again")
    streaming_again = time.monotonic() - restored_at
    expected = lab.prod.sql("SELECT count(*) FROM auth_events WHERE node = 'during-cut'", dbname=APP_DB)[0][0]
    wait_for(
        lambda: (
            lab.dr.sql("SELECT count(*) FROM auth_events WHERE node = 'during-cut'", dbname=APP_DB)[0][0]
            == expected
            == 20
        ),
        timeout=30,
        what="dr to replay the writes",
    )
    record(
        "DC link silent (dropped both ways), then restored",
        standby_noticed_s=round(standby_noticed, 1),
        primary_noticed_s=round(primary_noticed, 1),
        streaming_again_after_restore_s=round(streaming_again, 1),
        writes_during_cut=20,
        lost=0,
    )
    assert standby_noticed <= NOTICED_WITHIN and primary_noticed <= NOTICED_WITHIN


def test_a_query_sent_over_a_link_that_went_silent_fails_within_the_bound(lab, net):
    """The tool's own connection to a peer, opened before the DC link goes silent, then used:
    the query is never acknowledged, so keepalives (which probe only an idle connection) do
    not apply; without tcp_user_timeout it waited out TCP's retransmissions (~15 minutes),
    which hung a switchover's node part far beyond its bound (seen in this suite)."""
    pillar = lab.pillar(lab.prod)["mfa_ha"]
    cfg = postgres_config(pillar["postgres"])
    server = Server(cfg, tls_config(pillar.get("tls"), validate_nodes(pillar["nodes"]), cfg.data_dir))
    with lab.on(lab.prod):
        conn = peer_connect(server, Upstream(lab.dr.address, lab.dr.port, REPLICATION_USER, None))
    outcome = {}

    def query():
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            outcome["result"] = "answered"
        except psycopg2.Error as err:
            outcome["result"] = str(err).strip().splitlines()[0]
        outcome["seconds"] = time.monotonic() - started

    net.cut("dc1", "dc2")
    try:
        thread = threading.Thread(target=query, daemon=True)
        thread.start()
        thread.join(timeout=120)
    finally:
        net.restore("dc1", "dc2")
    assert not thread.is_alive(), "the query still waits on the silent link after 120 s"
    assert outcome["result"] != "answered" and outcome["seconds"] <= PEER_TCP_USER_TIMEOUT_MS / 1000 + 10, outcome
    record(
        "a query sent over a DC link that went silent",
        failed_after_s=round(outcome["seconds"], 1),
        error=outcome["result"],
    )
    wait_for(lambda: receiver_streaming(lab.dr), timeout=90, interval=0.2, what="dr streaming again")
