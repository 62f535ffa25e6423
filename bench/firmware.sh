#!/usr/bin/env bash
# Issue 17: unpacking plus SBOM of a 64 MiB squashfs firmware vs syft on
# the same root filesystem already unpacked into a directory (target at
# most 1.3x), side by side, 5 runs each, medians. The file manifest diff
# of two 20,000-file releases is BenchmarkDiffManifests (firmware package,
# in make bench's Go benchmarks; target under 300 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mksquashfs >/dev/null || { echo "mksquashfs not installed (apt-get install -y squashfs-tools): skipping"; exit 0; }
WG=${WARDGATE:-bin/wardgate}
[ -x "$WG" ] || go build -o "$WG" ./cmd/wardgate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/lib/apk/db" "$root/etc" "$root/usr/lib" "$root/bin"
printf 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n' > "$root/etc/os-release"
# 2,000 packages, each owning one file: 64 MiB of incompressible data.
for i in $(seq 1 2000); do
  printf 'P:pkg%d\nV:1.%d-r0\nA:x86_64\nL:MIT\nF:usr/lib\nR:lib%d.so\n\n' "$i" "$i" "$i"
  head -c 33554 /dev/urandom > "$root/usr/lib/lib$i.so"
done > "$root/lib/apk/db/installed"
cp /bin/true "$root/bin/busybox"
mksquashfs "$root" "$work/fw.squashfs" -quiet -noappend -no-progress -comp gzip
echo "squashfs: $(du -m "$work/fw.squashfs" | cut -f1) MiB, $(find "$root" -type f | wc -l) files"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { local s e; s=$(date +%s%N); "$WG" sbom generate --no-cache "$1" > /dev/null; e=$(date +%s%N); echo $(( (e-s)/1000000 )); }
dir_ms=(); fw_ms=()
for r in 1 2 3 4 5; do
  dir_ms+=("$(run "dir:$root")")
  fw_ms+=("$(run "$work/fw.squashfs")")
done
d=$(printf '%s\n' "${dir_ms[@]}" | median)
f=$(printf '%s\n' "${fw_ms[@]}" | median)
echo "runs (ms): directory ${dir_ms[*]} | squashfs ${fw_ms[*]}"
echo "median: syft on the directory ${d} ms, unpack + SBOM of the squashfs ${f} ms, ratio $(awk -v a="$f" -v b="$d" 'BEGIN{printf "%.2f", a/b}')x (target <= 1.3x)"
