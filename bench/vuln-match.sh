#!/usr/bin/env bash
# Vulnerability matching (issue 17): a 2,000-component SBOM matched against
# an OSV export the size of a distribution's (50,000 records over 3,000
# Alpine source packages, three branches each), warm: the database loaded
# once, as admit's gate and serve hold it (target: under 1 s). Go benchmark
# BenchmarkMatch2000, median of COUNT runs, wall and CPU time; then the cold
# CLI, `wardgate vuln scan SBOM -o json` (loads the database every run).
#
#   bench/vuln-match.sh            # COUNT=5; WARDGATE=bin/wardgate
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
wardgate=${WARDGATE:-bin/wardgate}
out=bench/out/vuln
mkdir -p "$out"
[ -x "$wardgate" ] || { echo "$wardgate not built: make build" >&2; exit 2; }

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

go test ./vuln/ -run '^$' -bench 'Match2000$|Open$' -benchmem -count "$count" -timeout 60m | tee "$out/bench.txt"
field() { grep "^Benchmark$1-" "$out/bench.txt" | awk -v f="$2" '{for (i = 1; i < NF; i++) if ($(i+1) == f) print $i / 1e6}' | median; }
wall=$(field Match2000 ns/op)
cpu=$(field Match2000 cpu-ns/op)
printf 'match 2,000 components, warm  %8.1f ms wall, %8.1f ms CPU (want < 1000 ms; median of %d)\n' "$wall" "$cpu" "$count"
printf 'open the database (cold part)  %8.1f ms wall, %8.1f ms CPU\n' "$(field Open ns/op)" "$(field Open cpu-ns/op)"

# The same export and SBOM as files, for the CLI.
go test ./vuln/ -run '^TestWriteBenchData$' -count=1 -benchdata "$PWD/$out" >/dev/null
state=$(mktemp -d)
trap 'rm -rf "$state" "$out/all.zip" "$out/sbom.cdx.json" "$out"/time.*' EXIT
"$wardgate" vuln db import "$out/all.zip" --state "$state" >/dev/null
for i in $(seq "$count"); do
	/usr/bin/time -f '%e %M %U %S' -o "$out/time.$i" "$wardgate" vuln scan "$out/sbom.cdx.json" --state "$state" -o json >"$out/scan.json"
done
secs=$(for i in $(seq "$count"); do cut -d' ' -f1 "$out/time.$i"; done | median)
rss=$(for i in $(seq "$count"); do cut -d' ' -f2 "$out/time.$i"; done | median)
cpus=$(for i in $(seq "$count"); do awk '{print $3 + $4}' "$out/time.$i"; done | median)
printf 'wardgate vuln scan -o json (cold) %7.0f ms wall, %7.0f ms CPU, peak RSS %d MB (median of %d)\n' \
	"$(echo "$secs * 1000" | bc -l)" "$(echo "$cpus * 1000" | bc -l)" "$((${rss%.*} / 1024))" "$count"
printf '  matches: %s; load average %s\n' "$(grep -o '"id":"ALPINE' "$out/scan.json" | wc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
