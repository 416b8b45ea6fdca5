"""Install mfa-ha as a Salt extension: the core package plus the Salt-facing directories."""

import importlib.util
import os

from setuptools import find_packages, setup

# The one list of Salt-facing directories lives in mfa_ha/loader.py (loaded without importing mfa_ha).
_spec = importlib.util.spec_from_file_location(
    "_loader", os.path.join(os.path.dirname(__file__) or ".", "mfa_ha", "loader.py")
)
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
SALT_DIRS = _loader.KINDS

FORMULA_FILES = ["mfa_ha/*.sls", "mfa_ha/*.jinja", "mfa_ha/*.yaml", "mfa_ha/orch/*.sls", "mfa_ha/reactor/*.sls"]

# The metadata (name, version, dependencies, entry point) is in pyproject.toml; here only
# what setuptools cannot say there: the Salt-facing directories mapped into the package.
setup(
    # The product only: the core, its Salt modules and the formula (orchestrations and reactors
    # included). The lab and its stand-ins for IBM's parts stay in the repository.
    packages=find_packages(include=["mfa_ha", "mfa_ha.*"])
    + ["mfa_ha.formula"]
    + [f"mfa_ha.salt.{kind}" for kind in SALT_DIRS],
    package_dir={"mfa_ha.formula": "salt", **{f"mfa_ha.salt.{kind}": src for kind, src in SALT_DIRS.items()}},
    package_data={"mfa_ha.formula": FORMULA_FILES},
)
