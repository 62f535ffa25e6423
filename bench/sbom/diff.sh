#!/usr/bin/env bash
# Diff and decode benchmarks for two 50,000-component SBOMs, side by side:
# the issue asks for the diff to cost at most 1.5x the decode.
#   bench/sbom/diff.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
go test ./sbom/ -run '^$' -bench '50k' -benchtime "${BENCHTIME:-5x}" -benchmem
