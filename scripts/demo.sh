#!/usr/bin/env bash
# make demo: the whole story on one machine, from the command line. Fresh
# fixtures and a fresh state directory in a temp dir; nothing is left
# running and nothing outside the temp dir is written.
set -uo pipefail
W=${WARDGATE:-$PWD/bin/wardgate}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
F=$D/fixtures; S=$D/state
export WARDGATE_KEY_PASSWORD=demo-only
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fails=0
step() { echo "\$ wardgate ${*//$D\//}"; "$W" "$@"; last=$?; echo "  (exit $last)"; }
# want CODE: the last step must have exited CODE (the demo is also a check:
# CI runs it).
want() { if [ "$last" != "$1" ]; then echo "  UNEXPECTED: wanted exit $1"; fails=$((fails + 1)); fi; }
# wantjson FILTER: the last API answer (in $D/last.json) must satisfy FILTER.
wantjson() { if ! jq -e "$1" "$D/last.json" >/dev/null; then echo "  UNEXPECTED: wanted $1"; fails=$((fails + 1)); fi; }
say "Generating fixtures: vendor keys, firmware for three device classes, signatures, a virtual Sigstore, vendor SBOMs"
go run ./fixtures/gen -out "$F" || exit 1
sed "s|testdata/|fixtures/|g" fixtures/trust.yaml > "$D/trust.yaml"
T=(--config "$D/trust.yaml" --state "$S")

say "1. A CI pipeline verifies the infusion pump 2.4.0 update: vendor key, and keyless (certificate, Rekor entry, RFC 3161 timestamp, all offline)"
step verify blob "$F/firmware/infusion-pump-2.4.0.bin" --key "$F/keys/acme-infusion.pub" --signature "$F/sig/infusion-pump-2.4.0.bin.sig"
want 0
step verify blob "$F/firmware/infusion-pump-2.4.0.bin" --certificate-identity release@acme-infusion.example \
  --certificate-oidc-issuer https://accounts.acme-infusion.example --trusted-root "$F/keyless/trusted_root.json" \
  --bundle "$F/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"
want 0

say "2. The same update with one byte flipped in transit, and one signed by a key nobody trusts"
step verify blob "$F/tampered/infusion-pump-2.4.0-flipped.bin" --key "$F/keys/acme-infusion.pub" --bundle "$F/sig/infusion-pump-2.4.0.bin.sigstore.json"
want 1
step verify blob "$F/firmware/infusion-pump-2.4.0.bin" --key "$F/keys/acme-infusion.pub" --signature "$F/tampered/infusion-pump-2.4.0.bin.wrongkey.sig"
want 1

pump() { # version file sbom [extra...]
  local v=$1 file=$2 sbom=$3; shift 3
  step admit "$F/firmware/$file" "${T[@]}" --vendor acme-infusion --product infusion-pump --version "$v" \
    --signature "$F/sig/$file.sig" --bundle "$F/keyless/$file.v0.3.sigstore.json" --sbom "$sbom" "$@"
}
say "3. The gate decides: pump 2.3.0, then 2.4.0 (two signers required, SBOM checked against what syft finds inside, diffed against 2.3.0)"
pump 2.3.0 infusion-pump-2.3.0.bin "$F/sbom/infusion-pump-2.3.0.cdx.json"; want 0
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.cdx.json"; want 0
step sbom diff "$F/sbom/infusion-pump-2.3.0.cdx.json" "$F/sbom/infusion-pump-2.4.0.cdx.json"

say "4. Releases the gate refuses: a vendor SBOM that lies about what is inside, a denied license, an old version passed off as new"
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.padded.cdx.json"; want 1
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.agpl.cdx.json"; want 1
step admit "$F/firmware/infusion-pump-2.3.0.bin" "${T[@]}" --vendor acme-infusion --product infusion-pump --version 2.2.0 \
  --signature "$F/sig/infusion-pump-2.3.0.bin.sig" --bundle "$F/keyless/infusion-pump-2.3.0.bin.v0.3.sigstore.json" --sbom "$F/sbom/infusion-pump-2.3.0.cdx.json"
want 1
say "    ...and 2.3.0 again, genuine, now that 2.4.0 was admitted: versions never go back (the ledger's rollback)"
pump 2.3.0 infusion-pump-2.3.0.bin "$F/sbom/infusion-pump-2.3.0.cdx.json"; want 1

mri() { # version [extra...]
  local v=$1; shift
  step admit "$F/firmware/mri-console-$v.bin" "${T[@]}" --vendor medimaging --product mri-console \
    --signature "$F/sig/mri-console-$v.bin.sig" --sbom "$F/sbom/mri-console-$v.cdx.json" "$@"
}
say "4b. Signed release metadata (TUF): medimaging pins its TUF root in trust.yaml; its metadata, not the caller, says which file is which version"
mri 7.2.0; want 0
echo "  (no --version: 7.2.0 is what the vendor's signed target says; the signature has no trusted time, the TUF metadata's expiry stands in for it)"
mri 7.2.0 --version 9.9.9; want 1
say "    ...and a mirror rolled back to the metadata of 7.1.0, after 7.2.0's was seen"
mri 7.1.0 --tuf-repo "$F/tuf/medimaging-rolled-back"; want 1

say "5. The gate as a service: wardgate serve on 127.0.0.1 with the embedded store; tokens per role"
G=$D/gate
mkdir -p "$G"
cp fixtures/fleet/testdata/inventory.json fixtures/fleet/testdata/config.json "$G/"
digest=sha256:$(sha256sum "$F/firmware/infusion-pump-2.4.0.bin" | cut -d' ' -f1)
# The fleet fixture's 3CX-like scenario, relabelled with this firmware's
# digest: the four canary pumps installed 2.4.0 weeks ago.
# Rollout rings (docs/rollout.md): the pumps get a canary ring of 60% (the
# four pumps labelled ring: canary in the inventory: with fewer installers
# the egress detections do not quarantine this 3CX-like update, see
# docs/rollout.md) that must run the update for 48 h with clean telemetry
# before the other pumps may install it.
sed "s|sha256:7889dee97295a5ad686303faf86796bcb60b09eddd8af8ccac51b789affed93b|$digest|g" fixtures/fleet/testdata/installations.json > "$D/installations.json"
jq '[.[] | if (.name | test("^HOSP-IOT-PUMP-0[1-4]$")) then . + {ring: "canary"} else . end]' fixtures/fleet/testdata/inventory.json > "$G/inventory.json"
python3 - "$D/trust.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
line = "        device_classes: [infusion-pump]\n"
assert line in s
s = s.replace(line, line + """        rollout:
          rings:
            - {name: canary, share: 60%, soak: 48h, min_reporting: 2}
            - {name: broad, share: 100%}
""", 1)
open(p, "w").write(s)
PY
"$W" egress ingest --state "$G" --inventory "$G/inventory.json" --installs "$D/installations.json" >/dev/null || exit 1
CI=$("$W" token create --role ci --name ci-pipeline --state "$G" 2>/dev/null)
UPD=$("$W" token create --role update-server --name update-server-1 --state "$G" 2>/dev/null)
SEN=$("$W" token create --role sensor --name defender-sensor --state "$G" 2>/dev/null)
AUD=$("$W" token create --role auditor --name auditor --state "$G" 2>/dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
"$W" serve --config "$D/trust.yaml" --state "$G" --listen "127.0.0.1:$port" --log-level warn 2>"$D/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 50); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
echo "gate listening on $URL (pid $SERVER)"
api() { local tok=$1; shift; echo "\$ curl $*" | sed "s|$D/||g; s|$URL||; s|-F |-F |g" >&2; curl -s -H "Authorization: Bearer $tok" "$@"; echo; }
short() { tee "$D/last.json" | jq -c '{allow, evaluated, violations: [.decision.violations[]?.code], logIndex: .logEntry.index}'; }

say "6. CI evaluates each update once: the pump, the MRI console, the HVAC controller"
api "$CI" -F vendor=acme-infusion -F product=infusion-pump -F version=2.4.0 -F firmware=@"$F/firmware/infusion-pump-2.4.0.bin" \
  -F signature=@"$F/sig/infusion-pump-2.4.0.bin.sig" -F bundle=@"$F/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json" \
  -F sbom=@"$F/sbom/infusion-pump-2.4.0.cdx.json" "$URL/v1/updates" | short
api "$CI" -F vendor=medimaging -F product=mri-console -F firmware=@"$F/firmware/mri-console-7.2.0.bin" \
  -F signature=@"$F/sig/mri-console-7.2.0.bin.sig" -F sbom=@"$F/sbom/mri-console-7.2.0.cdx.json" "$URL/v1/updates" | short
wantjson '.allow == true'
echo "  (the version comes from the vendor's TUF metadata in the mirror trust.yaml names)"
tar -C "$F/tuf/buildctl" -czf "$D/buildctl-tuf.tar.gz" metadata
api "$CI" -F vendor=buildctl -F product=hvac-controller -F firmware=@"$F/firmware/hvac-controller-1.1.0.bin" \
  -F bundle=@"$F/sig/hvac-controller-1.1.0.bin.sigstore.json" -F sbom=@"$F/sbom/hvac-controller-1.1.0.cdx.json" -F tuf=@"$D/buildctl-tuf.tar.gz" "$URL/v1/updates" | short
wantjson '.allow == true'
echo "  (with the vendor's TUF metadata uploaded as an archive)"

admitdev() { # device class [installed]
  local inst=""; [ -n "${3:-}" ] && inst=",\"installedVersion\":\"$3\""
  api "$UPD" -H 'Content-Type: application/json' -d "{\"digest\":\"$digest\",\"device\":{\"id\":\"$1\",\"class\":\"$2\"$inst}}" "$URL/v1/admissions" | short
}
hold() { tee "$D/last.json" | jq -c '{allow, violations: [.decision.violations[]?.code], hold, retryAfter}'; }
say "7. The update server asks the gate device by device: a canary pump gets 2.4.0; the other pumps are held (rollout-hold) until the canaries have run it 48 h with clean telemetry; an MRI console asking for the pump firmware is refused"
admitdev HOSP-IOT-PUMP-01 infusion-pump 2.3.0; wantjson '.allow == true'
api "$UPD" -H 'Content-Type: application/json' -d "{\"digest\":\"$digest\",\"device\":{\"id\":\"HOSP-IOT-PUMP-05\",\"class\":\"infusion-pump\",\"installedVersion\":\"2.3.0\"}}" "$URL/v1/admissions" | hold
wantjson '.allow == false and [.decision.violations[].code] == ["rollout-hold"] and .hold.current == "canary" and (.retryAfter | type) == "string"'
admitdev HOSP-IOT-MRI-01 mri-console; wantjson '.allow == false and ([.decision.violations[].code] | index("wrong-device-class"))' 

say "8. Sensors stream the fleet's network telemetry: the canary pumps that installed 2.4.0 now fetch a payload from a code-hosting site"
api "$SEN" -H 'Content-Type: application/x-ndjson' --data-binary @fixtures/fleet/testdata/defender.jsonl "$URL/v1/telemetry" | jq -c '{added, stored, updates: [.updates[]? | {product, version, state, affected: (.affected | length)}]}'
api "$AUD" "$URL/v1/updates/$digest" | jq -c '{riskState: .risk.state, installed: .risk.installed, affected: .risk.affected, findings: [.findings[]?.code]}'

say "9. The compromised update is now refused for the pumps that had not installed it yet"
admitdev HOSP-IOT-PUMP-06 infusion-pump 2.3.0; wantjson '.allow == false and [.decision.violations[].code] == ["quarantined"]'
say "    ...the canary ring caught it: the rollout stopped in the canary ring (a signed log entry); four pumps of six (the canaries) installed it, the other two never received it"
api "$AUD" "$URL/v1/updates/$digest" | tee "$D/last.json" | jq -c '.rollout[] | {class, status, ring, installed: [.rings[] | {(.name): (.installed | length)}] | add, changes: [.changes[] | {action, ring: .ringName, riskState: .evidence.riskState}]}'
wantjson '.rollout[0].status == "stopped" and .rollout[0].ring == "canary" and ([.rollout[0].rings[].installed | length] | add) == 4 and .rollout[0].changes[-1].action == "stopped"'

say "10. An auditor exports the evidence pack over the API and verifies it offline with the service public key"
api "$AUD" "$URL/v1/log/checkpoint" | head -3
curl -s -H "Authorization: Bearer $AUD" -o "$D/pack.tar.gz" "$URL/v1/evidence" && echo "pack: $(du -h "$D/pack.tar.gz" | cut -f1)"
step attest verify "$D/pack.tar.gz" --key "$G/signing.pub"; want 0
say "    ...and someone edits the exported pack"
mkdir "$D/pack" && tar xzmf "$D/pack.tar.gz" -C "$D/pack" && printf 'x' >> "$D/pack/key.pub"
step attest verify "$D/pack" --key "$G/signing.pub"; want 1

say "11. Without a token, or with the wrong role, nothing is done"
curl -s -o /dev/null -w 'no token: HTTP %{http_code}\n' -X POST "$URL/v1/admissions"
curl -s -o /dev/null -w 'sensor token on admissions: HTTP %{http_code}\n' -H "Authorization: Bearer $SEN" -H 'Content-Type: application/json' -d '{}' "$URL/v1/admissions"

kill $SERVER; wait $SERVER 2>/dev/null

say "12. Known vulnerabilities, offline: import OSV records (real Alpine advisories), scan the pump's SBOM, gate on them"
V=$D/vuln-state
step vuln db import vuln/testdata/osv --state "$V"; want 0
step vuln scan "$F/sbom/infusion-pump-2.4.0.cdx.json" --state "$V" --fail-on medium; want 1
# The same trust configuration, denying medium and above (the records are
# committed, so this example accepts a database up to ten years old).
{ cat "$D/trust.yaml"; printf '\nvulnerabilities:\n  deny_at: medium\n  max_db_age: 3650d\n'; } > "$D/trust-vuln.yaml"
step admit "$F/firmware/infusion-pump-2.4.0.bin" --config "$D/trust-vuln.yaml" --state "$V" --no-log --vendor acme-infusion --product infusion-pump --version 2.4.0 \
  --signature "$F/sig/infusion-pump-2.4.0.bin.sig" --bundle "$F/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json" --sbom "$F/sbom/infusion-pump-2.4.0.cdx.json"
want 1
echo
echo "Gate stopped; nothing left running. Exit codes: 0 allow/verified, 1 deny/failed (a verdict), 2 could not decide, 3 held by a rollout ring (admit --device; retryAfter says when to ask again)."
echo
echo "See this story in the web console: make console (wardgate serve --demo), open the URL it prints,"
echo "sign in with the auditor token it prints, and follow the quarantined infusion pump 2.4.0 (docs/console.md)."
if [ "$fails" -ne 0 ]; then echo "demo: $fails step(s) did not give the expected verdict" >&2; exit 1; fi
