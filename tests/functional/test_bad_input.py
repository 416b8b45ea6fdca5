"""Bad input gets a clear error that names the problem, and changes nothing."""

import copy
import glob
import os
import subprocess

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from mfa_ha_lab import netns
from tests.support import node_loaders


@pytest.fixture(scope="module")
def primed(lab, prod, dr):
    for loaders in (prod, dr):
        loaders.pgrepl.apply_tls()
    prod.pgrepl.apply_settings()  # ssl on (a reload suffices)
    prod.pgrepl.set_replication_user()
    prod.pgrepl.create_slot(lab.dr.slot)
    return lab


def dr_untouched(lab, system_identifier):
    assert not glob.glob(lab.dr.data_dir + ".*"), "nothing may be moved aside"
    assert lab.dr.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0] == system_identifier


def dr_system_id(lab):
    return lab.dr.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]


def test_wrong_password_names_authentication_and_changes_nothing(salt_factories, primed, dr):
    lab = primed
    pillar = copy.deepcopy(lab.pillar(lab.dr))
    pillar["mfa_ha"]["replication"]["password"] = "not-the-password"
    wrong = node_loaders(salt_factories, lab, lab.dr, pillar, variant="-wrongpw").modules
    wrong.pgrepl.set_pgpass(lab.prod.address, lab.prod.port)
    before = dr_system_id(lab)
    dr.pgrepl.stop()
    try:
        with pytest.raises(CommandExecutionError, match="password authentication failed"):
            wrong.pgrepl.basebackup(lab.prod.address, slot=lab.dr.slot)
        assert os.path.isfile(os.path.join(lab.dr.data_dir, "PG_VERSION"))
    finally:
        dr.pgrepl.set_pgpass(lab.prod.address, lab.prod.port)
        dr.pgrepl.start()
    dr_untouched(lab, before)


def test_unreachable_peer_is_named(primed, dr):
    lab = primed
    before = dr_system_id(lab)
    dr.pgrepl.stop()
    try:
        with pytest.raises(CommandExecutionError, match=r"cannot reach 127\.0\.0\.9:5432"):
            dr.pgrepl.basebackup("127.0.0.9", slot=lab.dr.slot)
    finally:
        dr.pgrepl.start()
    dr_untouched(lab, before)


def test_basebackup_onto_running_server_is_refused(primed, dr):
    lab = primed
    before = dr_system_id(lab)
    with pytest.raises(CommandExecutionError, match="PostgreSQL is running on .*stop it before"):
        dr.pgrepl.basebackup(lab.prod.address, slot=lab.dr.slot)
    dr_untouched(lab, before)
    assert lab.dr.is_running()


def test_invalid_slot_name_is_refused_with_the_rule(primed, prod):
    before = prod.pgrepl.slots()
    with pytest.raises(SaltInvocationError, match=r"invalid replication slot name 'ServerA_slot'.*a-z, 0-9, _"):
        prod.pgrepl.create_slot("ServerA_slot")
    assert prod.pgrepl.slots() == before


def test_missing_data_dir_is_named(primed, prod):
    missing = os.path.join(primed.root, "no-such-dir")
    with pytest.raises(CommandExecutionError, match=f"data directory {missing} does not exist"):
        prod.pgrepl.start(data_dir=missing)
    assert not os.path.exists(missing)
    assert prod.pgrepl.status(data_dir=missing)["state"] == "missing"


def test_promote_on_a_primary_is_refused(primed, prod):
    timeline = prod.pgrepl.status()["timeline"]
    with pytest.raises(CommandExecutionError, match="already a primary"):
        prod.pgrepl.promote()
    status = prod.pgrepl.status()
    assert status["role"] == "primary" and status["timeline"] == timeline


def test_shutdown_checkpoint_of_a_running_server_is_refused(primed, prod):
    with pytest.raises(CommandExecutionError, match="is running"):
        prod.pgrepl.shutdown_checkpoint_lsn()
    assert primed.prod.is_running()


def test_wait_for_lsn_on_a_primary_is_refused(primed, prod):
    with pytest.raises(CommandExecutionError, match="not a standby"):
        prod.pgrepl.wait_for_lsn("0/0", timeout=1)


def test_malformed_pillar_names_the_key(salt_factories, primed):
    lab = primed
    pillar = copy.deepcopy(lab.pillar(lab.prod))
    pillar["mfa_ha"]["postgres"]["data_dir"] = "relative/mfadb"
    bad = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-badpillar").modules
    with pytest.raises(SaltInvocationError, match="mfa_ha:postgres:data_dir"):
        bad.pgrepl.status()
    pillar["mfa_ha"]["postgres"]["data_dir"] = lab.prod.data_dir
    pillar["mfa_ha"]["pmfad"]["manager"] = "upstart"
    bad = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-badpmfad").modules
    with pytest.raises(SaltInvocationError, match="mfa_ha:pmfad:manager"):
        bad.pmfad.status()
    assert lab.prod.app_pid()


def test_missing_password_is_named(salt_factories, primed):
    lab = primed
    pillar = copy.deepcopy(lab.pillar(lab.prod))
    del pillar["mfa_ha"]["replication"]["password"]
    bad = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-nopw").modules
    with pytest.raises(SaltInvocationError, match="mfa_ha:replication:password"):
        bad.pgrepl.set_replication_user()


def test_validate_pillar_through_the_module(salt_factories, primed, prod):
    lab = primed
    assert set(prod.pgrepl.validate_pillar()) == {"server_prod", "server_dr"}
    pillar = copy.deepcopy(lab.pillar(lab.prod))
    pillar["mfa_ha"]["nodes"]["server_dr"]["address"] = "127.0.0"
    bad = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-badaddr").modules
    with pytest.raises(CommandExecutionError, match="mfa_ha:nodes:server_dr:address") as err:
        bad.pgrepl.validate_pillar()
    assert not isinstance(err.value, SaltInvocationError)  # an error of the call, not "invalid arguments"


def test_a_lease_keeper_config_for_a_minion_that_is_not_a_node_is_refused(salt_factories, primed):
    """Automatic failover on a minion missing from mfa_ha:nodes: named, nothing written."""
    lab = primed
    pillar = copy.deepcopy(lab.pillar(lab.prod))
    pillar["mfa_ha"]["failover"] = {**pillar["mfa_ha"].get("failover", {}), "automatic": True}
    pillar["mfa_ha"]["nodes"] = {
        "server_dr": pillar["mfa_ha"]["nodes"]["server_dr"],
        "server_other": {"address": "127.0.0.9", "port": 5432},
    }
    bad = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-notanode").modules
    with pytest.raises(
        SaltInvocationError,
        match=r"mfa_ha:nodes: this minion \(.+\) is not one of the nodes "
        r"\(server_dr, server_other\)",
    ):
        bad.pgrepl.lease_keeper_config()
    assert not os.path.exists(os.path.join(lab.prod.lease_dir, "config.json"))


def test_a_node_address_that_resolves_nowhere_fails_validation_and_writes_nothing(salt_factories, primed):
    """A peer named by a host name this node cannot resolve would be written into pg_hba.conf
    and pgpass, and the standby's next reconnect refused. Resolved inside a lab host, where a
    query for a name that is not in /etc/hosts fails on the host itself."""
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    lab = primed
    pillar = copy.deepcopy(lab.pillar(lab.prod))
    pillar["mfa_ha"]["nodes"][lab.dr.minion_id]["address"] = "serverb"
    named = node_loaders(salt_factories, lab, lab.prod, pillar, variant="-unresolved").modules
    hba_file = os.path.join(lab.prod.data_dir, "pg_hba.conf")
    with open(hba_file, encoding="utf-8") as fh:
        hba_before = fh.read()
    with netns.Network() as net, net.entered("dc1"):
        for call, error in (
            (named.pgrepl.validate_pillar, CommandExecutionError),  # the whole pillar: an error of the call
            (named.pgrepl.apply_hba, SaltInvocationError),
            (named.pgrepl.set_peer_pgpass, SaltInvocationError),
        ):
            with pytest.raises(
                error, match=f"mfa_ha:nodes:{lab.dr.minion_id}:address: 'serverb' does not resolve on this node"
            ):
                call()
        assert any("does not resolve" in problem for problem in named.pgrepl.pillar_problems())
    with open(hba_file, encoding="utf-8") as fh:
        assert fh.read() == hba_before
    if os.path.exists(lab.prod.pgpass):
        with open(lab.prod.pgpass, encoding="utf-8") as fh:
            assert "serverb" not in fh.read()


def test_a_clone_without_the_space_for_it_is_refused_naming_the_figures(salt_factories, primed):
    """A clone needs the primary's databases free beside the data directory: refused before
    anything is moved, with both figures."""
    lab = primed
    tiny = os.path.join(lab.root, "tiny")
    os.makedirs(tiny)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", tiny], check=True, timeout=30)
    try:
        pillar = copy.deepcopy(lab.pillar(lab.dr))
        pillar["mfa_ha"]["postgres"]["data_dir"] = os.path.join(tiny, "mfadb")
        pillar["mfa_ha"].setdefault("tls", {})["dir"] = os.path.join(lab.dr.root, "mfa_ha-tls")  # the node's own
        cramped = node_loaders(salt_factories, lab, lab.dr, pillar, variant="-cramped").modules
        with pytest.raises(
            CommandExecutionError,
            match=rf"a clone needs about [\d.]+ GiB free in {tiny} "
            r"\(the primary's databases: [\d.]+ GiB.*and 0.00 GiB is free",
        ):
            cramped.pgrepl.basebackup(lab.prod.address, slot=lab.dr.slot)
        assert os.listdir(tiny) == []  # nothing created, nothing moved
    finally:
        subprocess.run(["umount", tiny], check=True, timeout=30)


def test_a_rolling_restart_turn_refuses_a_primary_and_a_shell_string(primed, prod):
    lab = primed
    app_pid = lab.prod.app_pid()
    with pytest.raises(CommandExecutionError, match="is a primary: a rolling restart restarts a node only while"):
        prod.pgrepl.restart_standby("server_dr")
    with pytest.raises(SaltInvocationError, match=r"command: a list of strings \(no shell\)"):
        prod.pgrepl.restart_standby("server_dr", command="apt-get install -y postgresql-15")
    assert lab.prod.is_running() and lab.prod.app_pid() == app_pid  # untouched
