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
