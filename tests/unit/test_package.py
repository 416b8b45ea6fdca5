"""The built wheel is the product: the core, the Salt modules and the formula with its
orchestrations and reactors; not the lab and its stand-ins. Installed outside the checkout,
Salt's loader and the master's file_roots find everything in it."""

import glob
import json
import os
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), REPO],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return glob.glob(os.path.join(out, "mfa_ha-*.whl"))[0]


def test_the_wheel_carries_the_formula_and_not_the_lab(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    formula = {
        os.path.relpath(path, os.path.join(REPO, "salt"))
        for path in glob.glob(os.path.join(REPO, "salt", "mfa_ha", "**", "*"), recursive=True)
        if os.path.isfile(path)
    }
    assert formula and {f"mfa_ha/formula/{f}" for f in formula} <= names
    assert {
        "mfa_ha/salt/modules/pgrepl.py",
        "mfa_ha/salt/runners/mfa_ha.py",
        "mfa_ha/salt/beacons/pgrepl.py",
        "mfa_ha/salt/engines/mfa_ha_witness.py",
        "mfa_ha/unattended/keeper.py",
    } <= names
    assert not [n for n in names if n.startswith(("mfa_ha_lab", "tests/", "bench/"))]


def test_the_wheel_metadata_has_no_upper_cap_and_picks_psycopg2_for_aix(wheel):
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert "salt>=3006" in requires
    assert not [r for r in requires if r.startswith("salt") and "<" in r]
    assert 'psycopg2-binary>=2.9; platform_system != "AIX"' in requires
    assert 'psycopg2>=2.9; platform_system == "AIX"' in requires


def test_installed_outside_the_checkout_the_loader_and_file_roots_point_into_the_package(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (target / "salt").mkdir()  # as in site-packages, where Salt itself is a "salt" directory beside mfa_ha
    probe = (
        "import json, mfa_ha.loader as l; print(json.dumps({'dirs': l.get_loader_dirs(), 'formula': l.formula_root()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=str(tmp_path),
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found = json.loads(done.stdout)
    assert found["formula"] == str(target / "mfa_ha" / "formula")
    assert os.path.isfile(os.path.join(found["formula"], "mfa_ha", "orch", "switchover.sls"))
    assert os.path.isfile(os.path.join(found["formula"], "mfa_ha", "reactor", "fence.sls"))
    assert found["dirs"]["modules"] == [str(target / "mfa_ha" / "salt" / "modules")]
    assert os.path.isfile(os.path.join(found["dirs"]["modules"][0], "pgrepl.py"))


def test_the_wheel_says_its_licence_version_and_changes(wheel):
    with zipfile.ZipFile(wheel) as zf:
        info = next(n.split("/")[0] for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{info}/METADATA").decode()
        licence = zf.read(next(n for n in zf.namelist() if n.startswith(f"{info}/") and "LICENSE" in n)).decode()
    headers, _, description = metadata.partition("\n\n")
    fields = [line.split(": ", 1) for line in headers.splitlines() if ": " in line]
    values = lambda name: [v for k, v in fields if k == name]  # noqa: E731
    assert "Apache License" in licence and "Version 2.0" in licence
    assert values("License") == ["Apache-2.0"]
    assert "License :: OSI Approved :: Apache Software License" in values("Classifier")
    assert "salt-extension" in values("Keywords")[0].split(",")
    from mfa_ha import __version__

    assert values("Version") == [__version__]
    assert values("Summary") and values("Summary")[0].startswith("Salt extension")
    requires = values("Requires-Dist")
    assert "cryptography" in requires and not [r for r in requires if r.startswith("jinja2")]
    assert description.startswith("# mfa-ha") and "# Changelog" in description  # the package page
