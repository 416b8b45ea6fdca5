"""Salt extension entry point: where Salt's loader finds this project's modules."""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {
    "modules": "_modules",
    "states": "_states",
    "beacons": "_beacons",
    "runners": "_runners",
    "output": "_output",
    "engines": "_engines",
}


_CHECKOUT = os.path.dirname(_HERE)
# Only a source checkout has setup.py beside the package: an installed package's parent is
# site-packages, which has a "salt" directory too (Salt's own).
_IN_CHECKOUT = os.path.isfile(os.path.join(_CHECKOUT, "setup.py"))


def _directory(source_dir: str, installed_dir: str) -> str:
    return os.path.join(_CHECKOUT, source_dir) if _IN_CHECKOUT else os.path.join(_HERE, installed_dir)


def get_loader_dirs() -> dict[str, list[str]]:
    """``{"modules": [...], "states": [...], ...}`` for the ``salt.loader`` entry point.

    In a source checkout (editable install) these are the top-level ``_modules`` etc.;
    in an installed wheel they are copied under ``mfa_ha/salt/``.
    """
    return {kind: [_directory(src, os.path.join("salt", kind))] for kind, src in KINDS.items()}


def formula_root() -> str:
    """The directory to add to the master's ``file_roots`` (it holds ``mfa_ha/``: the
    formula, ``mfa_ha/orch/*`` and ``mfa_ha/reactor/*``): the repository's ``salt/`` in a
    checkout, ``mfa_ha/formula`` inside an installed package."""
    return _directory("salt", "formula")
