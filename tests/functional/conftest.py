"""Functional tier: the execution modules through Salt's loader against the lab's real
PostgreSQL clusters (one Loaders per node, each with that node's pillar)."""

import os

import pytest

from mfa_ha_lab.lab import Lab
from tests.support import node_loaders


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab runs PostgreSQL as 'postgres' and needs root to switch to it")
    with Lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def prod(salt_factories, lab):
    return node_loaders(salt_factories, lab, lab.prod).modules


@pytest.fixture(scope="module")
def dr(salt_factories, lab):
    return node_loaders(salt_factories, lab, lab.dr).modules
