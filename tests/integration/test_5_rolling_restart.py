"""A rolling restart through the real salt-run while two clients keep writing: both nodes
restarted (a command run on each while it was stopped), one switchover there and one back,
zero acknowledged writes lost; refused up front when the pair is not healthy."""

import json
import os

import pytest

from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD
from mfa_ha_lab.writer import AppWriter, DbWriter, lost
from tests.support import wait_for

pytestmark = pytest.mark.integration


def postmaster_pid(node) -> int:
    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        return int(fh.readline())


def by_role(lab):
    primary = next(n for n in lab.nodes if not n.sql("SELECT pg_is_in_recovery()")[0][0])
    return primary, next(n for n in lab.nodes if n is not primary)


def run(salt_run, *args, **kwargs):
    ret = salt_run.run("mfa_ha.rolling_restart", *args, _timeout=900, **kwargs)
    return ret.returncode, json.loads(ret.stdout)


def test_a_rolling_restart_with_a_switch_back_restarts_both_and_loses_nothing(pair, salt_run):
    lab = pair
    primary, standby = by_role(lab)
    pids = {n.minion_id: postmaster_pid(n) for n in lab.nodes}
    ran_file = os.path.join(lab.root, "ran-while-stopped")
    command = ["sh", "-c", f"echo stopped >> {ran_file}"]
    app = AppWriter([n.address for n in lab.nodes], APP_PORT, enter=lab.on_clients)
    direct = DbWriter([n.address for n in lab.nodes], 5432, APP_USER, LAB_PASSWORD, APP_DB, enter=lab.on_clients)
    app.start()
    direct.start()
    try:
        code, done = run(salt_run, switch_back=True, command=command)
    finally:
        app.stop()
        direct.stop()
    assert code == 0, done
    assert done["restarted"] == [standby.minion_id, primary.minion_id]
    assert [s["step"] for s in done["steps"]] == ["restart", "switch", "restart", "switch"]
    assert all(postmaster_pid(n) != pids[n.minion_id] for n in lab.nodes)  # both really restarted
    with open(ran_file, encoding="utf-8") as fh:
        assert fh.read().splitlines() == ["stopped", "stopped"]
    assert by_role(lab) == (primary, standby)  # switched back
    wait_for(lambda: standby.sql("SELECT status FROM pg_stat_wal_receiver") == [("streaming",)], what="streaming")
    assert len(app.acked) > 20 and len(direct.acked) > 20
    assert lost(lambda q, p: primary.sql(q, p, dbname=APP_DB), app) == []
    assert lost(lambda q, p: primary.sql(q, p, dbname=APP_DB), direct) == []


def test_nothing_pending_restarts_nothing_and_a_sick_pair_is_refused(pair, salt_run):
    lab = pair
    primary, standby = by_role(lab)
    pids = {n.minion_id: postmaster_pid(n) for n in lab.nodes}
    code, nothing = run(salt_run, pending_only=True)
    assert code == 0 and nothing["restarted"] == [], nothing
    lab.stop_db(standby)
    try:
        code, refused = run(salt_run)
        assert code == 2 and refused["restarted"] == [] and "prechecks" in refused["reason"], refused
        assert postmaster_pid(primary) == pids[primary.minion_id]
    finally:
        lab.start_db(standby)
    wait_for(lambda: standby.sql("SELECT status FROM pg_stat_wal_receiver") == [("streaming",)], what="streaming")
