//! Databases as contract servers (issue 20): `mesh test` runs a contract's checks in PostgreSQL,
//! MariaDB and SQLite. The tests create their own tables and write their own contracts.
//!
//! PostgreSQL and MariaDB come from `MESH_TEST_POSTGRES_URL` and `MESH_TEST_MYSQL_URL` (`.ci/run`
//! starts both); without them those tests print a notice and skip, and fail under CI=true.

use std::path::Path;

use crate::{code, mesh, mesh_with_env, notice, stderr, stdout};

/// A throwaway database of one kind, and how a contract's server entry names it.
struct Db {
    kind: &'static str,
    /// `type:` and the connection keys of the server entry.
    server: String,
    /// The database's own spelling of the column types the contract names.
    varchar20: &'static str,
    numeric: &'static str,
    /// Runs statements on the database.
    url: String,
    env: Vec<(String, String)>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a runtime")
}

fn required(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {var} is not set"
            );
            notice(&format!("notice: {var} not set; skipping the {what} tests"));
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Db {
    fn postgres(type_name: &str) -> Option<Db> {
        let admin = required("MESH_TEST_POSTGRES_URL", "PostgreSQL server")?;
        let name = unique("mesh_dbtest");
        let url = url::Url::parse(&admin).expect("a URL");
        runtime().block_on(async {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
        });
        let mut db_url = url.clone();
        db_url.set_path(&format!("/{name}"));
        Some(Db {
            kind: "postgres",
            server: format!(
                "type: {type_name}\n    host: {}\n    port: {}\n    database: {name}\n    schema: Sales",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().unwrap_or(5432)
            ),
            varchar20: "varchar(20)",
            numeric: "numeric(12,2)",
            url: db_url.to_string(),
            env: vec![(
                "DATACONTRACT_POSTGRES_USERNAME".into(),
                url.username().to_owned(),
            )],
        })
    }

    fn mysql() -> Option<Db> {
        let admin = required("MESH_TEST_MYSQL_URL", "MariaDB server")?;
        let name = unique("mesh_dbtest");
        let url = url::Url::parse(&admin).expect("a URL");
        runtime().block_on(async {
            use sqlx::Connection as _;
            let mut conn = sqlx::MySqlConnection::connect(&admin)
                .await
                .expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
        });
        let mut db_url = url.clone();
        db_url.set_path(&format!("/{name}"));
        Some(Db {
            kind: "mysql",
            server: format!(
                "type: mysql\n    host: {}\n    port: {}\n    database: {name}",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().unwrap_or(3306)
            ),
            varchar20: "varchar(20)",
            numeric: "decimal(12,2)",
            url: db_url.to_string(),
            env: vec![
                (
                    "DATACONTRACT_MYSQL_USERNAME".into(),
                    url.username().to_owned(),
                ),
                (
                    "DATACONTRACT_MYSQL_PASSWORD".into(),
                    url.password().unwrap_or_default().to_owned(),
                ),
            ],
        })
    }

    fn sqlite(dir: &Path) -> Db {
        let file = dir.join("shop.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        Db {
            kind: "sqlite",
            server: "type: custom\n    format: sqlite\n    path: shop.db".to_owned(),
            varchar20: "VARCHAR(20)",
            numeric: "NUMERIC(12,2)",
            url,
            env: vec![],
        }
    }

    /// Runs each statement, in order.
    fn exec(&self, statements: &[String]) {
        runtime().block_on(async {
            use sqlx::Connection as _;
            match self.kind {
                "postgres" => {
                    let mut c = sqlx::PgConnection::connect(&self.url)
                        .await
                        .expect("connect");
                    for s in statements {
                        sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                            .execute(&mut c)
                            .await
                            .expect(s);
                    }
                }
                "mysql" => {
                    let mut c = sqlx::MySqlConnection::connect(&self.url)
                        .await
                        .expect("connect");
                    for s in statements {
                        sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                            .execute(&mut c)
                            .await
                            .expect(s);
                    }
                }
                _ => {
                    let mut c = sqlx::SqliteConnection::connect(&self.url)
                        .await
                        .expect("connect");
                    for s in statements {
                        sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                            .execute(&mut c)
                            .await
                            .expect(s);
                    }
                }
            }
        });
    }

    /// The `Orders` table (a case-sensitive name), holding `rows`.
    fn orders(&self, rows: &[(&str, &str, &str, &str, &str)]) {
        let q = |name: &str| match self.kind {
            "mysql" => format!("`{name}`"),
            _ => format!("\"{name}\""),
        };
        let table = match self.kind {
            "postgres" => format!("{}.{}", q("Sales"), q("Orders")),
            _ => q("Orders"),
        };
        let ts = match self.kind {
            "postgres" => "timestamptz",
            "mysql" => "datetime(6)",
            _ => "TIMESTAMP",
        };
        let mut statements = Vec::new();
        if self.kind == "postgres" {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {}", q("Sales")));
        }
        statements.push(format!("DROP TABLE IF EXISTS {table}"));
        statements.push(format!(
            "CREATE TABLE {table} (order_id {} , status varchar(20) NOT NULL, amount {}, \
             email varchar(100), updated_at {ts})",
            self.varchar20, self.numeric
        ));
        for (id, status, amount, email, at) in rows {
            let text = |v: &str| {
                if v == "NULL" {
                    "NULL".to_owned()
                } else {
                    format!("'{v}'")
                }
            };
            statements.push(format!(
                "INSERT INTO {table} VALUES ({}, '{status}', {amount}, {}, '{at}')",
                text(id),
                text(email)
            ));
        }
        self.exec(&statements);
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

fn contract(db: &Db, order_id_type: &str) -> String {
    format!(
        r#"apiVersion: v3.1.0
kind: DataContract
id: shop.orders
name: orders
version: 1.0.0
status: active
servers:
  - server: db
    {server}
schema:
  - name: orders
    physicalName: Orders
    physicalType: table
    properties:
      - name: order_id
        logicalType: string
        physicalType: {order_id_type}
        required: true
        unique: true
        logicalTypeOptions:
          pattern: "^ORD-[0-9]+$"
          maxLength: 12
      - name: status
        logicalType: string
        required: true
        quality:
          - metric: invalidValues
            arguments:
              validValues: [open, shipped, cancelled]
            mustBe: 0
      - name: amount
        logicalType: number
        physicalType: {numeric}
        logicalTypeOptions:
          minimum: 0
      - name: email
        logicalType: string
        logicalTypeOptions:
          format: email
      - name: updated_at
        logicalType: timestamp
        required: true
    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
      - type: sql
        query: SELECT COUNT(*) FROM {{model}} WHERE amount > 1000
        mustBe: 0
slaProperties:
  - property: latency
    value: 1
    unit: d
    element: orders.updated_at
"#,
        server = db.server,
        numeric = db.numeric,
    )
}

fn now_minus_hours(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `mesh test` with JSON output: exit code and the checks as (type, field, result).
fn test(dir: &Path, db: &Db, extra: &[&str]) -> (i32, Vec<(String, String, String)>, String) {
    let mut args = vec!["test", "orders.odcs.yaml", "--output", "json"];
    args.extend_from_slice(extra);
    let out = mesh_with_env(dir, &args, &db.env());
    let text = stdout(&out);
    let checks = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["checks"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_owned(),
                c["field"].as_str().unwrap_or_default().to_owned(),
                c["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (code(&out), checks, format!("{text}{}", stderr(&out)))
}

fn outcome<'a>(checks: &'a [(String, String, String)], ty: &str, field: &str) -> &'a str {
    checks
        .iter()
        .find(|(t, f, _)| t == ty && f == field)
        .map_or("absent", |(_, _, r)| r.as_str())
}

/// Every check type passing on clean rows, then failing on rows that break each rule.
fn checks_pass_then_fail(db: &Db, dir: &Path) {
    let fresh = now_minus_hours(1);
    let good = [
        ("ORD-1", "open", "10.50", "a@shop.example", fresh.as_str()),
        (
            "ORD-2",
            "shipped",
            "99.99",
            "b@shop.example",
            fresh.as_str(),
        ),
        ("ORD-3", "cancelled", "0", "NULL", fresh.as_str()),
    ];
    db.orders(&good);
    std::fs::write(dir.join("orders.odcs.yaml"), contract(db, db.varchar20)).unwrap();
    let (status, checks, all) = test(dir, db, &[]);
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert!(
        checks.iter().all(|(_, _, r)| r == "passed"),
        "{}: {all}",
        db.kind
    );
    for (ty, field) in [
        ("field_type", "order_id"),
        ("field_required", "order_id"),
        ("field_unique", "order_id"),
        ("field_regex", "order_id"),
        ("field_max_length", "order_id"),
        ("field_invalid_values", "status"),
        ("field_minimum", "amount"),
        ("field_format", "email"),
        ("row_count", ""),
        ("model_quality_sql", ""),
        ("servicelevel_freshness", "updated_at"),
    ] {
        assert_eq!(
            outcome(&checks, ty, field),
            "passed",
            "{}: {ty} {field}",
            db.kind
        );
    }

    // Rows that break each rule; the newest is still fresh.
    let mut bad = good.to_vec();
    bad.extend([
        ("ORD-1", "open", "5", "c@shop.example", fresh.as_str()),
        ("NULL", "open", "5", "d@shop.example", fresh.as_str()),
        ("ord-x", "lost", "-1", "not-an-email", fresh.as_str()),
        (
            "ORD-12345678901",
            "open",
            "5000",
            "e@shop.example",
            fresh.as_str(),
        ),
    ]);
    db.orders(&bad);
    let (status, checks, all) = test(dir, db, &["--include-failed-samples", "2"]);
    assert_eq!(status, 1, "{}: {all}", db.kind);
    for (ty, field) in [
        ("field_required", "order_id"),
        ("field_unique", "order_id"),
        ("field_regex", "order_id"),
        ("field_max_length", "order_id"),
        ("field_invalid_values", "status"),
        ("field_minimum", "amount"),
        ("field_format", "email"),
        ("model_quality_sql", ""),
    ] {
        assert_eq!(
            outcome(&checks, ty, field),
            "failed",
            "{}: {ty} {field}: {all}",
            db.kind
        );
    }
    assert_eq!(outcome(&checks, "row_count", ""), "passed", "{}", db.kind);
    assert_eq!(
        outcome(&checks, "servicelevel_freshness", "updated_at"),
        "passed",
        "{}",
        db.kind
    );
    // Failed samples come from the database, offending rows only.
    assert!(all.contains("ord-x"), "{}: samples: {all}", db.kind);

    // Old data: the freshness SLA fails on the database column it names.
    let old = now_minus_hours(72);
    db.orders(&[("ORD-1", "open", "1", "a@shop.example", old.as_str())]);
    let (status, checks, all) = test(dir, db, &[]);
    assert_eq!(status, 1, "{}: {all}", db.kind);
    assert_eq!(
        outcome(&checks, "servicelevel_freshness", "updated_at"),
        "failed",
        "{}: {all}",
        db.kind
    );

    // A physical type other than the column's is reported in the database's words.
    std::fs::write(dir.join("orders.odcs.yaml"), contract(db, "varchar(40)")).unwrap();
    let (_, checks, all) = test(dir, db, &["--checks", "schema"]);
    assert_eq!(
        outcome(&checks, "field_type", "order_id"),
        "failed",
        "{}: {all}",
        db.kind
    );
    assert!(
        all.contains("expected physical type 'varchar(40)'"),
        "{all}"
    );
}

#[test]
fn postgres_checks_run_in_the_database() {
    for type_name in ["postgres", "postgresql"] {
        let Some(db) = Db::postgres(type_name) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        checks_pass_then_fail(&db, dir.path());
    }
}

#[test]
fn mariadb_checks_run_in_the_database() {
    let Some(db) = Db::mysql() else { return };
    let dir = tempfile::tempdir().unwrap();
    checks_pass_then_fail(&db, dir.path());
}

#[test]
fn sqlite_checks_run_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(dir.path());
    checks_pass_then_fail(&db, dir.path());
}

/// A rule that writes, in any disguise, is refused or fails on the read-only connection; the
/// table is intact afterwards.
#[test]
fn rules_that_write_cannot_change_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = vec![Db::sqlite(dir.path())];
    dbs.extend(Db::postgres("postgres"));
    dbs.extend(Db::mysql());
    for db in &dbs {
        let fresh = now_minus_hours(1);
        db.orders(&[("ORD-1", "open", "1", "a@shop.example", fresh.as_str())]);
        let writes = [
            "DELETE FROM {model}",
            "SELECT 1; DROP TABLE {model}",
            "WITH d AS (DELETE FROM {model} RETURNING *) SELECT COUNT(*) FROM d",
            "SELECT * INTO copied FROM {model}",
        ];
        let mut text = contract(db, db.varchar20);
        let rules: String = writes
            .iter()
            .map(|w| format!("      - type: sql\n        query: \"{w}\"\n        mustBe: 0\n"))
            .collect();
        text = text.replace(
            "    quality:\n      - metric: rowCount",
            &format!("    quality:\n{rules}      - metric: rowCount"),
        );
        std::fs::write(dir.path().join("orders.odcs.yaml"), &text).unwrap();
        let (status, checks, all) = test(dir.path(), db, &["--checks", "quality"]);
        assert_eq!(status, 2, "{}: {all}", db.kind);
        let errors = checks
            .iter()
            .filter(|(t, _, r)| t == "model_quality_sql" && r == "error")
            .count();
        assert_eq!(errors, writes.len(), "{}: {all}", db.kind);
        // A function that writes inside a plain SELECT meets the read-only session.
        if db.kind == "postgres" {
            db.exec(&["CREATE SEQUENCE IF NOT EXISTS s".to_owned()]);
            let text = contract(db, db.varchar20).replace(
                "SELECT COUNT(*) FROM {model} WHERE amount > 1000",
                "SELECT nextval('s') - nextval('s')",
            );
            std::fs::write(dir.path().join("orders.odcs.yaml"), &text).unwrap();
            let (_, checks, all) = test(dir.path(), db, &["--checks", "quality"]);
            assert_eq!(outcome(&checks, "model_quality_sql", ""), "error", "{all}");
            assert!(all.contains("read-only"), "{all}");
            // A rule cannot turn the session read-write for the rules after it.
            let text = contract(db, db.varchar20).replace(
                "      - type: sql\n        query: SELECT COUNT(*) FROM {model} WHERE amount > 1000\n        mustBe: 0\n",
                "      - type: sql\n        query: \"SELECT length(set_config('default_transaction_read_only', 'off', false)) - 3\"\n        mustBe: 0\n      - type: sql\n        query: \"SELECT nextval('s') - nextval('s') + 1\"\n        mustBe: 0\n",
            );
            std::fs::write(dir.path().join("orders.odcs.yaml"), &text).unwrap();
            let (_, checks, all) = test(dir.path(), db, &["--checks", "quality"]);
            let sql: Vec<&str> = checks
                .iter()
                .filter(|(t, _, _)| t == "model_quality_sql")
                .map(|(_, _, r)| r.as_str())
                .collect();
            assert_eq!(sql, ["passed", "error"], "{all}");
            assert!(all.contains("read-only"), "{all}");
        }
        // MariaDB runs what `/*M! ... */` holds; the parser saw a comment. INTO OUTFILE writes a
        // file even in a read-only session.
        if db.kind == "mysql" {
            let target = format!("/tmp/mesh-outfile-{}", std::process::id());
            let _ = std::fs::remove_file(&target);
            let text = contract(db, db.varchar20).replace(
                "SELECT COUNT(*) FROM {model} WHERE amount > 1000",
                &format!("SELECT 0 /*M!)) + 0.0E0 INTO OUTFILE '{target}' FROM DUAL WHERE ((1*/"),
            );
            std::fs::write(dir.path().join("orders.odcs.yaml"), &text).unwrap();
            let (_, _, all) = test(dir.path(), db, &["--checks", "quality"]);
            assert!(!Path::new(&target).exists(), "a rule wrote {target}: {all}");
        }
        // Still one row.
        std::fs::write(
            dir.path().join("orders.odcs.yaml"),
            contract(db, db.varchar20),
        )
        .unwrap();
        let (status, _, all) = test(dir.path(), db, &[]);
        assert_eq!(status, 0, "{}: {all}", db.kind);
    }
}

/// Connection problems: exit 2, a message naming the server entry (file:line:col) and what to
/// fix, and never the password.
#[test]
fn connection_problems_name_the_server_entry() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = Db {
        kind: "postgres",
        server: format!(
            "type: postgres\n    host: 127.0.0.1\n    port: {port}\n    database: shop\n    schema: public"
        ),
        varchar20: "varchar(20)",
        numeric: "numeric(12,2)",
        url: String::new(),
        env: vec![
            ("DATACONTRACT_POSTGRES_USERNAME".into(), "mesh".into()),
            (
                "DATACONTRACT_POSTGRES_PASSWORD".into(),
                "hunter2-secret".into(),
            ),
        ],
    };
    std::fs::write(
        dir.path().join("orders.odcs.yaml"),
        contract(&unreachable, "varchar(20)"),
    )
    .unwrap();
    let (status, _, all) = test(dir.path(), &unreachable, &[]);
    assert_eq!(status, 2, "{all}");
    assert!(all.contains("orders.odcs.yaml:8:"), "{all}");
    assert!(all.contains("server `db`"), "{all}");
    assert!(all.contains("cannot reach the server"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");

    // A missing SQLite file, and a missing table.
    let sqlite = Db::sqlite(dir.path());
    std::fs::write(
        dir.path().join("orders.odcs.yaml"),
        contract(&sqlite, "VARCHAR(20)"),
    )
    .unwrap();
    let (status, _, all) = test(dir.path(), &sqlite, &[]);
    assert_eq!(status, 2, "{all}");
    assert!(all.contains("no such database file"), "{all}");
    sqlite.exec(&["CREATE TABLE other (a INTEGER)".to_owned()]);
    let (status, checks, all) = test(dir.path(), &sqlite, &[]);
    assert_eq!(status, 2, "{all}");
    assert!(checks.iter().all(|(_, _, r)| r == "error"), "{all}");
    assert!(all.contains("there is no table `Orders`"), "{all}");

    // A wrong password (MariaDB checks passwords; the test PostgreSQL trusts).
    if let Some(mut db) = Db::mysql() {
        db.env.retain(|(k, _)| !k.ends_with("PASSWORD"));
        db.env
            .push(("DATACONTRACT_MYSQL_PASSWORD".into(), "wrong-hunter2".into()));
        std::fs::write(
            dir.path().join("orders.odcs.yaml"),
            contract(&db, "varchar(20)"),
        )
        .unwrap();
        let (status, _, all) = test(dir.path(), &db, &[]);
        assert_eq!(status, 2, "{all}");
        assert!(all.contains("refused the login"), "{all}");
        assert!(all.contains("DATACONTRACT_MYSQL_USERNAME"), "{all}");
        assert!(!all.contains("wrong-hunter2"), "{all}");
    }
}

/// A hostile `--filter` cannot smuggle a second statement.
#[test]
fn a_filter_is_one_condition() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(dir.path());
    let fresh = now_minus_hours(1);
    db.orders(&[("ORD-1", "open", "1", "a@shop.example", fresh.as_str())]);
    std::fs::write(
        dir.path().join("orders.odcs.yaml"),
        contract(&db, db.varchar20),
    )
    .unwrap();
    let (status, _, all) = test(
        dir.path(),
        &db,
        &["--filter", "1 = 1; DROP TABLE \"Orders\""],
    );
    assert_eq!(status, 2, "{all}");
    assert!(all.contains("--filter"), "{all}");
    let (status, _, all) = test(dir.path(), &db, &["--filter", "amount >= 0"]);
    assert_eq!(status, 0, "{all}");
}

/// A source product whose source is a live database table, run, and a derived product reading
/// its output; new rows in the table reach the next run. A source query that writes, a URL
/// with a password and a database outside the registered locations are refused.
fn source_product_reads_a_live_table(db: &Db, url: &str, table: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let env = db.env();
    let ok = |args: &[&str]| {
        let out = mesh_with_env(ws, args, &env);
        assert_eq!(
            code(&out),
            0,
            "{}: {args:?}\n{}{}",
            db.kind,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    let run = |dir: &str| -> (i32, serde_json::Value, String) {
        let out = mesh_with_env(ws, &["run", dir, "--output", "json"], &env);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        (
            code(&out),
            serde_json::from_str(&stdout(&out)).unwrap_or_default(),
            all,
        )
    };
    let rows = |n: usize| -> Vec<(String, String, String, String)> {
        (0..n)
            .map(|i| {
                (
                    format!("orders-{i:03}"),
                    ["north", "south"][i % 2].to_owned(),
                    format!("{}.25", i * 3),
                    now_minus_hours(1),
                )
            })
            .collect()
    };
    let fill = |n: usize| {
        let q = |name: &str| match db.kind {
            "mysql" => format!("`{name}`"),
            _ => format!("\"{name}\""),
        };
        let t = match table.split_once('.') {
            Some((s, t)) => format!("{}.{}", q(s), q(t)),
            None => q(table),
        };
        let ts = if db.kind == "postgres" {
            "timestamptz"
        } else {
            "TIMESTAMP"
        };
        let mut statements = Vec::new();
        if let Some((schema, _)) = table.split_once('.') {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {}", q(schema)));
        }
        statements.push(format!("DROP TABLE IF EXISTS {t}"));
        statements.push(format!(
            "CREATE TABLE {t} (orders_id varchar(20) NOT NULL, label varchar(20), \
             amount {}, updated_at {ts})",
            db.numeric
        ));
        for (id, label, amount, at) in rows(n) {
            statements.push(format!(
                "INSERT INTO {t} VALUES ('{id}', '{label}', {amount}, '{at}')"
            ));
        }
        db.exec(&statements);
    };
    fill(10);
    crate::two_domains(ws, Some(("customer_orders", "derived")), &env);
    let descriptor = ws.join("ecommerce/orders/product.odps.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap();
    let source_block =
        "      - name: raw_orders\n        path: data/orders.csv\n        format: csv\n";
    assert!(text.contains(source_block), "{text}");
    // The product's sources at a product version (each change is published as a new one).
    let with = |version: &str, block: &str| {
        let changed = text
            .replacen("version: 0.1.0", &format!("version: {version}"), 1)
            .replace(source_block, block);
        std::fs::write(&descriptor, changed).unwrap();
    };

    // Not under a registered location: refused, as for files.
    with(
        "0.1.0",
        &format!("      - name: raw_orders\n        path: {url}\n        table: {table}\n"),
    );
    ok(&["publish", "ecommerce/orders", "analytics/customer_orders"]);
    let (status, _, all) = run("ecommerce/orders");
    assert_eq!(status, 2, "{}: {all}", db.kind);
    assert!(all.contains("mesh location add"), "{}: {all}", db.kind);

    ok(&["location", "add", "crm", url, "--domain", "ecommerce"]);
    let (status, source, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(source["published"], true, "{}: {source}", db.kind);
    assert_eq!(
        (source["rows"].as_i64(), source["rowsIn"].as_i64()),
        (Some(10), Some(10)),
        "{}: {source}",
        db.kind
    );
    crate::grant_input(
        ws,
        "analytics.customer_orders",
        "ecommerce.orders.orders",
        &env,
        None,
    );
    let (status, derived, all) = run("analytics/customer_orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(derived["rows"], 10, "{}: {derived}", db.kind);

    // A transform that only counts a source's rows (a scan with no columns).
    let transform = ws.join("ecommerce/orders/transform.sql");
    let original = std::fs::read_to_string(&transform).unwrap();
    std::fs::write(
        &transform,
        original.replace(
            "WHERE orders_id IS NOT NULL",
            "WHERE orders_id IS NOT NULL AND (SELECT COUNT(*) FROM raw_orders) > 0",
        ),
    )
    .unwrap();
    let (status, counted, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(counted["rows"], 10, "{}: {counted}", db.kind);
    std::fs::write(&transform, original).unwrap();

    // The table moved on: the next run reads it as it is now.
    fill(13);
    let (status, source, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(source["rows"], 13, "{}: {source}", db.kind);
    let out = ok(&[
        "query",
        "SELECT COUNT(*) AS n, SUM(amount) AS total FROM ecommerce.orders",
        "--output",
        "json",
    ]);
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total: f64 = (0..13).map(|i| (i * 3) as f64 + 0.25).sum();
    assert_eq!(answer["rows"][0]["n"], 13, "{}: {answer}", db.kind);
    assert!(
        (answer["rows"][0]["total"].as_f64().unwrap_or(0.0) - total).abs() < 1e-6,
        "{}: {answer}",
        db.kind
    );

    // A read-only query as the source.
    let quoted = match db.kind {
        "postgres" => "\\\"Sales\\\".\\\"Orders\\\"",
        "mysql" => "`Orders`",
        _ => "\\\"Orders\\\"",
    };
    with(
        "0.1.1",
        &format!(
            "      - name: raw_orders\n        path: {url}\n        query: \"SELECT * FROM {quoted} WHERE label = 'north'\"\n"
        ),
    );
    ok(&["publish", "ecommerce/orders"]);
    let (status, source, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(source["rows"], 7, "{}: {source}", db.kind);

    // A source query that writes never runs.
    for (version, bad) in [
        ("0.1.2", format!("DELETE FROM {quoted}")),
        ("0.1.3", format!("SELECT 1; DROP TABLE {quoted}")),
    ] {
        with(
            version,
            &format!("      - name: raw_orders\n        path: {url}\n        query: \"{bad}\"\n"),
        );
        ok(&["publish", "ecommerce/orders"]);
        let (status, _, all) = run("ecommerce/orders");
        assert_eq!(status, 2, "{}: {bad}: {all}", db.kind);
        assert!(all.contains("must be one query"), "{}: {all}", db.kind);
    }
    // On MySQL a database is a schema of the same connection: a source query may not read
    // another one.
    if db.kind == "mysql" {
        with(
            "0.1.4",
            &format!(
                "      - name: raw_orders\n        path: {url}\n        query: \"SELECT * FROM mysql.user\"\n"
            ),
        );
        ok(&["publish", "ecommerce/orders"]);
        let (status, _, all) = run("ecommerce/orders");
        assert_eq!(status, 2, "{all}");
        assert!(all.contains("reads only its own database"), "{all}");
    }
    // Still all there.
    let out = ok(&[
        "query",
        "SELECT COUNT(*) AS n FROM ecommerce.orders",
        "--output",
        "json",
    ]);
    assert!(
        out.contains("\"n\": 7") || out.contains("\"n\":7"),
        "{}: {out}",
        db.kind
    );

    // Incremental: the first run loads every row and records the greatest `amount` in its
    // commit; each later run appends only the rows above it, and a run with nothing new
    // commits nothing.
    fill(5);
    let add = |rows: &[(&str, &str)]| {
        let t = match (db.kind, table.split_once('.')) {
            ("mysql", _) => format!("`{table}`"),
            (_, Some((s, t))) => format!("\"{s}\".\"{t}\""),
            (_, None) => format!("\"{table}\""),
        };
        let at = now_minus_hours(1);
        let statements: Vec<String> = rows
            .iter()
            .map(|(id, amount)| {
                format!("INSERT INTO {t} VALUES ('{id}', 'east', {amount}, '{at}')")
            })
            .collect();
        db.exec(&statements);
    };
    let count = || -> i64 {
        let out = ok(&[
            "query",
            "SELECT COUNT(*) AS n FROM ecommerce.orders",
            "--output",
            "json",
        ]);
        let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
        answer["rows"][0]["n"].as_i64().unwrap_or(-1)
    };
    with(
        "0.1.5",
        &format!(
            "      - name: raw_orders\n        path: {url}\n        table: {table}\n        incremental: amount\n"
        ),
    );
    ok(&["publish", "ecommerce/orders"]);
    let (status, first, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(first["rows"], 5, "{}: {first}", db.kind);
    assert_eq!(count(), 5, "{}: the first run replaces the table", db.kind);

    add(&[
        ("orders-105", "15.25"),
        ("orders-106", "18.25"),
        ("orders-107", "21.25"),
    ]);
    let (status, second, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(
        (second["rows"].as_i64(), second["rowsIn"].as_i64()),
        (Some(3), Some(3)),
        "{}: only the new rows are read: {second}",
        db.kind
    );
    assert_eq!(
        second["deltaVersion"].as_i64(),
        first["deltaVersion"].as_i64().map(|v| v + 1),
        "{}: {second}",
        db.kind
    );
    assert_eq!(count(), 8, "{}: appended", db.kind);

    let (status, idle, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(idle["published"], false, "{}: {idle}", db.kind);
    assert!(
        idle["skipped"]
            .as_str()
            .unwrap_or_default()
            .contains("no new rows"),
        "{}: {idle}",
        db.kind
    );
    let runs = ok(&["runs", "ecommerce.orders", "--output", "json"]);
    assert!(runs.contains("\"skipped\""), "{}: {runs}", db.kind);
    assert_eq!(count(), 8, "{}", db.kind);

    // A row that arrives late below the mark is not read again (documented); rows above it are.
    add(&[("orders-108", "1.00"), ("orders-109", "99.25")]);
    let (status, late, all) = run("ecommerce/orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(late["rows"], 1, "{}: {late}", db.kind);
    assert_eq!(count(), 9, "{}", db.kind);

    // The derived product downstream reads the appended table.
    let (status, derived, all) = run("analytics/customer_orders");
    assert_eq!(status, 0, "{}: {all}", db.kind);
    assert_eq!(derived["rows"], 9, "{}: {derived}", db.kind);

    // A full refresh reads everything again and replaces the table.
    let out = mesh_with_env(
        ws,
        &[
            "run",
            "ecommerce/orders",
            "--full-refresh",
            "--output",
            "json",
        ],
        &env,
    );
    let refreshed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    assert_eq!(
        code(&out),
        0,
        "{}: {}{}",
        db.kind,
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(refreshed["rows"], 10, "{}: {refreshed}", db.kind);
    assert_eq!(count(), 10, "{}", db.kind);

    // A watermark column the source does not have is named in the error.
    with(
        "0.1.6",
        &format!(
            "      - name: raw_orders\n        path: {url}\n        table: {table}\n        incremental: no_such_column\n"
        ),
    );
    ok(&["publish", "ecommerce/orders"]);
    let (status, _, all) = run("ecommerce/orders");
    assert_ne!(status, 0, "{}: {all}", db.kind);
    assert!(
        all.contains("`incremental: no_such_column` names no column"),
        "{}: {all}",
        db.kind
    );
    assert_eq!(count(), 10, "{}: nothing lost", db.kind);
}

#[test]
fn source_products_read_live_database_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = Db::sqlite(tmp.path());
    let file = tmp.path().join("shop.db");
    sqlite.exec(&["CREATE TABLE IF NOT EXISTS seed (a INTEGER)".to_owned()]);
    source_product_reads_a_live_table(&sqlite, &format!("sqlite://{}", file.display()), "Orders");
    if let Some(pg) = Db::postgres("postgres") {
        let base = url::Url::parse(&pg.url).unwrap();
        let url = format!(
            "postgres://{}:{}{}",
            base.host_str().unwrap(),
            base.port().unwrap_or(5432),
            base.path()
        );
        source_product_reads_a_live_table(&pg, &url, "Sales.Orders");
    }
    if let Some(maria) = Db::mysql() {
        let base = url::Url::parse(&maria.url).unwrap();
        let url = format!(
            "mysql://{}:{}{}",
            base.host_str().unwrap(),
            base.port().unwrap_or(3306),
            base.path()
        );
        source_product_reads_a_live_table(&maria, &url, "Orders");
    }
}

/// `mesh import` from each database and from files: the contract it writes lints clean and
/// `mesh test` passes on the data it came from; keys, nullability and comments carry over.
#[test]
fn imported_contracts_lint_and_test_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let sqlite = Db::sqlite(ws);
    let mut dbs = vec![(sqlite, format!("{}", ws.join("shop.db").display()))];
    if let Some(pg) = Db::postgres("postgres") {
        let url = pg.url.clone();
        dbs.push((pg, url));
    }
    if let Some(maria) = Db::mysql() {
        let base = url::Url::parse(&maria.url).unwrap();
        let url = format!(
            "mysql://{}@{}:{}{}",
            base.username(),
            base.host_str().unwrap(),
            base.port().unwrap_or(3306),
            base.path()
        );
        dbs.push((maria, url));
    }
    let out = mesh(ws, &["init"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    for (db, source) in &dbs {
        let q = |name: &str| match db.kind {
            "mysql" => format!("`{name}`"),
            _ => format!("\"{name}\""),
        };
        let (table, at) = match db.kind {
            "postgres" => (format!("{}.{}", q("Sales"), q("OrderLines")), "timestamptz"),
            "mysql" => (q("OrderLines"), "datetime(6)"),
            _ => (q("OrderLines"), "TIMESTAMP"),
        };
        let comment = |text: &str| {
            if db.kind == "mysql" {
                format!(" COMMENT '{text}'")
            } else {
                String::new()
            }
        };
        let mut statements = Vec::new();
        if db.kind == "postgres" {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {}", q("Sales")));
        }
        statements.push(format!(
            "CREATE TABLE {table} (order_id varchar(12) NOT NULL{}, line_no integer NOT NULL, \
             sku varchar(20) NOT NULL, quantity integer, price {}, shipped_at {at}, \
             PRIMARY KEY (order_id, line_no), UNIQUE (sku))",
            comment("The order the line belongs to."),
            db.numeric
        ));
        if db.kind == "postgres" {
            statements.push(format!(
                "COMMENT ON COLUMN {table}.order_id IS 'The order the line belongs to.'"
            ));
            statements.push(format!(
                "COMMENT ON TABLE {table} IS 'One row per order line.'"
            ));
        }
        for i in 0..5 {
            statements.push(format!(
                "INSERT INTO {table} VALUES ('ORD-{}', {}, 'SKU-{i}', {i}, {i}.5, '2026-12-01 10:00:00')",
                i / 2,
                i % 2 + 1
            ));
        }
        db.exec(&statements);
        let file = format!("contracts/{}.odcs.yaml", db.kind);
        let table_arg = if db.kind == "postgres" {
            "Sales.OrderLines"
        } else {
            "OrderLines"
        };
        let out = mesh_with_env(
            ws,
            &[
                "import", "--from", db.kind, source, "--table", table_arg, "-o", &file,
            ],
            &db.env(),
        );
        assert_eq!(
            code(&out),
            0,
            "{}: {}{}",
            db.kind,
            stdout(&out),
            stderr(&out)
        );
        let text = std::fs::read_to_string(ws.join(&file)).unwrap();
        assert!(
            text.contains("physicalName: OrderLines"),
            "{}: {text}",
            db.kind
        );
        assert!(
            text.contains("primaryKeyPosition: 2"),
            "{}: {text}",
            db.kind
        );
        assert!(text.contains("unique: true"), "{}: {text}", db.kind);
        assert!(
            !text.contains("mesh-test"),
            "{}: a password: {text}",
            db.kind
        );
        if db.kind != "sqlite" {
            assert!(
                text.contains("The order the line belongs to."),
                "{}: {text}",
                db.kind
            );
        }
        let out = mesh_with_env(ws, &["lint", &file], &db.env());
        assert_eq!(
            code(&out),
            0,
            "{}: lint: {}{}\n{text}",
            db.kind,
            stdout(&out),
            stderr(&out)
        );
        let out = mesh_with_env(ws, &["test", &file], &db.env());
        assert_eq!(
            code(&out),
            0,
            "{}: test: {}{}\n{text}",
            db.kind,
            stdout(&out),
            stderr(&out)
        );
        // Writing over an existing contract is refused.
        let out = mesh_with_env(
            ws,
            &[
                "import", "--from", db.kind, source, "--table", table_arg, "-o", &file,
            ],
            &db.env(),
        );
        assert_eq!(code(&out), 2, "{}", db.kind);

        // A source product scaffolded around the imported contract reads the table it came
        // from: it lints, publishes and runs as generated (once the database is registered).
        let name = format!("lines_{}", db.kind);
        let folder = format!("shop/{name}");
        let ok = |args: &[&str]| {
            let out = mesh_with_env(ws, args, &db.env());
            assert_eq!(
                code(&out),
                0,
                "{}: {args:?}: {}{}",
                db.kind,
                stdout(&out),
                stderr(&out)
            );
            stdout(&out)
        };
        let said = ok(&[
            "new",
            "product",
            &name,
            "--domain",
            "shop",
            "--owner",
            "shop-team",
            "--from-contract",
            &file,
        ]);
        assert!(said.contains("mesh location add"), "{}: {said}", db.kind);
        let descriptor =
            std::fs::read_to_string(ws.join(&folder).join("product.odps.yaml")).unwrap();
        let url = descriptor
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("path: "))
            .map(|p| p.trim_matches('"').to_owned())
            .unwrap_or_default();
        assert!(
            url.starts_with(&format!("{}://", db.kind)),
            "{}: {descriptor}",
            db.kind
        );
        assert!(!url.contains('@'), "{}: no user in {url}", db.kind);
        let contract =
            std::fs::read_to_string(ws.join(&folder).join(format!("contracts/{name}.odcs.yaml")))
                .unwrap();
        assert!(
            contract.contains("primaryKeyPosition: 2"),
            "{}: the composite key stays composite: {contract}",
            db.kind
        );
        ok(&["lint", &folder]);
        ok(&[
            "location",
            "add",
            &format!("crm_{}", db.kind),
            &url,
            "--domain",
            "shop",
        ]);
        ok(&["publish", &folder]);
        let out = ok(&["run", &folder, "--output", "json"]);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(report["published"], true, "{}: {out}", db.kind);
        assert_eq!(report["rows"], 5, "{}: {out}", db.kind);
    }

    // From files: the schema of the Parquet people, tested where they are.
    let people = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/test/people/people.parquet")
        .canonicalize()
        .unwrap();
    let out = mesh(
        ws,
        &[
            "import",
            "--from",
            "parquet",
            people.to_str().unwrap(),
            "--id",
            "people",
            "-o",
            "people.odcs.yaml",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(ws.join("people.odcs.yaml")).unwrap();
    assert!(text.contains("logicalType: timestamp"), "{text}");
    let out = mesh(ws, &["lint", "people.odcs.yaml"]);
    assert_eq!(code(&out), 0, "{}{}\n{text}", stdout(&out), stderr(&out));
    let out = mesh(ws, &["test", "people.odcs.yaml"]);
    assert_eq!(code(&out), 0, "{}{}\n{text}", stdout(&out), stderr(&out));

    // Nothing there: a clear error.
    let out = mesh(
        ws,
        &["import", "--from", "sqlite", "missing.db", "--table", "t"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no such SQLite database file"),
        "{}",
        stderr(&out)
    );
}

/// A rule that would run for ever ends at the statement timeout, as an error of that rule.
#[test]
fn a_rule_that_runs_forever_is_stopped() {
    let Some(mut db) = Db::postgres("postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fresh = now_minus_hours(1);
    db.orders(&[("ORD-1", "open", "1", "a@shop.example", fresh.as_str())]);
    db.env
        .push(("MESH_DB_STATEMENT_TIMEOUT".into(), "1".into()));
    let text = contract(&db, db.varchar20).replace(
        "SELECT COUNT(*) FROM {model} WHERE amount > 1000",
        "SELECT COUNT(*) FROM pg_sleep(3600)",
    );
    std::fs::write(dir.path().join("orders.odcs.yaml"), &text).unwrap();
    let started = std::time::Instant::now();
    let (status, checks, all) = test(dir.path(), &db, &["--checks", "quality"]);
    assert_eq!(status, 2, "{all}");
    assert_eq!(outcome(&checks, "model_quality_sql", ""), "error", "{all}");
    assert!(all.contains("statement timeout"), "{all}");
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
}

/// Duplicate keys counted in the database are exact on every path: many repeated keys (PostgreSQL
/// groups each hash part exactly), a few (the repeated hashes' keys grouped), a composite and a
/// non-text key (the row hash), a unique constraint (no scan at all), and any number of
/// PostgreSQL connections. The same table gives the same numbers on all three databases.
#[test]
fn duplicates_are_counted_exactly_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = vec![Db::sqlite(dir.path())];
    dbs.extend(Db::postgres("postgres"));
    dbs.extend(Db::mysql());
    for db in &dbs {
        let q = |name: &str| match db.kind {
            "mysql" => format!("`{name}`"),
            _ => format!("\"{name}\""),
        };
        let table = match db.kind {
            "postgres" => format!("{}.{}", q("Sales"), q("Keys")),
            _ => q("Keys"),
        };
        let mut statements = Vec::new();
        if db.kind == "postgres" {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {}", q("Sales")));
        }
        statements.push(format!(
            "CREATE TABLE {table} (code varchar(20), many varchar(20), region varchar(10), \
             n integer, uid integer UNIQUE)"
        ));
        let rows: Vec<String> = (1..=8000)
            .map(|i: i64| {
                let code = if i > 7995 { i - 7995 } else { i };
                format!(
                    "('C{code}', 'M{}', 'R{}', {}, {i})",
                    i % 5000,
                    i / 6000,
                    i % 7000
                )
            })
            .collect();
        for chunk in rows.chunks(500) {
            statements.push(format!("INSERT INTO {table} VALUES {}", chunk.join(", ")));
        }
        // Null keys are never duplicates.
        statements.push(format!(
            "INSERT INTO {table} VALUES (NULL, NULL, NULL, NULL, NULL), (NULL, NULL, NULL, NULL, NULL)"
        ));
        db.exec(&statements);
        let contract = format!(
            r#"apiVersion: v3.1.0
kind: DataContract
id: shop.keys
name: keys
version: 1.0.0
status: active
servers:
  - server: db
    {}
schema:
  - name: keys
    physicalName: Keys
    properties:
      - name: code
        logicalType: string
        unique: true
      - name: many
        logicalType: string
        unique: true
        primaryKey: true
        primaryKeyPosition: 2
      - name: region
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: n
        logicalType: integer
        unique: true
      - name: uid
        logicalType: integer
        unique: true
"#,
            db.server
        );
        std::fs::write(dir.path().join("keys.odcs.yaml"), &contract).unwrap();
        let settings: &[&str] = if db.kind == "postgres" {
            &["1", "2", "3"]
        } else {
            &["2"]
        };
        for parallel in settings {
            let mut env = db.env();
            env.push(("MESH_DB_PARALLEL", parallel));
            let out = mesh_with_env(
                dir.path(),
                &["test", "keys.odcs.yaml", "--output", "json"],
                &env,
            );
            let text = stdout(&out);
            let all = format!("{text}{}", stderr(&out));
            assert_eq!(code(&out), 1, "{} {parallel}: {all}", db.kind);
            let report: serde_json::Value = serde_json::from_str(&text).expect("json");
            let measured = |ty: &str, field: &str| -> (i64, i64) {
                let check = report["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == ty && c["field"].as_str().unwrap_or_default() == field)
                    .unwrap_or_else(|| panic!("{} {ty} {field}: {all}", db.kind));
                let d = &check["diagnostics"];
                let rows = d["row_count"].as_f64().unwrap_or(0.0);
                (
                    d["value"].as_f64().unwrap_or(-1.0) as i64,
                    (d["failed_fraction"].as_f64().unwrap_or(0.0) * rows).round() as i64,
                )
            };
            let context = format!("{} with MESH_DB_PARALLEL={parallel}", db.kind);
            assert_eq!(
                measured("field_unique", "code"),
                (5, 10),
                "{context}: {all}"
            );
            assert_eq!(
                measured("field_unique", "many"),
                (3000, 6000),
                "{context}: {all}"
            );
            assert_eq!(
                measured("field_unique", "n"),
                (1000, 2000),
                "{context}: {all}"
            );
            assert_eq!(measured("field_unique", "uid"), (0, 0), "{context}: {all}");
            assert_eq!(
                measured("model_primary_key_unique", ""),
                (999, 1998),
                "{context}: {all}"
            );
        }
    }
}

/// A filter pushed into the database never loses a row the read itself keeps: values the read
/// converts are compared as read — SQLite text in an INTEGER column (read as 0), a boolean
/// stored as 2 (read as true), a MySQL JSON document compared as its text — and a text literal
/// against a PostgreSQL `uuid` is no error.
#[test]
fn pushed_filters_keep_every_row_the_read_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = vec![Db::sqlite(dir.path())];
    dbs.extend(Db::postgres("postgres"));
    dbs.extend(Db::mysql());
    for db in &dbs {
        let (create, rows, url, table) = match db.kind {
            "sqlite" => (
                "CREATE TABLE odd (n INTEGER, flag BOOLEAN, doc TEXT)",
                vec!["INSERT INTO odd VALUES ('abc', 2, '{\"a\": 1}')"],
                format!("sqlite://{}", dir.path().join("shop.db").display()),
                "odd",
            ),
            "postgres" => (
                "CREATE TABLE odd (n integer, flag boolean, doc text, u uuid)",
                vec![
                    "INSERT INTO odd VALUES (0, true, '{\"a\": 1}', \
                     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
                ],
                db.url.clone(),
                "public.odd",
            ),
            _ => (
                "CREATE TABLE odd (n int, flag tinyint(1), doc json)",
                vec!["INSERT INTO odd VALUES (0, 2, '{\"a\": 1}')"],
                {
                    let mut url = url::Url::parse(&db.url).unwrap();
                    let _ = url.set_password(None);
                    url.to_string()
                },
                "odd",
            ),
        };
        let mut statements = vec!["DROP TABLE IF EXISTS odd".to_owned(), create.to_owned()];
        statements.extend(rows.iter().map(|s| s.to_string()));
        db.exec(&statements);
        let login = |suffix: &str| {
            db.env
                .iter()
                .find(|(k, _)| k.ends_with(suffix))
                .map(|(_, v)| v.clone())
        };
        let (user, password) = (login("_USERNAME"), login("_PASSWORD"));
        let counted = |sql: &str| -> Result<usize, String> {
            runtime().block_on(async {
                let mut target =
                    mesh_engine::db::Target::from_url(&url, "odd").map_err(|e| e.to_string())?;
                if let Some(user) = &user {
                    target = target.with_login(user, password.as_deref());
                }
                let table = mesh_engine::db::source::DbTable::open(
                    &target,
                    &mesh_engine::db::source::Relation::Table(table.to_owned()),
                )
                .await
                .map_err(|e| e.to_string())?;
                let ctx = mesh_engine::session();
                ctx.register_table("odd", std::sync::Arc::new(table))
                    .map_err(|e| e.to_string())?;
                let batches = ctx
                    .sql(sql)
                    .await
                    .map_err(|e| e.to_string())?
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(batches.iter().map(|b| b.num_rows()).sum())
            })
        };
        let context = db.kind;
        assert_eq!(
            counted("SELECT * FROM odd WHERE n < 5"),
            Ok(1),
            "{context}: n < 5"
        );
        assert_eq!(
            counted("SELECT * FROM odd WHERE flag = true"),
            Ok(1),
            "{context}: flag = true"
        );
        assert_eq!(
            counted("SELECT * FROM odd WHERE doc = '{\"a\": 1}'"),
            Ok(1),
            "{context}: doc as text"
        );
        if db.kind == "postgres" {
            assert_eq!(
                counted("SELECT * FROM odd WHERE u = 'not-a-uuid'"),
                Ok(0),
                "{context}: a uuid compared with other text"
            );
        }
    }
}

/// MySQL's zero dates (`0000-00-00`, allowed by a lax `sql_mode`) read as null even in a
/// `NOT NULL` column: the read must say so instead of failing the whole scan.
#[test]
fn zero_dates_read_as_null_in_not_null_columns() {
    let Some(db) = Db::mysql() else { return };
    db.exec(&[
        "SET SESSION sql_mode = ''".to_owned(),
        "DROP TABLE IF EXISTS zd".to_owned(),
        "CREATE TABLE zd (id int NOT NULL, d date NOT NULL, t datetime NOT NULL)".to_owned(),
        "INSERT INTO zd VALUES (1, '0000-00-00', '0000-00-00 00:00:00'), \
         (2, '2026-12-05', '2026-12-05 10:00:00')"
            .to_owned(),
    ]);
    let mut url = url::Url::parse(&db.url).unwrap();
    let _ = url.set_password(None);
    let login = |suffix: &str| {
        db.env
            .iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| v.clone())
    };
    let (user, password) = (login("_USERNAME"), login("_PASSWORD"));
    let counted = |sql: &str| -> Result<usize, String> {
        runtime().block_on(async {
            let mut target =
                mesh_engine::db::Target::from_url(url.as_str(), "zd").map_err(|e| e.to_string())?;
            if let Some(user) = &user {
                target = target.with_login(user, password.as_deref());
            }
            let table = mesh_engine::db::source::DbTable::open(
                &target,
                &mesh_engine::db::source::Relation::Table("zd".to_owned()),
            )
            .await
            .map_err(|e| e.to_string())?;
            let ctx = mesh_engine::session();
            ctx.register_table("zd", std::sync::Arc::new(table))
                .map_err(|e| e.to_string())?;
            let batches = ctx
                .sql(sql)
                .await
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok(batches.iter().map(|b| b.num_rows()).sum())
        })
    };
    assert_eq!(counted("SELECT * FROM zd"), Ok(2));
    assert_eq!(
        counted("SELECT id FROM zd WHERE d IS NULL AND t IS NULL"),
        Ok(1)
    );
}

/// A large PostgreSQL table is checked over connections of its own, by block ranges, with the
/// repeated keys' rows fetched by address; forced onto a small table (`MESH_DB_SPLIT_BLOCKS=0`),
/// that path measures exactly what the single path does: counts, bounds, the newest and oldest
/// instants, duplicates (a few, fetched by address; many, grouped per part), with and without
/// a filter, on two and three connections.
#[test]
fn split_tables_measure_what_one_scan_does() {
    let Some(db) = Db::postgres("postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    db.exec(&[
        "CREATE SCHEMA \"Sales\"".to_owned(),
        "CREATE TABLE \"Sales\".\"Events\" (id text, kin text, note text, amount numeric(10,2), \
         at timestamptz)"
            .to_owned(),
        // E1..E10 twice; kin repeats 2,500 values (over two parts, more than a part fetches by address); a
        // null note every 100 rows; amounts from -3; instants from an hour to two weeks ago.
        "INSERT INTO \"Sales\".\"Events\" SELECT 'E' || CASE WHEN g > 19990 THEN g - 19990 \
         ELSE g END, 'K' || (g % 17500), CASE WHEN g % 100 = 0 THEN NULL ELSE 'n' END, \
         (g % 500) - 3, now() - interval '1 hour' - g * interval '1 minute' \
         FROM generate_series(1, 20000) AS g"
            .to_owned(),
        "INSERT INTO \"Sales\".\"Events\" VALUES (NULL, NULL, 'n', 1, NULL), \
         (NULL, NULL, 'n', 1, NULL)"
            .to_owned(),
    ]);
    let contract = format!(
        r#"apiVersion: v3.1.0
kind: DataContract
id: sales.events
name: events
version: 1.0.0
status: active
servers:
  - server: db
    {}
schema:
  - name: events
    physicalName: Events
    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
    properties:
      - name: id
        logicalType: string
        unique: true
      - name: kin
        logicalType: string
        unique: true
      - name: note
        logicalType: string
        quality:
          - metric: nullValues
            mustBe: 0
      - name: amount
        logicalType: number
        logicalTypeOptions:
          minimum: 0
          maximum: 400
      - name: at
        logicalType: timestamp
slaProperties:
  - property: latency
    value: 1
    unit: d
    element: events.at
  - property: retention
    value: 7
    unit: d
    element: events.at
"#,
        db.server
    );
    std::fs::write(dir.path().join("events.odcs.yaml"), contract).unwrap();
    let run = |split: &str, parallel: &str, filter: Option<&str>| {
        let mut env = db.env();
        env.push(("MESH_DB_SPLIT_BLOCKS", split));
        env.push(("MESH_DB_PARALLEL", parallel));
        let mut args = vec!["test", "events.odcs.yaml", "--output", "json"];
        if let Some(filter) = filter {
            args.extend(["--filter", filter]);
        }
        let out = mesh_with_env(dir.path(), &args, &env);
        let text = stdout(&out);
        let all = format!("{text}{}", stderr(&out));
        assert_eq!(code(&out), 1, "{all}");
        let report: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mut seen: Vec<(String, String, String, i64, i64)> = report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let d = &c["diagnostics"];
                let rows = d["row_count"].as_f64().unwrap_or(-1.0);
                let value = d["value"].as_f64().unwrap_or(-1.0);
                // Ages move with the clock: compare them to the hour.
                let value = if c["type"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("servicelevel")
                {
                    (value / 3600.0).round()
                } else {
                    value
                };
                (
                    c["type"].as_str().unwrap_or_default().to_owned(),
                    c["field"].as_str().unwrap_or_default().to_owned(),
                    c["result"].as_str().unwrap_or_default().to_owned(),
                    value as i64,
                    (d["failed_fraction"].as_f64().unwrap_or(0.0) * rows).round() as i64,
                )
            })
            .collect();
        seen.sort();
        (seen, all)
    };
    let find = |seen: &[(String, String, String, i64, i64)], ty: &str, field: &str| {
        seen.iter()
            .find(|c| c.0 == ty && c.1 == field)
            .map(|c| (c.3, c.4))
            .unwrap_or_else(|| panic!("no {ty} {field} in {seen:?}"))
    };
    for filter in [None, Some("amount >= 0")] {
        let (single, all) = run("1000000000", "2", filter);
        // The single path's answers, checked once against the rows written.
        if filter.is_none() {
            assert_eq!(find(&single, "field_unique", "id"), (10, 20), "{all}");
            assert_eq!(find(&single, "field_unique", "kin"), (2500, 5000), "{all}");
            assert_eq!(find(&single, "field_null_values", "note").0, 200, "{all}");
        }
        for parallel in ["2", "3"] {
            let (split, all) = run("0", parallel, filter);
            assert_eq!(
                split, single,
                "split over {parallel} connections, filter {filter:?}: {all}"
            );
        }
    }
}
