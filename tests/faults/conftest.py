"""Fault tier: the lab's hosts in network namespaces of their own (``mfa_ha_lab.netns``):
DC1 (server_prod), DC2 (server_dr), the master's site, the clients, with addresses from
198.18.0.0/15 that exist only inside them; faults are injected into the links between them."""

import pytest

from mfa_ha_lab import netns
from mfa_ha_lab.lab import Lab
from mfa_ha_lab.salt_daemons import SaltLab
from tests.support import node_loaders


@pytest.fixture(scope="module")
def net():
    reason = netns.available()
    if reason:
        pytest.skip(f"the fault tier needs network namespaces: {reason}")
    with netns.Network() as network:
        yield network


@pytest.fixture(scope="module")
def lab(net):
    with Lab(network=net) as lab:
        yield lab


class OnHost:
    """``loaders.modules`` whose every function call runs on a lab host: the calling thread
    enters the host's namespace for the call, so what the call starts (pg_ctl, pg_basebackup,
    the app) and every connection it opens live on that host."""

    def __init__(self, modules, enter):
        self._modules, self._enter = modules, enter

    def __getattr__(self, module):
        return _Functions(getattr(self._modules, module), self._enter)


class _Functions:
    def __init__(self, module, enter):
        self._module, self._enter = module, enter

    def __getattr__(self, name):
        function = getattr(self._module, name)

        def call(*args, **kwargs):
            with self._enter():
                return function(*args, **kwargs)

        return call


@pytest.fixture(scope="module")
def prod(salt_factories, lab):
    return OnHost(node_loaders(salt_factories, lab, lab.prod, variant="-faults").modules, lambda: lab.on(lab.prod))


@pytest.fixture(scope="module")
def dr(salt_factories, lab):
    return OnHost(node_loaders(salt_factories, lab, lab.dr, variant="-faults").modules, lambda: lab.on(lab.dr))


@pytest.fixture(scope="module")
def salt_lab(lab):
    """The real salt-master (on the master's site) and minions (on DC1 and DC2), the pair set
    up by the documented orchestration."""
    with SaltLab(lab) as salt:
        setup = salt.run("state.orchestrate", "mfa_ha.orch.setup", check=False)
        assert isinstance(setup, dict) and setup.get("retcode") == 0, str(setup)[-3000:]
        yield salt
