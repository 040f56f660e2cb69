#!/usr/bin/env bash
# Install, then lint, format-check, type-check and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy assistant ingest evals
.venv/bin/lint-imports
.venv/bin/python -m pytest -q
