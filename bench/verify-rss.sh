#!/usr/bin/env bash
# Peak RSS of `wardgate verify blob` on a 1 GiB signed blob (target: < 64 MiB).
# Usage: bench/verify-rss.sh [SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
out=bench/out/rss; rm -rf "$out"; mkdir -p "$out"
go run ./bench/tools/mkblobs -dir "$out" -n 1 -size "$size" >/dev/null
blob="$out/blob-0000.bin"
for i in 1 2 3; do
  /usr/bin/time -f "%M %e" -o "$out/time.$i" bin/wardgate verify blob "$blob" --key "$out/key.pub" --signature "$blob.sig" >/dev/null
done
rss=$(for i in 1 2 3; do cut -d' ' -f1 "$out/time.$i"; done | sort -n | sed -n 2p)
secs=$(for i in 1 2 3; do cut -d' ' -f2 "$out/time.$i"; done | sort -n | sed -n 2p)
echo "verify blob $((size>>20)) MiB: median peak RSS $((rss/1024)) MiB, median wall ${secs}s (3 runs)"
rm -f "$blob"
[ "$rss" -lt $((64*1024)) ] || { echo "peak RSS over 64 MiB" >&2; exit 1; }
