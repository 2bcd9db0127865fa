#!/usr/bin/env bash
# Kills server 1 (port 8090) of the cluster run.sh started, with kill -9, as the original script did.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
exec "$UNDERSTUDY" kill 1 --data "$UP_DATA"
