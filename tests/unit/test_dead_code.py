"""No dead code in the product: vulture over the core and the Salt faces finds nothing unused.

What Salt's loader calls (every public function of a face, ``__virtual__``) and the few names
used from outside Python (the entry point, a driver attribute) count as used."""

from __future__ import annotations

import ast
import pathlib

import pytest

from mfa_ha.loader import KINDS

vulture = pytest.importorskip("vulture")

ROOT = pathlib.Path(__file__).resolve().parents[2]
FACES = [ROOT / folder for folder in KINDS.values() if (ROOT / folder).is_dir()]
USED_FROM_OUTSIDE = {
    "get_loader_dirs",  # the salt.loader entry point (pyproject.toml)
    "autocommit",  # a psycopg2 connection attribute, set
    "acquire",
    "release",  # mfa_ha:service_address keys, read with getattr
    "fence_bound",  # the whole fence's budget, which the keeper's watchdog tests wait on
    "do_GET",
    "log_message",
    "daemon_threads",
    "handle_error",  # http.server's hooks and settings (the health endpoint)
}


def _called_by_salt() -> set[str]:
    names = set()
    for folder in FACES:
        for path in folder.glob("*.py"):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.FunctionDef) and (not node.name.startswith("_") or node.name == "__virtual__"):
                    names.add(node.name)
    return names


def test_nothing_in_the_product_is_unused():
    finder = vulture.Vulture(ignore_names=sorted(_called_by_salt() | USED_FROM_OUTSIDE))
    finder.scavenge([str(ROOT / "mfa_ha"), *map(str, FACES)])
    unused = [
        f"{item.filename}:{item.first_lineno}: {item.typ} {item.name}"
        for item in finder.get_unused_code(min_confidence=60)
    ]
    assert not unused, "\n".join(unused)


def test_a_dead_function_would_be_found(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def used():\n    return 1\n\n\ndef forgotten():\n    return 2\n\n\nused()\n", encoding="utf-8")
    finder = vulture.Vulture()
    finder.scavenge([str(module)])
    assert [item.name for item in finder.get_unused_code(min_confidence=60)] == ["forgotten"]
