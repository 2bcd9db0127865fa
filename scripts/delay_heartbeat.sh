#!/usr/bin/env bash
# Freezes a server (SIGSTOP) for a while, then lets it go on (SIGCONT): its heartbeats stop, the monitor
# suspects it and, once its lease has surely run out, promotes a backup. The frozen server wakes up
# believing it is primary and must step down. Usage: delay_heartbeat.sh [server N (default 1)] [seconds (default 2)]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
server="${1:-1}"
seconds="${2:-2}"
"$UNDERSTUDY" pause "$server" --data "$UP_DATA"
sleep "$seconds"
"$UNDERSTUDY" resume "$server" --data "$UP_DATA"
"$UNDERSTUDY" status --monitor "${UNDERSTUDY_CLIENT__MONITOR:-127.0.0.1:9001}" || true
