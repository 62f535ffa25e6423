#!/usr/bin/env bash
# The 50,000-component diff (issue 3): Go benchmarks of decode, diff, and
# decode+diff side by side (target: decode+diff <= 1.5x decode), then
# `wardgate sbom diff OLD NEW -o json` end to end on the same generated pair
# (target: < 500 ms wall, < 500 MB peak RSS). Medians.
#
#   bench/sbom/diff.sh            # COUNT=5 runs each; WARDGATE=bin/wardgate
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${COUNT:-5}
wardgate=${WARDGATE:-bin/wardgate}
out=bench/out/sbom
mkdir -p "$out"
[ -x "$wardgate" ] || { echo "$wardgate not built: make build" >&2; exit 2; }

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

go test ./sbom/ -run '^$' -bench '50k$' -benchmem -count "$count" | tee "$out/bench.txt"
ms() { grep "^Benchmark$1-" "$out/bench.txt" | awk '{print $3/1e6}' | median; }
decode=$(ms Decode50k)
diffonly=$(ms Diff50k)
both=$(ms DecodeAndDiff50k)
printf 'decode both (concurrent)  %8.1f ms\n' "$decode"
printf 'diff only                 %8.1f ms\n' "$diffonly"
printf 'decode + diff             %8.1f ms   %.2fx decode (want <= 1.5)\n' "$both" "$(echo "$both / $decode" | bc -l)"

# The same pair as files, for the CLI.
go test ./sbom/ -run '^TestWriteBenchPair$' -count=1 -benchpair "$PWD/$out" >/dev/null
for i in $(seq "$count"); do
	/usr/bin/time -f '%e %M %U %S' -o "$out/time.$i" "$wardgate" sbom diff "$out/old.cdx.json" "$out/new.cdx.json" -o json >"$out/diff.json"
done
secs=$(for i in $(seq "$count"); do cut -d' ' -f1 "$out/time.$i"; done | median)
rss=$(for i in $(seq "$count"); do cut -d' ' -f2 "$out/time.$i"; done | median)
cpu=$(for i in $(seq "$count"); do awk '{print $3 + $4}' "$out/time.$i"; done | median)
printf 'wardgate sbom diff -o json %7.0f ms   peak RSS %d MB (want < 500 ms, < 500 MB; median of %d)\n' \
	"$(echo "$secs * 1000" | bc -l)" "$((${rss%.*} / 1024))" "$count"
# Wall time depends on what else runs on the machine; CPU time less so.
printf '  CPU (user+sys) %.0f ms; load average %s\n' "$(echo "$cpu * 1000" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
sed -E 's/,"changes".*//; s/^/  /' "$out/diff.json"
rm -f "$out/old.cdx.json" "$out/new.cdx.json" "$out"/time.*
