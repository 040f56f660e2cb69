#!/usr/bin/env bash
# Bring up CoursePilot as it runs on several machines, here on one: a Chroma server, PostgreSQL (the ledger and
# the learner store), one ingest job, two UI workers each with its own folder (nothing shared on disk), and nginx
# in front with sticky sessions. Stop it all with deploy/down.sh; ingest again with deploy/ingest.sh.
#
# Settings (environment):
#   CP_DEPLOY_STATE         state folder (default deploy/state): logs, pids, Chroma data, each host's folder
#   CP_DEPLOY_POSTGRES_URL  PostgreSQL for the ledger and learner data (default: the local server, db postgres)
#   CP_DEPLOY_LIBRARY       course library the ingest job reads (default data/courses)
#   CP_DEPLOY_PROXY_PORT    nginx (default 8080); CP_DEPLOY_WORKER_PORTS (default "8101 8102");
#   CP_DEPLOY_CHROMA_PORT   Chroma server (default 8200); COURSEPILOT_UI_USERS as for `coursepilot ui`
# Exit codes: 0 up, 2 bad settings, 3 a service could not be started (its log is named).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
STATE="$(mkdir -p "${CP_DEPLOY_STATE:-deploy/state}" && cd "${CP_DEPLOY_STATE:-deploy/state}" && pwd)"
PG_URL="${CP_DEPLOY_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}"
LIBRARY="$(cd "${CP_DEPLOY_LIBRARY:-data/courses}" && pwd)"
PROXY_PORT="${CP_DEPLOY_PROXY_PORT:-8080}"
read -r -a WORKER_PORTS <<< "${CP_DEPLOY_WORKER_PORTS:-8101 8102}"
CHROMA_PORT="${CP_DEPLOY_CHROMA_PORT:-8200}"
BIN="$ROOT/.venv/bin"

say() { echo "[deploy] $*" >&2; }
die() { say "$2"; exit "$1"; }
wait_port() {  # host port seconds log
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die 3 "nothing listens on $1:$2 after $3 s; see $4"
    sleep 0.5
  done
}
start() {  # name log command...: its own session, so down.sh stops it with its children
  local name="$1" log="$2"; shift 2
  setsid "$@" >"$log" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
}

[ "${#WORKER_PORTS[@]}" -eq 2 ] || die 2 "CP_DEPLOY_WORKER_PORTS must name two ports, e.g. \"8101 8102\""
[ -x "$BIN/coursepilot" ] || ./scripts/install.sh
if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "installing nginx from Debian's packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null) \
      || die 3 "nginx could not be installed; install it (apt-get install nginx-light) and run again"
  else
    die 3 "nginx is not installed; run: sudo apt-get install nginx-light"
  fi
fi
NGINX="$(command -v nginx)"
[ -e "$STATE/nginx.pid" ] && die 2 "$STATE looks running already; run deploy/down.sh first"
mkdir -p "$STATE"/{logs,nginx-tmp,chroma,ingest,worker1,worker2}
[ -s "$STATE/auth_secret" ] || (umask 077 && "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(32))" > "$STATE/auth_secret")

cat > "$STATE/env.sh" <<ENV
export HF_HUB_OFFLINE=1
export COURSEPILOT_CHROMA_HOST=127.0.0.1 COURSEPILOT_CHROMA_PORT=$CHROMA_PORT
export COURSEPILOT_INDEX_DATABASE_URL='$PG_URL' COURSEPILOT_DATABASE_URL='$PG_URL'
export COURSEPILOT_INDEX_DATABASE_SCHEMA='${COURSEPILOT_INDEX_DATABASE_SCHEMA:-coursepilot_index}'
export COURSEPILOT_UI_AUTH_SECRET="\$(cat '$STATE/auth_secret')"
export COURSEPILOT_UI_USERS='${COURSEPILOT_UI_USERS:-}'
export COURSEPILOT_LIBRARY_DIR='$LIBRARY'
ENV
# shellcheck source=/dev/null
source "$STATE/env.sh"

say "Chroma server on 127.0.0.1:$CHROMA_PORT"
start chroma "$STATE/logs/chroma.log" "$BIN/chroma" run --path "$STATE/chroma" --host 127.0.0.1 --port "$CHROMA_PORT"
wait_port 127.0.0.1 "$CHROMA_PORT" 90 "$STATE/logs/chroma.log"

say "ingest job: $LIBRARY"
(cd "$STATE/ingest" && COURSEPILOT_INDEX_DIR="$STATE/ingest/index" "$BIN/coursepilot" ingest --wait --json "$LIBRARY" \
  > "$STATE/logs/ingest.json" 2> "$STATE/logs/ingest.log") \
  || { code=$?; [ "$code" = 1 ] || die 3 "the ingest failed (exit $code); see $STATE/logs/ingest.log"; }

for i in 1 2; do
  port="${WORKER_PORTS[$((i - 1))]}"
  say "UI worker $i on 127.0.0.1:$port"
  (cd "$STATE/worker$i" && COURSEPILOT_INDEX_DIR="$STATE/worker$i/index" \
    start "worker$i" "$STATE/logs/worker$i.log" "$BIN/coursepilot" ui --host 127.0.0.1 --port "$port")
done
for i in 1 2; do wait_port 127.0.0.1 "${WORKER_PORTS[$((i - 1))]}" 180 "$STATE/logs/worker$i.log"; done

sed -e "s#@STATE@#$STATE#g" -e "s#@PROXY_PORT@#$PROXY_PORT#g" \
    -e "s#@WORKER1_PORT@#${WORKER_PORTS[0]}#g" -e "s#@WORKER2_PORT@#${WORKER_PORTS[1]}#g" \
    deploy/nginx.conf.template > "$STATE/nginx.conf"
"$NGINX" -t -q -c "$STATE/nginx.conf" -p "$STATE" -e "$STATE/logs/nginx-error.log" \
  || die 3 "nginx rejected $STATE/nginx.conf; see $STATE/logs/nginx-error.log"
say "nginx on 127.0.0.1:$PROXY_PORT (sticky by the cp_route cookie)"
start nginx-master "$STATE/logs/nginx.log" "$NGINX" -c "$STATE/nginx.conf" -p "$STATE" -e "$STATE/logs/nginx-error.log"
wait_port 127.0.0.1 "$PROXY_PORT" 30 "$STATE/logs/nginx-error.log"
say "up: http://127.0.0.1:$PROXY_PORT  (ingest again: deploy/ingest.sh; stop: deploy/down.sh)"
