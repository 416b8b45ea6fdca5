"""Sphinx configuration of mfa-ha's documentation: the pages in this folder (Markdown, through
MyST) and the reference of every Salt module, generated from the docstrings at each build."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mfa_ha import __version__  # noqa: E402
from mfa_ha.loader import KINDS  # noqa: E402  (the Salt-facing directories: {kind: folder})

project = "mfa-ha"
copyright = "the mfa-ha developers; Apache-2.0"
version = release = __version__
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
add_module_names = False  # "pgrepl.status", not the import path the build gives the file
html_theme = "alabaster"
html_title = f"mfa-ha {__version__}"
suppress_warnings = ["myst.xref_missing"]

TITLES = {
    "modules": "Execution modules",
    "states": "State modules",
    "runners": "Runners",
    "beacons": "Beacons",
    "engines": "Engines",
    "output": "Outputters",
}
CALLED_AS = {
    "modules": "salt <minion> {name}.<function>",
    "states": "{name}.<state> in an SLS file",
    "runners": "salt-run {name}.<function>",
    "beacons": "beacons: {name}: ... in the minion config",
    "engines": "engines: - {name}: ... in the master config",
    "output": "--out={name}",
}


def _load_salt_modules() -> dict[str, list[str]]:
    """Import each Salt-facing file under ``mfa_ha_salt.<kind>.<name>`` (several share a name
    across kinds, e.g. ``pgrepl``), so autodoc documents them as Salt loads them."""
    found: dict[str, list[str]] = {}
    sys.modules.setdefault("mfa_ha_salt", types.ModuleType("mfa_ha_salt"))
    for kind, folder in KINDS.items():
        package = f"mfa_ha_salt.{kind}"
        sys.modules.setdefault(package, types.ModuleType(package))
        for path in sorted((ROOT / folder).glob("*.py")):
            name = f"{package}.{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            found.setdefault(kind, []).append(path.stem)
    return found


def _write_reference(found: dict[str, list[str]]) -> None:
    ref = pathlib.Path(__file__).resolve().parent / "ref"
    ref.mkdir(exist_ok=True)
    pages = []
    for kind, names in found.items():
        lines = [TITLES.get(kind, kind), "=" * len(TITLES.get(kind, kind)), ""]
        for name in names:
            title = f"``{name}``"
            lines += [
                title,
                "-" * len(title),
                "",
                f"Called as ``{CALLED_AS.get(kind, '{name}').format(name=name)}``.",
                "",
                f".. automodule:: mfa_ha_salt.{kind}.{name}",
                "   :members:",
                "",
            ]
        (ref / f"{kind}.rst").write_text("\n".join(lines))
        pages.append(kind)
    (ref / "index.rst").write_text(
        "Reference\n=========\n\nGenerated from the docstrings at each build.\n\n"
        ".. toctree::\n   :maxdepth: 2\n\n" + "".join(f"   {p}\n" for p in pages)
    )


_write_reference(_load_salt_modules())
