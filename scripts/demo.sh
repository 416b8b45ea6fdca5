#!/usr/bin/env bash
# The main job: a local lab (two PostgreSQL servers on 127.0.0.2/127.0.0.3 and the pmfad
# stand-in) set up and switched over by mfa-ha's Salt modules. Installs what it needs first.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MFA_HA_VENV:-/opt/mfa-ha/venv}"
bash "$REPO/scripts/bootstrap.sh" >/dev/null
cd "$REPO"  # the lab package is not installed: it comes from the checkout
exec "$VENV/bin/python" -m mfa_ha_lab.demo "$@"
