#!/usr/bin/env bash
# make bench: every benchmark, with the figures the issues ask for.
# Go benchmarks run 5 times each (read medians; benchstat works on the
# output in bench/out/go-bench.txt). Scripts print their own medians/ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
pkgs=$(go list ./... | while read -r p; do
  if go test -list '^Benchmark' "$p" 2>/dev/null | grep -q '^Benchmark'; then echo "$p"; fi
done)
echo "== Go benchmarks (-count 5): $pkgs"
go test -run '^$' -bench . -benchmem -count 5 $pkgs | tee bench/out/go-bench.txt
echo
for s in bench/*.sh; do
  [ "$s" = bench/run.sh ] && continue
  echo "== $s"
  "$s"
  echo
done
