#!/usr/bin/env bash
# The PostgreSQL version matrix (docs/install.md: "PostgreSQL versions"). For each full build (13, 16,
# 17, 18) the lab runs that major and the whole functional tier plus the integration
# switchover there and back run on it; 10, 11 and 12 (server binaries only) run their live
# test. Each major's binaries are installed on first use (mfa_ha_lab/pgversions.py). Appends
# one line per major to bench/results/versions.jsonl.
#   bash scripts/test-versions.sh              # 13 16 17 18 10 11 12
#   bash scripts/test-versions.sh 13 18
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MFA_HA_VENV:-/opt/mfa-ha/venv}"
RESULTS="$REPO/bench/results/versions.jsonl"
THERE_AND_BACK="tests/integration/test_2_switchover.py::test_switchover_there_and_back_loses_no_acknowledged_write"
mkdir -p "$(dirname "$RESULTS")"
bash "$REPO/scripts/test.sh" tests/unit/test_proc.py -q >/dev/null  # installs what the tests need
[ $# -gt 0 ] || set -- 13 16 17 18 10 11 12
failed=0
for major in "$@"; do
  build="$(cd "$REPO" && "$VENV/bin/python" -c "import json, sys; from mfa_ha_lab import pgversions; print(json.dumps(pgversions.describe(int(sys.argv[1])).as_dict()))" "$major")"
  case "$major" in
    10|11|12) what="functional: tests/functional/test_versions.py (server-only build)"
              lab_major=""  # the other tests' lab stays on the default; this one makes its own
              args=(tests/functional/test_versions.py -k "pg$major") ;;
    *)        what="functional tier + integration switchover there and back"
              lab_major="$major"
              args=(tests/functional "$THERE_AND_BACK" --ignore=tests/functional/test_versions.py) ;;
  esac
  echo "== PostgreSQL $major: $what"
  log="$(mktemp /tmp/mfa-ha-versions.XXXXXX)"
  started=$(date +%s)
  set +e
  MFA_HA_PG_MAJOR="$lab_major" bash "$REPO/scripts/test.sh" "${args[@]}" -q 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || failed=1
  summary="$( (grep -E '[0-9]+ (passed|failed|error|deselected)' "$log" || echo "no summary") | tail -1 | tr -d '=' \
             | sed 's/^ *//; s/ *$//')"
  printf '{"commit": "%s", "major": %s, "build": %s, "ran": "%s", "exit": %s, "wall_s": %s, "summary": "%s"}\n' \
    "$(git -C "$REPO" rev-parse --short HEAD)" "$major" "$build" "$what" "$rc" "$(( $(date +%s) - started ))" \
    "$summary" | tee -a "$RESULTS"
  rm -f "$log"
done
exit $failed
