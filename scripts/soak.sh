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
echo "== soak of $addr (pid $pid) for $dur: $rate admissions/s, telemetry, exports, hostile requests ($(nproc) cores)"
# shellcheck disable=SC2086
"$out/soak" -url "http://$addr" -pid "$pid" -digest "$digest" -duration "$dur" -rate "$rate" \
  -update-server-token "$state/update-server.tok" -sensor-token "$state/sensor.tok" -auditor-token "$state/auditor.tok" -ci-token "$state/ci.tok" \
  -o "$out/samples.tsv" ${SOAK_ARGS:-}
