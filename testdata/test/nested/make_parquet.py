#!/usr/bin/env python3
"""Writes orders.parquet (nested: list<string>, struct, list<struct>) from orders.ndjson with
pyarrow; the output is committed so the tests need no Python."""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

here = os.path.dirname(os.path.abspath(__file__))
rows = [json.loads(line) for line in open(os.path.join(here, "orders.ndjson"))]
schema = pa.schema([
    ("order_id", pa.string()),
    ("tags", pa.list_(pa.string())),
    ("address", pa.struct([("city", pa.string()), ("zip", pa.string())])),
    ("lines", pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.int64())]))),
])
pq.write_table(pa.Table.from_pylist(rows, schema=schema), os.path.join(here, "orders.parquet"))
