#!/usr/bin/env bash
# The product speaks of itself: no talk of how it was built (tracker numbers, work sessions,
# the procedure it started from) in the README, the docs, the code, the formula, the example pillar or the tests.
# History belongs in CHANGELOG.md. Upstream references ("Salt issue 59141") are fine.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='(^|[^[:alnum:]_])([Ii]ssue [0-9]+|[Ii]ssues? #[0-9]+|earlier[ ]session|this[ ]session|the[ ]seed|seed'"'"'s|registry[ ]here)'
found=$(git ls-files -- ':!CHANGELOG.md' ':!scripts/check-wording.sh' | xargs grep -nE "$pattern" 2>/dev/null \
        | grep -vE '(Salt|salt|upstream|PostgreSQL) issue [0-9]+' || true)
if [ -n "$found" ]; then
  echo "check-wording: build-process talk in the product (history goes in CHANGELOG.md):"
  echo "$found"
  exit 1
fi
echo "check-wording: ok"
