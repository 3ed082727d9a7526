//! `mesh run`: write-audit-publish on Delta Lake, end to end — a source product and a derived
//! one reading it, then bad upstream data that must not replace the published snapshot.

use std::fs;
use std::path::Path;

use crate::{mesh, stderr, stdout};

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The Delta versions in a table's log.
fn versions(table: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

fn parquet_files(table: &Path) -> usize {
    fs::read_dir(table)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .count()
}

#[test]
fn source_and_derived_products_run_and_bad_data_never_lands() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    ok(&["init"]);
    ok(&[
        "new",
        "product",
        "orders",
        "--domain",
        "ecommerce",
        "--owner",
        "ecommerce-orders",
    ]);
    ok(&[
        "new",
        "product",
        "customer_orders",
        "--domain",
        "analytics",
        "--type",
        "derived",
        "--owner",
        "analytics-team",
        "--input",
        "ecommerce.orders",
    ]);
    ok(&["lint", "--strict", "."]);
    ok(&["publish", "ecommerce/orders", "analytics/customer_orders"]);

    // The derived product cannot run before its input has a snapshot.
    let out = mesh(ws, &["run", "analytics/customer_orders"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("run the product first"),
        "{}",
        stderr(&out)
    );

    let run = |dir: &str| -> serde_json::Value {
        let out = mesh(ws, &["run", dir, "--output", "json"]);
        assert!(
            matches!(code(&out), 0 | 1),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let source = run("ecommerce/orders");
    assert_eq!(source["published"], true, "{source}");
    assert_eq!(
        (source["deltaVersion"].as_i64(), source["rows"].as_i64()),
        (Some(1), Some(10))
    );
    let derived = run("analytics/customer_orders");
    assert_eq!(derived["published"], true, "{derived}");
    assert_eq!(derived["rows"], 10);

    // Any engine that reads Delta reads the output; `mesh test` does, against the contract.
    let orders = ws.join(".mesh/data/ecommerce/orders/orders/v0");
    let customer = ws.join(".mesh/data/analytics/customer_orders/customer_orders/v0");
    let out = mesh(
        ws,
        &[
            "test",
            "analytics/customer_orders/contracts/customer_orders.odcs.yaml",
            "--data",
            customer.to_str().unwrap(),
            "--format",
            "delta",
            "--checks",
            "schema,quality",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(versions(&orders).len(), 2, "version 0 (created) and 1");

    // Bad upstream data: a duplicated key. The run fails its contract; nothing is committed,
    // no file is left behind, and readers keep the previous snapshot.
    let data = ws.join("ecommerce/orders/data/orders.csv");
    let text = fs::read_to_string(&data).unwrap();
    let first_row = text.lines().nth(1).unwrap().to_owned();
    fs::write(&data, format!("{text}{first_row}\n")).unwrap();
    let files_before = parquet_files(&orders);
    let failed = run("ecommerce/orders");
    assert_eq!(failed["published"], false, "{failed}");
    assert!(
        failed["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "orders__orders_id__field_duplicate_values"),
        "{failed}"
    );
    assert_eq!(versions(&orders).len(), 2, "no new Delta version");
    assert_eq!(
        parquet_files(&orders),
        files_before,
        "the rejected files are gone"
    );
    let again = run("analytics/customer_orders");
    assert_eq!(again["published"], true, "{again}");
    assert_eq!(
        again["rows"], 10,
        "the derived product still reads the 10-row snapshot"
    );

    // Fixed data publishes again, as the next version.
    fs::write(&data, &text).unwrap();
    let fixed = run("ecommerce/orders");
    assert_eq!(
        (fixed["published"].as_bool(), fixed["deltaVersion"].as_i64()),
        (Some(true), Some(2))
    );
}
