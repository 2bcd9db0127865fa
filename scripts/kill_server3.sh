#!/usr/bin/env bash
# Kills server 3 (port 8088) of the cluster run.sh started, with kill -9, as the original script did.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
exec "$UNDERSTUDY" kill 3 --data "$UP_DATA"
