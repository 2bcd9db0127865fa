# Shared by the scripts: find the repository from the script's own location, so they run from any folder.
# Portable to macOS's bash 3.2 and Linux.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNDERSTUDY="$ROOT/understudy"
# The cluster started by run.sh keeps its data, logs and control socket here.
UP_DATA="${UNDERSTUDY_UP_DATA:-$ROOT/.understudy/up}"
