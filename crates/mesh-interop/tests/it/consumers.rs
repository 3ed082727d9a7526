//! Each export read by the tool it is for, none of them written here: SQLite and PostgreSQL run the
//! DDL and refuse rows that break its constraints, fastavro parses the Avro schema and writes a
//! record, the JSON Schema passes the 2020-12 meta-schema and validates documents, dbt parses and
//! builds a project with the models YAML (enforcing its contract), and Great Expectations loads
//! the suite and validates data. Python tools come from `$MESH_INTEROP_PYTHON` (a venv `.ci/run`
//! makes) or `python3`; a missing one skips with a notice, and fails under `CI=true`.

use std::path::Path;
use std::process::Command;

use mesh_interop::{Dialect, ExportFormat, ExportOptions, ImportFormat, ImportOptions};

use crate::roundtrip::{Field, original, shape};

fn export(format: ExportFormat, dialect: Option<Dialect>) -> String {
    mesh_interop::export(
        format,
        &original(),
        &ExportOptions {
            dialect,
            ..ExportOptions::default()
        },
    )
    .unwrap()
    .text
}

/// A Python that can import `modules`, or `None` after a notice (a failure under CI=true).
fn python(modules: &str, part: &str) -> Option<String> {
    let python = std::env::var("MESH_INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    mesh_testkit::skip(
        &format!("a Python with {modules} ({part})"),
        "set MESH_INTEROP_PYTHON to a venv with fastavro, jsonschema, great_expectations, dbt-core and dbt-duckdb (see .ci/run)",
    );
    None
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn py(python: &str, script: &str, args: &[&str]) -> (bool, String) {
    run(Command::new(python).arg("-c").arg(script).args(args))
}

#[test]
fn sqlite_runs_the_ddl_refuses_bad_rows_and_its_schema_imports_back() {
    let Some(python) = python("sqlite3", "SQLite DDL") else {
        return;
    };
    let ddl = export(ExportFormat::Sql, Some(Dialect::Sqlite));
    let script = r#"
import sqlite3, sys
db = sqlite3.connect(":memory:")
db.execute("PRAGMA foreign_keys = ON")
db.executescript(sys.argv[1])
db.execute("INSERT INTO customers VALUES ('c1', 'a@b.c')")
ok = "INSERT INTO orders (order_id, line_no, customer_id, status, amount, currency, placed_at) VALUES (1, 1, 'c1', 'placed', 10, 'EUR', '2026-12-01T10:00:00Z')"
db.execute(ok)
refused = 0
for bad in [ok.replace("'placed'", "'lost'").replace("(1, 1", "(2, 1"),
            ok.replace("10, 'EUR'", "-1, 'EUR'").replace("(1, 1", "(3, 1"),
            ok.replace("'EUR'", "'EU'").replace("(1, 1", "(4, 1"),
            ok,
            ok.replace("'c1'", "'nobody'").replace("(1, 1", "(5, 1")]:
    try:
        db.execute(bad)
    except sqlite3.IntegrityError as e:
        refused += 1
print(refused)
for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"):
    print(sql + ";")
"#;
    let (ok, out) = py(&python, script, &[&ddl]);
    assert!(ok, "{out}\n{ddl}");
    let (count, schema) = out.split_once('\n').unwrap();
    // Outside the enum, below the minimum, too short, a duplicate key, a missing customer.
    assert_eq!(count.trim(), "5", "{out}");
    // What SQLite keeps imports back with the same keys, nullability and constraints.
    let back = mesh_interop::import(
        ImportFormat::Sql,
        "sqlite_master",
        schema,
        &ImportOptions {
            dialect: Some(Dialect::Sqlite),
            ..ImportOptions::default()
        },
    )
    .unwrap_or_else(|p| panic!("{p}\n{schema}"));
    let back = crate::contract(&back.contract_yaml());
    let fields = [
        Field::Required,
        Field::Unique,
        Field::Key,
        Field::Enum,
        Field::Bounds,
        Field::Reference,
    ];
    let (got, want) = (shape(&back, &fields), shape(&original(), &fields));
    assert!(
        got == want,
        "{}\n{schema}",
        crate::roundtrip::differences(&got, &want)
    );
}

#[test]
fn postgres_runs_the_ddl_and_enforces_its_constraints() {
    let Ok(url) = std::env::var("MESH_TEST_POSTGRES_URL") else {
        mesh_testkit::skip("PostgreSQL (MESH_TEST_POSTGRES_URL)", ".ci/run starts one");
        return;
    };
    let schema = format!("interop_{}", std::process::id());
    let ddl = export(ExportFormat::Sql, Some(Dialect::Postgres));
    let script = format!(
        "CREATE SCHEMA {schema};\nSET search_path TO {schema};\n{ddl}\nINSERT INTO customers VALUES ('00000000-0000-0000-0000-000000000001', 'a@b.c');\nINSERT INTO orders (order_id, line_no, customer_id, status, amount, currency, placed_at, tags, attributes, address) VALUES (1, 1, '00000000-0000-0000-0000-000000000001', 'placed', 10, 'EUR', now(), ARRAY['x'], '{{\"k\": \"v\"}}', '{{\"city\": \"Oslo\"}}');\nSELECT obj_description('{schema}.orders'::regclass), col_description('{schema}.orders'::regclass, 4);\n"
    );
    let psql = |script: &str| {
        let mut child = Command::new("psql")
            .arg(&url)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = psql(&script);
    let cleanup = || psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE;"));
    if !ok {
        cleanup();
        panic!("{out}\n{ddl}");
    }
    assert!(
        out.contains("One row per order line.|Where the order is."),
        "{out}"
    );
    for (bad, code) in [
        (
            "status, amount, currency) VALUES (2, 1, '00000000-0000-0000-0000-000000000001', 'lost', 1, 'EUR'",
            "check constraint",
        ),
        (
            "status, amount, currency) VALUES (3, 1, '00000000-0000-0000-0000-000000000001', 'placed', 1, 'eur'",
            "check constraint",
        ),
        (
            "status, amount, currency) VALUES (4, 1, '00000000-0000-0000-0000-00000000000f', 'placed', 1, 'EUR'",
            "foreign key",
        ),
    ] {
        let insert = format!(
            "SET search_path TO {schema}; INSERT INTO orders (order_id, line_no, customer_id, {bad}, now());"
        );
        let insert = insert.replace("currency) VALUES", "currency, placed_at) VALUES");
        let (ok, out) = psql(&insert);
        assert!(!ok && out.contains(code), "{insert}: {out}");
    }
    cleanup();
}

#[test]
fn fastavro_parses_the_schema_and_round_trips_a_record() {
    let Some(python) = python("fastavro", "Avro") else {
        return;
    };
    let schema = export(ExportFormat::Avro, None);
    let script = r#"
import fastavro, io, json, sys, uuid, datetime, decimal
schemas = json.loads(sys.argv[1])
orders = fastavro.parse_schema(schemas[0])
customers = fastavro.parse_schema(schemas[1])
record = {"order_id": 1, "line_no": 1, "customer_id": str(uuid.uuid4()), "status": "placed",
          "amount": decimal.Decimal("10.50"), "currency": "EUR",
          "placed_at": datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc),
          "shipped_on": None, "tags": ["a"], "attributes": {"k": "v"},
          "address": {"city": None, "country": "NO"}}
buf = io.BytesIO()
fastavro.writer(buf, orders, [record])
buf.seek(0)
back = list(fastavro.reader(buf))[0]
assert back["amount"] == decimal.Decimal("10.50"), back
assert back["status"] == "placed"
try:
    fastavro.writer(io.BytesIO(), orders, [dict(record, status="lost")])
    print("accepted a value outside the enum")
except Exception:
    print("ok")
"#;
    let (ok, out) = py(&python, script, &[&schema]);
    assert!(ok && out.trim() == "ok", "{out}\n{schema}");
}

#[test]
fn the_json_schema_passes_the_meta_schema_and_validates_documents() {
    let Some(python) = python("jsonschema", "JSON Schema") else {
        return;
    };
    let c = mesh_interop::import(
        ImportFormat::JsonSchema,
        "order.schema.json",
        &crate::read(&crate::dir("inputs").join("order.schema.json")),
        &ImportOptions::default(),
    )
    .unwrap();
    let c = crate::contract(&c.contract_yaml());
    // One table: the schema's root is the object itself.
    let schema = mesh_interop::export(ExportFormat::JsonSchema, &c, &ExportOptions::default())
        .unwrap()
        .text;
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
schema = json.loads(sys.argv[1])
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema, format_checker=FormatChecker())
good = {"order_id": "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "status": "placed", "customer": {"id": 7},
        "lines": [{"sku": "ABC-1234", "quantity": 2}], "placed_at": "2026-12-01T10:00:00Z"}
bad = dict(good, status="lost", lines=[{"sku": "nope", "quantity": 0}])
print(len(list(v.iter_errors(good))), len(list(v.iter_errors(bad))))
"#;
    let (ok, out) = py(&python, script, &[&schema]);
    assert!(ok, "{out}\n{schema}");
    // The bad one: a status outside the enum, a sku not matching, a quantity at the exclusive bound.
    assert_eq!(out.trim(), "0 3", "{schema}");
}

#[test]
fn great_expectations_loads_the_suite_and_validates_data() {
    let Some(python) = python("great_expectations, pandas", "Great Expectations") else {
        return;
    };
    let suites = export(ExportFormat::GreatExpectations, None);
    let script = r#"
import json, sys, logging, os
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationSuite
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
doc = [s for s in json.loads(sys.argv[1]) if s["name"] == "customers"][0]
ctx = gx.get_context(mode="ephemeral")
suite = ExpectationSuite(name=doc["name"], meta=doc["meta"])
for e in doc["expectations"]:
    suite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e["meta"]))
batch = ctx.data_sources.add_pandas("p").add_dataframe_asset(name="customers").add_batch_definition_whole_dataframe("all")
good = pd.DataFrame({"customer_id": ["a", "b"], "email": ["x@y.z", "q@r.s"]})
bad = pd.DataFrame({"customer_id": ["a", "a"], "email": ["x@y.z", None]})
for df in (good, bad):
    r = batch.get_batch(batch_parameters={"dataframe": df}).validate(suite, result_format="BOOLEAN_ONLY")
    print(r.success, ",".join(sorted({x.expectation_config.type for x in r.results if not x.success})))
"#;
    let (ok, out) = py(&python, script, &[&suites]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("True") || l.starts_with("False"))
        .collect();
    assert_eq!(
        lines,
        [
            "True ",
            "False expect_column_values_to_be_unique,expect_column_values_to_not_be_null"
        ],
        "{out}"
    );
}

/// dbt parses and builds a project whose contract is the export (dbt enforces the column names and
/// types against the models' SQL), and the manifest it writes imports back as the same contract.
#[test]
fn dbt_builds_with_the_models_yaml_and_its_manifest_imports_back() {
    let Some(python) = python("dbt.cli.main, dbt.adapters.duckdb", "dbt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("models")).unwrap();
    let write = |p: &str, text: &str| std::fs::write(root.join(p), text).unwrap();
    write(
        "dbt_project.yml",
        "name: shop\nversion: \"1.0.0\"\nprofile: shop\nmodel-paths: [\"models\"]\n",
    );
    write(
        "profiles.yml",
        &format!(
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: {}\n      threads: 1\n",
            root.join("shop.duckdb").display()
        ),
    );
    let id = "'00000000-0000-0000-0000-000000000001'::uuid";
    write(
        "models/customers.sql",
        &format!("select {id} as customer_id, 'a@b.c'::varchar(320) as email\n"),
    );
    write(
        "models/orders.sql",
        &format!(
            "select 1::bigint as order_id, 1::integer as line_no, {id} as customer_id, 'placed'::varchar as status, 10.5::decimal(12,2) as amount, 'EUR'::varchar(3) as currency, now()::timestamptz as placed_at, current_date as shipped_on, ['a']::varchar[] as tags, map(['k'], ['v']) as attributes, '{{}}'::json as address\n"
        ),
    );
    write(
        "models/schema.yml",
        &export(ExportFormat::Dbt, Some(Dialect::Duckdb)),
    );
    let dbt = |args: &[&str]| {
        run(Command::new(&python)
            .args([
                "-c",
                "import sys; from dbt.cli.main import cli; sys.exit(cli())",
            ])
            .args(args)
            .current_dir(root)
            .env("DBT_PROFILES_DIR", root)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("DO_NOT_TRACK", "1"))
    };
    let (ok, out) = dbt(&["build"]);
    assert!(ok && out.contains("PASS=15"), "{out}");
    // The manifest dbt wrote is the bridge back.
    let manifest = crate::read(&root.join("target/manifest.json"));
    let back = mesh_interop::import(
        ImportFormat::Dbt,
        "manifest.json",
        &manifest,
        &ImportOptions::default(),
    )
    .unwrap();
    let back = crate::contract(&back.contract_yaml());
    let fields = [
        Field::Required,
        Field::Unique,
        Field::Key,
        Field::Description,
        Field::Enum,
        Field::Bounds,
        Field::Reference,
    ];
    let (got, want) = (shape(&back, &fields), shape(&original(), &fields));
    assert!(
        got == want,
        "{}",
        crate::roundtrip::differences(&got, &want)
    );
    // A model that breaks the contract's types is refused by dbt itself.
    write(
        "models/customers.sql",
        "select 1 as customer_id, 'a@b.c'::varchar(320) as email\n",
    );
    let (ok, out) = dbt(&["run", "--select", "customers"]);
    assert!(!ok && out.contains("contract"), "{out}");
    let _ = Path::new(".");
}

/// protoc (Debian's protobuf-compiler) compiles the export, and the descriptor it writes
/// describes the same messages and fields.
#[test]
fn protoc_compiles_the_protobuf_export() {
    if Command::new("protoc").arg("--version").output().is_err() {
        mesh_testkit::skip("protoc", "apt-get install protobuf-compiler");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.proto"),
        export(ExportFormat::Protobuf, None),
    )
    .unwrap();
    let (ok, out) = run(Command::new("protoc")
        .arg("-I")
        .arg(dir.path())
        .arg("-I/usr/include")
        .arg(format!(
            "--descriptor_set_out={}",
            dir.path().join("set.pb").display()
        ))
        .arg("orders.proto")
        .current_dir(dir.path()));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new("protoc")
        .arg("-I")
        .arg(dir.path())
        .arg("-I/usr/include")
        .arg("--decode_raw")
        .stdin(std::fs::File::open(dir.path().join("set.pb")).unwrap()));
    assert!(ok, "{out}");
    // The messages and their fields are in the compiled descriptor.
    assert!(
        out.contains("\"orders\"") && out.contains("\"customer_id\""),
        "{out}"
    );
}

/// soda-core (its DuckDB data source) runs the SodaCL checks: all pass on data that keeps the
/// contract, and exactly the broken rules fail on data that does not. soda pins a DuckDB older
/// than dbt's, so it has a Python of its own: `$MESH_SODA_PYTHON`.
#[test]
fn soda_runs_the_sodacl_checks() {
    let python = std::env::var("MESH_SODA_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import soda.scan, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        mesh_testkit::skip(
            "soda-core-duckdb (SodaCL)",
            "set MESH_SODA_PYTHON to a venv with soda-core-duckdb 3.5 (see .ci/run)",
        );
        return;
    }
    let checks = export(ExportFormat::SodaCl, None);
    let script = r#"
import sys, duckdb
from soda.scan import Scan
checks = sys.argv[1]
def scan(orders, customers):
    con = duckdb.connect(":memory:")
    con.sql("CREATE TABLE customers (customer_id VARCHAR, email VARCHAR)")
    con.sql("CREATE TABLE orders (order_id BIGINT, line_no INTEGER, customer_id VARCHAR, status VARCHAR, amount DECIMAL(12,2), currency VARCHAR, placed_at TIMESTAMPTZ, shipped_on DATE, tags VARCHAR[], attributes MAP(VARCHAR, VARCHAR), address STRUCT(city VARCHAR, country VARCHAR))")
    for r in customers:
        con.execute("INSERT INTO customers VALUES (?, ?)", r)
    for r in orders:
        con.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, now(), NULL, ['a'], MAP(['k'], ['v']), {'city': 'Oslo', 'country': 'NO'})", r)
    s = Scan()
    s.disable_telemetry()
    s.set_scan_definition_name("mesh")
    s.set_data_source_name("duckdb")
    s.add_duckdb_connection(con, data_source_name="duckdb")
    s.add_sodacl_yaml_str(checks)
    rc = s.execute()
    res = s.get_scan_results()
    print(rc, len(res["checks"]), "|".join(sorted(c["name"] for c in res["checks"] if c["outcome"] != "pass")))
scan([(1, 1, "c1", "placed", 10, "EUR")], [("c1", "a@b.c")])
scan([(1, 1, "c1", "lost", -1, "eur"), (1, 1, "c1", "placed", 10, "EUR")], [("c1", "a@b.c"), ("c1", None)])
"#;
    let (ok, out) = py(&python, script, &[&checks]);
    assert!(ok, "{out}\n{checks}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with(char::is_numeric))
        .collect();
    assert_eq!(
        lines,
        [
            "0 20 ",
            "2 20 duplicate_count(customer_id) = 0|duplicate_count(order_id, line_no) = 0|invalid_count(amount) = 0|invalid_count(currency) = 0|invalid_count(status) = 0|missing_count(email) = 0"
        ],
        "{out}\n{checks}"
    );
}
