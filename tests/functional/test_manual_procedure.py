"""IBM's manual fail-over procedure, step by step through the pgrepl and pmfad modules, both directions."""

import os
import shutil
import signal

from mfa_ha.lsn import to_int as lsn_int
from mfa_ha_lab.lab import APP_DB
from tests.support import setup_replication, switch, wait_for, write_rows


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
    lab.stop_db(lab.dr)
    write_rows(lab.prod, 50, "before-crash")  # WAL past the point dr will promote at: a rewind is needed
    kill_postmaster(lab.prod)
    lab.start_db(lab.dr)
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
