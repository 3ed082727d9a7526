#!/usr/bin/env bash
# How far one machine goes, and what a cluster changes: `mesh run` of a big source product
# (ROWS rows, default 100,000,000) and of an aggregate over it, first in process within mesh.toml's
# `[engine] memory_limit`, then on a local Ballista cluster (`mesh cluster scheduler` and two
# `mesh cluster executor`s, separate processes). For each run: wall time, peak RSS of every
# process (mesh, scheduler, executors), bytes spilled, rows, whether the output streamed.
# The goal (issue 25): peak RSS of the mesh process at most 2 GiB at 100M rows.
#
#   bash bench/big.sh                              # 100,000,000 rows
#   ROWS=10000000 LIMIT=512MiB bash bench/big.sh
#   MESH_BIN=path/mesh bash bench/big.sh            # skip the build
# The source is generated with pyarrow (bench/gen_orders.py; installed in a venv if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROWS="${ROWS:-100000000}"
LIMIT="${LIMIT:-1GiB}"
EXECUTOR_LIMIT="${EXECUTOR_LIMIT:-2GiB}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${MESH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p mesh-cli --features ballista)
fi
MESH="${MESH_BIN:-$TARGET/release/mesh}"
PY="${BENCH_PYTHON:-python3}"
if ! "$PY" -c 'import pyarrow' 2>/dev/null; then
  python3 -m venv /tmp/mesh-bench-venv
  /tmp/mesh-bench-venv/bin/pip install -q pyarrow
  PY=/tmp/mesh-bench-venv/bin/python
fi

# Big files: not in /tmp, which may be memory.
WORK="$(mktemp -d "${BENCH_DIR:-/var/tmp}/mesh-big.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
export NO_COLOR=1
"$MESH" init >/dev/null
"$MESH" new product orders --domain ecommerce --owner ecommerce-orders >/dev/null
"$MESH" new product orders_per_label --domain analytics --type aggregate --owner analytics-team \
  --input ecommerce.orders >/dev/null
PRODUCT="$WORK/ecommerce/orders"
echo "generating $ROWS rows..."
"$PY" "$ROOT/bench/gen_orders.py" "$ROWS" "$PRODUCT/data/orders.parquet"
rm -f "$PRODUCT/data/orders.csv"
sed -i 's#path: data/orders.csv#path: data/orders.parquet#; s#format: csv#format: parquet#' "$PRODUCT/product.odps.yaml"
printf '\n[engine]\nmemory_limit = "%s"\nspill_dir = ".mesh/spill"\n' "$LIMIT" >> mesh.toml
"$MESH" publish ecommerce/orders analytics/orders_per_label >/dev/null
request=$(USER=ana "$MESH" access request ecommerce.orders.orders --for analytics.orders_per_label \
  --purpose "The aggregate reads it." --output json)
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$request")
USER=olga "$MESH" access approve "$id" >/dev/null
echo "source: $(du -h "$PRODUCT/data/orders.parquet" | cut -f1), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, memory_limit $LIMIT"
echo

# One run: wall time and peak RSS of the mesh process (GNU time), what the run reports.
measure() {
  local label="$1"
  shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$MESH" run "$@" --output json >"$WORK/out.json" || true
  read -r wall rss <"$WORK/time"
  python3 - "$label" "$wall" "$rss" "$WORK/out.json" <<'PY'
import json, sys
label, wall, rss, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"{label}: no report ({e})"); sys.exit(0)
print(f"{label:<34} wall {wall:8.1f} s   mesh peak RSS {rss/1024:7.0f} MiB   "
      f"spilled {d.get('spilledBytes', 0)/2**20:7.0f} MiB   rows {d['rows']:>11}   "
      f"published {d['published']}   streamed {d.get('streamed')}")
PY
}
# Peak RSS of a running process (VmHWM), in MiB.
peak() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "== in process (memory_limit $LIMIT)"
measure "source, $ROWS rows" ecommerce/orders
measure "aggregate over it" analytics/orders_per_label

echo
echo "== on a local cluster: a scheduler and two executors (--memory-limit $EXECUTOR_LIMIT each)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SCHEDULER="127.0.0.1:$(port)"
RUST_LOG=warn "$MESH" cluster scheduler --listen "$SCHEDULER" 2>"$WORK/scheduler.log" &
PIDS+=($!)
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "${SCHEDULER#*:}" 2>/dev/null && break
  sleep 0.1
done
for i in 0 1; do
  mkdir -p "$WORK/executor-$i"
  RUST_LOG=warn "$MESH" cluster executor --scheduler "$SCHEDULER" --listen "127.0.0.1:$(port)" \
    --work-dir "$WORK/executor-$i" --memory-limit "$EXECUTOR_LIMIT" 2>"$WORK/executor-$i.log" &
  PIDS+=($!)
done
sleep 2
measure "source, $ROWS rows" ecommerce/orders --executor "ballista://$SCHEDULER"
measure "aggregate over it" analytics/orders_per_label --executor "ballista://$SCHEDULER"
echo "cluster peak RSS: scheduler $(peak "${PIDS[0]}") MiB, executor-0 $(peak "${PIDS[1]}") MiB, executor-1 $(peak "${PIDS[2]}") MiB"
