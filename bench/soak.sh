#!/usr/bin/env bash
# Soak and fault test (issue 19): 50 clients mixing search, query, publish and runs for 10
# minutes against two `mesh serve` on one PostgreSQL, loopback only, while PostgreSQL is
# restarted twice and one server is killed (SIGKILL) and started again. Reports 0 lost
# accepted writes, 0 5xx outside the restart windows, the servers' peak RSS, and throughput
# and p50/p99 per operation (bench/soak.py). Needs root (it runs its own PostgreSQL cluster as
# user postgres, from Debian's package).
#
#   bash bench/soak.sh                    # 600 s, 50 clients
#   DURATION=120 CLIENTS=20 bash bench/soak.sh
#   MESH_BIN=path/mesh bash bench/soak.sh # skip the build
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-600}"
CLIENTS="${CLIENTS:-50}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${MESH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p mesh-cli)
fi
MESH="$(realpath "${MESH_BIN:-$TARGET/release/mesh}")"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
PG_PORT="$(free_port)"
WORK="$(mktemp -d /tmp/mesh-soak.XXXXXX)"
chmod 755 "$WORK"
mkdir "$WORK/pg" && chown postgres "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -A trust -U postgres -D "$WORK/pg/data" >/dev/null
PG_OPTS="-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/pg -c max_connections=300"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w -o "$PG_OPTS" start >/dev/null
cleanup() {
  for f in "$WORK"/serve-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

WS="$WORK/ws"
mkdir "$WS" && cd "$WS"
export NO_COLOR=1
"$MESH" init >/dev/null
printf '[catalog]\nurl = "%s"\n\n[storage]\nurl = "file://%s/data"\n' "$URL" "$WORK" > mesh.toml
"$MESH" new product orders --domain ecommerce --owner ecommerce-orders >/dev/null
for i in 0 1; do
  "$MESH" new product "soak_run_$i" --domain ecommerce --owner ecommerce-orders >/dev/null
done
for p in orders soak_run_0 soak_run_1; do "$MESH" publish "ecommerce/$p" >/dev/null; done
"$MESH" run ecommerce/orders >/dev/null
TOKEN="$("$MESH" token create soak --role admin | tail -1 | tr -d '[:space:]')"

SERVERS="["
for i in 1 2; do
  port="$(free_port)"
  start=(sh -c "echo \$\$ > $WORK/serve-$i.pid; exec env MESH_QUERIES_PER_MINUTE=1000000 MESH_QUERY_BURST=100000 MESH_CALLS_PER_MINUTE=1000000 $MESH serve --listen 127.0.0.1:$port --sla-interval 0 >> $WORK/serve-$i.log 2>&1")
  "${start[@]}" &
  args="$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${start[@]}")"
  SERVERS+="{\"url\": \"127.0.0.1:$port\", \"start\": $args, \"pidfile\": \"$WORK/serve-$i.pid\"},"
done
SERVERS="${SERVERS%,}]"
for _ in $(seq 1 100); do
  ok=1
  for port in $(python3 -c "import json; [print(s['url']) for s in json.loads('''$SERVERS''')]"); do
    curl -fs "http://$port/health" >/dev/null || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.2
done

PG_RESTART="$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w -m fast -o "$PG_OPTS" restart)"
CONFIG="{\"servers\": $SERVERS, \"token\": \"$TOKEN\", \"duration\": $DURATION, \"clients\": $CLIENTS, \"mesh\": \"$MESH\", \"workspace\": \"$WS\", \"pg_restart\": $PG_RESTART}"
status=0
python3 "$ROOT/bench/soak.py" "$CONFIG" || status=$?
echo "server logs: $(grep -c 'error ' "$WORK"/serve-*.log | tr '\n' ' ')"
exit "$status"
