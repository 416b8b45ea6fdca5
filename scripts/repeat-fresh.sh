#!/usr/bin/env bash
# The README's test command, N times in a row, each on a fresh clone of this repository's
# HEAD (its own virtualenv, as on a new machine: scripts/bootstrap.sh, then scripts/test.sh).
# Prints and appends each run's result and wall time to bench/results/fresh-runs.jsonl.
#   bash scripts/repeat-fresh.sh 5
#   bash scripts/repeat-fresh.sh 5 --netns   # tests in a private network namespace, so that
#                                            # another lab on 127.0.0.x on this machine cannot collide
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-5}"
NETNS="${2:-}"
VENV="${MFA_HA_FRESH_VENV:-/opt/mfa-ha/venv-fresh}"
RESULTS="$REPO/bench/results/fresh-runs.jsonl"
mkdir -p "$(dirname "$RESULTS")"
commit="$(git -C "$REPO" rev-parse HEAD)"  # every run tests this commit, whatever HEAD becomes meanwhile
for i in $(seq 1 "$RUNS"); do
  clone="$(mktemp -d /tmp/mfa-ha-fresh.XXXXXX)"
  git clone -q "$REPO" "$clone"
  git -C "$clone" checkout -q "$commit"
  started=$(date +%s)
  MFA_HA_VENV="$VENV" bash "$clone/scripts/bootstrap.sh" > "$clone.log" 2>&1
  if [ "$NETNS" = "--netns" ]; then
    ns="mfaha-fresh-$$-$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    set +e
    ip netns exec "$ns" env MFA_HA_VENV="$VENV" CI=true bash "$clone/scripts/test.sh" >> "$clone.log" 2>&1
    rc=$?
    set -e
    ip netns del "$ns"
  else
    set +e
    MFA_HA_VENV="$VENV" CI=true bash "$clone/scripts/test.sh" >> "$clone.log" 2>&1
    rc=$?
    set -e
  fi
  wall=$(( $(date +%s) - started ))
  summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed)|passed|failed' "$clone.log" | tail -1)"
  line="{\"commit\": \"${commit:0:7}\", \"run\": $i, \"exit\": $rc, \"wall_s\": $wall, \"summary\": \"${summary//\"/\'}\", \"log\": \"$clone.log\"}"
  echo "$line" | tee -a "$RESULTS"
  rm -rf "$clone"
done
