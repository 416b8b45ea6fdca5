#!/usr/bin/env bash
# The tests against what a user installs: the wheel built from this checkout, installed
# (not editable) into a fresh virtualenv with the given Salt release, and the tests run from a
# copy outside the checkout, so that every import of mfa_ha and the formula the lab's master
# serves come from the installed package.
#   bash scripts/test-wheel.sh 3006                       # newest installable Salt 3006.x
#   bash scripts/test-wheel.sh 3007 tests/integration -x  # pytest arguments after the release
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RELEASE="${1:?Salt release: 3006, 3007 or 3008}"; shift
VENV="${MFA_HA_WHEEL_VENV_ROOT:-/opt/mfa-ha}/wheel-salt$RELEASE"
WORK="$(mktemp -d /tmp/mfa-ha-wheel.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
pip_install() { "$VENV/bin/pip" install -q --disable-pip-version-check -c "$REPO/scripts/constraints.txt" "$@" 2>&1 | grep -v '^WARNING: Location' || true; }

bash "$REPO/scripts/bootstrap.sh" >/dev/null  # PostgreSQL and the postgres user, as for the other tests
echo "test-wheel: a fresh virtualenv $VENV with Salt $RELEASE.x"
/usr/bin/python3 -m venv --clear "$VENV"
chmod 755 "$(dirname "$VENV")" "$VENV"
pip_install "salt>=$RELEASE,<$((RELEASE + 1))" setuptools wheel
"$VENV/bin/pip" wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$REPO"
pip_install "salt>=$RELEASE,<$((RELEASE + 1))" "$(ls "$WORK"/dist/mfa_ha-*.whl)" \
  pytest pytest-salt-factories
cp -r "$REPO/tests" "$REPO/mfa_ha_lab" "$REPO/pillar" "$REPO/pytest.ini" "$WORK/"
cd "$WORK"
"$VENV/bin/python" -c 'import salt.version, mfa_ha, os; assert "/tmp/mfa-ha-wheel." not in mfa_ha.__file__ and "site-packages" in mfa_ha.__file__, mfa_ha.__file__; print("test-wheel: salt", salt.version.__version__, "mfa_ha from", os.path.dirname(mfa_ha.__file__))'
[ $# -gt 0 ] || set -- tests/unit tests/functional tests/integration --ignore=tests/unit/test_package.py \
  --ignore=tests/functional/test_versions.py  # the PostgreSQL matrix does not depend on the Salt release
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
