#!/usr/bin/env bash
# make soak: one wardgate serve on loopback under a bounded mix of
# admissions, telemetry, evidence exports and hostile requests for
# SOAK_DURATION (default 1h), sampled every second by bench/tools/soak:
# RSS, file descriptors, goroutines, admissions/s and their p50/p99/max.
# The per-second table goes to bench/out/soak/samples.tsv, the summary to
# the terminal; exit 1 on a failed or denied admission, a 5xx, an admission
# over its budget, or growth from the first half of the run to the second
# of what the server holds beyond its clients' connections: descriptors
# other than sockets, connections in CLOSE_WAIT, goroutines less sockets.
#   SOAK_DURATION=5m make soak
# SOAK_RATE (admissions/s, default 200), SOAK_ARGS (more flags for the
# driver, e.g. "-telemetry-every 500ms"), WARDGATE (the binary; make soak
# gives bin/wardgate; default: built into bench/out/soak). Leaves no
# process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${SOAK_DURATION:-1h}
rate=${SOAK_RATE:-200}
out=bench/out/soak
. bench/lib/serve.sh
serve_init "$out" soak
go build -o "$out/soak" ./bench/tools/soak
serve_tokens update-server ci sensor auditor
cp fixtures/fleet/testdata/inventory.json fixtures/fleet/testdata/config.json "$state/"
# The log keeps everything but the one line per request.
SERVE_LOG_QUIET=1 serve_start "$out/serve.log"
serve_evaluate_pump
echo "== soak of $addr (pid $pid) for $dur: $rate admissions/s, telemetry, exports, hostile requests ($(nproc) cores)"
# shellcheck disable=SC2086
"$out/soak" -url "http://$addr" -pid "$pid" -digest "$digest" -duration "$dur" -rate "$rate" \
  -update-server-token "$state/update-server.tok" -sensor-token "$state/sensor.tok" -auditor-token "$state/auditor.tok" -ci-token "$state/ci.tok" \
  -o "$out/samples.tsv" ${SOAK_ARGS:-}
