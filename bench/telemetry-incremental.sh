#!/usr/bin/env bash
# The incremental fleet analysis (docs/egress.md, "Incremental analysis"),
# through the HTTP API on a real SQLite store:
#  - BenchmarkTelemetryHTTP: sustained ingest through POST /v1/telemetry,
#    four sensors posting batches of 10,000 Defender JSON lines, each
#    answered once a fleet analysis includes it (events stored, findings
#    updated); events/s (wall), events/cpu-s (the process's user+sys: the
#    figure a shared machine's load does not change), the groups held and
#    the heap after a GC;
#  - its baseline, run beside it: BenchmarkTelemetryHTTPWholeHistory, the
#    same with every analysis reading every event (egress.AnalyzeStore);
#  - BenchmarkQuarantineUnderLoad: the time from a compromising batch
#    posted to its quarantine answered at POST /v1/admissions while four
#    sensors post the load (p50, p99 over SAMPLES fresh gates), and the
#    compromising POST's commit and wait for the analysis;
#  - BenchmarkLiveAnalyze (egress): the incremental analysis alone, over
#    an in-memory store, events per CPU-second.
# Usage: bench/telemetry-incremental.sh [COUNT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
samples=${2:-10}
mkdir -p bench/out
out=bench/out/telemetry-incremental.txt
echo "load: $(uptime)" | tee "$out"
go test -run '^$' -bench '^BenchmarkTelemetryHTTP(WholeHistory)?$' -benchtime 3x -count "$count" ./server | tee -a "$out"
go test -run '^$' -bench '^BenchmarkQuarantineUnderLoad$' -benchtime "${samples}x" -count 1 ./server | tee -a "$out"
go test -run '^$' -bench '^BenchmarkLiveAnalyze$' -benchtime 100x -count "$count" ./egress | tee -a "$out"
echo "load: $(uptime)" | tee -a "$out"
med() { awk -v name="$1" -v unit="$2" '$1 ~ "^"name"-" { for (i = 1; i <= NF; i++) if ($(i+1) == unit) v[++n] = $i }
  END { asort(v); print (n ? v[int((n+1)/2)] : 0) }' "$out"; }
inc=$(med BenchmarkTelemetryHTTP events/s) whole=$(med BenchmarkTelemetryHTTPWholeHistory events/s)
incc=$(med BenchmarkTelemetryHTTP events/cpu-s) wholec=$(med BenchmarkTelemetryHTTPWholeHistory events/cpu-s)
awk -v i="$inc" -v w="$whole" -v ic="$incc" -v wc="$wholec" 'BEGIN {
  printf "median events/s: incremental %.0f, whole history %.0f (ratio %.2f)\n", i, w, (w ? i / w : 0)
  printf "median events/cpu-s: incremental %.0f, whole history %.0f (ratio %.2f)\n", ic, wc, (wc ? ic / wc : 0) }'
