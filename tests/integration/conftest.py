"""Integration tier: a real salt-master and two real salt-minions (``server_prod``,
``server_dr``) started by pytest-salt-factories, each on its lab host: the master on the
master's site, each minion in its data centre beside the PostgreSQL cluster it manages
(``mfa_ha_lab.netns``: addresses from 198.18.0.0/15 inside namespaces the lab makes). The
operator's ``salt``/``salt-run`` run on the master's site; the master serves the formula
from the package and the example pillar as shipped."""

import attr
import pytest
from saltfactories.daemons.master import SaltMaster
from saltfactories.daemons.minion import SaltMinion

from mfa_ha_lab import netns
from mfa_ha_lab.lab import BEACON, Lab

# loop_interval 1: beacons tick once a second (salt-factories' default 0.05 s stretches intervals).
MINION_OVERRIDES = {"loop_interval": 1, "beacons": {"pgrepl": BEACON}}
# The master's scheduler runs scheduled switchovers (docs/runbook.md's recipe); its loop_interval
# is how often the scheduler looks (60 s by default). The witness engine idles while
# mfa_ha:failover:automatic is off (every module but the one that turns it on).
MASTER_OVERRIDES = {
    "loop_interval": 1,
    "schedule": {"mfa_ha_scheduled_switchovers": {"function": "mfa_ha.run_scheduled", "seconds": 5}},
    "engines": [{"mfa_ha_witness": {"pillar_every": 5}}],
}


def _hosted(daemon_class):
    """``daemon_class`` started, and restarted (``stopped()``), on a lab host: ``enter``."""

    @attr.s(kw_only=True, slots=True)
    class Hosted(daemon_class):
        enter = attr.ib(repr=False)

        def start(self, *args, **kwargs):
            with self.enter():
                return super().start(*args, **kwargs)

    Hosted.__name__ = Hosted.__qualname__ = f"Hosted{daemon_class.__name__}"
    return Hosted


HostedMaster, HostedMinion = _hosted(SaltMaster), _hosted(SaltMinion)


class HostedCli:
    """A salt-factories CLI whose commands run on a lab host."""

    def __init__(self, cli, enter):
        self._cli, self._enter = cli, enter

    def run(self, *args, **kwargs):
        with self._enter():
            return self._cli.run(*args, **kwargs)


@pytest.fixture(scope="package")
def net(request, event_listener):
    reason = netns.available()
    if reason:
        pytest.skip(f"the integration tier runs on the lab's hosts (network namespaces): {reason}")
    log_server = request.config.pluginmanager.get_plugin("saltfactories-log-server")
    with (
        netns.Network() as network,
        netns.LoopbackRelay(network, ("master", "dc1", "dc2", "clients"), (event_listener.port, log_server.log_port)),
    ):
        yield network


@pytest.fixture(scope="package")
def lab(net):
    with Lab(network=net) as lab:  # servers stopped either way; MFA_HA_KEEP_LAB=1 keeps the files
        yield lab


@pytest.fixture(scope="package")
def master(salt_factories, lab):
    tree = lab.write_salt_tree()  # the example pillar as shipped, the lab's differences laid over it
    factory = salt_factories.salt_master_daemon(
        tree.pop("id"),
        overrides={**tree, "interface": lab.master_address, **MASTER_OVERRIDES},
        factory_class=HostedMaster,
        enter=lambda: lab.on_host("master"),
    )
    with factory.started(start_timeout=120):
        yield factory


def _minion(master, lab, minion_id: str, host: str, overrides: dict):
    return master.salt_minion_daemon(
        minion_id,
        overrides={**overrides, "master": lab.master_address},
        factory_class=HostedMinion,
        enter=lambda: lab.on_host(host),
    )


@pytest.fixture(scope="package")
def minions(master, lab):
    started = {node.minion_id: _minion(master, lab, node.minion_id, node.host, MINION_OVERRIDES) for node in lab.nodes}
    with started["server_prod"].started(start_timeout=120), started["server_dr"].started(start_timeout=120):
        yield started


@pytest.fixture(scope="package")
def salt_cli(master, minions, lab):
    return HostedCli(master.salt_cli(timeout=300), lambda: lab.on_host("master"))


@pytest.fixture(scope="package")
def salt_run(master, minions, lab):
    return HostedCli(master.salt_run_cli(timeout=600), lambda: lab.on_host("master"))


@pytest.fixture(scope="package")
def intruder(master, minions, lab):
    """A third accepted minion that is not a node, on the clients' host: the sender of forged events."""
    factory = _minion(master, lab, "server_x", "clients", {"loop_interval": 1})
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="package")
def intruder_call(intruder, lab):
    return HostedCli(intruder.salt_call_cli(), lambda: lab.on_clients())


@pytest.fixture(scope="package")
def pair(lab, salt_run):
    """A streaming pair (setup is idempotent: a no-op when the first test module built it)."""
    ret = salt_run.run("state.orchestrate", "mfa_ha.orch.setup", _timeout=600)
    assert ret.returncode == 0, ret.stdout
    return lab
