#!/usr/bin/env bash
# make demo: generate fresh fixtures, then verify a good and a tampered
# firmware update for an infusion pump, as a CI pipeline would.
set -uo pipefail
W=${WARDGATE:-bin/wardgate}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
echo "== generating fixtures (vendor keys, firmware, signatures, a virtual Sigstore) in $D"
go run ./fixtures/gen -out "$D" || exit 1
step() { echo; echo "\$ wardgate $*"; "$W" "$@"; echo "  (exit $?)"; }
echo
echo "== 1. a genuine update: infusion pump 2.4.0, signed by its vendor's ECDSA key"
step verify blob "$D/firmware/infusion-pump-2.4.0.bin" --key "$D/keys/acme-infusion.pub" --signature "$D/sig/infusion-pump-2.4.0.bin.sig"
echo
echo "== 2. the same update, keyless: Fulcio-style certificate, Rekor entry and RFC 3161 timestamp, checked offline"
step verify blob "$D/firmware/infusion-pump-2.4.0.bin" --certificate-identity release@acme-infusion.example \
  --certificate-oidc-issuer https://accounts.acme-infusion.example --trusted-root "$D/keyless/trusted_root.json" \
  --bundle "$D/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"
echo
echo "== 3. a tampered update: one byte flipped in transit; the vendor's bundle names the real digest"
step verify blob "$D/tampered/infusion-pump-2.4.0-flipped.bin" --key "$D/keys/acme-infusion.pub" --bundle "$D/sig/infusion-pump-2.4.0.bin.sigstore.json"
echo
echo "== 4. a forged update: signed, but by a key the hospital does not trust"
step verify blob "$D/firmware/infusion-pump-2.4.0.bin" --key "$D/keys/acme-infusion.pub" --signature "$D/tampered/infusion-pump-2.4.0.bin.wrongkey.sig"
echo
echo "== 5. machine output for CI (-o json), two-person rule: vendor release key and QA key, 2 of 2"
step verify blob "$D/firmware/infusion-pump-2.4.0.bin" --key "$D/keys/acme-infusion.pub" --key "$D/keys/acme-infusion-qa.pub" --threshold 2 \
  --signature "$D/sig/infusion-pump-2.4.0.bin.sig" --signature "$D/sig/infusion-pump-2.4.0.bin.qa.sig" -o json
