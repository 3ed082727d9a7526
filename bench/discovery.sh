#!/usr/bin/env bash
# Discovery at scale: 100,000 generated products (~1.26M lineage edges from their input ports and
# column sources) published through the catalog, then search and hub-downstream latency, index
# and graph build time and memory, in a fresh catalog instance — on SQLite and (when
# MESH_BENCH_POSTGRES_URL is set) PostgreSQL.
#
#   bash bench/discovery.sh
#   PRODUCTS=20000 bash bench/discovery.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p mesh-catalog --example discovery_bench
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/discovery_bench"
"$BENCH" sqlite
if [ -n "${MESH_BENCH_POSTGRES_URL:-}" ]; then
  echo
  "$BENCH" postgres
else
  echo "(MESH_BENCH_POSTGRES_URL not set: PostgreSQL skipped)"
fi
