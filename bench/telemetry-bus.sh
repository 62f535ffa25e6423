#!/usr/bin/env bash
# Telemetry through NATS JetStream (docs/serve.md, "Telemetry bus"), on a
# real nats-server with JetStream started inside the benchmark process
# (file store in a temporary directory) and a real SQLite egress store:
#  - BenchmarkBusIngest: sustained events/s from publish to committed, the
#    fleet fixture's Defender telemetry in batches of 1,000 lines;
#  - BenchmarkBusQuarantineDelay: delay from the compromising events
#    published to the quarantine being visible at POST /v1/admissions
#    (p50, p99 over SAMPLES fresh gates);
#  - its baseline, run beside it: BenchmarkDirectIngest, the same batches
#    through egress.Ingest into the same store with no bus.
# Usage: bench/telemetry-bus.sh [COUNT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
samples=${2:-20}
mkdir -p bench/out
go test -run '^$' -bench '^Benchmark(Bus|Direct)Ingest$' -benchtime 5x -count "$count" ./egress/bus | tee bench/out/telemetry-bus.txt
go test -run '^$' -bench '^BenchmarkBusQuarantineDelay$' -benchtime "${samples}x" -count 1 ./server | tee -a bench/out/telemetry-bus.txt
med() { awk -v name="$1" '$1 ~ "^"name"-" { for (i = 1; i <= NF; i++) if ($(i+1) == "events/s") v[++n] = $i }
  END { asort(v); print (n ? v[int((n+1)/2)] : 0) }' bench/out/telemetry-bus.txt; }
bus=$(med BenchmarkBusIngest) direct=$(med BenchmarkDirectIngest)
awk -v b="$bus" -v d="$direct" 'BEGIN { printf "median events/s: bus %.0f, direct %.0f (bus/direct %.2f)\n", b, d, (d ? b / d : 0) }'

