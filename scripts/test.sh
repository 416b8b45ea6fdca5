#!/usr/bin/env bash
# The test suite: unit, functional (real PostgreSQL through Salt's loader), integration
# (real salt-master and minions). Installs what it needs first.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MFA_HA_VENV:-/opt/mfa-ha/venv}"
# The daemons import mfa_ha from the virtualenv, not from this directory: bootstrap again
# unless it resolves to this very checkout (another clone may have installed itself there).
installed_from() { (cd / && "$VENV/bin/python" -c 'import mfa_ha, os; print(os.path.dirname(os.path.dirname(os.path.realpath(mfa_ha.__file__))))' 2>/dev/null); }
[ -x "$VENV/bin/pytest" ] && [ "$(installed_from)" = "$(realpath "$REPO")" ] || bash "$REPO/scripts/bootstrap.sh"
cd "$REPO"
# With no arguments: every tier, without the fault cases marked slow (docs/testing.md: what runs where).
[ $# -gt 0 ] || set -- tests -m "not slow" --durations=25  # the slowest 25 listed: where CI's time goes
exec "$VENV/bin/python" -m pytest "$@"
