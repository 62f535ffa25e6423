#!/usr/bin/env bash
# make fuzz [FUZZTIME=20s]: runs every native Go fuzz target in the module,
# one after another, each for a bounded time.
set -euo pipefail
t=${1:-20s}
fail=0
for pkg in $(go list ./...); do
  for fn in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $fn ($t)"
    if ! go test -run "^$" -fuzz "^${fn}\$" -fuzztime "$t" -fuzzminimizetime 5s "$pkg"; then fail=1; fi
  done
done
exit $fail
