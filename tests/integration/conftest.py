"""Integration tier: a real salt-master and two real salt-minions (``server_prod``,
``server_dr``) started by pytest-salt-factories, each minion managing its lab node's real
PostgreSQL cluster; the master serves the formula from the repository."""

import os

import pytest

from mfa_ha_lab.lab import BEACON, Lab

# loop_interval 1: beacons tick once a second (salt-factories' default 0.05 s stretches intervals).
MINION_OVERRIDES = {"loop_interval": 1, "beacons": {"pgrepl": BEACON}}


@pytest.fixture(scope="package")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab runs PostgreSQL as 'postgres' and needs root to switch to it")
    lab = Lab()
    try:
        yield lab.create()
    finally:
        lab.destroy(keep=bool(os.environ.get("MFA_HA_KEEP_LAB")))  # servers stopped either way


@pytest.fixture(scope="package")
def master(salt_factories, lab):
    tree = lab.write_salt_tree()  # the example pillar as shipped, the lab's differences laid over it
    factory = salt_factories.salt_master_daemon(tree.pop("id"), overrides=tree)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="package")
def minions(master, lab):
    started = {}
    for node in lab.nodes:
        started[node.minion_id] = master.salt_minion_daemon(node.minion_id, overrides=MINION_OVERRIDES)
    with started["server_prod"].started(start_timeout=120), started["server_dr"].started(start_timeout=120):
        yield started


@pytest.fixture(scope="package")
def salt_cli(master, minions):
    return master.salt_cli(timeout=300)


@pytest.fixture(scope="package")
def salt_run(master, minions):
    return master.salt_run_cli(timeout=600)


@pytest.fixture(scope="package")
def intruder(master, minions):
    """A third accepted minion that is not a node: the sender of forged events."""
    factory = master.salt_minion_daemon("server_x", overrides={"loop_interval": 1})
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="package")
def pair(lab, salt_run):
    """A streaming pair (setup is idempotent: a no-op when the first test module built it)."""
    ret = salt_run.run("state.orchestrate", "mfa_ha.orch.setup", _timeout=600)
    assert ret.returncode == 0, ret.stdout
    return lab
