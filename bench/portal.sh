#!/usr/bin/env bash
# Portal page latency on the demo mesh: builds the demo, serves it with the portal open, requests
# each page N times after a warm-up (one client, sequential), and prints p50 / p95 / max per page
# from curl's total time. The target is a server p95 of 50 ms per page.
#
#   bash bench/portal.sh                          # release build
#   MESH=target/debug/mesh N=100 bash bench/portal.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [ -z "${MESH:-}" ]; then
  cargo build --release -q -p mesh-cli
  MESH="${CARGO_TARGET_DIR:-$ROOT/target}/release/mesh"
fi
MESH="$(cd "$(dirname "$MESH")" && pwd)/$(basename "$MESH")"
N="${N:-200}"
WORK="$(mktemp -d)"
SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
"$MESH" demo "$WORK/demo" --no-serve >/dev/null 2>&1
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$WORK/demo" && exec "$MESH" serve --listen "127.0.0.1:$PORT" --open-portal >/dev/null 2>&1) &
SERVER=$!
until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.1; done
echo "portal on the demo mesh, $N requests per page after 10 warm-up, $("$MESH" --version 2>/dev/null || echo mesh) at $MESH"
printf '%-58s %8s %8s %8s\n' page p50_ms p95_ms max_ms
for page in / "/search?q=custmer+lifetme" /products/analytics.customer_lifetime_value \
  /products/ecommerce.orders /domains/ecommerce /products/analytics.customer_lifetime_value/lineage.svg; do
  for _ in $(seq 10); do curl -fs -o /dev/null "http://127.0.0.1:$PORT$page"; done
  for _ in $(seq "$N"); do curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT$page"; done |
    python3 -c '
import sys
t = sorted(float(x) * 1000 for x in sys.stdin)
pick = lambda p: t[min(len(t) - 1, max(0, -(-len(t) * p // 100) - 1))]
print("%-58s %8.1f %8.1f %8.1f" % (sys.argv[1], pick(50), pick(95), t[-1]))' "$page"
done
