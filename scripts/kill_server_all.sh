#!/usr/bin/env bash
# Kills every server of the cluster run.sh started (kill -9); `reboot` at its prompt brings them back.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
for n in 1 2 3; do
  "$UNDERSTUDY" kill "$n" --data "$UP_DATA"
done
