"""The shape of the code, held by a test: which package may import which (docs/code.md),
no import cycle, nothing outside the adapters importing salt."""

from __future__ import annotations

import ast
import pathlib

import mfa_ha

CORE = pathlib.Path(mfa_ha.__file__).resolve().parent  # the checkout's, or the installed wheel's
ROOT = CORE.parent
INSTALLED_FACES = ("salt", "formula")  # in a wheel: the Salt faces and the formula, copied in

# package -> the packages it may import ("base" is mfa_ha's own top-level modules)
MAY_IMPORT = {
    "base": {"base"},
    "postgres": {"base", "postgres"},
    "pair": {"base", "postgres", "pair"},
    "monitoring": {"base", "postgres", "monitoring"},
    "unattended": {"base", "postgres", "pair", "unattended"},
    "adapters": {"base", "postgres", "pair", "monitoring", "unattended", "adapters"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else "base"


def _imports(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports (at any depth of the file, deferred imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _core_files() -> list[pathlib.Path]:
    return [p for p in CORE.rglob("*.py") if p.relative_to(CORE).parts[0] not in INSTALLED_FACES]


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _core_files()}
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def test_every_core_module_lives_in_a_known_package():
    unknown = {m for m in _graph() if m.count(".") > 1 and m.split(".")[1] not in MAY_IMPORT}
    assert not unknown


def test_each_package_imports_only_what_the_layout_allows():
    wrong = sorted(
        f"{m} imports {i}"
        for m, imports in _graph().items()
        for i in imports
        if _package(i) not in MAY_IMPORT[_package(m)]
    )
    assert not wrong, "\n".join(wrong)


def test_only_the_adapters_import_salt():
    importers = sorted(
        _module_name(p) for p in _core_files() if any(i == "salt" or i.startswith("salt.") for i in _imports(p))
    )
    assert importers and all(_package(m) == "adapters" for m in importers), importers


def test_the_core_has_no_import_cycle():
    graph = _graph()
    cycles, done, path = [], set(), []

    def visit(module):
        if module in path:
            cycles.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not cycles, cycles


def test_a_cycle_or_a_forbidden_import_would_be_seen(tmp_path):
    """The checks above read real imports: a module importing upward is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("from mfa_ha.unattended import lease\nimport salt.client\n", encoding="utf-8")
    assert {"mfa_ha.unattended.lease", "salt.client", "mfa_ha.unattended"} <= _imports(probe)
    assert _package("mfa_ha.unattended.lease") not in MAY_IMPORT["postgres"]
