#!/usr/bin/env bash
# Make sure Debian chromium (the browser the UI and report tests drive) is installed: install it when we are root
# on a system with apt-get, otherwise stop with the command that installs it. CP_CHROMIUM overrides the path.
set -euo pipefail
CHROMIUM=${CP_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian chromium for the browser tests..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "The browser tests need Debian chromium at $CHROMIUM. Install it, then re-run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2
  exit 1
fi
