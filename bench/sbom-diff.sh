#!/usr/bin/env bash
# bench/run.sh runs bench/*.sh: the 50,000-component SBOM diff (bench/sbom/diff.sh).
exec "$(dirname "$0")/sbom/diff.sh" "$@"
