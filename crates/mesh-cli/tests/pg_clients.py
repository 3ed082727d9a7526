"""Real PostgreSQL clients against `mesh serve --pg-listen`: psycopg 3 (simple and extended
protocol, server-side parameters, binary results) and SQLAlchemy. Prints one JSON document of what
each client saw; the Rust test judges it. Usage: pg_clients.py HOST PORT USER TOKEN."""

import json
import sys

import psycopg
import sqlalchemy

host, port, user, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seen = {}


def error_of(e):
    return {"sqlstate": getattr(e, "sqlstate", None), "type": type(e).__name__, "message": str(e)}


dsn = f"host={host} port={port} user={user} password={token} dbname=mesh sslmode=disable"
with psycopg.connect(dsn, autocommit=True) as conn:
    seen["server_version"] = conn.info.parameter_status("server_version")
    # Extended protocol with a parameter, bound on the server.
    rows = conn.execute(
        "SELECT orders_id, amount FROM ecommerce.orders WHERE amount > %s ORDER BY orders_id",
        (10,),
    ).fetchall()
    seen["params"] = [[r[0], float(r[1])] for r in rows]
    # The same, prepared explicitly and run twice.
    with conn.cursor() as cur:
        for threshold in (0, 1000000):
            cur.execute(
                "SELECT count(*) FROM ecommerce.orders WHERE amount > %s", (threshold,), prepare=True
            )
            seen.setdefault("prepared", []).append(cur.fetchone()[0])
    # Binary results.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT orders_id, amount FROM ecommerce.orders ORDER BY orders_id LIMIT 2")
        seen["binary"] = [[r[0], float(r[1])] for r in cur.fetchall()]
    # The masked column: the grant does not cover it.
    rows = conn.execute("SELECT email FROM ecommerce.orders ORDER BY orders_id LIMIT 3").fetchall()
    seen["masked"] = [r[0] for r in rows]
    # A port with no grant, and a write.
    for name, sql in [
        ("ungranted", "SELECT * FROM ecommerce.customers"),
        ("write", "DELETE FROM ecommerce.orders"),
        ("ddl", "CREATE TABLE ecommerce.mine (a int)"),
        # Fails while its rows are produced, after the statement was described.
        ("cast", "SELECT orders_id, CAST(label AS INT) FROM ecommerce.orders"),
    ]:
        try:
            conn.execute(sql).fetchall()
            seen[name] = {"ok": True}
        except psycopg.Error as e:
            seen[name] = error_of(e)
    # Still usable after errors.
    seen["after_errors"] = conn.execute("SELECT 1 AS one").fetchone()[0]

# A cancel request (what psql's Ctrl-C sends) stops a long read with 57014; the connection goes on.
with psycopg.connect(dsn, autocommit=True) as conn:
    import threading
    import time

    cross = " CROSS JOIN ".join(f"ecommerce.orders t{i}" for i in range(9))
    # A filter over every row of the product, so no statistic answers it.
    cross += " WHERE " + " + ".join(f"t{i}.amount" for i in range(9)) + " > 0"
    timer = threading.Timer(1.0, conn.cancel_safe)
    timer.start()
    started = time.time()
    try:
        conn.execute(f"SELECT count(*) FROM {cross}").fetchall()
        seen["cancel"] = {"ok": True}
    except psycopg.Error as e:
        seen["cancel"] = error_of(e)
    seen["cancel_seconds"] = time.time() - started
    timer.join()
    seen["after_cancel"] = conn.execute("SELECT 2 AS two").fetchone()[0]

for name, kwargs in [
    ("wrong_password", {"password": "mesh_" + "0" * 64}),
    ("wrong_database", {"dbname": "postgres"}),
    ("wrong_user", {"user": "mallory"}),
]:
    params = {"host": host, "port": port, "user": user, "password": token, "dbname": "mesh",
              "sslmode": "disable"}
    params.update(kwargs)
    try:
        psycopg.connect(**params).close()
        seen[name] = {"ok": True}
    except psycopg.Error as e:
        seen[name] = error_of(e)

engine = sqlalchemy.create_engine(
    f"postgresql+psycopg://{user}:{token}@{host}:{port}/mesh?sslmode=disable"
)
with engine.connect() as conn:
    result = conn.execute(
        sqlalchemy.text(
            "SELECT orders_id, amount FROM ecommerce.orders WHERE amount > :least ORDER BY orders_id"
        ),
        {"least": 10},
    )
    seen["sqlalchemy"] = [[r[0], float(r[1])] for r in result]
    try:
        conn.execute(sqlalchemy.text("SELECT * FROM ecommerce.customers")).fetchall()
        seen["sqlalchemy_ungranted"] = {"ok": True}
    except sqlalchemy.exc.DBAPIError as e:
        seen["sqlalchemy_ungranted"] = error_of(e.orig)
    seen["sqlalchemy_tables"] = sorted(sqlalchemy.inspect(conn).get_table_names(schema="ecommerce"))

print(json.dumps(seen))
