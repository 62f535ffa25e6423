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
step() { echo "\$ wardgate ${*//$D\//}"; "$W" "$@"; echo "  (exit $?)"; }
say "Generating fixtures: vendor keys, firmware for three device classes, signatures, a virtual Sigstore, vendor SBOMs"
go run ./fixtures/gen -out "$F" || exit 1
sed "s|testdata/|fixtures/|g" fixtures/trust.yaml > "$D/trust.yaml"
T=(--config "$D/trust.yaml" --state "$S")

say "1. A CI pipeline verifies the infusion pump 2.4.0 update: vendor key, and keyless (certificate, Rekor entry, RFC 3161 timestamp, all offline)"
step verify blob "$F/firmware/infusion-pump-2.4.0.bin" --key "$F/keys/acme-infusion.pub" --signature "$F/sig/infusion-pump-2.4.0.bin.sig"
step verify blob "$F/firmware/infusion-pump-2.4.0.bin" --certificate-identity release@acme-infusion.example \
  --certificate-oidc-issuer https://accounts.acme-infusion.example --trusted-root "$F/keyless/trusted_root.json" \
  --bundle "$F/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"

say "2. The same update with one byte flipped in transit, and one signed by a key nobody trusts"
step verify blob "$F/tampered/infusion-pump-2.4.0-flipped.bin" --key "$F/keys/acme-infusion.pub" --bundle "$F/sig/infusion-pump-2.4.0.bin.sigstore.json"
step verify blob "$F/firmware/infusion-pump-2.4.0.bin" --key "$F/keys/acme-infusion.pub" --signature "$F/tampered/infusion-pump-2.4.0.bin.wrongkey.sig"

pump() { # version file sbom [extra...]
  local v=$1 file=$2 sbom=$3; shift 3
  step admit "$F/firmware/$file" "${T[@]}" --vendor acme-infusion --product infusion-pump --version "$v" \
    --signature "$F/sig/$file.sig" --bundle "$F/keyless/$file.v0.3.sigstore.json" --sbom "$sbom" "$@"
}
say "3. The gate decides: pump 2.3.0, then 2.4.0 (two signers required, SBOM checked against what syft finds inside, diffed against 2.3.0)"
pump 2.3.0 infusion-pump-2.3.0.bin "$F/sbom/infusion-pump-2.3.0.cdx.json"
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.cdx.json"
step sbom diff "$F/sbom/infusion-pump-2.3.0.cdx.json" "$F/sbom/infusion-pump-2.4.0.cdx.json"

say "4. Releases the gate refuses: a vendor SBOM that lies about what is inside, a denied license, an old version passed off as new"
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.padded.cdx.json"
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.agpl.cdx.json"
step admit "$F/firmware/infusion-pump-2.3.0.bin" "${T[@]}" --vendor acme-infusion --product infusion-pump --version 2.2.0 \
  --signature "$F/sig/infusion-pump-2.3.0.bin.sig" --bundle "$F/keyless/infusion-pump-2.3.0.bin.v0.3.sigstore.json" --sbom "$F/sbom/infusion-pump-2.3.0.cdx.json"

say "5. Update servers ask per device: pumps get 2.4.0; an MRI console asking for it is refused (mix-and-match)"
for dev in HOSP-IOT-PUMP-01 HOSP-IOT-PUMP-02; do
  pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.cdx.json" --device "$dev" --device-class infusion-pump --installed-version 2.3.0
done
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.cdx.json" --device HOSP-IOT-MRI-01 --device-class mri-console

say "6. Weeks later: the pumps that installed 2.4.0 start fetching a payload from a code-hosting site (signed update, honest SBOM: the 3CX pattern)"
digest=sha256:$(sha256sum "$F/firmware/infusion-pump-2.4.0.bin" | cut -d' ' -f1)
sed "s|sha256:7889dee97295a5ad686303faf86796bcb60b09eddd8af8ccac51b789affed93b|$digest|g" fixtures/fleet/testdata/installations.json > "$D/installations.json"
cp fixtures/fleet/testdata/config.json "$S/config.json"
step egress ingest --state "$S" --inventory fixtures/fleet/testdata/inventory.json --installs "$D/installations.json" fixtures/fleet/testdata/defender.jsonl
step egress findings --state "$S" --update "$digest"
step egress hunt --rule exfil-volume fixtures/fleet/testdata/defender.jsonl

say "7. The gate now stops the rollout: the next pump asking for 2.4.0 is denied"
pump 2.4.0 infusion-pump-2.4.0.bin "$F/sbom/infusion-pump-2.4.0.cdx.json" --device HOSP-IOT-PUMP-05 --device-class infusion-pump --installed-version 2.3.0

say "8. An auditor exports the signed verdicts and verifies them offline with the service public key alone"
step attest log --state "$S" --limit 5
step attest export --state "$S" --out "$D/pack.tar.gz"
step attest verify "$D/pack.tar.gz" --key "$S/signing.pub"
say "   ...and someone edits the exported pack"
mkdir "$D/pack" && tar xzmf "$D/pack.tar.gz" -C "$D/pack" && printf 'x' >> "$D/pack/key.pub"
step attest verify "$D/pack" --key "$S/signing.pub"
echo
echo "Done. Exit codes: 0 allow/verified, 1 deny/failed (a verdict), 2 could not decide."
