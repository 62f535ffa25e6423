#!/usr/bin/env bash
# `wardgate verify blob --batch` on 200 signed 1 MiB blobs, against one
# `cosign verify-blob` process per blob (cosign v2.6.5, key, no tlog).
# Target: wardgate at least 50x faster. Usage: bench/verify-batch-vs-cosign.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
cosign=$(command -v cosign || echo "$(go env GOPATH)/bin/cosign")
if [ ! -x "$cosign" ]; then
  echo "installing cosign v2.6.5 (go install)..." >&2
  go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
fi
out=bench/out/batch; rm -rf "$out"; mkdir -p "$out"
go run ./bench/tools/mkblobs -dir "$out" -n "$n" -size 1048576 >/dev/null
now() { date +%s.%N; }
# wardgate: median of 5 runs of the whole batch.
wg=()
for i in 1 2 3 4 5; do
  t0=$(now); bin/wardgate verify blob --batch "$out/list.txt" --key "$out/key.pub" -o json >"$out/wardgate.jsonl"; t1=$(now)
  wg+=("$(echo "$t1 - $t0" | bc -l)")
done
ok=$(grep -c '"verified":true' "$out/wardgate.jsonl")
[ "$ok" -eq "$n" ] || { echo "wardgate verified $ok of $n" >&2; exit 1; }
wmed=$(printf '%s\n' "${wg[@]}" | sort -n | sed -n 3p)
# cosign: one process per blob, one pass (it is the slow side).
t0=$(now)
while read -r blob sig; do
  "$cosign" verify-blob --key "$out/key.pub" --signature "$sig" --insecure-ignore-tlog=true "$blob" >/dev/null 2>&1 \
    || { echo "cosign failed on $blob" >&2; exit 1; }
done <"$out/list.txt"
t1=$(now)
cos=$(echo "$t1 - $t0" | bc -l)
printf 'verify %d x 1 MiB blobs: wardgate --batch %.3fs (median of 5), cosign verify-blob per blob %.3fs, ratio %.1fx\n' "$n" "$wmed" "$cos" "$(echo "$cos / $wmed" | bc -l)"
