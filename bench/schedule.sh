#!/usr/bin/env bash
# The orchestrator at volume (issue 21): 1,000 scheduled products on two servers over one
# PostgreSQL for 60 simulated minutes (60x the wall clock's pace). Prints runs per slot (each must
# equal the products due), duplicates (0), missed (0) and the queue delay; exits 1 if a due slot
# did not run exactly once. The runner records and sleeps WORK_MS instead of running pipelines:
# the figures are the orchestration's (claims, ledger, queue), not DataFusion's.
#
#   MESH_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bash bench/schedule.sh
#   PRODUCTS=200 MINUTES=30 WORK_MS=50 MAX_RUNS=4 PROFILE=debug bash bench/schedule.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
: "${MESH_TEST_POSTGRES_URL:?set MESH_TEST_POSTGRES_URL to a PostgreSQL the bench may create a database in}"
PROFILE="${PROFILE:-release}"
cd "$ROOT"
if [ "$PROFILE" = release ]; then
  cargo build --release -p mesh-service --example schedule_bench
else
  cargo build -p mesh-service --example schedule_bench
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
"$TARGET/$PROFILE/examples/schedule_bench"
