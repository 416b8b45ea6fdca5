"""IBM's manual fail-over procedure, step by step through the pgrepl and pmfad modules, both directions."""

import os
import shutil
import signal

from mfa_ha.lsn import to_int as lsn_int
from mfa_ha.postgres.secrets import scram_matches
from mfa_ha_lab.lab import APP_DB, LAB_PASSWORD, REPLICATION_USER
from tests.helpers import wait_for


def write_rows(node, count, tag):
    for i in range(count):
        node.sql("INSERT INTO auth_events (node, client_seq) VALUES (%s, %s)", (tag, i), dbname=APP_DB)
    return node.sql("SELECT count(*) FROM auth_events", dbname=APP_DB)[0][0]


def setup_replication(lab, prod, dr):
    assert prod.pgrepl.role() == "primary"
    for loaders in (prod, dr):
        if lab.ca:  # not for a server built without OpenSSL (lab.ca is None then)
            assert loaders.pgrepl.apply_tls()  # CA, certificate and key written
        assert loaders.pgrepl.tls_needs() == []
    prod.pgrepl.set_replication_user()
    verifier = lab.prod.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (REPLICATION_USER,))[0][0]
    assert verifier.startswith("SCRAM-SHA-256$") and scram_matches(verifier, LAB_PASSWORD)
    assert prod.pgrepl.set_replication_user() == []  # idempotent
    changes = prod.pgrepl.apply_settings()
    assert "wal_log_hints" in changes["restart_pending"]
    assert changes["changes"]["ssl"]["new"] == "on" if lab.ca else "ssl" not in changes["changes"]
    prod.pgrepl.restart()
    assert prod.pgrepl.settings()["differ"] == {}
    assert prod.pgrepl.apply_hba()["changed"] is True  # hostssl for the peers' real addresses (dr gets a copy)
    for node in (lab.prod, lab.dr):
        assert prod.pgrepl.create_slot(node.slot) is True
    assert prod.pgrepl.create_slot(lab.dr.slot) is False
    for loaders in (prod, dr):
        for node in (lab.prod, lab.dr):
            loaders.pgrepl.set_pgpass(node.address, node.port)
    dr.pmfad.stop()
    dr.pgrepl.stop()
    result = dr.pgrepl.basebackup(lab.prod.address, slot=lab.dr.slot)
    assert result["moved_aside"].startswith(lab.dr.data_dir + ".moved-")
    dr.pgrepl.start()
    wait_for(lambda: (dr.pgrepl.status().get("receiver") or {}).get("status") == "streaming", what="dr streaming")


def switch(lab, old, new, old_node, new_node, writes=20):
    before = write_rows(old_node, writes, f"before-switch-to-{new_node.name}")
    assert old.pmfad.stop() is True
    assert old.pgrepl.stop() is True
    lsn = old.pgrepl.shutdown_checkpoint_lsn()
    reached = new.pgrepl.wait_for_lsn(lsn, timeout=30, beyond=True)
    assert reached["target"] == lsn
    promoted = new.pgrepl.promote()
    assert new.pgrepl.role() == "primary"
    assert new.pmfad.start() is True
    assert new.pmfad.health(wait=15)["healthy"] is True
    assert new_node.sql("SELECT count(*) FROM auth_events", dbname=APP_DB)[0][0] >= before
    new.pgrepl.create_slot(old_node.slot)
    rewound = old.pgrepl.rewind(new_node.address, slot=old_node.slot, fallback="basebackup")
    assert rewound["method"] == "rewind"
    with open(os.path.join(new_node.root, "postgresql.log"), encoding="utf-8", errors="replace") as fh:
        rewind = [
            line
            for line in fh
            if "connection authorized: user=replicamfa" in line and "application_name=pg_rewind" in line
        ]
    assert rewind and all(("SSL enabled" in line) == bool(lab.ca) for line in rewind), rewind  # over TLS, verify-full
    old.pgrepl.start()
    wait_for(
        lambda: (old.pgrepl.status().get("receiver") or {}).get("status") == "streaming",
        what=f"{old_node.name} streaming from {new_node.name}",
    )
    status = old.pgrepl.status()
    assert status["role"] == "standby" and status["timeline"] == promoted["timeline"]
    assert status["receiver"]["sender_host"] == new_node.address
    return before


def test_the_manual_procedure_both_directions_loses_no_rows(lab, prod, dr):
    setup_replication(lab, prod, dr)
    assert dr.pgrepl.role() == "standby"
    assert dr.pmfad.status()["state"] == "stopped"
    before = switch(lab, prod, dr, lab.prod, lab.dr)
    assert lab.rows(lab.dr) >= before
    tagged = lab.dr.sql("SELECT count(*) FROM auth_events WHERE node = 'before-switch-to-dr'", dbname=APP_DB)
    assert tagged[0][0] == 20
    before_back = switch(lab, dr, prod, lab.dr, lab.prod)
    assert lab.rows(lab.prod) >= before_back
    tagged = lab.prod.sql("SELECT count(*) FROM auth_events WHERE node LIKE 'before-switch-%%'", dbname=APP_DB)
    assert tagged[0][0] == 40
    assert prod.pgrepl.role() == "primary" and dr.pgrepl.role() == "standby"
    replicas = prod.pgrepl.status()["replicas"]
    assert [r["application_name"] for r in replicas] == [lab.dr.slot]
    slots = {s["slot_name"]: s for s in prod.pgrepl.slots()}
    assert slots[lab.dr.slot]["active"] is True


def test_a_standby_restarted_while_the_primary_is_idle_reports_no_lag(lab, prod, dr):
    """Right after a caught-up standby starts, its receive position is the start of the WAL
    segment streaming resumed from, behind what it replayed: that is no lag (it was reported
    as negative bytes and as the seconds since the primary's last commit: a false lag alert)."""
    assert dr.pgrepl.role() == "standby"
    lab.stop_db(lab.dr)
    lab.start_db(lab.dr)
    wait_for(lambda: (dr.pgrepl.status().get("receiver") or {}).get("status") == "streaming", what="dr streaming")
    status = dr.pgrepl.status()
    assert status["lag_bytes"] >= 0, status
    if status["receive_lsn"] and lsn_int(status["receive_lsn"]) <= lsn_int(status["replay_lsn"]):
        assert status["lag_seconds"] == 0, status


def kill_postmaster(node) -> None:
    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        postmaster = int(fh.readline())
    os.kill(postmaster, signal.SIGKILL)  # the lab started it
    wait_for(lambda: not node.is_running(), what=f"{node.name}'s postmaster gone")


def test_a_start_after_a_crash_waits_for_the_new_postmaster(lab, prod):
    """A killed postmaster leaves its postmaster.pid, which says "ready": the start must wait
    for the file the new postmaster writes, through its crash recovery, not return at once."""
    write_rows(lab.prod, 200, "before-kill")
    kill_postmaster(lab.prod)
    assert prod.pgrepl.start() is True
    assert prod.pgrepl.role() == "primary"  # accepts connections the moment start returns
    wait_for(
        lambda: (prod.pgrepl.status().get("replicas") or [{}])[0].get("state") == "streaming", what="dr streaming again"
    )


def test_a_crashed_primary_fenced_by_a_failover_is_rewound_not_cloned(lab, prod, dr):
    """A primary whose PostgreSQL died (SIGKILL) is fenced (standby files written) when the
    standby is promoted; its rejoin then needs crash recovery, which single-user mode refuses
    while the standby files are there. It must still be rewound: a clone copies the whole
    database."""
    assert prod.pgrepl.role() == "primary" and dr.pgrepl.role() == "standby"
    kept_aside = set(os.listdir(os.path.dirname(lab.prod.data_dir)))
    write_rows(lab.prod, 50, "before-crash")
    kill_postmaster(lab.prod)
    dr.pgrepl.promote()
    fenced = prod.pgrepl.fence(lab.dr.minion_id, slot=lab.prod.slot)
    assert fenced["standby_config"] and not fenced["db_stopped"], fenced
    assert os.path.exists(os.path.join(lab.prod.data_dir, "standby.signal"))
    dr.pgrepl.create_slot(lab.prod.slot)
    rejoined = prod.pgrepl.rejoin(lab.dr.minion_id, slot=lab.prod.slot)
    assert rejoined["rewind"] == "rewind", rejoined
    assert rejoined["zero_loss_proof"] is None, "a crashed primary's WAL may end past its checkpoint"
    assert set(os.listdir(os.path.dirname(lab.prod.data_dir))) == kept_aside, "cloned (moved aside), not rewound"
    assert prod.pgrepl.role() == "standby"
    assert [s["slot_name"] for s in prod.pgrepl.slots() if not s["active"]] == []
    wait_for(lambda: lab.rows(lab.prod) == lab.rows(lab.dr), what="prod replays dr's rows")


def test_highstate_drops_a_nodes_slot_left_on_a_standby(lab, prod, dr):
    """A slot for the other node, left from when this standby was the primary, holds every WAL
    segment written since; following the primary drops it (a promotion creates it again)."""
    assert prod.pgrepl.role() == "standby"
    assert prod.pgrepl.create_slot(lab.dr.slot) is True
    write_rows(lab.dr, 20, "after-stale-slot")
    steps = prod.pgrepl.follow_plan(lab.dr.minion_id, slot=lab.prod.slot)["steps"]
    assert [s["action"] for s in steps] == ["drop_slots"], steps
    assert f"inactive slot(s) {lab.dr.slot} on this standby hold" in steps[0]["reason"]
    prod.pgrepl.follow(lab.dr.minion_id, slot=lab.prod.slot)
    assert prod.pgrepl.slots() == []
    assert prod.pgrepl.follow_plan(lab.dr.minion_id, slot=lab.prod.slot)["steps"] == []


def test_copies_a_clone_kept_aside_are_reported_and_only_the_newest_kept(lab, dr):
    found = dr.pgrepl.kept_aside()
    assert found["keep"] == 2 and found["remove"] == [] and len(found["kept"]) == 1  # setup cloned dr once
    first = found["kept"][0]
    assert first["path"].startswith(lab.dr.data_dir + ".moved-") and first["bytes"] > 1_000_000
    older = lab.dr.data_dir + ".moved-20000101T000000000000"
    newer = lab.dr.data_dir + ".moved-29991231T000000000000"
    diverged = lab.dr.data_dir + ".diverged-20000101T000000000000"  # a split brain's: never pruned
    for path in (older, newer, diverged):
        shutil.copytree(first["path"], path, symlinks=True)
    assert [c["path"] for c in dr.pgrepl.kept_aside()["remove"]] == [older]
    assert [c["path"] for c in dr.pgrepl.prune_kept_aside()] == [older]
    assert not os.path.exists(older) and all(os.path.isdir(p) for p in (first["path"], newer, diverged))
