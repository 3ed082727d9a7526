#!/usr/bin/env python3
"""Writes people.delta/, a Delta table with two commits from people.parquet: the rows written
once, then overwritten with the same rows. A reader that honours the Delta log sees 10 rows; one
that reads every Parquet file in the folder sees 20. Needs pyarrow and deltalake (PyPI); the
output is committed so the tests need no Python."""
import os
import shutil

import pyarrow.parquet as pq
from deltalake import write_deltalake

here = os.path.dirname(os.path.abspath(__file__))
target = os.path.join(here, "people.delta")
shutil.rmtree(target, ignore_errors=True)
table = pq.read_table(os.path.join(here, "people.parquet"))
write_deltalake(target, table)
write_deltalake(target, table, mode="overwrite")
