//! Integration tests of mesh-engine: contracts tested against generated data.

mod fuzz;

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
        let table = pipeline::open(&location).await.unwrap();
        let staged = pipeline::stage(
            &table,
            &schema,
            &[],
            batches(vec![batch(i as i64)]),
            &location,
            false,
            &|_| {},
        )
        .await
        .unwrap();
        let version = pipeline::commit(&table, staged, run, &location, None)
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

/// Issue 19, items 6 and 7: a run may evolve its table as a compatible version does (added
/// columns, wider types) and nothing else; a run that is staged and discarded (its checks
/// failed) leaves no table behind, not even a schema.
#[tokio::test]
async fn runs_evolve_their_table_compatibly_and_a_discarded_first_run_leaves_nothing() {
    use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use mesh_engine::pipeline;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("t").display().to_string();
    let batch = |columns: Vec<(&str, ArrayRef)>| {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
    };
    let ints = |v: i32| -> ArrayRef { Arc::new(Int32Array::from(vec![v])) };
    let longs = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let write = |b: RecordBatch, run: &'static str, keep: bool| {
        let location = location.clone();
        async move {
            let table = pipeline::open(&location).await.unwrap();
            let staged = pipeline::stage(
                &table,
                &b.schema(),
                &[],
                batches(vec![b]),
                &location,
                false,
                &|_| {},
            )
            .await?;
            if !keep {
                pipeline::discard(&table, &staged).await;
                return Ok(None);
            }
            pipeline::commit(&table, staged, run, &location, None)
                .await
                .map(Some)
        }
    };
    // A first run that fails its checks: no table, no files.
    write(batch(vec![("n", ints(1))]), "failed", false)
        .await
        .unwrap();
    let root = dir.path().join("t");
    assert!(
        !root.join("_delta_log").exists(),
        "a discarded first run created the table"
    );
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "its files are gone"
    );
    // The fixed run writes another shape, and is the table's first snapshot.
    let v1 = write(batch(vec![("n", ints(1)), ("s", text("a"))]), "r1", true).await;
    assert_eq!(v1.unwrap(), Some(1));
    // Added column and a widened type: evolved in the run's own commit.
    let v2 = write(
        batch(vec![
            ("n", longs(2)),
            ("s", text("b")),
            ("added", text("x")),
        ]),
        "r2",
        true,
    )
    .await;
    assert_eq!(v2.unwrap(), Some(2));
    let table = pipeline::open(&location).await.unwrap();
    let names: Vec<String> = table
        .snapshot()
        .unwrap()
        .schema()
        .fields()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["n", "s", "added"]);
    // A dropped column, a narrowed or changed type: refused before anything is written.
    for (what, b) in [
        (
            "dropped",
            batch(vec![("n", longs(3)), ("added", text("x"))]),
        ),
        (
            "narrowed",
            batch(vec![("n", ints(3)), ("s", text("c")), ("added", text("x"))]),
        ),
        (
            "changed",
            batch(vec![("n", longs(3)), ("s", longs(1)), ("added", text("x"))]),
        ),
    ] {
        let e = write(b, "bad", true).await.expect_err(what).to_string();
        assert!(e.contains("publish a new major version"), "{what}: {e}");
    }
    let parquet = std::fs::read_dir(&root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count();
    assert_eq!(parquet, 2, "the refused runs wrote nothing");
    assert_eq!(pipeline::open(&location).await.unwrap().version(), Some(2));
}

/// Writes a one-version Delta table of `batch` at `location`.
async fn delta_table(location: &str, batch: datafusion::arrow::record_batch::RecordBatch) {
    use mesh_engine::pipeline;
    let schema = batch.schema();
    let table = pipeline::open(location).await.unwrap();
    let staged = pipeline::stage(
        &table,
        &schema,
        &[],
        batches(vec![batch]),
        location,
        false,
        &|_| {},
    )
    .await
    .unwrap();
    pipeline::commit(&table, staged, "seed", location, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn ungranted_data_cannot_be_read_any_way() {
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use mesh_engine::query::{self, Mask, Readable};
    let dir = tempfile::tempdir().unwrap();
    let orders_at = dir
        .path()
        .join("ecommerce/orders/orders/v1")
        .display()
        .to_string();
    let salaries_at = dir
        .path()
        .join("hr/salaries/salaries/v1")
        .display()
        .to_string();
    let orders = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("email", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ])),
        vec![
            std::sync::Arc::new(StringArray::from(vec!["o1", "o2"])),
            std::sync::Arc::new(StringArray::from(vec!["a@x.io", "b@x.io"])),
            std::sync::Arc::new(Int64Array::from(vec![10, 20])),
        ],
    )
    .unwrap();
    let salaries = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("salary", DataType::Int64, false),
        ])),
        vec![
            std::sync::Arc::new(StringArray::from(vec!["ana"])),
            std::sync::Arc::new(Int64Array::from(vec![99])),
        ],
    )
    .unwrap();
    delta_table(&orders_at, orders).await;
    delta_table(&salaries_at, salaries).await;
    // The reader may read orders without e-mail; salaries do not exist for them.
    let deployment = mesh_engine::mask::MaskKey([7; 32]);
    let keys = mesh_engine::mask::MaskKeys::of(deployment, "ecommerce.orders");
    let readable = [Readable {
        domain: "ecommerce".into(),
        table: "orders".into(),
        location: orders_at.clone(),
        delta_version: 1,
        columns: Some(vec!["order_id".into(), "amount".into()]),
        masks: Vec::new(),
        mask: Mask::Null,
        keys,
    }];
    let run = |sql: &'static str| {
        let readable = readable.clone();
        async move {
            let ctx = query::session(&readable, sql).await?;
            query::run(&ctx, sql).await
        }
    };
    let emails = |batches: &[RecordBatch]| -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let i = b.schema().index_of("email").unwrap();
                let text = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
                let a = text.as_any().downcast_ref::<StringArray>().unwrap().clone();
                (0..a.len()).map(move |r| (!a.is_null(r)).then(|| a.value(r).to_owned()))
            })
            .collect()
    };
    // Granted columns come through; the e-mail is masked however it is reached.
    for sql in [
        "SELECT * FROM ecommerce.orders",
        "SELECT * FROM mesh.ecommerce.orders",
        "SELECT o.* FROM ecommerce.orders o JOIN ecommerce.orders p ON o.order_id = p.order_id",
        "SELECT * FROM (SELECT email, order_id FROM ecommerce.orders) s",
        "WITH c AS (SELECT email FROM ecommerce.orders) SELECT email FROM c",
        "SELECT email FROM ecommerce.orders UNION ALL SELECT email FROM ecommerce.orders",
    ] {
        let batches = run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let seen = emails(&batches);
        assert!(!seen.is_empty(), "{sql}");
        assert!(seen.iter().all(Option::is_none), "{sql}: {seen:?}");
    }
    let total = run("SELECT SUM(amount) AS s FROM ecommerce.orders")
        .await
        .unwrap();
    let s = total[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(s, 30, "granted columns are real");
    let found = run("SELECT COUNT(*) FROM ecommerce.orders WHERE email LIKE '%@x.io'")
        .await
        .unwrap();
    let n = found[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 0, "a filter on a masked column matches nothing");

    // Everything else is refused or simply does not exist.
    let salaries_file = std::fs::read_dir(&salaries_at)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .unwrap()
        .path()
        .display()
        .to_string();
    let attacks = vec![
        "SELECT * FROM hr.salaries".to_owned(),
        "SELECT * FROM salaries".to_owned(),
        "SELECT * FROM ecommerce.orders o JOIN hr.salaries s ON o.order_id = s.name".to_owned(),
        "SELECT table_name FROM information_schema.tables".to_owned(),
        format!("SELECT * FROM '{salaries_file}'"),
        format!("SELECT * FROM '{salaries_at}'"),
        format!("CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION '{salaries_at}'"),
        "CREATE VIEW v AS SELECT * FROM ecommerce.orders".to_owned(),
        "COPY (SELECT * FROM ecommerce.orders) TO '/tmp/out.csv'".to_owned(),
        "INSERT INTO ecommerce.orders VALUES ('o3', 'c@x.io', 1)".to_owned(),
        "SET datafusion.catalog.information_schema = true".to_owned(),
        format!("SELECT * FROM read_parquet('{salaries_file}')"),
        "DROP TABLE ecommerce.orders".to_owned(),
    ];
    for sql in attacks {
        let result = match query::session(&readable, &sql).await {
            Ok(ctx) => query::run(&ctx, &sql).await,
            Err(e) => Err(e),
        };
        assert!(
            result.is_err(),
            "{sql} must be refused: {:?}",
            result.map(|b| b.len())
        );
    }
    // The masked view still has the column (a reader knows it exists, not its values).
    let batches = run("SELECT email FROM ecommerce.orders LIMIT 1")
        .await
        .unwrap();
    assert_eq!(batches[0].schema().field(0).name(), "email");

    // The contract may say how: a hash keeps joins and distinct counts, a redaction a marker.
    let with_mask = |mask: Mask| {
        let mut with = readable[0].clone();
        with.masks = vec![("email".into(), mask)];
        async move {
            let sql = "SELECT email FROM ecommerce.orders ORDER BY order_id";
            let ctx = query::session(&[with], sql).await.unwrap();
            emails(&query::run(&ctx, sql).await.unwrap())
        }
    };
    let hashed = with_mask(Mask::Hash).await;
    assert_eq!(hashed.len(), 2);
    for h in &hashed {
        let h = h.as_deref().unwrap();
        assert!(
            h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()),
            "{h}"
        );
        assert!(!h.contains('@'));
    }
    assert_ne!(hashed[0], hashed[1], "distinct values stay distinct");
    // The hash is HMAC-SHA256 under the deployment key, never the bare SHA-256 a dictionary
    // reverses; a product's own key hashes differently (no joins across products).
    let hmac = |key: &mesh_engine::mask::MaskKey, value: &str| {
        mesh_engine::mask::hmac_sha256(&key.0, value.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        hashed,
        [
            Some(hmac(&deployment, "a@x.io")),
            Some(hmac(&deployment, "b@x.io"))
        ]
    );
    let per_product = with_mask(Mask::ProductHash).await;
    assert_eq!(
        per_product,
        [
            Some(hmac(keys.product.as_ref().unwrap(), "a@x.io")),
            Some(hmac(keys.product.as_ref().unwrap(), "b@x.io"))
        ]
    );
    assert_ne!(per_product, hashed);
    // No key, no hash: the read is refused rather than hashed without one.
    let mut keyless = readable[0].clone();
    keyless.masks = vec![("email".into(), Mask::Hash)];
    keyless.keys = mesh_engine::mask::MaskKeys::default();
    let sql = "SELECT email FROM ecommerce.orders";
    assert!(query::session(&[keyless], sql).await.is_err());
    let redacted = with_mask(Mask::Redacted).await;
    assert_eq!(redacted, [Some("***".to_owned()), Some("***".to_owned())]);

    // A pipeline reading the port through a grant with a column scope sees the same.
    let input = mesh_engine::pipeline::Input {
        name: "orders".into(),
        product: Some("ecommerce.orders".into()),
        contract: Some("ecommerce.orders.orders".into()),
        location: mesh_engine::source::Location::from_path(&orders_at, Some("delta")).unwrap(),
        delta_version: Some(1),
        columns: Some(vec!["order_id".into(), "amount".into()]),
        masks: Vec::new(),
        mask: Mask::Null,
        keys,
        database: None,
    };
    let ctx = datafusion::prelude::SessionContext::new();
    mesh_engine::pipeline::register_input(
        &ctx,
        &input,
        &mesh_engine::pipeline::Executor::InProcess,
    )
    .await
    .unwrap();
    let batches = ctx
        .sql("SELECT email, amount FROM orders")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let seen = emails(&batches);
    assert_eq!(seen, [None, None], "the transform sees no e-mail");
}

/// A filtered string view keeps only the bytes it shows once compacted, so a 1% result is sent
/// as 1% of the data, not as the pages it was filtered from.
#[test]
fn results_are_compacted_before_they_are_sent() {
    use datafusion::arrow::array::{Array, BooleanArray, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    let values: Vec<String> = (0..100_000).map(|i| format!("order-{i:020}")).collect();
    let all = StringViewArray::from_iter_values(values.iter());
    let keep = BooleanArray::from_iter((0..100_000).map(|i| Some(i % 100 == 0)));
    let kept = datafusion::arrow::compute::filter(&all, &keep).unwrap();
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "id",
        DataType::Utf8View,
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![kept]).unwrap();
    let before = batch.column(0).get_buffer_memory_size();
    let compacted = mesh_engine::query::compact(batch.clone()).unwrap();
    let after = compacted.column(0).get_buffer_memory_size();
    assert_eq!(compacted.num_rows(), 1000);
    assert_eq!(
        mesh_engine::query::json_rows(&[compacted]).unwrap(),
        mesh_engine::query::json_rows(&[batch]).unwrap()
    );
    assert!(after * 10 < before, "{after} bytes after, {before} before");
}

/// The masking HMAC is RFC 2104's: RFC 4231's test case 2 (a short key is zero-padded, so it
/// holds for the 32-byte form), and the plan expression agrees with it byte for byte on empty,
/// non-ASCII and long values.
#[tokio::test]
async fn masking_hmac_is_rfc_4231_hmac_sha256() {
    use datafusion::arrow::array::{Array, StringArray};
    use mesh_engine::mask::{MaskKey, hmac_expr, hmac_sha256};
    let mut jefe = [0u8; 32];
    jefe[..4].copy_from_slice(b"Jefe");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(&hmac_sha256(&jefe, b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let key = MaskKey([0xa5; 32]);
    let long = "x".repeat(10_000);
    let values = ["", "ana@example.org", "Zoë Ünïcødé 名前", long.as_str()];
    let ctx = datafusion::prelude::SessionContext::new();
    let batch = datafusion::arrow::record_batch::RecordBatch::try_from_iter([(
        "v",
        std::sync::Arc::new(StringArray::from(values.to_vec())) as _,
    )])
    .unwrap();
    let df = ctx.read_batch(batch).unwrap();
    let df = df
        .select(vec![
            hmac_expr(&key, datafusion::prelude::col("v")).alias("h"),
        ])
        .unwrap();
    let batches = df.collect().await.unwrap();
    let column = datafusion::arrow::compute::cast(
        batches[0].column(0),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let column = column.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(column.len(), values.len());
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            column.value(i),
            hex(&hmac_sha256(&key.0, v.as_bytes())),
            "{v:?}"
        );
    }
    assert_eq!(MaskKey::from_hex(&key.to_hex()), Some(key));
    assert_eq!(MaskKey::from_hex("zz"), None);
}

#[test]
fn statements_are_bounded_before_they_are_parsed() {
    use mesh_engine::query::{
        MAX_SQL_BYTES, MAX_SQL_CTES, MAX_SQL_OPERATORS, MAX_SQL_SET_OPERATIONS, MAX_SQL_TABLES,
        within_limits,
    };
    let tables = |n: usize| {
        (0..n)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ctes = |n: usize| {
        format!(
            "WITH c0 AS (SELECT 1 AS n), {} SELECT n FROM c{}",
            (1..n)
                .map(|i| format!("c{i} AS (SELECT n FROM c{})", i - 1))
                .collect::<Vec<_>>()
                .join(", "),
            n - 1
        )
    };
    // What real queries look like passes, however wide.
    let wide_select = format!(
        "SELECT {} FROM a JOIN b ON a.id = b.id, c WHERE a.x IN ({}) ORDER BY 1",
        (0..2_000)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", "),
        (0..50_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for sql in [
        "SELECT 1".to_owned(),
        wide_select,
        format!("SELECT * FROM {}", tables(MAX_SQL_TABLES)),
        ctes(MAX_SQL_CTES),
        format!("SELECT 1{}", " + 1".repeat(MAX_SQL_OPERATORS)),
        format!(
            "SELECT 1{}",
            " UNION ALL SELECT 1".repeat(MAX_SQL_SET_OPERATIONS)
        ),
        // Parentheses close what they opened: a FROM inside does not count outside.
        format!(
            "SELECT * FROM ({}) s, ({}) u",
            format_args!("SELECT * FROM {}", tables(200)),
            format_args!("SELECT * FROM {}", tables(200))
        ),
        "SELECT 'it''s (' || ')))' AS odd FROM t".to_owned(),
    ] {
        assert!(within_limits(&sql).is_ok(), "{}", &sql[..sql.len().min(80)]);
    }
    for sql in [
        format!("SELECT * FROM {}", tables(MAX_SQL_TABLES + 1)),
        format!(
            "SELECT * FROM a{}",
            " JOIN b ON true".repeat(MAX_SQL_TABLES + 1)
        ),
        ctes(MAX_SQL_CTES + 1),
        format!(
            "SELECT 1{}",
            " UNION ALL SELECT 1".repeat(MAX_SQL_SET_OPERATIONS + 1)
        ),
        format!("SELECT 1{}", " + 1".repeat(MAX_SQL_OPERATORS + 1)),
        format!("SELECT '{{}}'{}", " #> '{a}'".repeat(MAX_SQL_OPERATORS + 1)),
        format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES)),
    ] {
        let e = within_limits(&sql).expect_err(&sql[..60]);
        assert!(e.to_string().contains("at most"), "{e}");
    }
}

/// ODCS v3.2.0 `enum`: `mesh test` counts the rows outside the allowed values, and a `map`
/// column's type is checked on data that has none of it.
#[tokio::test]
async fn enum_values_are_checked_on_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.csv");
    std::fs::write(&path, "k,size\na,S\nb,M\nc,XL\nd,\ne,XL\n").expect("write");
    let text = "apiVersion: v3.2.0\nkind: DataContract\nid: t\nversion: 1.0.0\nschema:\n  - name: t\n    properties:\n      - name: k\n        logicalType: string\n      - name: size\n        logicalType: string\n        enum:\n          - value: S\n          - value: M\n          - value: L\n";
    let options = TestOptions {
        data: Some(path.display().to_string()),
        ..TestOptions::default()
    };
    let run = test_contract(&contract(text), Path::new("."), &options)
        .await
        .expect("run");
    let r = run
        .results
        .iter()
        .find(|r| r.check.key == "t__size__field_enum")
        .expect("an enum check");
    assert_eq!(r.outcome, Outcome::Failed);
    let d = r.diagnostics.clone().unwrap_or_default();
    // Two rows say XL; the null is not a value (required says whether it may be missing).
    assert_eq!(d["value"], 2, "{d}");
}

/// Batches as the stream [`pipeline::stage`] takes.
fn batches(
    batches: Vec<datafusion::arrow::record_batch::RecordBatch>,
) -> impl futures::Stream<
    Item = Result<datafusion::arrow::record_batch::RecordBatch, mesh_engine::pipeline::RunError>,
> {
    futures::stream::iter(batches.into_iter().map(Ok))
}
