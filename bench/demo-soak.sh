#!/usr/bin/env bash
# `mesh demo` serving for a while (issue 21): the server runs every product on its schedule while
# the demo's shop keeps trading, and at the end the service levels are checked. Prints each
# product's slots (succeeded / skipped / failed) and `mesh sla`'s verdict; exits 1 if an objective
# is violated. The orders' freshness objective is 2 hours: run it longer than that (the default)
# to show the schedules, not the first build, keep it.
#
#   bash bench/demo-soak.sh                        # 150 minutes, release build
#   MINUTES=20 MESH_BIN=/path/to/mesh bash bench/demo-soak.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MINUTES="${MINUTES:-150}"
PORT="${PORT:-18123}"
if [ -z "${MESH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p mesh-cli)
  MESH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mesh"
fi
WORK="$(mktemp -d)"
DEMO="$WORK/mesh-demo"
"$MESH_BIN" demo "$DEMO" --listen "127.0.0.1:$PORT" > "$WORK/demo.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; pkill -f "serve --listen 127.0.0.1:$PORT" 2>/dev/null || true' EXIT
until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null; do
  kill -0 $PID 2>/dev/null || { cat "$WORK/demo.log"; echo "mesh demo stopped" >&2; exit 2; }
  sleep 1
done
echo "demo serving at http://127.0.0.1:$PORT/ since $(date -u +%H:%M:%S); soaking for $MINUTES min"
sleep $((MINUTES * 60))
cd "$DEMO"
for product in ecommerce.product_catalog ecommerce.customers ecommerce.orders analytics.user_behaviour analytics.customer_lifetime_value; do
  "$MESH_BIN" schedule "$product" --last 1000 --next 0 --output json > "$WORK/$product.json"
  python3 - "$WORK/$product.json" "$product" <<'PY'
import json, sys, collections
doc = json.load(open(sys.argv[1]))
last = doc["products"][0]["last"] if doc["products"] else []
counts = collections.Counter(s["state"] for s in last)
print(f"{sys.argv[2]:<38} slots {len(last):>3}  " + "  ".join(f"{k} {counts[k]}" for k in ("succeeded", "skipped", "failed", "claimed")))
PY
done
STATUS=0
"$MESH_BIN" sla || STATUS=$?
echo "mesh sla exit code after $MINUTES min of serving: $STATUS (0: every objective met)"
exit $STATUS
