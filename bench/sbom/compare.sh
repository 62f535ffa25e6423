#!/usr/bin/env bash
# `wardgate sbom generate dir:X` against `syft scan dir:X -o cyclonedx-json`
# on the same directory (issue 3), median of 3 runs each:
#   cold  wardgate with an empty cache       want wardgate/syft <= 1.1
#   warm  second scan of unchanged content   want syft/wardgate >= 5
#
#   bench/sbom/compare.sh [DIR]
#
# DIR defaults to bench/out/sbom/npm: a project after `npm install
# express@4.21.2` (package.json, package-lock.json and node_modules: 72
# packages, ~650 files), made on first run; both tools read the lock file. Needs bin/wardgate (make
# build); syft v1.57.1 is installed with `go install` if it is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
wardgate=${WARDGATE:-bin/wardgate}
[ -x "$wardgate" ] || { echo "$wardgate not built: make build" >&2; exit 2; }
runs=${RUNS:-3}

syft=${SYFT:-$(command -v syft || true)}
if [ -z "$syft" ]; then
	syft="$(go env GOPATH)/bin/syft"
	if [ ! -x "$syft" ]; then
		echo "installing syft v1.57.1 (a few minutes)..." >&2
		go install github.com/anchore/syft/cmd/syft@v1.57.1
	fi
fi
go version -m "$syft" 2>/dev/null | grep -q 'mod[[:space:]]*github.com/anchore/syft[[:space:]]*v1\.57\.1' ||
	echo "warning: $syft is not syft v1.57.1" >&2

dir=${1:-}
if [ -z "$dir" ]; then
	dir=bench/out/sbom/npm
	if [ ! -d "$dir/node_modules/express" ]; then
		mkdir -p "$dir"
		echo '{"name": "wardgate-sbom-bench", "private": true}' >"$dir/package.json"
		npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts express@4.21.2 >&2
	fi
fi
[ -d "$dir" ] || { echo "$dir: not a directory" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

secs() { # run a command, print its wall time in seconds
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# Warm the OS page cache so every run reads from memory.
find "$dir" -type f -exec cat {} + >/dev/null 2>&1 || true
export SYFT_CHECK_FOR_APP_UPDATE=false
# Neither tool's progress output is measured.
export CI=true

syft_t=$(for i in $(seq "$runs"); do secs "$syft" scan "dir:$dir" -o cyclonedx-json -q; done | median)
cold_t=$(for i in $(seq "$runs"); do secs "$wardgate" sbom generate "dir:$dir" --cache-dir "$tmp/cold-$i"; done | median)
"$wardgate" sbom generate "dir:$dir" --cache-dir "$tmp/warm" >/dev/null
warm_t=$(for i in $(seq "$runs"); do secs "$wardgate" sbom generate "dir:$dir" --cache-dir "$tmp/warm"; done | median)

files=$(find "$dir" -type f | wc -l)
pkgs=$("$wardgate" sbom generate "dir:$dir" --cache-dir "$tmp/warm" | grep -o '"purl"' | wc -l)
echo "directory: $dir ($files files, $pkgs components with a purl); median of $runs"
printf 'syft scan          %8.3f s\n' "$syft_t"
printf 'wardgate cold      %8.3f s   wardgate/syft %.2f (want <= 1.1)\n' "$cold_t" "$(echo "$cold_t / $syft_t" | bc -l)"
printf 'wardgate warm      %8.3f s   syft/wardgate %.1fx (want >= 5)\n' "$warm_t" "$(echo "$syft_t / $warm_t" | bc -l)"
