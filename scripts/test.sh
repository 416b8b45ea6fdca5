#!/usr/bin/env bash
# The test suite: unit, functional (real PostgreSQL through Salt's loader), integration
# (real salt-master and minions). Installs what it needs first.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MFA_HA_VENV:-/opt/mfa-ha/venv}"
[ -x "$VENV/bin/pytest" ] && "$VENV/bin/python" -c 'import mfa_ha' 2>/dev/null || bash "$REPO/scripts/bootstrap.sh"
cd "$REPO"
exec "$VENV/bin/python" -m pytest "${@:-tests}"
