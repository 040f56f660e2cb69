#!/usr/bin/env bash
# Stop what deploy/up.sh started (each service runs in its own session: its children stop with it).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${CP_DEPLOY_STATE:-$ROOT/deploy/state}"
for name in nginx-master worker1 worker2 chroma; do
  file="$STATE/$name.pid"
  [ -f "$file" ] || continue
  pid="$(cat "$file")"
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$file"
done
rm -f "$STATE/nginx.pid"
echo "[deploy] stopped" >&2
