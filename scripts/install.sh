#!/usr/bin/env bash
# Install CoursePilot and its dev tools into .venv.
#
# Why torch first, with pip: a plain `torch` requirement resolves to a CUDA build of several GB. These
# machines keep a CPU wheel of torch 2.13.0 in pip's find-links folder, so `pip install torch==2.13.0` takes
# it from disk in seconds. uv resolves the rest (~15 s; pip's resolver gives up on this set) and, since
# torch>=2.2 is already satisfied, installs no other torch. Elsewhere, the CPU index is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check uv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>/dev/null; then
    .venv/bin/python -m pip install -q --disable-pip-version-check torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
# dev: test tools; bench: `coursepilot bench` (its LangChain baseline); build: the sample-library builder.
.venv/bin/uv pip install -q --python .venv/bin/python -e ".[dev,bench,build]"
