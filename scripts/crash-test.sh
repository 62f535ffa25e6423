#!/usr/bin/env bash
# Crash test for wardgate serve: kill -9 the server in the middle of
# telemetry ingest and in the middle of admissions, restart it, and check
#   - it restarts (the log's tree agrees with its checkpoint, the records
#     and stores open),
#   - every telemetry batch answered 2xx is stored (posting it again is
#     recognised as a repeat),
#   - every admission answered 2xx allow is in the signed log and in the
#     audit table,
#   - an evidence pack exported afterwards verifies (wardgate attest verify).
# Loopback only; leaves no process behind. Needs jq and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/wardgate-crash.XXXXXX")
state=$work/state
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/wardgate" ./cmd/wardgate
go build -o "$work/loadgen" ./bench/tools/loadgen
wg=$work/wardgate
export WARDGATE_KEY_PASSWORD=
mkdir -p "$state"
cp fixtures/fleet/testdata/inventory.json fixtures/fleet/testdata/config.json "$state/"
for r in ci update-server sensor auditor; do "$wg" token create --role "$r" --name "crash-$r" --state "$state" >"$work/$r.tok" 2>/dev/null; done
tok() { cat "$work/$1.tok"; }
fail() { echo "FAIL: $*"; exit 1; }

start() {
  : >"$work/serve.log"
  "$wg" serve --config fixtures/trust.yaml --state "$state" --listen 127.0.0.1:0 --no-scan --unencrypted-key 2>>"$work/serve.log" &
  pid=$!
  for _ in $(seq 100); do grep -q '"msg":"serving"' "$work/serve.log" && break; sleep 0.1; done
  addr=$(grep -o '"addr":"[^"]*"' "$work/serve.log" | tail -1 | cut -d'"' -f4)
  [ -n "$addr" ] || { cat "$work/serve.log"; fail "server did not start"; }
  url=http://$addr
}
crash() { kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

start
fx=fixtures/testdata
digest=$(curl -sS -H "Authorization: Bearer $(tok ci)" -F vendor=acme-infusion -F product=infusion-pump -F version=2.4.0 \
  -F firmware=@$fx/firmware/infusion-pump-2.4.0.bin -F signature=@$fx/sig/infusion-pump-2.4.0.bin.sig \
  -F bundle=@$fx/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json -F sbom=@$fx/sbom/infusion-pump-2.4.0.cdx.json \
  "$url/v1/updates" | jq -er 'select(.allow) | .digest') || fail "evaluation"
echo "== evaluated $digest"

# 1. Telemetry: batches of 40 lines posted one after another; kill -9
# after a while, whatever is in flight.
split -l 40 -d -a 3 fixtures/fleet/testdata/defender.jsonl "$work/batch-"
: >"$work/acked"
(
  for b in "$work"/batch-*; do
    code=$(curl -s -o "$b.resp" -w '%{http_code}' -H "Authorization: Bearer $(tok sensor)" -H 'Content-Type: application/x-ndjson' --data-binary @"$b" "$url/v1/telemetry" || true)
    [ "$code" = 200 ] && echo "$b" >>"$work/acked"
  done
) &
poster=$!
sleep 1.5
crash
wait "$poster" || true
nacked=$(wc -l <"$work/acked")
echo "== killed mid telemetry: $nacked of $(ls "$work"/batch-??? | wc -l) batches answered 200"
[ "$nacked" -gt 0 ] || fail "no telemetry batch was answered before the kill; raise the sleep"
start
while read -r b; do
  added=$(curl -sS -H "Authorization: Bearer $(tok sensor)" -H 'Content-Type: application/x-ndjson' --data-binary @"$b" "$url/v1/telemetry" | jq -r .added)
  [ "$added" = false ] || fail "batch $b was answered 200 but is not in the store (re-post added=$added)"
done <"$work/acked"
echo "== every acknowledged batch is stored"

# 2. Admissions at full speed; kill -9 mid-run.
"$work/loadgen" -url "$url" -token-file "$work/update-server.tok" -digest "$digest" -n 2000000 -c 32 -devices 1000000 -duration 6s -o "$work/load.json" >"$work/load.txt" 2>&1 &
lg=$!
# The load generator prepares a request per device first (seconds on a busy
# machine): kill once admissions are being answered, not after a fixed time.
for _ in $(seq 600); do grep -q '"route":"POST /v1/admissions"' "$work/serve.log" && break; sleep 0.1; done
sleep 2
crash
wait "$lg" || true
nok=$(jq '.okDevices | length' "$work/load.json")
echo "== killed mid admissions: $nok devices answered allow; $(head -1 "$work/load.txt")"
[ "$nok" -gt 0 ] || fail "no admission was answered before the kill"
start
jq -r '.okDevices[]' "$work/load.json" | sort -u >"$work/ok.txt"
"$wg" attest log --state "$state" -o json | jq -r '.entries[].device // empty' | sort -u >"$work/logged.txt"
missing=$(comm -23 "$work/ok.txt" "$work/logged.txt" | wc -l)
[ "$missing" -eq 0 ] || fail "$missing admitted devices are not in the log: $(comm -23 "$work/ok.txt" "$work/logged.txt" | head -3)"
curl -sS -H "Authorization: Bearer $(tok auditor)" "$url/v1/audit?action=POST%20/v1/admissions&limit=100000" | jq -r '.records[] | select(.outcome=="allow") | .target | split(" ")[1]' | sort -u >"$work/audited.txt"
missing=$(comm -23 "$work/ok.txt" "$work/audited.txt" | wc -l)
[ "$missing" -eq 0 ] || fail "$missing admitted devices are not in the audit table"
echo "== every admission answered allow is in the log and the audit table"

# 3. An evidence pack of everything verifies.
curl -sS -f -o "$work/pack.tar.gz" -H "Authorization: Bearer $(tok auditor)" "$url/v1/evidence"
"$wg" attest verify "$work/pack.tar.gz" --key "$state/signing.pub"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "PASS"
