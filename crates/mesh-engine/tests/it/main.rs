//! Integration tests of mesh-engine: contracts tested against generated data.

use std::fmt::Write as _;
use std::path::Path;

use mesh_engine::{Outcome, TestOptions, test_contract};

fn contract(text: &str) -> mesh_model::odcs::Contract {
    let parsed = mesh_model::parse_contract(text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    parsed.model.expect("contract")
}

const CONTRACT: &str = "apiVersion: v3.1.0\nkind: DataContract\nid: t\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: k\n        logicalType: string\n        unique: true\n      - name: n\n        logicalType: integer\n";

async fn run(csv: &str) -> mesh_engine::Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.csv");
    std::fs::write(&path, csv).expect("write");
    let options = TestOptions {
        data: Some(path.display().to_string()),
        ..TestOptions::default()
    };
    test_contract(&contract(CONTRACT), Path::new("."), &options)
        .await
        .expect("run")
}

fn unique(run: &mesh_engine::Run) -> (Outcome, serde_json::Value) {
    let r = run
        .results
        .iter()
        .find(|r| r.check.key == "t__k__field_unique")
        .expect("unique check");
    (r.outcome, r.diagnostics.clone().unwrap_or_default())
}

#[tokio::test]
async fn many_duplicated_keys_are_verified_exactly() {
    // 6,000 keys twice each and 1,000 once: more candidates than the IN-list limit, so their rows
    // are found by a join.
    let mut csv = String::from("k,n\n");
    for i in 0..6_000 {
        let _ = writeln!(csv, "key-{i},1\nkey-{i},2");
    }
    for i in 6_000..7_000 {
        let _ = writeln!(csv, "key-{i},3");
    }
    csv.push_str(",4\n,5\n"); // null keys are never duplicates
    let (outcome, d) = unique(&run(&csv).await);
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(d["value"], 6_000);
    assert_eq!(d["failed_rows"], 12_000);
    assert_eq!(d["row_count"], 13_002);
}

#[tokio::test]
async fn unique_keys_need_no_verification() {
    let mut csv = String::from("k,n\n");
    for i in 0..5_000 {
        let _ = writeln!(csv, "key-{i},{i}");
    }
    let (outcome, d) = unique(&run(&csv).await);
    assert_eq!(outcome, Outcome::Passed);
    assert_eq!(d["value"], 0);
}

#[tokio::test]
async fn json_arrays_of_any_layout_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: Vec<serde_json::Value> = (0..20_000)
        .map(|i| serde_json::json!({ "k": format!("key-{i}"), "n": i }))
        .collect();
    let path = dir.path().join("t.json");
    // Pretty-printed, and more rows than one batch.
    std::fs::write(&path, serde_json::to_string_pretty(&rows).expect("json")).expect("write");
    let text = format!(
        "{CONTRACT}servers:\n  - server: a\n    type: local\n    format: json\n    delimiter: array\n    path: {}\n",
        path.display()
    );
    let parsed = mesh_model::parse_contract(&text);
    let run = test_contract(
        &parsed.model.expect("contract"),
        Path::new("."),
        &TestOptions::default(),
    )
    .await
    .expect("run");
    let (outcome, d) = unique(&run);
    assert_eq!(
        outcome,
        Outcome::Passed,
        "{:?}",
        run.results.iter().map(|r| &r.reason).collect::<Vec<_>>()
    );
    assert_eq!(d["row_count"], 20_000);
}

/// Column lineage of a SQL query over registered tables: output column → `table.column`s.
async fn lineage(sql: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    let ctx = mesh_engine::session();
    let orders = Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, true),
        Field::new("status", DataType::Utf8, true),
    ]);
    let customers = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
    ]);
    let text = |v: &[&str]| std::sync::Arc::new(StringArray::from(v.to_vec()));
    let o = RecordBatch::try_new(
        std::sync::Arc::new(orders),
        vec![
            text(&["o1"]),
            text(&["c1"]),
            std::sync::Arc::new(Int64Array::from(vec![5])),
            text(&["paid"]),
        ],
    )
    .unwrap();
    let c = RecordBatch::try_new(
        std::sync::Arc::new(customers),
        vec![text(&["c1"]), text(&["a@b.c"]), text(&["gold"])],
    )
    .unwrap();
    ctx.register_batch("orders", o).unwrap();
    ctx.register_batch("customers", c).unwrap();
    let df = ctx.sql(sql).await.unwrap();
    mesh_engine::lineage::to_map(&mesh_engine::lineage::column_lineage(df.logical_plan()))
}

#[tokio::test]
async fn column_lineage_follows_joins_aggregates_case_windows_and_ctes() {
    let map = lineage(
        "WITH paid AS (SELECT * FROM orders WHERE status = 'paid')
         SELECT c.customer_id AS customer,
                upper(c.segment) AS segment,
                SUM(p.amount) AS revenue,
                CASE WHEN COUNT(*) > 1 THEN c.email ELSE 'single' END AS contact,
                COUNT(*) AS orders
         FROM paid p JOIN customers c ON p.customer_id = c.customer_id
         GROUP BY c.customer_id, c.segment, c.email",
    )
    .await;
    assert_eq!(map["customer"], ["customers.customer_id"]);
    assert_eq!(map["segment"], ["customers.segment"]);
    assert_eq!(map["revenue"], ["orders.amount"]);
    assert_eq!(map["contact"], ["customers.email"]);
    assert!(
        map["orders"].is_empty(),
        "count(*) reads no column: {:?}",
        map["orders"]
    );

    let map = lineage(
        "SELECT order_id,
                SUM(amount) OVER (PARTITION BY customer_id ORDER BY order_id) AS running,
                CASE WHEN amount > 10 THEN status ELSE customer_id END AS label
         FROM orders",
    )
    .await;
    assert_eq!(map["order_id"], ["orders.order_id"]);
    assert_eq!(
        map["running"],
        ["orders.amount", "orders.customer_id", "orders.order_id"]
    );
    assert_eq!(
        map["label"],
        ["orders.amount", "orders.customer_id", "orders.status"]
    );

    let map =
        lineage("SELECT customer_id AS id FROM orders UNION ALL SELECT customer_id FROM customers")
            .await;
    assert_eq!(map["id"], ["customers.customer_id", "orders.customer_id"]);

    let map = lineage(
        "SELECT x.total FROM (SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id) x",
    )
    .await;
    assert_eq!(map["total"], ["orders.amount"]);
}

#[tokio::test]
async fn vacuum_keeps_what_retention_and_the_snapshot_need() {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use mesh_engine::pipeline;
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("t").display().to_string();
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let batch = |n: i64| {
        RecordBatch::try_new(
            std::sync::Arc::clone(&schema),
            vec![std::sync::Arc::new(Int64Array::from(vec![n]))],
        )
        .unwrap()
    };
    for (i, run) in ["r1", "r2", "r3"].iter().enumerate() {
        let table = pipeline::open_or_create(&location, &schema, &[])
            .await
            .unwrap();
        let staged = pipeline::stage(&table, vec![batch(i as i64)], &location)
            .await
            .unwrap();
        let version = pipeline::commit(&table, staged, run, &location)
            .await
            .unwrap();
        assert_eq!(version, i as i64 + 1);
        assert_eq!(
            pipeline::find_commit(&location, run).await.unwrap(),
            Some(version)
        );
    }
    let files = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".parquet")
            })
            .count()
    };
    let table = dir.path().join("t");
    assert_eq!(files(&table), 3);
    // A year's retention keeps every version.
    assert_eq!(pipeline::vacuum(&location, 365, 3).await.unwrap(), 0);
    // None: only the current version's file stays (and the one kept for the snapshot, v2).
    let deleted = pipeline::vacuum(&location, 0, 2).await.unwrap();
    assert_eq!(deleted, 1, "version 1's file");
    assert_eq!(files(&table), 2);
    assert_eq!(
        pipeline::find_commit(&location, "nope").await.unwrap(),
        None
    );
}
