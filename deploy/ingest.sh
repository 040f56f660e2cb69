#!/usr/bin/env bash
# Run one ingest job against the deployment deploy/up.sh started (its own folder; waits for a running job).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$(cd "${CP_DEPLOY_STATE:-$ROOT/deploy/state}" && pwd)"
# shellcheck source=/dev/null
source "$STATE/env.sh"
cd "$STATE/ingest"
COURSEPILOT_INDEX_DIR="$STATE/ingest/index" exec "$ROOT/.venv/bin/coursepilot" ingest --wait "$@"
