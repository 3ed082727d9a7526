//! Integration tests of mesh-interop (one binary): golden imports and exports of inputs written for
//! these tests, round trips per format, the real consumers of each export, and hostile inputs.

#![allow(clippy::print_stderr)]

mod consumers;
mod hostile;
mod roundtrip;

use std::path::{Path, PathBuf};

use mesh_interop::{Dialect, ImportFormat, ImportOptions};

pub(crate) fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares `actual` with the golden file, or writes it with `MESH_BLESS=1`.
pub(crate) fn golden(name: &str, actual: &str) {
    let path = dir("golden").join(name);
    if std::env::var_os("MESH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run with MESH_BLESS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} differs from its golden file (MESH_BLESS=1 rewrites it)"
    );
}

/// Every error-level finding of the full lint (structure, semantics, readiness) on a contract.
pub(crate) fn lint_errors(name: &str, text: &str) -> Vec<String> {
    let file = mesh_model::lint::SourceFile {
        path: format!("{name}.odcs.yaml"),
        text: text.to_owned(),
        explicit: true,
    };
    let report = mesh_model::lint::lint(&[file], mesh_model::lint::LintOptions::default());
    report
        .files
        .iter()
        .flat_map(|f| &f.diagnostics)
        .filter(|d| d.is_error())
        .map(|d| d.render(name))
        .collect()
}

pub(crate) fn contract(text: &str) -> mesh_model::odcs::Contract {
    let parsed = mesh_model::parse_contract(text);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    parsed.model.expect("a contract")
}

/// The inputs and how to read them.
const INPUTS: &[(&str, ImportFormat, Option<Dialect>)] = &[
    (
        "shop.postgres.sql",
        ImportFormat::Sql,
        Some(Dialect::Postgres),
    ),
    ("shop.mysql.sql", ImportFormat::Sql, Some(Dialect::Mysql)),
    ("shop.sqlite.sql", ImportFormat::Sql, Some(Dialect::Sqlite)),
    (
        "shop.snowflake.sql",
        ImportFormat::Sql,
        Some(Dialect::Snowflake),
    ),
    (
        "shop.bigquery.sql",
        ImportFormat::Sql,
        Some(Dialect::Bigquery),
    ),
    ("shop.duckdb.sql", ImportFormat::Sql, Some(Dialect::Duckdb)),
    ("order.schema.json", ImportFormat::JsonSchema, None),
    ("order.avsc", ImportFormat::Avro, None),
    ("order.proto", ImportFormat::Protobuf, None),
    ("manifest.json", ImportFormat::Dbt, None),
];

#[test]
fn imports_match_their_golden_contracts_and_lint_clean() {
    for (name, format, dialect) in INPUTS {
        let path = dir("inputs").join(name);
        let options = ImportOptions {
            dialect: *dialect,
            ..ImportOptions::default()
        };
        // The path, so that imports (Protobuf) are found beside the file.
        let shown = path.display().to_string();
        let imported = mesh_interop::import(*format, &shown, &read(&path), &options)
            .unwrap_or_else(|p| panic!("{name}: {p}"));
        let yaml = imported.contract_yaml();
        let errors = lint_errors(name, &yaml);
        assert!(
            errors.is_empty(),
            "{name}: the imported contract does not lint:\n{}\n{yaml}",
            errors.join("\n")
        );
        let notes: String = imported
            .notes
            .iter()
            .map(|n| n.render(name) + "\n")
            .collect();
        golden(&format!("import/{name}.odcs.yaml"), &yaml);
        golden(&format!("import/{name}.notes"), &notes);
    }
}

#[test]
fn imports_keep_names_types_nullability_keys_descriptions_and_constraints() {
    let imported = mesh_interop::import(
        ImportFormat::Sql,
        "shop.postgres.sql",
        &read(&dir("inputs").join("shop.postgres.sql")),
        &ImportOptions::default(),
    )
    .unwrap();
    let c = contract(&imported.contract_yaml());
    let orders = c.schema_object("orders").unwrap();
    assert_eq!(
        orders.description.as_deref(),
        Some("One row per order line.")
    );
    let key: Vec<(&str, Option<i64>)> = orders
        .properties
        .iter()
        .filter(|p| p.is_primary_key())
        .map(|p| (p.name(), p.primary_key_position))
        .collect();
    assert_eq!(key, [("order_id", Some(1)), ("line_no", Some(2))]);
    let amount = orders.property("amount").unwrap();
    assert!(amount.is_required());
    assert_eq!(
        amount.description.as_deref(),
        Some("Line total in the order's currency.")
    );
    let o = amount.logical_type_options.as_ref().unwrap();
    assert_eq!(o.minimum, Some(mesh_model::odcs::Bound::Number(0.into())));
    assert_eq!(
        o.maximum,
        Some(mesh_model::odcs::Bound::Number(100_000.into()))
    );
    let status: Vec<_> = orders
        .property("status")
        .unwrap()
        .allowed_values()
        .cloned()
        .collect();
    assert_eq!(status.len(), 4);
    let customer = orders.property("customer_id").unwrap();
    assert_eq!(
        customer.relationships[0].to.as_ref().unwrap().as_slice()[0].as_str(),
        "customers.customer_id"
    );
    // The CHECK that names two columns is a SQL rule that counts the rows breaking it.
    assert_eq!(orders.quality.len(), 1);
    assert!(
        orders.quality[0]
            .query
            .as_deref()
            .unwrap()
            .contains("NOT (shipped_on IS NULL")
    );
    // And the trigger and index are named, with where they are.
    let notes: Vec<String> = imported
        .notes
        .iter()
        .map(|n| n.render("shop.postgres.sql"))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("shop.postgres.sql:32:1:") && n.contains("trigger")),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("CREATE INDEX")),
        "{notes:#?}"
    );
}

#[test]
fn an_avro_union_of_records_is_named_with_what_was_imported() {
    let imported = mesh_interop::import(
        ImportFormat::Avro,
        "order.avsc",
        &read(&dir("inputs").join("order.avsc")),
        &ImportOptions::default(),
    )
    .unwrap();
    let note = imported
        .notes
        .iter()
        .find(|n| n.message.contains("a union of records"))
        .expect("a note");
    assert_eq!(note.at.map(|(line, _)| line), Some(28));
    assert!(
        note.message.contains("imported as the first, record Card"),
        "{}",
        note.message
    );
    let c = contract(&imported.contract_yaml());
    let order = c.schema_object("Order").unwrap();
    let payment = order.property("payment").unwrap();
    assert!(!payment.is_required());
    assert_eq!(payment.properties[0].name(), "last4");
    // A named type used again is the same record.
    assert_eq!(
        order.property("billing_customer").unwrap().properties.len(),
        2
    );
}

#[test]
fn the_dbt_model_filter_and_bridge_update_a_contract_in_step() {
    let manifest = read(&dir("inputs").join("manifest.json"));
    let options = ImportOptions {
        models: vec!["orders".into()],
        ..ImportOptions::default()
    };
    let imported =
        mesh_interop::import(ImportFormat::Dbt, "manifest.json", &manifest, &options).unwrap();
    assert_eq!(imported.tables.len(), 1);
    assert_eq!(imported.id, "shop.orders");
    // An existing contract with rules of its own, a column dbt no longer has, and an older type.
    let existing = "apiVersion: v3.1.0\nkind: DataContract\nid: shop.orders\nversion: 1.0.0\nstatus: active\nschema:\n  - name: orders\n    properties:\n      - name: order_id\n        logicalType: string\n        classification: internal\n        quality:\n          - metric: duplicateValues\n            mustBe: 0\n      - name: legacy_flag\n        logicalType: boolean\nslaProperties:\n  - property: latency\n    value: 1\n    unit: d\n";
    let root = mesh_model::yaml::parse(existing).root.unwrap().to_json();
    let (merged, changes) = mesh_interop::merge(&root, &imported).unwrap();
    let text = mesh_interop::to_yaml(&merged);
    let c = contract(&text);
    let orders = c.schema_object("orders").unwrap();
    let id = orders.property("order_id").unwrap();
    assert_eq!(
        id.logical_type,
        Some(mesh_model::odcs::LogicalType::Integer),
        "dbt owns the type"
    );
    assert_eq!(
        id.classification.as_deref(),
        Some("internal"),
        "the contract owns classification"
    );
    assert_eq!(id.quality.len(), 1, "the contract's rule stays");
    assert!(orders.property("legacy_flag").is_none());
    assert!(
        changes
            .iter()
            .any(|c| c.contains("removed column orders.legacy_flag")),
        "{changes:#?}"
    );
    assert_eq!(c.sla_properties.len(), 1);
    // A v3.1.0 contract has no `enum`: accepted_values became an invalidValues rule.
    let status = orders.property("status").unwrap();
    assert!(status.enum_values.is_empty());
    assert!(
        status
            .quality
            .iter()
            .any(|q| q.metric == Some(mesh_model::odcs::Metric::InvalidValues))
    );
    // A second merge changes nothing.
    let (again, changes) = mesh_interop::merge(&merged, &imported).unwrap();
    assert_eq!(again, merged);
    assert!(changes.is_empty(), "{changes:#?}");
}

#[test]
fn a_protobuf_file_with_nested_messages_and_imports_is_read_whole() {
    let path = dir("inputs").join("order.proto");
    let imported = mesh_interop::import(
        ImportFormat::Protobuf,
        &path.display().to_string(),
        &read(&path),
        &ImportOptions::default(),
    )
    .unwrap();
    let c = contract(&imported.contract_yaml());
    let order = c.schema_object("Order").unwrap();
    assert_eq!(
        order.description.as_deref(),
        Some("An order, as the checkout service publishes it.")
    );
    // From the imported file, with its comments.
    let total = order.property("total").unwrap();
    assert_eq!(
        total.properties[0].description.as_deref(),
        Some("ISO 4217 code, e.g. EUR.")
    );
    // Nested message, repeated: an array of objects.
    let lines = order.property("lines").unwrap();
    let line = lines.items.as_ref().unwrap();
    assert_eq!(
        line.properties.iter().map(|p| p.name()).collect::<Vec<_>>(),
        ["sku", "quantity", "price"]
    );
    // The enum's zero value is not a value the data has.
    let status: Vec<_> = order
        .property("status")
        .unwrap()
        .allowed_values()
        .cloned()
        .collect();
    assert_eq!(
        status,
        [
            serde_json::json!("PLACED"),
            serde_json::json!("SHIPPED"),
            serde_json::json!("DELIVERED")
        ]
    );
    assert_eq!(
        order.property("placed_at").unwrap().logical_type,
        Some(mesh_model::odcs::LogicalType::Timestamp)
    );
    assert!(
        !order.property("coupon").unwrap().is_required(),
        "`optional` is not required"
    );
    assert!(order.property("order_id").unwrap().is_required());
    assert!(
        !order.property("iban").unwrap().is_required(),
        "a oneof member is not required"
    );
}
