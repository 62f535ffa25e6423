#!/usr/bin/env bash
# bench/run.sh runs bench/*.sh: wardgate sbom generate against syft scan (bench/sbom/compare.sh).
exec "$(dirname "$0")/sbom/compare.sh" "$@"
