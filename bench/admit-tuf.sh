#!/usr/bin/env bash
# wardgate admit with the vendor's TUF metadata vs without, on the
# fixtures: the MRI console 7.2.0 (key signature, vendor SBOM, --no-scan so
# the syft scan does not drown the difference), end to end (verify, TUF
# lookup with go-tuf against the fixture mirror, policy, ledger, signed
# verdict into the log). "with": fixtures/trust.yaml, medimaging pins its
# TUF root and names its mirror. "without": the same file without the tuf
# block (and without max_metadata_age, which the untimed key signature
# would otherwise fail). Runs alternate between the two; each starts from a
# copy of a state holding only the service key (key generation, scrypt, is
# not in the figure), so every "with" run does the whole TUF workflow from
# the pinned root; "with, warm" keeps the trusted TUF metadata of an
# earlier run (as a second admit of the vendor does). Median of N runs
# (default 9).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-9}
out=bench/out/admit-tuf
rm -rf "$out"; mkdir -p "$out"
make -s build
F=fixtures/testdata
export WARDGATE_KEY_PASSWORD=bench-only
mkdir -p "$out/state0"
bin/wardgate attest keygen --out "$out/state0/signing" >/dev/null
with="$out/with.yaml"; without="$out/without.yaml"
sed "s|testdata/|$PWD/fixtures/testdata/|g" fixtures/trust.yaml >"$with"
awk '/^  medimaging:$/ {print; skip=1; next} skip && /^    products:$/ {skip=0} !skip' "$with" | grep -v '^max_metadata_age:' >"$without"
grep -q 'tuf:' "$with" && ! grep -A3 '^  medimaging:' "$without" | grep -q 'tuf:' || { echo "could not make the configuration without TUF"; exit 1; }
run() { # config state
  bin/wardgate admit "$F/firmware/mri-console-7.2.0.bin" --config "$1" --state "$2" --vendor medimaging --product mri-console \
    --version 7.2.0 --signature "$F/sig/mri-console-7.2.0.bin.sig" --sbom "$F/sbom/mri-console-7.2.0.cdx.json" --no-scan -o json >"$out/last.json"
  grep -q '"allow":true' "$out/last.json" || { echo "not allowed:"; head -c 2000 "$out/last.json"; exit 1; }
}
timed() { local t0 t1; t0=$(date +%s.%N); run "$@"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
fresh() { rm -rf "$out/state"; cp -r "$out/state0" "$out/state"; }
# warm state: the trusted TUF metadata of one earlier run, copied each time
fresh; run "$with" "$out/state"; rm -rf "$out/warm0"; cp -r "$out/state" "$out/warm0"; rm -f "$out/warm0"/*.db
a=(); b=(); c=()
for _ in $(seq "$n"); do
  fresh; b+=("$(timed "$without" "$out/state")")
  fresh; a+=("$(timed "$with" "$out/state")")
  rm -rf "$out/state"; cp -r "$out/warm0" "$out/state"; c+=("$(timed "$with" "$out/state")")
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mw=$(med "${a[@]}"); mo=$(med "${b[@]}"); mc=$(med "${c[@]}")
printf 'admit MRI console 7.2.0 (--no-scan), median of %d runs, alternating:\n' "$n"
printf '  without TUF:                %.3fs\n' "$mo"
printf '  with TUF, fresh state:      %.3fs  (%.2fx, +%.0f ms)\n' "$mw" "$(echo "$mw / $mo" | bc -l)" "$(echo "($mw - $mo) * 1000" | bc -l)"
printf '  with TUF, trusted metadata: %.3fs  (%.2fx, +%.0f ms)\n' "$mc" "$(echo "$mc / $mo" | bc -l)" "$(echo "($mc - $mo) * 1000" | bc -l)"
