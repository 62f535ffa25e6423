#!/usr/bin/env bash
# Issue 17: unpacking plus SBOM of a 64 MiB squashfs firmware vs syft on
# the same root filesystem already unpacked into a directory (target at
# most 1.3x), side by side, RUNS runs each (default 5), medians of wall and
# CPU time (user + system: on a loaded machine the wall time says more
# about the neighbours than about wardgate). Then the file manifest diff of
# two 20,000-file releases, BenchmarkDiffManifests (firmware package;
# target under 300 ms), median of RUNS.
#
#   bench/firmware.sh                       # WARDGATE=bin/wardgate RUNS=5
#   WARDGATE=/tmp/old-wardgate bench/firmware.sh   # an earlier build, same image
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
# run prints the wall time and the CPU time (user + system) of one
# `sbom generate`, in ms.
run() {
  local t
  t=$( { TIMEFORMAT='%R %U %S'; time "$WG" sbom generate --no-cache "$1" > /dev/null 2>&1; } 2>&1 )
  awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}' <<< "$t"
}
runs=${RUNS:-5}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(date -u +%FT%TZ))"
dir_ms=(); fw_ms=(); dir_cpu=(); fw_cpu=()
for r in $(seq 1 "$runs"); do
  read -r w c < <(run "dir:$root"); dir_ms+=("$w"); dir_cpu+=("$c")
  read -r w c < <(run "$work/fw.squashfs"); fw_ms+=("$w"); fw_cpu+=("$c")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
d=$(printf '%s\n' "${dir_ms[@]}" | median); f=$(printf '%s\n' "${fw_ms[@]}" | median)
dc=$(printf '%s\n' "${dir_cpu[@]}" | median); fc=$(printf '%s\n' "${fw_cpu[@]}" | median)
echo "runs, wall (ms): directory ${dir_ms[*]} | squashfs ${fw_ms[*]}"
echo "runs, CPU (ms):  directory ${dir_cpu[*]} | squashfs ${fw_cpu[*]}"
echo "median wall: syft on the directory ${d} ms, unpack + SBOM of the squashfs ${f} ms, ratio $(ratio "$f" "$d")x (target <= 1.3x)"
echo "median CPU:  syft on the directory ${dc} ms, unpack + SBOM of the squashfs ${fc} ms, ratio $(ratio "$fc" "$dc")x"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) ($(date -u +%FT%TZ))"
go test ./firmware/ -run '^$' -bench 'DiffManifests$' -benchmem -count "$runs" | tee "$work/manifests.txt"
ms=$(grep '^BenchmarkDiffManifests' "$work/manifests.txt" | awk '{print $3 / 1e6}' | median)
echo "file manifest diff of two 20,000-file releases: median ${ms} ms (target < 300 ms); load average $(cut -d' ' -f1-3 /proc/loadavg)"
