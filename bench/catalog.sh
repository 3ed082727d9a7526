#!/usr/bin/env bash
# The catalog over real HTTP: publish 10,000 generated products through `mesh serve`'s API with 8
# concurrent clients, then time GET product and GET product versions (20,000 each), on SQLite and
# (when MESH_BENCH_POSTGRES_URL is set, e.g. postgres://postgres@127.0.0.1:5433/postgres) on
# PostgreSQL. Prints throughput and p50/p95/p99 per operation.
#
#   bash bench/catalog.sh
#   PRODUCTS=1000 READS=2000 bash bench/catalog.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p mesh-server --example catalog_bench
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/catalog_bench"
"$BENCH" sqlite
if [ -n "${MESH_BENCH_POSTGRES_URL:-}" ]; then
  echo
  "$BENCH" postgres
else
  echo "(MESH_BENCH_POSTGRES_URL not set: PostgreSQL skipped)"
fi
