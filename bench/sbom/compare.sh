#!/usr/bin/env bash
# Compare `wardgate sbom generate dir:X` with `syft scan dir:X -o cyclonedx-json`
# on the same directory: cold (empty wardgate cache) and warm (second scan of
# unchanged content). Prints the times and the ratios the issue asks for:
# cold wardgate/syft <= 1.1, warm syft/wardgate >= 5.
#
#   bench/sbom/compare.sh DIR
#
# Needs bin/wardgate (make build) and syft v1.57.1 on PATH:
#   go install github.com/anchore/syft/cmd/syft@v1.57.1
set -euo pipefail
dir=${1:?usage: compare.sh DIR}
wardgate=${WARDGATE:-bin/wardgate}
syft=${SYFT:-syft}
command -v "$syft" >/dev/null || { echo "syft not found: go install github.com/anchore/syft/cmd/syft@v1.57.1" >&2; exit 2; }
[ -x "$wardgate" ] || { echo "$wardgate not built: make build" >&2; exit 2; }
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT

secs() { # run a command, print its wall time in seconds
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

# Warm the OS page cache so both tools read from memory.
find "$dir" -type f -exec cat {} + >/dev/null 2>&1 || true

syft_t=$(SYFT_CHECK_FOR_APP_UPDATE=false secs "$syft" scan "dir:$dir" -o cyclonedx-json -q)
cold_t=$(secs "$wardgate" sbom generate "dir:$dir" --cache-dir "$cache")
warm_t=$(secs "$wardgate" sbom generate "dir:$dir" --cache-dir "$cache")

printf 'syft scan          %8.3f s\n' "$syft_t"
printf 'wardgate cold      %8.3f s   ratio wardgate/syft %.2f (want <= 1.1)\n' "$cold_t" "$(echo "$cold_t / $syft_t" | bc -l)"
printf 'wardgate warm      %8.3f s   syft/wardgate %.1fx (want >= 5)\n' "$warm_t" "$(echo "$syft_t / $warm_t" | bc -l)"
