#!/usr/bin/env bash
# Makes state-aa806ec.tar.gz: a state directory as the wardgate of commit
# aa806ec (before the store package) leaves it, for TestEarlierStateDir.
# It cannot be made by this wardgate: run it from the repository root with
# that commit's binary,
#   git archive aa806ec | tar -x -C /tmp/old && (cd /tmp/old && go build -o wardgate ./cmd/wardgate)
#   cmd/wardgate/cli/testdata/legacy/mkstate.sh /tmp/old/wardgate
# What it holds: the ledger (pump 2.3.0 admitted by `wardgate admit`), the
# verdict log and its key (password empty), the pump 2.4.0 evaluated by
# `wardgate serve` (kept in evaluations/, its SBOM in sboms/, diffed
# against 2.3.0's), three admissions (installations, audit), one telemetry
# batch (inputs/batch.jsonl), and the tokens of four roles (inputs/ROLE.tok).
set -euo pipefail
old=$1
out=cmd/wardgate/cli/testdata/legacy/state-aa806ec.tar.gz
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
S=$work/state
mkdir -p "$S" "$work/inputs"
export WARDGATE_KEY_PASSWORD=
fx=fixtures/testdata
"$old" admit "$fx/firmware/infusion-pump-2.3.0.bin" --config fixtures/trust.yaml --state "$S" --vendor acme-infusion --product infusion-pump --version 2.3.0 \
  --signature "$fx/sig/infusion-pump-2.3.0.bin.sig" --bundle "$fx/keyless/infusion-pump-2.3.0.bin.v0.3.sigstore.json" --sbom "$fx/sbom/infusion-pump-2.3.0.cdx.json" --no-scan
cp fixtures/fleet/testdata/inventory.json fixtures/fleet/testdata/config.json "$S/"
for r in ci update-server sensor auditor; do "$old" token create --role "$r" --name "legacy-$r" --state "$S" >"$work/inputs/$r.tok" 2>/dev/null; done
"$old" serve --config fixtures/trust.yaml --state "$S" --listen 127.0.0.1:0 --no-scan 2>"$work/serve.log" &
pid=$!
for _ in $(seq 300); do grep -q '"msg":"serving"' "$work/serve.log" && break; sleep 0.1; done
url=http://$(grep -o '"addr":"[^"]*"' "$work/serve.log" | head -1 | cut -d'"' -f4)
tok() { cat "$work/inputs/$1.tok"; }
curl -sSf -H "Authorization: Bearer $(tok ci)" -F vendor=acme-infusion -F product=infusion-pump -F version=2.4.0 \
  -F firmware=@$fx/firmware/infusion-pump-2.4.0.bin -F signature=@$fx/sig/infusion-pump-2.4.0.bin.sig \
  -F bundle=@$fx/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json -F sbom=@$fx/sbom/infusion-pump-2.4.0.cdx.json "$url/v1/updates" >"$work/update.json"
digest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$work/update.json" | head -1 | cut -d'"' -f4)
for d in LEGACY-PUMP-1 LEGACY-PUMP-2 LEGACY-PUMP-3; do
  curl -sSf -H "Authorization: Bearer $(tok update-server)" -H 'Content-Type: application/json' \
    -d "{\"digest\":\"$digest\",\"device\":{\"id\":\"$d\",\"class\":\"infusion-pump\",\"installedVersion\":\"2.3.0\"}}" "$url/v1/admissions" >/dev/null
done
head -40 fixtures/fleet/testdata/defender.jsonl >"$work/batch.jsonl"
curl -sSf -H "Authorization: Bearer $(tok sensor)" -H 'Content-Type: application/x-ndjson' --data-binary @"$work/batch.jsonl" "$url/v1/telemetry" >/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
rm -rf "$S/tmp"
mv "$work/batch.jsonl" "$work/inputs/"
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out" state inputs
tar -tzvf "$out"
