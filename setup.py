"""Install mfa-ha as a Salt extension: the core package plus the Salt-facing directories."""

import importlib.util
import os

from setuptools import setup

# The one list of Salt-facing directories lives in mfa_ha/loader.py (loaded without importing mfa_ha).
_spec = importlib.util.spec_from_file_location("_loader", os.path.join(os.path.dirname(__file__) or ".", "mfa_ha", "loader.py"))
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
SALT_DIRS = _loader.KINDS

FORMULA_FILES = ["mfa_ha/*.sls", "mfa_ha/*.jinja", "mfa_ha/*.yaml", "mfa_ha/orch/*.sls", "mfa_ha/reactor/*.sls"]

setup(
    name="mfa-ha",
    version="0.1.0",
    description="Salt extension: PostgreSQL streaming replication HA for IBM PowerSC MFA and similar apps",
    python_requires=">=3.10",
    # The product only: the core, its Salt modules and the formula (orchestrations and reactors
    # included). The lab and its stand-ins for IBM's parts stay in the repository.
    packages=["mfa_ha", "mfa_ha.formula"] + [f"mfa_ha.salt.{kind}" for kind in SALT_DIRS],
    package_dir={"mfa_ha.formula": "salt", **{f"mfa_ha.salt.{kind}": src for kind, src in SALT_DIRS.items()}},
    package_data={"mfa_ha.formula": FORMULA_FILES},
    # No upper bounds here: a build machine's quirks belong in a constraints file (scripts/constraints.txt).
    install_requires=["salt>=3006", "jinja2",
                      "psycopg2-binary>=2.9; platform_system != 'AIX'",  # no binary wheels for AIX:
                      "psycopg2>=2.9; platform_system == 'AIX'"],          # built against the system's libpq
    # (The version matrix's PostgreSQL builds are not Python dependencies: mfa_ha_lab/pgversions.py
    # fetches each into a private prefix when a test first needs it.)
    extras_require={"test": ["pytest>=8", "pytest-salt-factories>=1.0.5", "setuptools>=61", "wheel", "ruff"]},
    entry_points={"salt.loader": ["mfa_ha = mfa_ha.loader:get_loader_dirs"]},
)
