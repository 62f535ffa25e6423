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
mkdir -p "$out"
go build -o "$out/wardgate" ./cmd/wardgate
go build -o "$out/loadgen" ./bench/tools/loadgen
state=$(mktemp -d "${TMPDIR:-/tmp}/wardgate-load.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$state"
}
trap cleanup EXIT
export WARDGATE_KEY_PASSWORD=
"$out/wardgate" token create --role update-server --name loadgen --state "$state" >"$state/us.tok" 2>/dev/null
"$out/wardgate" token create --role ci --name ci --state "$state" >"$state/ci.tok" 2>/dev/null
"$out/wardgate" serve --config fixtures/trust.yaml --state "$state" --listen 127.0.0.1:0 --no-scan --unencrypted-key --log-level "${LOG_LEVEL:-info}" 2>"$out/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q '"msg":"serving"' "$out/serve.log" 2>/dev/null && break; sleep 0.1; done
addr=$(grep -o '"addr":"[^"]*"' "$out/serve.log" | head -1 | cut -d'"' -f4)
[ -n "$addr" ] || { echo "server did not start"; cat "$out/serve.log"; exit 2; }
fx=fixtures/testdata
resp=$(curl -sS -H "Authorization: Bearer $(cat "$state/ci.tok")" \
  -F vendor=acme-infusion -F product=infusion-pump -F version=2.4.0 \
  -F firmware=@$fx/firmware/infusion-pump-2.4.0.bin -F signature=@$fx/sig/infusion-pump-2.4.0.bin.sig \
  -F bundle=@$fx/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json -F sbom=@$fx/sbom/infusion-pump-2.4.0.cdx.json \
  "http://$addr/v1/updates")
digest=$(printf '%s' "$resp" | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d'"' -f4)
printf '%s' "$resp" | grep -q '"allow":true' || { echo "evaluation did not allow: $resp"; exit 2; }
echo "== evaluated $digest; driving POST /v1/admissions at $addr: $n requests, $c workers, at most $dur ($(nproc) cores)"
# The server's CPU time (user + system) per admission answered: on a shared
# machine throughput follows the CPU the others leave, this much less so.
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu)
GOMAXPROCS=${LOADGEN_PROCS:-1} "$out/loadgen" -url "http://$addr" -token-file "$state/us.tok" -digest "$digest" -n "$n" -c "$c" -duration "$dur" -o "$out/load.json" | tee "$out/load.txt"
c1=$(cpu)
answered=$(grep -o '"\(allowed\|denied\)": *[0-9]*' "$out/load.json" | awk -F: '{n += $2} END {print n}')
awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$answered" 'BEGIN {printf "server CPU %.3f ms per admission (user+system)\n", t / hz * 1000 / n}' | tee -a "$out/load.txt"
