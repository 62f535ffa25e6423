#!/usr/bin/env bash
# The canary share the egress detections need (docs/rollout.md): the fleet
# fixture's compromised classes scaled to SIZES devices (default 6, 200
# and 1000), run through rings with canaries of 1%, 5%, 10% and 25% and
# the real detections. Prints the replay's log (takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
uptime
WARDGATE_ROLLOUT_SCALE="${1:-6,200,1000}" go test -count=1 -timeout 90m -run '^TestFleetReplayScaled$' -v ./rollout | grep -E 'n=|^(--- |ok|FAIL)'
uptime
