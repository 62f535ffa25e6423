#!/usr/bin/env bash
# The verdict log at scale: sign+append throughput (durable: WAL,
# synchronous=FULL, group commit), inclusion proofs in a 1,000,000-entry log,
# and export + offline verify of that log with peak RSS.
# Usage: bench/attest-log.sh [ENTRIES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
out=bench/out/log
mkdir -p "$out"
echo "== sign and append (Go benchmark, 5 runs)"
go test -run '^$' -bench 'SignAndAppend' -count 5 ./attest/ | grep -E '^Benchmark' | tee "$out/append.txt"
echo "median: $(awk '{for(i=1;i<=NF;i++) if($i=="verdicts/s") print $(i-1)}' "$out/append.txt" | sort -n | sed -n 3p) verdicts/s"
echo "== building a $n-entry log (once; reused when present)"
t0=$(date +%s)
go run ./bench/tools/mklog -dir "$out" -n "$n"
echo "built in $(( $(date +%s) - t0 ))s"
echo "== inclusion proof of a random entry (Go benchmark, 5 runs)"
WARDGATE_BENCH_LOG="$PWD/$out/wardgate.db" WARDGATE_BENCH_KEY="$PWD/$out/signing.key" \
  go test -run '^$' -bench 'InclusionProof' -count 5 ./attest/ | grep -E '^Benchmark' | tee "$out/proof.txt"
echo "median: $(awk '{print $3}' "$out/proof.txt" | sort -n | sed -n 3p) ns per proof"
echo "== export and verify the whole log"
rm -rf "$out/pack"
export WARDGATE_KEY_PASSWORD=
/usr/bin/time -f "%M %e" -o "$out/export.time" bin/wardgate attest export --state "$out" --out "$out/pack"
/usr/bin/time -f "%M %e" -o "$out/verify.time" bin/wardgate attest verify "$out/pack" --key "$out/signing.pub"
read -r erss esec <"$out/export.time"; read -r vrss vsec <"$out/verify.time"
echo "export: ${esec}s, peak RSS $((erss/1024)) MiB; verify: ${vsec}s, peak RSS $((vrss/1024)) MiB"
rm -rf "$out/pack"
