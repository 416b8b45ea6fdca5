"""The formula's defaults.yaml and the core's defaults must not drift apart."""

import os

import yaml

from mfa_ha.app import AppConfig
from mfa_ha.loader import formula_root
from mfa_ha.monitoring.endpoint import EndpointSettings
from mfa_ha.postgres.config import PostgresConfig, ReplicationConfig
from mfa_ha.postgres.hba import DEFAULT_METHOD
from mfa_ha.unattended.lease import LeaseSettings

DEFAULTS = os.path.join(formula_root(), "mfa_ha", "defaults.yaml")  # the installed one under scripts/test-wheel.sh


def test_formula_defaults_equal_the_core_defaults():
    with open(DEFAULTS, encoding="utf-8") as fh:
        defaults = yaml.safe_load(fh)["mfa_ha"]
    for key, value in defaults["postgres"].items():
        assert getattr(PostgresConfig, key) == value, key
    for key, value in defaults["replication"].items():
        assert getattr(ReplicationConfig, key) == value, key
    assert AppConfig.__dataclass_fields__["service"].default == defaults["pmfad"]["service"]
    assert defaults["hba"]["method"] == DEFAULT_METHOD
    assert defaults["failover"]["automatic"] is LeaseSettings.automatic is False
    for key, value in defaults["endpoint"].items():
        assert getattr(EndpointSettings, key) == value, key
