#!/usr/bin/env bash
# `wardgate egress hunt --rule exfil-volume -o json` against DuckDB
# (@duckdb/node-api on Node.js, read_json, same query) on a generated
# Defender DeviceNetworkEvents file: 2,000,000 events, about 567 MB.
# Checks that both print identical rows, then prints each one's wall time
# and CPU time (user + system; on a shared machine the fairer figure), as
# medians of RUNS whole-process runs (default 3, both on all cores,
# alternating), the ratios, and wardgate's peak RSS.
# Usage: bench/egress-hunt-vs-duckdb.sh [EVENTS] [RUNS]
# WARDGATE=path runs another wardgate binary (an older build, to compare
# before and after side by side); the default is bin/wardgate, built if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000000}
runs=${2:-3}
duckdb_version=1.5.6-r.1
out=bench/out/egress
mkdir -p "$out"
file=$out/defender-$n.jsonl
if [ ! -s "$file" ]; then
  echo "generating $file ($n events, fixed seed)..." >&2
  go run ./bench/egress/gendefender -n "$n" -out "$file"
fi
if [ ! -d bench/out/node_modules/@duckdb/node-api ]; then
  echo "installing @duckdb/node-api@$duckdb_version (npm)..." >&2
  (cd bench/out && npm install --no-audit --no-fund --silent "@duckdb/node-api@$duckdb_version" >/dev/null)
fi
# Node resolves the package from the script's directory: run it from bench/out.
cp bench/egress/duckdb-hunt.mjs bench/out/duckdb-hunt.mjs
wg=${WARDGATE:-bin/wardgate}
[ -x "$wg" ] || go build -o "$wg" ./cmd/wardgate
threads=$(nproc)
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

w=(); d=(); wc=(); dc=()
for _ in $(seq "$runs"); do
  /usr/bin/time -f '%e %U %S %M' -o "$out/wardgate.time" "$wg" egress hunt --rule exfil-volume -o json "$file" >"$out/wardgate.jsonl"
  read -r e u s rss <"$out/wardgate.time"
  w+=("$e"); wc+=("$(echo "$u + $s" | bc -l)")
  /usr/bin/time -f '%e %U %S %M' -o "$out/duckdb.time" node bench/out/duckdb-hunt.mjs "$file" "$threads" >"$out/duckdb.jsonl"
  read -r e u s _ <"$out/duckdb.time"
  d+=("$e"); dc+=("$(echo "$u + $s" | bc -l)")
done
if ! cmp -s "$out/wardgate.jsonl" "$out/duckdb.jsonl"; then
  echo "rows differ: diff $out/wardgate.jsonl $out/duckdb.jsonl" >&2
  exit 1
fi
rows=$(wc -l <"$out/wardgate.jsonl")
bytes=$(stat -c %s "$file")
wm=$(median "${w[@]}"); dm=$(median "${d[@]}"); wcm=$(median "${wc[@]}"); dcm=$(median "${dc[@]}")
printf 'exfil-volume over %d events (%d MB), %d identical rows, %d threads each, median of %d:\n' "$n" $((bytes / 1000000)) "$rows" "$threads" "$runs"
printf '  wall  wardgate %.2fs  duckdb %.2fs  duckdb/wardgate %.2fx\n' "$wm" "$dm" "$(echo "$dm / $wm" | bc -l)"
printf '  cpu   wardgate %.2fs  duckdb %.2fs  duckdb/wardgate %.2fx   wardgate peak RSS %d MB\n' "$wcm" "$dcm" "$(echo "$dcm / $wcm" | bc -l)" $((rss / 1024))
printf '  runs (wall): wardgate %s; duckdb %s\n' "${w[*]}" "${d[*]}"
