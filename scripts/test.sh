#!/usr/bin/env bash
# Install, then lint, format-check, type-check and run the whole test suite (slow and browser tests included).
# No test may be skipped: the browser tests need Debian chromium, installed here when we are root on a Debian
# system; otherwise this stops with the command that installs it. CP_TEST_FAIL_ON_SKIP=1 turns any skip
# (a missing service, say) into a failure that names the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export HF_HUB_OFFLINE=1
./scripts/ensure_chromium.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy assistant ingest evals
.venv/bin/lint-imports
CP_TEST_FAIL_ON_SKIP=1 .venv/bin/python -m pytest -q
