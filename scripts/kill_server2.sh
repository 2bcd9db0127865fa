#!/usr/bin/env bash
# Kills server 2 (port 8089) of the cluster run.sh started, with kill -9, as the original script did.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
exec "$UNDERSTUDY" kill 2 --data "$UP_DATA"
