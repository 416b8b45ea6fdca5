"""Switchover through ``state.orchestrate mfa_ha.orch.switchover`` with the real master and
minions, while two clients keep writing: zero acknowledged writes lost, both ways; and
refusals that leave everything as it was."""

import pytest

from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD
from mfa_ha_lab.writer import AppWriter, DbWriter, lost

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(lab, salt_run):
    ret = salt_run.run("state.orchestrate", "mfa_ha.orch.setup", _timeout=600)
    assert ret.returncode == 0, ret.stdout
    return lab


def switchover(salt_run, target, **pillar):
    return salt_run.run("state.orchestrate", "mfa_ha.orch.switchover",
                        pillar={"mfa_ha": {"target": target, **pillar}}, _timeout=300)


def role(node):
    return "standby" if node.sql("SELECT pg_is_in_recovery()")[0][0] else "primary"


def streams_from(node, upstream):
    rows = node.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0] == ("streaming", upstream.address)


def test_switchover_there_and_back_loses_no_acknowledged_write(pair, salt_run):
    lab = pair
    app = AppWriter([n.address for n in lab.nodes], APP_PORT)
    direct = DbWriter([n.address for n in lab.nodes], 5432, APP_USER, LAB_PASSWORD, APP_DB)
    app.start()
    direct.start()
    try:
        there = switchover(salt_run, "server_dr")
        assert there.returncode == 0, there.stdout
        assert role(lab.dr) == "primary" and role(lab.prod) == "standby"
        assert streams_from(lab.prod, lab.dr)
        assert lab.dr.app_pid() and lab.prod.app_pid() is None
        back = switchover(salt_run, "server_prod")
        assert back.returncode == 0, back.stdout
    finally:
        app.stop()
        direct.stop()
    assert role(lab.prod) == "primary" and streams_from(lab.dr, lab.prod)
    assert len(app.acked) > 20 and len(direct.acked) > 20
    assert lost(lambda q, p: lab.prod.sql(q, p, dbname=APP_DB), app) == []
    assert lost(lambda q, p: lab.prod.sql(q, p, dbname=APP_DB), direct) == []
