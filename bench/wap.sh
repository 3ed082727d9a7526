#!/usr/bin/env bash
# What write-audit-publish costs: `mesh run` of a source product (transform, stage, every
# contract check on the staged files, commit, catalog and lineage) against a bare DataFusion +
# delta-rs write of the same transform's result to a Delta table (the example `wap_peer`), on
# the same generated source, alternating, in the same run. Prints each run and the medians.
# The goal (issue 19): mesh's median at most 1.3x the peer's.
#
#   bash bench/wap.sh                     # 10,000,000 rows, 5 runs each
#   ROWS=1000000 RUNS=3 bash bench/wap.sh
#   MESH_BIN=path/mesh PEER_BIN=path/wap_peer bash bench/wap.sh   # skip the build
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROWS="${ROWS:-10000000}"
RUNS="${RUNS:-5}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${MESH_BIN:-}" ] || [ -z "${PEER_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p mesh-cli && cargo build --release -q -p mesh-engine --example wap_peer)
fi
MESH="${MESH_BIN:-$TARGET/release/mesh}"
PEER="${PEER_BIN:-$TARGET/release/examples/wap_peer}"

WORK="$(mktemp -d /tmp/mesh-wap.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export NO_COLOR=1
"$MESH" init >/dev/null
"$MESH" new product orders --domain ecommerce --owner ecommerce-orders >/dev/null
PRODUCT="$WORK/ecommerce/orders"
echo "generating $ROWS rows..."
"$PEER" generate "$ROWS" "$PRODUCT/data/orders.parquet"
rm -f "$PRODUCT/data/orders.csv"
sed -i 's#path: data/orders.csv#path: data/orders.parquet#; s#format: csv#format: parquet#' "$PRODUCT/product.odps.yaml"
"$MESH" publish ecommerce/orders >/dev/null
echo "source: $(du -h "$PRODUCT/data/orders.parquet" | cut -f1), $(nproc) cores"

now() { date +%s.%N; }
MESH_TIMES=()
PEER_TIMES=()
for i in $(seq 1 "$RUNS"); do
  start=$(now)
  out=$("$MESH" run ecommerce/orders --output json)
  end=$(now)
  case "$out" in *'"published": true'*|*'"published":true'*) ;; *) echo "mesh run did not publish: $out" >&2; exit 1 ;; esac
  t=$(echo "$end - $start" | bc)
  MESH_TIMES+=("$t")
  start=$(now)
  "$PEER" write "$PRODUCT/data/orders.parquet" "$PRODUCT/transform.sql" "$WORK/peer-table" >/dev/null
  end=$(now)
  p=$(echo "$end - $start" | bc)
  PEER_TIMES+=("$p")
  printf 'run %d: mesh run %.2f s, bare write %.2f s\n' "$i" "$t" "$p"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }
M=$(median "${MESH_TIMES[@]}")
P=$(median "${PEER_TIMES[@]}")
printf '\n%s rows, median of %s: mesh run %.2f s, bare DataFusion write %.2f s, ratio %.2fx (goal <= 1.3x)\n' \
  "$ROWS" "$RUNS" "$M" "$P" "$(echo "$M / $P" | bc -l)"
