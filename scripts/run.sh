#!/usr/bin/env bash
# Starts three monitors (a Raft group; --monitors 1 for one) and three servers (8090 primary, 8089 and 8088 backups) and takes the original Main's
# commands: stop primary, stop backup1, stop backup2, stop all, reboot, exit (type `help` for the rest).
# Extra arguments go to `understudy up` (e.g. --fresh, --fsync never).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
exec "$UNDERSTUDY" up --data "$UP_DATA" "$@"
