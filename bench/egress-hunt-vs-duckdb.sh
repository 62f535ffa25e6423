#!/usr/bin/env bash
# `wardgate egress hunt --rule exfil-volume -o json` against DuckDB
# (@duckdb/node-api on Node.js, read_json, same query) on a generated
# Defender DeviceNetworkEvents file: 2,000,000 events, about 567 MB.
# Checks that both print identical rows, then prints each one's wall time
# (median of 3 whole-process runs, both on all cores), the ratio, and
# wardgate's peak RSS. Usage: bench/egress-hunt-vs-duckdb.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000000}
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
wg=bin/wardgate
[ -x "$wg" ] || go build -o "$wg" ./cmd/wardgate
threads=$(nproc)
now() { date +%s.%N; }
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

w=(); d=()
for i in 1 2 3; do
  t0=$(now); /usr/bin/time -f '%M' -o "$out/wardgate.rss" "$wg" egress hunt --rule exfil-volume -o json "$file" >"$out/wardgate.jsonl"; t1=$(now)
  w+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now); node bench/out/duckdb-hunt.mjs "$file" "$threads" >"$out/duckdb.jsonl"; t1=$(now)
  d+=("$(echo "$t1 - $t0" | bc -l)")
done
if ! cmp -s "$out/wardgate.jsonl" "$out/duckdb.jsonl"; then
  echo "rows differ: diff $out/wardgate.jsonl $out/duckdb.jsonl" >&2
  exit 1
fi
rows=$(wc -l <"$out/wardgate.jsonl")
bytes=$(stat -c %s "$file")
wm=$(median3 "${w[@]}"); dm=$(median3 "${d[@]}")
printf 'exfil-volume over %d events (%d MB), %d identical rows, %d threads each:\n' "$n" $((bytes / 1000000)) "$rows" "$threads"
printf '  wardgate %.3fs  duckdb %.3fs  (median of 3)  duckdb/wardgate %.2fx  wardgate peak RSS %d MB\n' \
  "$wm" "$dm" "$(echo "$dm / $wm" | bc -l)" $(($(cat "$out/wardgate.rss") / 1024))
printf '  runs: wardgate %s; duckdb %s\n' "${w[*]}" "${d[*]}"
