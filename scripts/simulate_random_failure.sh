#!/usr/bin/env bash
# Kills, pauses and restarts servers at random while clients write, then judges the history.
# Usage: simulate_random_failure.sh [faults (default 10)] [more `understudy chaos` options, e.g. --seed 7]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
faults="${1:-10}"
shift || true
exec "$UNDERSTUDY" chaos random --faults "$faults" "$@"
