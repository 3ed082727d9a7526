"""ROWS orders as one Parquet file, a million rows at a time: the same data as the wap_peer
example's `generate` (order id, one of four labels, an amount, a timestamp a second apart).

    python3 bench/gen_orders.py ROWS OUT.parquet
"""
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

rows, out = int(sys.argv[1]), sys.argv[2]
schema = pa.schema([
    ("orders_id", pa.string(), False),
    ("label", pa.string(), False),
    ("amount", pa.float64()),
    ("updated_at", pa.timestamp("us", tz="UTC"), False),
])
labels = pa.array(["north", "south", "east", "west"])
base = 1_793_491_200_000_000  # 2026-11-01T00:00:00Z
chunk = 1_000_000
with pq.ParquetWriter(out, schema) as writer:
    for start in range(0, rows, chunk):
        end = min(start + chunk, rows)
        i = pa.array(range(start, end), pa.int64())
        ids = pa.array([f"orders-{n:09}" for n in range(start, end)])
        label = labels.take(pa.array([n % 4 for n in range(start, end)]))
        amount = pc.divide(pa.array([float(n % 100_000) for n in range(start, end)]), 100.0)
        at = pc.cast(pc.add(pc.multiply(i, 1_000_000), base), pa.timestamp("us", tz="UTC"))
        writer.write_table(pa.table([ids, label, amount, at], schema=schema))
