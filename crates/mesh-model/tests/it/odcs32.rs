//! ODCS v3.2.0: mesh's own vectors (tests/odcs-3.2, the standard ships none) read, linted and
//! written back; their verdicts in `EXPECTED.tsv` are the official schema's (checked by the
//! differential test when the shared vectors are present).

use std::path::PathBuf;

use mesh_model::lint::{LintOptions, SourceFile, lint};
use mesh_model::odcs::{Context, LogicalType, SemanticType};

/// Every vector with its verdict.
pub(crate) fn vectors() -> Vec<(PathBuf, bool)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/odcs-3.2");
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    expected
        .lines()
        .skip(1)
        .map(|line| {
            let (path, verdict) = line.split_once('\t').expect("path<TAB>verdict");
            (dir.join(path), verdict == "valid")
        })
        .collect()
}

fn lint_file(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("readable");
    let file = SourceFile {
        path: path.file_name().unwrap().to_string_lossy().into_owned(),
        text,
        explicit: true,
    };
    let report = lint(&[file], LintOptions::default());
    report
        .files
        .iter()
        .flat_map(|f| &f.diagnostics)
        .filter(|d| d.is_error())
        .map(|d| d.render(&path.display().to_string()))
        .collect()
}

#[test]
fn lint_gives_each_v3_2_vector_its_verdict() {
    let mut wrong = Vec::new();
    for (path, valid) in vectors() {
        let errors = lint_file(&path);
        if errors.is_empty() != valid {
            wrong.push(format!(
                "{}: expected {}\n{}",
                path.display(),
                if valid { "valid" } else { "invalid" },
                errors.join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn a_v3_1_contract_using_v3_2_keys_is_told_which_version_has_them() {
    let (path, _) = vectors()
        .into_iter()
        .find(|(p, _)| p.ends_with("older-version-new-keys.odcs.yaml"))
        .unwrap();
    let errors = lint_file(&path);
    assert!(
        errors.iter().any(|e| e.contains("`enum` is new in ODCS v3.2.0") && e.contains("apiVersion: v3.2.0")),
        "{errors:#?}"
    );
    let untyped = lint_file(&path.with_file_name("untyped-property.odcs.yaml"));
    assert!(
        untyped
            .iter()
            .any(|e| e.contains(":9:") && e.contains("give the property a `logicalType`")),
        "{untyped:#?}"
    );
}

#[test]
fn the_new_fields_are_read_into_the_model_and_written_back() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/odcs-3.2/orders.odcs.yaml"),
    )
    .unwrap();
    let parsed = mesh_model::parse_contract(&text);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    let contract = parsed.model.unwrap();
    assert!(contract.status.is_none());
    match &contract.context {
        Some(Context::Detail(d)) => {
            assert_eq!(d.verified_statements.len(), 2);
            assert_eq!(d.constraints[0].id.as_deref(), Some("no-pii-join"));
        }
        other => panic!("context: {other:?}"),
    }
    let orders = contract.schema_object("orders").unwrap();
    assert_eq!(orders.synonyms.len(), 2);
    assert_eq!(
        orders.context.as_ref().and_then(Context::instructions),
        Some("Use `placed_at` for time series, never `updated_at`.")
    );
    let status = orders.property("status").unwrap();
    let allowed: Vec<_> = status.allowed_values().cloned().collect();
    assert_eq!(
        allowed,
        vec![
            serde_json::json!("placed"),
            serde_json::json!("shipped"),
            serde_json::json!("delivered"),
            serde_json::json!("cancelled")
        ]
    );
    assert_eq!(status.semantic_type, Some(SemanticType::Dimension));
    assert!(orders.property("coupon_code").unwrap().is_deprecated());
    let discounts = orders.property("discounts").unwrap();
    assert_eq!(discounts.logical_type, Some(LogicalType::Map));
    assert_eq!(
        discounts.map.as_ref().unwrap().value.logical_type,
        Some(LogicalType::Number)
    );
    let embedding = orders.property("description_embedding").unwrap();
    assert_eq!(
        embedding.logical_type_options.as_ref().unwrap().dimensions,
        Some(384)
    );
    assert!(
        matches!(contract.servers[0].port, Some(mesh_model::odcs::Port::Text(ref t)) if t == "${DB_PORT}")
    );
    assert_eq!(
        contract.custom_properties[0].vendor.as_deref(),
        Some("acme-catalog")
    );
    assert_eq!(contract.sla_properties[0].custom_properties.len(), 1);
    // Written back as JSON, read again: the same contract.
    let json = serde_json::to_string(&contract).unwrap();
    let again = mesh_model::parse_contract(&json);
    assert!(!again.has_errors(), "{:#?}", again.diagnostics);
    assert_eq!(again.model.unwrap(), contract);
}
