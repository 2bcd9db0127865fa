#!/usr/bin/env bash
# Kills monitor N (default 1; 1 = port 9000, 2 = 9010, 3 = 9020) of the cluster run.sh started, with kill -9,
# like the kill_server scripts. With a group of three, the others elect a new active monitor and the cluster
# carries on; `restart monitor N` at its prompt (or `./understudy restart monitor N`) brings it back.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
exec "$UNDERSTUDY" kill monitor "${1:-1}" --data "$UP_DATA"
