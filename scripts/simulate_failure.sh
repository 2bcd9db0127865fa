#!/usr/bin/env bash
# Simulates server failures and judges the outcome: starts its own cluster, kills the primary (kill -9) while
# clients write, and checks that no acknowledged message was lost or duplicated.
# Usage: simulate_failure.sh [failures (default 3)] [more `understudy chaos` options]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
faults="${1:-3}"
shift || true
exec "$UNDERSTUDY" chaos kill-primary --faults "$faults" "$@"
