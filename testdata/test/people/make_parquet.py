#!/usr/bin/env python3
"""Writes people.parquet from people.csv with real Parquet types (int64, double, date32,
timestamp[us, UTC], string). Run with any Python that has pyarrow; the output is committed so
the tests need no Python."""
import csv
import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq

here = os.path.dirname(os.path.abspath(__file__))
rows = list(csv.DictReader(open(os.path.join(here, "people.csv"))))
table = pa.table({
    "id": pa.array([int(r["id"]) for r in rows], pa.int64()),
    "name": pa.array([r["name"] for r in rows], pa.string()),
    "email": pa.array([r["email"] or None for r in rows], pa.string()),
    "age": pa.array([int(r["age"]) for r in rows], pa.int64()),
    "score": pa.array([float(r["score"]) for r in rows], pa.float64()),
    "signup": pa.array([dt.date.fromisoformat(r["signup"]) for r in rows], pa.date32()),
    "last_seen": pa.array(
        [dt.datetime.fromisoformat(r["last_seen"].replace("Z", "+00:00")) for r in rows],
        pa.timestamp("us", tz="UTC"),
    ),
    "country": pa.array([r["country"] for r in rows], pa.string()),
})
pq.write_table(table, os.path.join(here, "people.parquet"))
