#!/usr/bin/env bash
# Kubernetes admission reviews at the API server's rate: start a registry
# with two cosign-signed images (bench/tools/kubefixture), wardgate serve
# with the webhook on its own TLS listener, evaluate the images once, then
# drive POST /v1/kubernetes/validate over TLS at RATE reviews/s (open loop,
# bench/tools/loadgen) with a pod running both images: pinned by digest
# (what the mutating webhook leaves, no registry asked), then by tag (each
# review resolves both tags in the registry). Reports p50/p99 latency, and
# as the baseline run beside them the device admission path (POST
# /v1/admissions of one of the same digests) at the same rate on the same
# server.
# Bounded by REQUESTS and DURATION; leaves no process behind.
# Prints the server's CPU time (user+sys, from /proc) per request of each
# run and the machine's load (uptime) before and after.
# Usage: bench/kube-load.sh [RATE] [REQUESTS] [DURATION]
#   VARIANTS="pinned tag" (which review runs), BASELINE=0 (skip the baseline),
#   TAG_TTL=5m (serve --kubernetes-tag-ttl; default 0: every tag review asks the registry),
#   WARM=32 (keep-alive connections each load opens before its clock starts,
#   as the API server has them open; 0: opened as the load needs them),
#   WARDGATE=path (run that wardgate binary instead of building one: to put
#   two builds side by side, e.g. main's and a branch's, at the same moment),
#   DISK_PROBE=0 (skip the disk's own fsync latency, bench/tools/fsyncprobe,
#   measured after the runs at RATE fsyncs/s in the state directory's file
#   system: the floor under any durable answer on that disk).
# After each run it prints wardgate.db's commits in it (from /metrics):
# how many, and how many took over 5 and over 25 ms. A review waits for
# the commit of its verdict, so each slow commit holds every review queued
# behind it as long: on a virtual disk those are the p99.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-200}
n=${2:-12000}
dur=${3:-90s}
out=bench/out/kube
mkdir -p "$out"
wardgate=${WARDGATE:-}
if [ -z "$wardgate" ]; then
  go build -o "$out/wardgate" ./cmd/wardgate
  wardgate=$out/wardgate
fi
go build -o "$out/loadgen" ./bench/tools/loadgen
go build -o "$out/kubefixture" ./bench/tools/kubefixture
go build -o "$out/fsyncprobe" ./bench/tools/fsyncprobe
work=$(mktemp -d "${TMPDIR:-/tmp}/wardgate-kube.XXXXXX")
pid= fpid=
cleanup() {
  for p in $pid $fpid; do
    if kill -0 "$p" 2>/dev/null; then kill "$p"; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/hold"
"$out/kubefixture" -dir "$work" -lifetime 20m <"$work/hold" >"$work/fixture.out" &
fpid=$!
exec 3>"$work/hold" # kubefixture serves until this closes
for _ in $(seq 100); do grep -q '^ready' "$work/fixture.out" 2>/dev/null && break; sleep 0.1; done
reg=$(awk '/^ready/{print $2}' "$work/fixture.out" || true)
[ -n "$reg" ] || { echo "registry did not start"; exit 2; }
sh deploy/kubernetes/certs.sh "$work/certs" >/dev/null
export WARDGATE_KEY_PASSWORD=kube-load-bench # a throwaway key in a throwaway state directory
state="$work/state"
"$wardgate" token create --role kubernetes --name apiserver --state "$state" >"$work/kube.tok" 2>/dev/null
"$wardgate" token create --role update-server --name baseline --state "$state" >"$work/us.tok" 2>/dev/null
"$wardgate" serve --config "$work/trust.yaml" --state "$state" --listen 127.0.0.1:0 --no-scan --registry "$reg" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --kubernetes-listen 127.0.0.1:0 --kubernetes-tag-ttl "${TAG_TTL:-0}" \
  --log-level "${LOG_LEVEL:-info}" 2>"$out/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q 'Kubernetes admission webhook' "$out/serve.log" 2>/dev/null && break; sleep 0.1; done
addr=$(grep 'Kubernetes admission webhook' "$out/serve.log" | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
[ -n "$addr" ] || { echo "server did not start"; cat "$out/serve.log"; exit 2; }
url="https://$addr"
tls=(-cacert "$work/certs/ca.crt" -servername wardgate-webhook.wardgate.svc)
# The first reviews evaluate both images (verification, policy, the log),
# the older first.
for r in first pinned; do
  "$out/loadgen" -url "$url" "${tls[@]}" -token-file "$work/kube.tok" -review "$work/review-$r.json" -n 1 -c 1 >/dev/null
done
# The server's CPU time (user+sys, clock ticks) from /proc.
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
cpu_per() { # TICKS_BEFORE REQUESTS_FILE
  local n; n=$(grep -o '"requests": *[0-9]*' "$2" | grep -o '[0-9]*$')
  awk -v a="$1" -v b="$(ticks)" -v n="$n" -v hz="$hz" 'BEGIN{printf "server CPU (user+sys) %.3f ms per request over %d requests\n", (b-a)*1000/hz/n, n}'
}
echo "load: $(uptime)"
# wardgate.db's commits so far, from the metrics: "count le-5ms le-25ms".
commits() {
  curl -sf --cacert "$work/certs/ca.crt" --connect-to "wardgate-webhook.wardgate.svc:443:$main" https://wardgate-webhook.wardgate.svc/metrics |
    awk -F' ' '/^wardgate_store_commit_duration_seconds_bucket\{writer="wardgate.db",le="0.005"\}/{a=$2}
      /^wardgate_store_commit_duration_seconds_bucket\{writer="wardgate.db",le="0.025"\}/{b=$2}
      /^wardgate_store_commit_duration_seconds_count\{writer="wardgate.db"\}/{c=$2} END{print c+0, a+0, b+0}'
}
commits_since() { # "count le5 le25" before
  read -r c0 a0 b0 <<<"$1"
  read -r c1 a1 b1 <<<"$(commits)"
  echo "wardgate.db commits $((c1-c0)): over 5ms $(((c1-c0)-(a1-a0))), over 25ms $(((c1-c0)-(b1-b0)))"
}
main=$(grep '"msg":"serving"' "$out/serve.log" | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
digest=$(grep -o 'sha256:[0-9a-f]*' "$work/review-pinned.json" | head -1)
if [ "${BASELINE:-1}" = 1 ]; then
echo "== baseline: POST /v1/admissions of $digest (one admission a request), $rate requests/s, $n requests"
t0=$(ticks) k0=$(commits)
GOMAXPROCS=${LOADGEN_PROCS:-1} "$out/loadgen" -url "https://$main" "${tls[@]}" -token-file "$work/us.tok" -digest "$digest" -class building-management -installed 1.0.0 \
  -device-prefix k8s/facility/Pod/baseline- -rate "$rate" -n "$n" -c 32 -warm "${WARM:-32}" -duration "$dur" -o "$out/load-baseline.json" | tee "$out/load-baseline.txt"
cpu_per "$t0" "$out/load-baseline.json" | tee -a "$out/load-baseline.txt"
commits_since "$k0" | tee -a "$out/load-baseline.txt"
fi
for variant in ${VARIANTS:-pinned tag}; do
  echo "== POST /v1/kubernetes/validate, pod of two evaluated images ($variant), $rate reviews/s, $n reviews, at most $dur ($(nproc) cores)"
  t0=$(ticks) k0=$(commits)
  GOMAXPROCS=${LOADGEN_PROCS:-1} "$out/loadgen" -url "$url" "${tls[@]}" -token-file "$work/kube.tok" -review "$work/review-$variant.json" \
    -rate "$rate" -n "$n" -c 32 -warm "${WARM:-32}" -duration "$dur" -o "$out/load-$variant.json" | tee "$out/load-$variant.txt"
  cpu_per "$t0" "$out/load-$variant.json" | tee -a "$out/load-$variant.txt"
  commits_since "$k0" | tee -a "$out/load-$variant.txt"
done
if [ "${DISK_PROBE:-1}" = 1 ]; then
  echo "== the disk alone (no wardgate): one page written and fsynced $rate times a second, for the same time"
  secs=$(awk -v n="$n" -v r="$rate" 'BEGIN{printf "%d", n/r}')
  "$out/fsyncprobe" -dir "$work" -rate "$rate" -duration "${secs}s" -n "$n" | tee "$out/disk.txt"
fi
echo "load: $(uptime)"
