"""Reads mesh output ports over Arrow Flight SQL with ADBC, as a notebook or BI tool would.

Usage: flight_sql.py URI TOKEN SQL [basic|bearer]

Authenticates with a basic-auth handshake (user `token`, the token as password) or with the
bearer header, runs SQL through a prepared statement (what ADBC's DB-API does), lists the
tables the server shows, and prints one JSON document:
{"columns": [...], "rows": [...], "tables": [...]}, or {"error": "..."} with exit code 3.
Run by crates/mesh-cli/tests/it/access.rs; needs `pip install adbc-driver-flightsql pyarrow`.
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql


def main() -> int:
    uri, token, sql = sys.argv[1:4]
    mode = sys.argv[4] if len(sys.argv) > 4 else "basic"
    if mode == "basic":
        options = {"username": "token", "password": token}
    else:
        header = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
        options = {header: f"Bearer {token}"}
    try:
        with flight_sql.connect(uri, db_kwargs=options) as conn:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                table = cursor.fetch_arrow_table()
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    except Exception as e:  # noqa: BLE001 - the test reads the message
        print(json.dumps({"error": str(e)}))
        return 3
    tables = sorted(
        f"{c['catalog_name']}.{s['db_schema_name']}.{t['table_name']}"
        for c in objects
        for s in c["catalog_db_schemas"] or []
        for t in s["db_schema_tables"] or []
    )
    print(
        json.dumps(
            {"columns": table.column_names, "rows": table.to_pylist(), "tables": tables},
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
