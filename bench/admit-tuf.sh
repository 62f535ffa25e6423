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
# timed prints "WALL CPU" in seconds (CPU: user + system of the admit
# process, which a loaded machine disturbs less than wall time).
timed() { local TIMEFORMAT='%R %U %S' t; t=$( { time run "$@" >/dev/null; } 2>&1 ); echo "$t" | awk '{printf "%s %.3f\n", $1, $2 + $3}'; }
fresh() { rm -rf "$out/state"; cp -r "$out/state0" "$out/state"; }
# warm state: the trusted TUF metadata of one earlier run, copied each time
fresh; run "$with" "$out/state"; rm -rf "$out/warm0"; cp -r "$out/state" "$out/warm0"; rm -f "$out/warm0"/*.db
a=(); b=(); c=(); ac=(); bc_=(); cc=()
for _ in $(seq "$n"); do
  fresh; read -r w u <<<"$(timed "$without" "$out/state")"; b+=("$w"); bc_+=("$u")
  fresh; read -r w u <<<"$(timed "$with" "$out/state")"; a+=("$w"); ac+=("$u")
  rm -rf "$out/state"; cp -r "$out/warm0" "$out/state"; read -r w u <<<"$(timed "$with" "$out/state")"; c+=("$w"); cc+=("$u")
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
line() { # label wall cpu basewall basecpu
  printf '  %-27s wall %.3fs (%.2fx)   cpu %.3fs (%.2fx, %+.0f ms)\n' "$1" "$2" "$(echo "$2 / $4" | bc -l)" "$3" "$(echo "$3 / $5" | bc -l)" "$(echo "($3 - $5) * 1000" | bc -l)"
}
mo=$(med "${b[@]}"); co=$(med "${bc_[@]}")
printf 'admit MRI console 7.2.0 (--no-scan), medians of %d runs, alternating:\n' "$n"
line "without TUF:" "$mo" "$co" "$mo" "$co"
line "with TUF, fresh state:" "$(med "${a[@]}")" "$(med "${ac[@]}")" "$mo" "$co"
line "with TUF, trusted metadata:" "$(med "${c[@]}")" "$(med "${cc[@]}")" "$mo" "$co"
