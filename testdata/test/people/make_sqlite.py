#!/usr/bin/env python3
"""Writes people.db (SQLite) from people.csv with declared column types, so the `sqlite` server
of people.odcs.yaml tests the same rows in the database. Python's standard library only; the
output is committed so the tests need no Python."""
import csv
import os
import sqlite3

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "people.db")
if os.path.exists(path):
    os.remove(path)
rows = list(csv.DictReader(open(os.path.join(here, "people.csv"))))
db = sqlite3.connect(path)
db.execute(
    "CREATE TABLE people (id INTEGER, name VARCHAR(40), email TEXT, age INTEGER, score REAL, "
    "signup DATE, last_seen TIMESTAMP, country TEXT)"
)
db.executemany(
    "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [
        (
            int(r["id"]),
            r["name"] or None,
            r["email"] or None,
            int(r["age"]),
            float(r["score"]),
            r["signup"],
            r["last_seen"],
            r["country"],
        )
        for r in rows
    ],
)
db.commit()
db.execute("VACUUM")
db.close()
