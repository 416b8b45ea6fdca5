"""Functional tier: the execution modules through Salt's loader against the lab's real
PostgreSQL clusters (one Loaders per node, each with that node's pillar)."""

import os

import pytest
import salt.utils.yaml
from saltfactories.utils.functional import Loaders

from mfa_ha_lab.lab import Lab


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab runs PostgreSQL as 'postgres' and needs root to switch to it")
    with Lab() as lab:
        yield lab


def node_loaders(salt_factories, lab, node, pillar=None, variant=""):
    pillar_root = os.path.join(lab.root, "pillar", node.name + variant)
    os.makedirs(pillar_root, exist_ok=True)
    with open(os.path.join(pillar_root, "top.sls"), "w", encoding="utf-8") as fh:
        fh.write("base:\n  '*':\n    - mfa_ha\n")
    with open(os.path.join(pillar_root, "mfa_ha.sls"), "w", encoding="utf-8") as fh:
        salt.utils.yaml.safe_dump(pillar or lab.pillar(node), fh, default_flow_style=False)
    factory = salt_factories.salt_minion_daemon(
        f"{node.minion_id}{variant}-{os.path.basename(lab.root)}",
        overrides={"file_client": "local", "master_type": "disable", "pillar_roots": {"base": [pillar_root]}},
    )
    return Loaders(factory.config.copy())


@pytest.fixture(scope="module")
def prod(salt_factories, lab):
    return node_loaders(salt_factories, lab, lab.prod).modules


@pytest.fixture(scope="module")
def dr(salt_factories, lab):
    return node_loaders(salt_factories, lab, lab.dr).modules
