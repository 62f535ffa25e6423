#!/usr/bin/env bash
# Admission throughput: start wardgate serve on loopback with a fresh state
# directory, evaluate the pump 2.4.0 release once, then drive POST
# /v1/admissions from bench/tools/loadgen (bounded: -n requests or
# -duration, whichever comes first) and report admissions/s, p50/p99
# latency, errors and the server's CPU time per admission. Leaves no
# process behind.
# Usage: bench/serve-load.sh [REQUESTS] [WORKERS] [DURATION]
# LOADGEN_PROCS (default 1) sets GOMAXPROCS of the load generator, which
# shares the two cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
c=${2:-20}
dur=${3:-60s}
out=bench/out/serve
. bench/lib/serve.sh
serve_init "$out" load
go build -o "$out/loadgen" ./bench/tools/loadgen
serve_tokens update-server ci
serve_start "$out/serve.log" --log-level "${LOG_LEVEL:-info}"
serve_evaluate_pump
echo "== evaluated $digest; driving POST /v1/admissions at $addr: $n requests, $c workers, at most $dur ($(nproc) cores)"
# The server's CPU time (user + system) per admission answered: on a shared
# machine throughput follows the CPU the others leave, this much less so.
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu)
GOMAXPROCS=${LOADGEN_PROCS:-1} "$out/loadgen" -url "http://$addr" -token-file "$state/update-server.tok" -digest "$digest" -n "$n" -c "$c" -duration "$dur" -o "$out/load.json" | tee "$out/load.txt"
c1=$(cpu)
answered=$(grep -o '"\(allowed\|denied\)": *[0-9]*' "$out/load.json" | awk -F: '{n += $2} END {print n}')
awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$answered" 'BEGIN {printf "server CPU %.3f ms per admission (user+system)\n", t / hz * 1000 / n}' | tee -a "$out/load.txt"
