#!/usr/bin/env bash
# Install, index the bundled sample library, and start the chat UI on http://127.0.0.1:8000 (no API key).
# Sign in as demo / demo unless COURSEPILOT_UI_USERS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export HF_HUB_OFFLINE=1
.venv/bin/coursepilot ingest data/courses
exec .venv/bin/coursepilot ui "$@"
