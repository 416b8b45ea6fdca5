#!/usr/bin/env bash
# Install what mfa-ha's tests and lab need on a fresh Debian machine; safe to re-run.
#  - PostgreSQL 15 server binaries (Debian's postgresql-15) and the 'postgres' user
#  - HAProxy (Debian's haproxy), in front of the pair in the integration tier
#  - a virtualenv outside /root (default /opt/mfa-ha/venv), made from /usr/bin/python3
#  - this checkout installed into it with its test extras (editable: Salt's loader finds
#    _modules/_states/... through the 'salt.loader' entry point)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MFA_HA_VENV:-/opt/mfa-ha/venv}"
PG_MAJOR=15

need_apt=()
[ -x "/usr/lib/postgresql/$PG_MAJOR/bin/initdb" ] || need_apt+=("postgresql-$PG_MAJOR")
command -v openssl >/dev/null || need_apt+=(openssl)
command -v haproxy >/dev/null || need_apt+=(haproxy)  # the integration tier's load balancer, routed by the health endpoint
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} from Debian's packages"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
id postgres >/dev/null

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating virtualenv $VENV"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
fi
chmod 755 "$(dirname "$VENV")" "$VENV"
# scripts/constraints.txt holds this machine's quirks (the registry's newest certifi is older than Salt 3008.5 needs).
"$VENV/bin/pip" install -q --disable-pip-version-check -c "$REPO/scripts/constraints.txt" -e "$REPO[test,docs]" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c 'import salt.version, mfa_ha; print("bootstrap: salt", salt.version.__version__, "in", "'"$VENV"'")'
# Bytecode for the product's modules, as pip writes it for an installed wheel (an editable
# install has none, and PYTHONDONTWRITEBYTECODE keeps each process compiling them again).
"$VENV/bin/python" -m compileall -q -j 0 "$REPO/mfa_ha" "$REPO/_modules" "$REPO/_states" "$REPO/_runners" \
  "$REPO/_beacons" "$REPO/_engines" "$REPO/_output" >/dev/null
