#!/usr/bin/env bash
# Replicas on PostgreSQL next to the single SQLite gate, side by side on
# this machine (docs/scale.md): admissions/s, p50/p99, and the CPU time
# (user+system) per admission of the wardgate processes and of their
# PostgreSQL backends, for
#   sqlite  one wardgate serve on a state directory (the default store)
#   pg1     one wardgate serve --store postgres://…
#   pg2     two, on one database (one log, one ledger, one audit trail)
#   pg3     three
# Every configuration starts fresh (a new state directory, a new schema),
# evaluates the pump 2.4.0 release once (POST /v1/updates on the first
# replica) and is driven by bench/tools/loadgen (the load generator of
# bench/serve-load.sh), its workers spread over the replicas, for DURATION.
# The configurations run in turn, ROUNDS times (sqlite pg1 pg2 pg3 sqlite
# …), and the medians over the rounds are printed last. The load average
# is printed before each run: the machine is shared.
# PostgreSQL is $WARDGATE_TEST_POSTGRES (e.g.
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable; psql must be
# installed); without it only the SQLite gate runs, and the script says so.
# Usage: bench/replicas.sh [DURATION] [WORKERS] [ROUNDS]
# Leaves no process and no schema behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/serve.sh
dur=${1:-20s}
workers=${2:-24}
rounds=${3:-3}
out=bench/out/replicas
mkdir -p "$out"
go build -o "$out/wardgate" ./cmd/wardgate
go build -o "$out/loadgen" ./bench/tools/loadgen
work=$(mktemp -d "${TMPDIR:-/tmp}/wardgate-replicas.XXXXXX")
pids=()
schema=
server=${WARDGATE_TEST_POSTGRES:-}
stop_all() {
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p"; wait "$p" 2>/dev/null || true; fi
  done
  pids=()
}
drop_schema() {
  if [ -n "$schema" ]; then psql -q "$server" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; schema=; fi
}
cleanup() { stop_all; drop_schema; rm -rf "$work"; }
trap cleanup EXIT
export WARDGATE_KEY_PASSWORD=
unset WARDGATE_STORE
# One service key for every replica: the log is one log.
"$out/wardgate" attest keygen --out "$work/service" >/dev/null
configs=(sqlite)
if [ -n "$server" ]; then
  command -v psql >/dev/null || { echo "psql is not installed: it makes the benchmark's schemas"; exit 2; }
  configs+=(pg1 pg2 pg3)
else
  echo "WARDGATE_TEST_POSTGRES is not set: only the SQLite gate is measured (no replicas)"
fi
# dsn NAME: the server's DSN in schema NAME, its connections named NAME
# (so their backends can be found in pg_stat_activity).
dsn() {
  local sep='?'
  case "$server" in *\?*) sep='&' ;; esac
  printf '%s%ssearch_path=%s&application_name=%s' "$server" "$sep" "$1" "$1"
}
clk=$(getconf CLK_TCK)
cpu_of() { # total user+system ticks of the given pids that still run
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
# run CONFIG ROUND: one measurement; appends a line to $out/results.tsv.
run() {
  local cfg=$1 round=$2 n store=() addrs=() urls='' i
  case "$cfg" in sqlite) n=1 ;; pg*) n=${cfg#pg} ;; esac
  if [ "$cfg" != sqlite ]; then
    schema="wardgate_bench_replicas_$$_${cfg}_$round"
    psql -q "$server" -c "CREATE SCHEMA $schema" >/dev/null
    store=(--store "$(dsn "$schema")")
  fi
  local tokstate="$work/$cfg-$round-0"
  mkdir -p "$tokstate"
  "$out/wardgate" token create --role update-server --name loadgen --state "$tokstate" "${store[@]}" >"$work/us.tok" 2>/dev/null
  "$out/wardgate" token create --role ci --name ci --state "$tokstate" "${store[@]}" >"$work/ci.tok" 2>/dev/null
  for i in $(seq "$n"); do
    local state="$work/$cfg-$round-$((i - 1))"
    mkdir -p "$state"
    "$out/wardgate" serve --config fixtures/trust.yaml --state "$state" "${store[@]}" --signing-key "$work/service.key" \
      --listen 127.0.0.1:0 --no-scan 2> >(grep --line-buffered -v '"msg":"request"' >"$out/serve-$cfg-$i.log") &
    pids+=($!)
  done
  for i in $(seq "$n"); do
    local addr
    addr=$(serve_addr "$out/serve-$cfg-$i.log")
    addrs+=("$addr")
    urls="$urls${urls:+,}http://$addr"
  done
  local digest
  digest=$(evaluate_pump "${addrs[0]}" "$work/ci.tok")
  local backends=()
  local load c0 pg0=0 c1 pg1=0
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  c0=$(cpu_of "${pids[@]}")
  if [ -n "$schema" ]; then
    mapfile -t backends < <(psql -Atq "$server" -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$schema'")
    pg0=$(cpu_of "${backends[@]}")
  fi
  GOMAXPROCS=${LOADGEN_PROCS:-1} "$out/loadgen" -url "$urls" -token-file "$work/us.tok" -digest "$digest" \
    -n 10000000 -c "$workers" -duration "$dur" -o "$out/load-$cfg-$round.json" >"$out/load-$cfg-$round.txt" || true
  c1=$(cpu_of "${pids[@]}")
  if [ -n "$schema" ]; then
    # Backends opened during the run started at zero CPU.
    mapfile -t backends < <(psql -Atq "$server" -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$schema'")
    pg1=$(cpu_of "${backends[@]}")
  fi
  local rps p50 p99 errs answered
  rps=$(grep -o '"perSecond": *[0-9.]*' "$out/load-$cfg-$round.json" | awk -F: '{print $2 + 0}')
  p50=$(grep -o '"p50Ms": *[0-9.]*' "$out/load-$cfg-$round.json" | awk -F: '{print $2 + 0}')
  p99=$(grep -o '"p99Ms": *[0-9.]*' "$out/load-$cfg-$round.json" | awk -F: '{print $2 + 0}')
  errs=$(grep -o '"errors": *[0-9]*' "$out/load-$cfg-$round.json" | awk -F: '{print $2 + 0}')
  answered=$(grep -o '"\(allowed\|denied\)": *[0-9]*' "$out/load-$cfg-$round.json" | awk -F: '{n += $2} END {print n + 0}')
  awk -v cfg="$cfg" -v r="$round" -v la="$load" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$errs" -v n="$answered" \
    -v wg=$((c1 - c0)) -v pg=$((pg1 - pg0)) -v hz="$clk" -v pgon="${schema:+1}" 'BEGIN {
      w = n ? wg / hz * 1000 / n : 0; p = (pgon && n) ? pg / hz * 1000 / n : 0
      pgs = pgon ? sprintf(", postgres %.3f ms", p) : ""
      printf "%-6s round %d  load %s  %7.0f admissions/s  p50 %6.2f ms  p99 %7.2f ms  errors %d  CPU/admission: wardgate %.3f ms%s\n", cfg, r, la, rps, p50, p99, e, w, pgs
      printf "%s\t%d\t%s\t%.1f\t%.2f\t%.2f\t%d\t%.3f\t%.3f\n", cfg, r, la, rps, p50, p99, e, w, p > "/dev/stderr" }' 2>>"$out/results.tsv"
  if [ "$errs" != 0 ]; then grep -h 'first error' "$out/load-$cfg-$round.txt" || true; fi
  stop_all
  if [ -n "$schema" ]; then
    # What each admission leaves in PostgreSQL: its log entry and tree
    # nodes, installation and audit rows, with their indexes.
    psql -Atq "$server" -F ' ' -c "SELECT (SELECT count(*) FROM $schema.log_entries),
        (SELECT sum(pg_total_relation_size('$schema.' || t)) FROM unnest(array['log_entries', 'log_nodes', 'installations', 'audit']) t)" |
      awk -v cfg="$cfg" '$1 > 0 { printf "%-6s PostgreSQL: %d log entries, %.0f bytes each with its nodes, installation and audit rows\n", cfg, $1, $2 / $1 }'
  fi
  drop_schema
}
: >"$out/results.tsv"
echo "== $(nproc) cores; $workers workers for $dur per run, spread over the replicas; $rounds round(s): ${configs[*]}"
for round in $(seq "$rounds"); do
  for cfg in "${configs[@]}"; do run "$cfg" "$round"; done
done
echo "== medians over $rounds round(s) (admissions/s, p99 ms, CPU ms per admission: wardgate, postgres backends)"
for cfg in "${configs[@]}"; do
  awk -F'\t' -v cfg="$cfg" '$1 == cfg { rps[++n] = $4; p99[n] = $6; w[n] = $8; p[n] = $9 }
    function med(a,  k) { asort(a); return a[int((n + 1) / 2)] }
    END { if (n) printf "%-6s %7.0f admissions/s  p99 %7.2f ms  CPU/admission wardgate %.3f ms%s\n", cfg, med(rps), med(p99), med(w), (cfg == "sqlite" ? "" : sprintf(", postgres %.3f ms", med(p))) }' "$out/results.tsv"
done
