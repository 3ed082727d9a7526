//! `mesh test` end to end.
//!
//! - Golden cases: `testdata/test/<case>/cmd` holds the arguments after `mesh test` (run from
//!   `testdata/test`), `expected.txt` the output (standard error after `--- stderr`) and `[exit N]`. Run times, ages, run ids and
//!   timestamps are replaced by placeholders. `MESH_BLESS=1` rewrites.
//! - Conformance with datacontract-cli's own expectations on its own fixtures
//!   (`../shared/vectors/datacontract-cli`, outcomes listed in `../shared/vectors/NOTES.md`).

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::{mesh, stderr, stdout, vectors};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/test")
}

/// Splits a command line, honouring double quotes.
fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in line.trim().chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    args
}

/// Replaces what changes from run to run.
fn normalize(text: &str) -> String {
    let rules = [
        (r"in \d+\.\d+ s\b", "in <time> s"),
        (r"Actual age was -?[0-9.]+[dhms]", "Actual age was <age>"),
        (r#""runId": "[^"]+""#, r#""runId": "<run id>""#),
        (
            r#""(timestampStart|timestampEnd)": "[^"]+""#,
            r#""$1": "<time>""#,
        ),
        (
            r#"("metric": "(freshness|retention)_seconds",\s*"field": "[^"]+",\s*"value": )[0-9.e+-]+"#,
            "${1}<seconds>",
        ),
        (r#"timestamp="[^"]+""#, r#"timestamp="<time>""#),
    ];
    let mut out = text.to_owned();
    for (pattern, replacement) in rules {
        out = Regex::new(pattern)
            .expect("valid regex")
            .replace_all(&out, replacement)
            .into_owned();
    }
    out
}

#[test]
fn test_golden_cases() {
    let bless = std::env::var_os("MESH_BLESS").is_some();
    let root = testdata();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testdata/test exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("cmd").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 6,
        "expected the golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let cmd = std::fs::read_to_string(case.join("cmd")).expect("cmd");
        let mut args = vec!["test".to_owned()];
        args.extend(split_args(&cmd));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = mesh(&root, &refs);
        let err = stderr(&out);
        let err = if err.is_empty() {
            String::new()
        } else {
            format!("--- stderr\n{err}")
        };
        let actual = normalize(&format!(
            "{}{err}[exit {}]\n",
            stdout(&out),
            out.status.code().unwrap_or(-1)
        ));
        let path = case.join("expected.txt");
        if bless {
            std::fs::write(&path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}--- stderr\n{}",
                case.file_name().unwrap_or_default().to_string_lossy(),
                stderr(&out)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ (MESH_BLESS=1 rewrites):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `mesh test --output json` from datacontract-cli's `tests/` folder (its fixtures' server
/// paths are relative to it) and returns (exit code, Run result).
fn dc_test(tests: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["test"];
    all.extend(args);
    all.extend(["--output", "json"]);
    let out = mesh(tests, &all);
    let doc = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "mesh test {args:?}: not JSON ({e}):\n{}{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn failing(doc: &serde_json::Value) -> Vec<String> {
    doc["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter(|c| c["result"] != "passed" && c["result"] != "skipped")
                .map(|c| {
                    format!(
                        "{} ({})",
                        c["key"].as_str().unwrap_or_default(),
                        c["result"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn schema_evolution_outcomes_match_datacontract_cli() {
    let Some(dir) = vectors::dir() else { return };
    let tests = dir.join("datacontract-cli/tests");
    let contract =
        |v: u8| format!("fixtures/schema-evolution/odcs-datacontract-cities-version-{v}.yaml");
    for format in ["csv", "parquet", "json"] {
        // Version 2 on files written before `population` existed: exactly one failure, the
        // missing column.
        let (code, doc) = dc_test(
            &tests,
            &[&contract(2), "--server", &format!("historical-{format}")],
        );
        assert_eq!(code, 1, "historical-{format}");
        assert_eq!(doc["result"], "failed");
        assert_eq!(
            failing(&doc),
            ["cities__population__field_is_present (failed)"],
            "historical-{format}"
        );

        for server in [
            format!("current-{format}"),
            format!("mixed-schema-{format}"),
        ] {
            let (code, doc) = dc_test(&tests, &[&contract(2), "--server", &server]);
            assert_eq!((code, failing(&doc)), (0, vec![]), "{server}");
            assert_eq!(doc["result"], "passed", "{server}");
        }
        if format != "json" {
            let (code, doc) = dc_test(
                &tests,
                &[
                    &contract(2),
                    "--server",
                    &format!("current-{format}-invalid"),
                ],
            );
            assert_eq!(code, 1, "current-{format}-invalid");
            assert_eq!(
                failing(&doc),
                ["cities__population__field_minimum (failed)"]
            );
        }
    }
    // Version 3 makes population required: historical data fails.
    for server in ["historical-csv", "historical-parquet"] {
        let (code, doc) = dc_test(&tests, &[&contract(3), "--server", server]);
        assert_eq!(code, 1, "v3 {server}");
        assert_eq!(doc["result"], "failed");
    }
}

#[test]
fn failed_samples_show_offending_rows_without_pii() {
    let Some(dir) = vectors::dir() else { return };
    let data = dir.join("datacontract-cli/tests/fixtures/failed_samples/orders.csv");
    let contract = testdata().join("failed-samples/orders.odcs.yaml");
    let (code, doc) = dc_test(
        &testdata(),
        &[
            &contract.display().to_string(),
            "--data",
            &data.display().to_string(),
            "--include-failed-samples",
            "5",
        ],
    );
    assert_eq!(code, 1);
    let check = |key: &str| {
        doc["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["key"] == key).cloned())
            .unwrap_or_else(|| panic!("{key}"))
    };
    let required = check("orders__region__field_required");
    let ids: Vec<i64> = required["failedSamples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(|s| s["id"].as_i64())
        .collect();
    assert_eq!(ids, [3, 5]);
    assert_eq!(
        check("orders__amount__field_maximum")["failedSamples"],
        serde_json::json!([{ "id": 3, "amount": 200 }])
    );
    let regex = check("orders__email__field_regex");
    let samples = regex["failedSamples"].as_array().expect("samples");
    assert_eq!(samples.len(), 5, "capped at 5");
    assert!(
        samples.iter().all(|s| s.get("email").is_none()),
        "the PII column is left out: {samples:?}"
    );
}

#[test]
fn parquet_logical_types_and_row_filter_match_datacontract_cli() {
    let Some(dir) = vectors::dir() else { return };
    let tests = dir.join("datacontract-cli/tests");
    let (code, doc) = dc_test(
        &tests,
        &["fixtures/parquet/datacontract_invalid_logical_types_example.yaml"],
    );
    assert_eq!(code, 1);
    let reasons: Vec<String> = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["result"] == "failed")
        .filter_map(|c| c["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("expected type 'integer' but got 'string'")),
        "{reasons:?}"
    );
    let (code, doc) = dc_test(
        &tests,
        &["fixtures/parquet/datacontract_number_no_precision.odcs.yaml"],
    );
    assert_eq!((code, doc["result"].as_str()), (0, Some("passed")));

    let (code, doc) = dc_test(&tests, &["fixtures/row-filter/datacontract.yaml"]);
    assert_eq!(
        (code, doc["result"].as_str()),
        (1, Some("failed")),
        "rowCount 3 over 5 rows"
    );
    let (code, doc) = dc_test(
        &tests,
        &[
            "fixtures/row-filter/datacontract.yaml",
            "--filter",
            "order_id <= 2",
        ],
    );
    assert_eq!(
        (code, doc["result"].as_str()),
        (0, Some("passed")),
        "{:?}",
        failing(&doc)
    );

    for fixture in [
        "fixtures/quality-id/datacontract.yaml",
        "fixtures/quality-dimensions/datacontract.yaml",
    ] {
        let (code, doc) = dc_test(&tests, &[fixture]);
        assert_eq!(
            (code, doc["result"].as_str()),
            (0, Some("passed")),
            "{fixture}: {:?}",
            failing(&doc)
        );
    }
    // Selecting rules by id and by tag runs exactly those.
    for (fixture, select) in [
        (
            "fixtures/quality-id/datacontract.yaml",
            ["--quality-id", "orders_not_empty"],
        ),
        (
            "fixtures/quality-id/datacontract.yaml",
            ["--tag", "critical"],
        ),
        (
            "fixtures/quality-dimensions/datacontract.yaml",
            ["--dimension", "completeness"],
        ),
    ] {
        let mut args = vec![fixture];
        args.extend(select);
        let (code, doc) = dc_test(&tests, &args);
        let keys: Vec<&str> = doc["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter_map(|c| c["key"].as_str())
            .collect();
        assert_eq!((code, keys), (0, vec!["orders__row_count"]), "{select:?}");
    }
}
