#!/usr/bin/env bash
# `mesh test` on a PostgreSQL table against datacontract-cli 1.2.8 with its postgres extra, on the
# same 10M-row `orders` table (../shared/bench/peers/gen_data.py, loaded with COPY), the same
# contract (the shared bench contract with a postgres server), alternating, in the same run.
# Prints each run, the medians, whether each tool found exactly the injected violations, and the
# bytes each tool received from PostgreSQL (a counting proxy sits between the tool and the
# server): the goal is aggregates only, not rows.
#
#   MESH_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bash bench/db-test.sh
#   ROWS=1000000 RUNS=3 VARIANT=clean bash bench/db-test.sh
#   MESH_BIN=path/mesh bash bench/db-test.sh        # skip the build
#   COLLATION=C.UTF-8 bash bench/db-test.sh          # the database's collation (default C)
#
# The collation matters to a tool that sorts the text keys (datacontract-cli's duplicate query):
# PostgreSQL 15 compares text byte by byte only under C/POSIX, and through the C library's
# strcoll() under any other (C.UTF-8, en_US.UTF-8). mesh groups 64-bit hashes, not the keys.
#
# The goal (issue 20): mesh's median at least 2x faster than datacontract-cli's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/bench/peers}"
ROWS="${ROWS:-10000000}"
RUNS="${RUNS:-5}"
VARIANT="${VARIANT:-dirty}"
DATA_DIR="${DATA_DIR:-/tmp/meshbench}"
VENV="${VENV:-/tmp/mesh-peers/venv-postgres}"
COLLATION="${COLLATION:-C}"
[[ "$COLLATION" =~ ^[A-Za-z0-9_.@-]+$ ]] || { echo "COLLATION must be a locale name" >&2; exit 2; }
ADMIN="${MESH_TEST_POSTGRES_URL:?set MESH_TEST_POSTGRES_URL to a PostgreSQL the bench may create a database in}"
[ -d "$PEERS" ] || { echo "peer harness not found at $PEERS" >&2; exit 2; }

if [ -z "${MESH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p mesh-cli)
  MESH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mesh"
fi

# datacontract-cli with its postgres extra, pinned like the other peers (psycopg from the extra).
if [ ! -x "$VENV/bin/datacontract" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c "$PEERS/constraints-datacontract.txt" \
    "datacontract-cli[postgres,parquet]==1.2.8" pyarrow "psycopg[binary]"
fi
"$VENV/bin/datacontract" --version

# The data, loaded once per size and variant into its own database.
mkdir -p "$DATA_DIR"
DATA="$DATA_DIR/orders_${ROWS}_${VARIANT}.parquet"
[ -f "$DATA" ] || "$VENV/bin/python" "$PEERS/gen_data.py" "$ROWS" "$DATA" --variant "$VARIANT"
DB="meshbench_${ROWS}_${VARIANT}"
[ "$COLLATION" = C ] || DB="${DB}_$(echo "$COLLATION" | tr -c 'A-Za-z0-9\n' '_' | tr 'A-Z' 'a-z')"
HOST="$("$VENV/bin/python" -c "import urllib.parse as u; p=u.urlparse('$ADMIN'); print(p.hostname or '127.0.0.1')")"
PORT="$("$VENV/bin/python" -c "import urllib.parse as u; p=u.urlparse('$ADMIN'); print(p.port or 5432)")"
USER_="$("$VENV/bin/python" -c "import urllib.parse as u; p=u.urlparse('$ADMIN'); print(p.username or 'postgres')")"
"$VENV/bin/python" - "$ADMIN" "$DB" "$DATA" "$COLLATION" <<'EOF'
import sys, io, time
import psycopg, pyarrow.parquet as pq, pyarrow.csv as pc
admin, db, data, collation = sys.argv[1:5]
with psycopg.connect(admin, autocommit=True) as c:
    found = c.execute("SELECT datcollate FROM pg_database WHERE datname = %s", (db,)).fetchone()
    if found and found[0] != collation:
        sys.exit(f"database {db} has collation {found[0]}, not {collation}: drop it to reload")
    if found:
        sys.exit(0)
    c.execute(f"CREATE DATABASE \"{db}\" TEMPLATE template0 LOCALE '{collation}'")
url = admin.rsplit("/", 1)[0] + "/" + db
started = time.time()
try:
    with psycopg.connect(url) as c:
        c.execute("""CREATE TABLE orders (order_id text, customer_id text, order_ts timestamptz,
            amount numeric(12,2), currency text, status text, email text, country text)""")
        table = pq.read_table(data)
        no_header = pc.WriteOptions(include_header=False)
        with c.cursor().copy("COPY orders FROM STDIN (FORMAT csv)") as copy:
            for batch in table.to_batches(max_chunksize=500_000):
                buf = io.BytesIO()
                pc.write_csv(batch, buf, no_header)
                copy.write(buf.getvalue())
    # Vacuumed once, so no run pays for setting hint bits and autovacuum does not start during one.
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("VACUUM ANALYZE orders")
except BaseException:
    # Half a table would be measured as the whole one next time: load again instead.
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}"')
    raise
print(f"loaded {table.num_rows} rows into {db} in {time.time() - started:.0f} s")
EOF

# A counting proxy in front of PostgreSQL: bytes from the server to the tool, per run.
PROXY_PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
COUNTS="$DATA_DIR/proxy-bytes"
rm -f "$COUNTS"
"$VENV/bin/python" - "$PROXY_PORT" "$HOST" "$PORT" "$COUNTS" <<'EOF' &
import asyncio, sys
listen, host, port, counts = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
total = [0]
async def pipe(r, w, count):
    try:
        while data := await r.read(65536):
            if count:
                total[0] += len(data)
                open(counts, "w").write(str(total[0]))
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def serve(cr, cw):
    sr, sw = await asyncio.open_connection(host, port)
    await asyncio.gather(pipe(cr, sw, False), pipe(sr, cw, True))
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()
asyncio.run(main())
EOF
PROXY_PID=$!
trap 'kill "$PROXY_PID" 2>/dev/null || true' EXIT
sleep 1

CONTRACT="$DATA_DIR/orders_pg_${ROWS}_${VARIANT}.odcs.yaml"
"$VENV/bin/python" - "$PEERS/orders.odcs.yaml" "$CONTRACT" "$PROXY_PORT" "$DB" <<'EOF'
import sys, re
src, out, port, db = sys.argv[1:5]
text = open(src).read()
server = (f"  - server: postgres\n    type: postgres\n    host: 127.0.0.1\n    port: {port}\n"
          f"    database: {db}\n    schema: public\n")
text = re.sub(r"servers:\n(  - .*\n(    .*\n)*)", "servers:\n" + server, text)
open(out, "w").write(text)
EOF
export DATACONTRACT_POSTGRES_USERNAME="$USER_" DATACONTRACT_POSTGRES_PASSWORD="${PGPASSWORD:-unused}"

now() { date +%s.%N; }
bytes() { cat "$COUNTS" 2>/dev/null || echo 0; }
MESH_TIMES=(); PEER_TIMES=(); MESH_BYTES=(); PEER_BYTES=()
for i in $(seq 1 "$RUNS"); do
  before=$(bytes); start=$(now)
  set +e; "$MESH_BIN" test "$CONTRACT" --output json > "$DATA_DIR/mesh_pg_$i.json" 2>"$DATA_DIR/mesh_pg_$i.err"; set -e
  end=$(now); MESH_TIMES+=("$(echo "$end - $start" | bc)"); MESH_BYTES+=("$(( $(bytes) - before ))")
  before=$(bytes); start=$(now)
  set +e; "$VENV/bin/datacontract" test "$CONTRACT" --output-format json --output "$DATA_DIR/peer_pg_$i.json" >/dev/null 2>&1; set -e
  end=$(now); PEER_TIMES+=("$(echo "$end - $start" | bc)"); PEER_BYTES+=("$(( $(bytes) - before ))")
  printf 'run %d: mesh test %.2f s (%s bytes), datacontract test %.2f s (%s bytes)\n' \
    "$i" "${MESH_TIMES[-1]}" "${MESH_BYTES[-1]}" "${PEER_TIMES[-1]}" "${PEER_BYTES[-1]}"
done
for tool in mesh peer; do
  printf '%s detection: ' "$tool"
  "$VENV/bin/python" "$PEERS/check_results.py" "$DATA_DIR/${tool}_pg_1.json" "$DATA.expected.json" \
    | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["detection"])' || true
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }
M=$(median "${MESH_TIMES[@]}"); P=$(median "${PEER_TIMES[@]}")
printf '\n%s rows (%s), PostgreSQL, collation %s, median of %s: mesh test %.2f s, datacontract-cli %.2f s: %.1fx faster (goal >= 2x)\n' \
  "$ROWS" "$VARIANT" "$COLLATION" "$RUNS" "$M" "$P" "$(echo "$P / $M" | bc -l)"
printf 'bytes from PostgreSQL per run (median): mesh %s, datacontract-cli %s\n' \
  "$(median "${MESH_BYTES[@]}")" "$(median "${PEER_BYTES[@]}")"
