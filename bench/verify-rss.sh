#!/usr/bin/env bash
# Memory of `wardgate verify blob` on a 1 GiB signed blob: the blob is hashed
# in one streaming pass and never held in memory. Reports the peak of the
# process's anonymous memory (RssAnon: heap, stacks, buffers; target
# < 64 MiB) and of its total RSS, which also counts the pages of the
# 150 MB binary mapped from disk (RssFile: shared, reclaimable, the same
# for every command). Sampled from /proc every 10 ms; median of 3 runs.
# Usage: bench/verify-rss.sh [SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
out=bench/out/rss; rm -rf "$out"; mkdir -p "$out"
go run ./bench/tools/mkblobs -dir "$out" -n 1 -size "$size" >/dev/null
blob="$out/blob-0000.bin"
anon=(); total=(); secs=()
for i in 1 2 3; do
  t0=$(date +%s.%N)
  bin/wardgate verify blob "$blob" --key "$out/key.pub" --signature "$blob.sig" >/dev/null &
  pid=$!
  maxa=0; maxt=0
  while kill -0 "$pid" 2>/dev/null; do
    if read -r a t < <(awk '/^RssAnon:/ {a=$2} /^VmHWM:/ {t=$2} END {print a+0, t+0}' "/proc/$pid/status" 2>/dev/null); then
      [ "$a" -gt "$maxa" ] && maxa=$a; [ "$t" -gt "$maxt" ] && maxt=$t
    fi
    sleep 0.01
  done
  wait "$pid"
  t1=$(date +%s.%N)
  anon+=("$maxa"); total+=("$maxt"); secs+=("$(echo "$t1 - $t0" | bc -l)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
a=$(med "${anon[@]}"); t=$(med "${total[@]}")
printf 'verify blob %d MiB: median peak anonymous memory %d MiB (total RSS incl. the mapped binary %d MiB), median wall %.2fs (3 runs)\n' \
  $((size >> 20)) $((a / 1024)) $((t / 1024)) "$(med "${secs[@]}")"
rm -f "$blob"
[ "$a" -lt $((64 * 1024)) ] || { echo "peak anonymous memory over 64 MiB" >&2; exit 1; }
