#!/usr/bin/env bash
# Cascading failure, as the original script did: kills the primary, then the next, until the last server
# carries on alone; restarts them; repeats. Judges the history at the end.
# Usage: simulate_chain_failure.sh [rounds (default 2)] [more `understudy chaos` options]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
faults="${1:-2}"
shift || true
exec "$UNDERSTUDY" chaos chain --faults "$faults" "$@"
