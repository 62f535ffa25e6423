#!/usr/bin/env bash
# make soak: one wardgate serve on loopback under a bounded mix of
# admissions, telemetry, evidence exports and hostile requests for
# SOAK_DURATION (default 1h), sampled every second by bench/tools/soak:
# RSS, file descriptors, goroutines, admissions/s and their p50/p99/max.
# The per-second table goes to bench/out/soak/samples.tsv, the summary to
# the terminal; exit 1 on a failed or denied admission, a 5xx, an admission
# over its budget, or growth of descriptors or goroutines.
#   SOAK_DURATION=5m make soak
# SOAK_RATE (admissions/s, default 200), SOAK_ARGS (more flags for the
# driver, e.g. "-telemetry-every 500ms"). Leaves no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/tools/sh/serve.sh
dur=${SOAK_DURATION:-1h}
rate=${SOAK_RATE:-200}
out=bench/out/soak
mkdir -p "$out"
go build -o "$out/wardgate" ./cmd/wardgate
go build -o "$out/soak" ./bench/tools/soak
state=$(mktemp -d "${TMPDIR:-/tmp}/wardgate-soak.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$state"
}
trap cleanup EXIT
export WARDGATE_KEY_PASSWORD=
for r in update-server ci sensor auditor; do
  "$out/wardgate" token create --role "$r" --name "soak-$r" --state "$state" >"$state/$r.tok" 2>/dev/null
done
cp fixtures/fleet/testdata/inventory.json fixtures/fleet/testdata/config.json "$state/"
# The log keeps everything but the one line per request.
"$out/wardgate" serve --config fixtures/trust.yaml --state "$state" --listen 127.0.0.1:0 --no-scan --unencrypted-key \
  2> >(grep --line-buffered -v '"msg":"request"' >"$out/serve.log") &
pid=$!
addr=$(serve_addr "$out/serve.log")
digest=$(evaluate_pump "$addr" "$state/ci.tok")
echo "== soak of $addr (pid $pid) for $dur: $rate admissions/s, telemetry, exports, hostile requests ($(nproc) cores)"
# shellcheck disable=SC2086
"$out/soak" -url "http://$addr" -pid "$pid" -digest "$digest" -duration "$dur" -rate "$rate" \
  -update-server-token "$state/update-server.tok" -sensor-token "$state/sensor.tok" -auditor-token "$state/auditor.tok" -ci-token "$state/ci.tok" \
  -o "$out/samples.tsv" ${SOAK_ARGS:-}
