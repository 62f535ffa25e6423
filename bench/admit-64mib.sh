#!/usr/bin/env bash
# wardgate admit of a 64 MiB firmware with a vendor SBOM, end to end
# (verify, syft scan of the unpacked image, drift, policy, ledger, signed
# verdict into the log). Target: under 2 s. Median of 5 runs, fresh state
# each, and the same with the scan cache warm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out/admit
rm -rf "$out"; mkdir -p "$out"
go run ./bench/tools/mkfirmware -dir "$out" -size $((64 << 20))
export WARDGATE_KEY_PASSWORD=
# One state with the signing key already made, copied for each run so key
# generation (scrypt) is not in the figure.
mkdir -p "$out/state0"
bin/wardgate attest keygen --out "$out/state0/signing" >/dev/null
run() {
  bin/wardgate admit "$out/infusion-pump-2.4.0.bin" --config "$out/trust.yaml" --vendor acme-infusion --product infusion-pump \
    --version 2.4.0 --signature "$out/infusion-pump-2.4.0.bin.sig" --sbom "$out/infusion-pump-2.4.0.cdx.json" --state "$1" -o json >"$out/last.json"
}
cold=(); warm=()
for i in 1 2 3 4 5; do
  rm -rf "$out/state"; cp -r "$out/state0" "$out/state"
  t0=$(date +%s.%N); run "$out/state"; t1=$(date +%s.%N)
  grep -q '"allow":true' "$out/last.json" || { echo "not allowed:"; head -c 2000 "$out/last.json"; exit 1; }
  cold+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(date +%s.%N); run "$out/state"; t1=$(date +%s.%N)
  warm+=("$(echo "$t1 - $t0" | bc -l)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
printf 'admit 64 MiB firmware + vendor SBOM: median %.2fs (fresh state, syft scan), %.2fs (scan cached), 5 runs each\n' "$(med "${cold[@]}")" "$(med "${warm[@]}")"
