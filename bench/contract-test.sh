#!/usr/bin/env bash
# `mesh test` against its peers (datacontract-cli, soda-core-duckdb) and the practical floor (one
# hand-written DataFusion query), on the same generated orders data, in the same run.
#
#   bash bench/contract-test.sh            # 100k, 1M, 10M rows, clean and dirty, 5 runs each
#   SIZES=1000000 RUNS=3 bash bench/contract-test.sh
#   MESH_BIN=path/mesh FLOOR_BIN=path/floor bash bench/contract-test.sh   # skip the build
#
# Uses ../shared/bench/peers (its data generator, contract, peer runner and checker): the peers
# are installed from PyPI into /tmp/mesh-peers, data goes to /tmp/meshbench. Prints the table of
# median wall time and peak RSS per tool and size, and whether each tool found exactly the
# injected violations (detection "exact").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/bench/peers}"
export DATA_DIR="${DATA_DIR:-/tmp/meshbench}"
export VENV="${VENV:-/tmp/mesh-peers/venv}"
RUNS="${RUNS:-5}"
SIZES="${SIZES:-100000 1000000 10000000}"

[ -d "$PEERS" ] || { echo "peer harness not found at $PEERS" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { apt-get install -y time >/dev/null 2>&1 || { echo "needs GNU time" >&2; exit 2; }; }
[ -x "$VENV/bin/datacontract" ] || bash "$PEERS/setup.sh"

# MESH_BIN and FLOOR_BIN name prebuilt binaries (e.g. copies kept while the tree moves on).
if [ -n "${MESH_BIN:-}" ] && [ -n "${FLOOR_BIN:-}" ]; then
  MESH="$MESH_BIN"; FLOOR="$FLOOR_BIN"
else
  echo "== building mesh (release)"
  (cd "$ROOT" && cargo build --release -q -p mesh-cli && cargo build --release -q -p mesh-engine --example floor)
  MESH="${CARGO_TARGET_DIR:-$ROOT/target}/release/mesh"
  FLOOR="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/floor"
fi
RESULTS="$DATA_DIR/results.tsv"
mkdir -p "$DATA_DIR/runs"
if [ -f "$RESULTS" ]; then mv "$RESULTS" "$DATA_DIR/results.$(date +%Y%m%dT%H%M%S).tsv"; fi
MESH_VERSION="$("$MESH" --version | awk '{print $2}')"

# one measured run of a command: appends a results.tsv row (same columns as run_peer.sh)
measure() {  # measure TOOL VERSION N VARIANT RUN DATA RESULT_JSON -- command...
  local tool="$1" version="$2" n="$3" variant="$4" run="$5" data="$6" res="$7"; shift 8
  local tf="$DATA_DIR/runs/${tool}_${n}_${variant}_${run}.time"
  set +e; /usr/bin/time -v -o "$tf" "$@" > "${res:-/dev/null}" 2>/dev/null; local rc=$?; set -e
  local wall rss user sys
  read -r wall rss user sys < <(awk -F': ' '
    /Elapsed \(wall clock\) time/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
    /Maximum resident set size/ { rss = $2 / 1024 } /User time/ { user = $2 } /System time/ { sys = $2 }
    END { printf "%.2f %.1f %.2f %.2f\n", wall, rss, user, sys }' "$tf")
  local detection="n/a"
  if [ -n "$res" ] && [ -s "$res" ]; then
    detection="$("$VENV/bin/python" "$PEERS/check_results.py" "$res" "$data.expected.json" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["detection"])' || true)"
  fi
  local rps; rps=$(awk -v n="$n" -v w="$wall" 'BEGIN { if (w > 0) printf "%.0f", n / w }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t%s\t%s\t\t\tno\n' \
    "$tool" "$version" "$n" "$variant" "$run" "$wall" "$rss" "$rps" "$rc" "$detection" "$user" "$sys" >> "$RESULTS"
  echo "$tool N=$n $variant run $run: ${wall}s ${rss} MiB exit=$rc detection=$detection"
}

for n in $SIZES; do
  echo "== N=$n: peers"
  RUNS="$RUNS" bash "$PEERS/run_peer.sh" "$n" | grep -E "run [0-9]+:|median" || true
  for variant in clean dirty; do
    data="$DATA_DIR/orders_${n}_${variant}.parquet"
    contract="$DATA_DIR/contracts/orders_${n}_${variant}.odcs.yaml"
    echo "== N=$n $variant: mesh and the floor query"
    for run in $(seq 1 "$RUNS"); do
      measure mesh "$MESH_VERSION" "$n" "$variant" "$run" "$data" "$DATA_DIR/runs/mesh_${n}_${variant}_${run}.json" -- \
        "$MESH" test "$contract" --output json
      measure datafusion-floor "55.2" "$n" "$variant" "$run" "$data" "" -- "$FLOOR" "$data"
      measure datafusion-scan-only "55.2" "$n" "$variant" "$run" "$data" "" -- "$FLOOR" "$data" --scan-only
    done
  done
done

echo
"$VENV/bin/python" "$PEERS/summarize.py" "$RESULTS"
