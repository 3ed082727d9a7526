//! import(export(c)) keeps every field the format can carry; the ones it cannot are listed by the
//! export. One rich contract (tests/inputs/roundtrip.odcs.yaml) goes through each format.

use std::collections::BTreeMap;

use mesh_interop::{Dialect, ExportFormat, ExportOptions, ImportFormat, ImportOptions};
use mesh_model::odcs::{Bound, Contract, LogicalType, SchemaProperty};

use crate::{contract, dir, golden, read};

/// What a column can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Type,
    Required,
    Unique,
    Key,
    Description,
    Enum,
    Bounds,
    Lengths,
    Pattern,
    Format,
    Nested,
    Reference,
}

fn bound(b: Option<&Bound>) -> String {
    match b {
        Some(Bound::Number(n)) => n.as_f64().map(|f| f.to_string()).unwrap_or_default(),
        Some(Bound::Text(t)) => t.clone(),
        None => String::new(),
    }
}

fn column(p: &SchemaProperty, fields: &[Field], out: &mut BTreeMap<String, String>, path: &str) {
    let here = format!("{path}.{}", p.name());
    let o = p.logical_type_options.as_ref();
    let mut s = Vec::new();
    for f in fields {
        let v = match f {
            Field::Type => format!("{:?}", p.logical_type),
            Field::Required => format!("required={}", p.is_required() || p.is_primary_key()),
            Field::Unique => format!("unique={}", p.is_unique()),
            Field::Key => format!(
                "key={:?}",
                p.is_primary_key().then_some(p.primary_key_position)
            ),
            Field::Description => format!("desc={:?}", p.description),
            Field::Enum => format!("enum={:?}", p.allowed_values().collect::<Vec<_>>()),
            Field::Bounds => format!(
                "min={} max={}",
                bound(o.and_then(|o| o.minimum.as_ref())),
                bound(o.and_then(|o| o.maximum.as_ref()))
            ),
            Field::Lengths => format!(
                "len={:?}..{:?}",
                o.and_then(|o| o.min_length),
                o.and_then(|o| o.max_length)
            ),
            Field::Pattern => format!("pattern={:?}", o.and_then(|o| o.pattern.clone())),
            Field::Format => format!(
                "format={:?}",
                o.and_then(|o| o.format.clone())
                    .filter(|_| p.logical_type == Some(LogicalType::String))
            ),
            Field::Nested => format!(
                "items={:?} map={:?}",
                p.items.as_ref().and_then(|i| i.logical_type),
                p.map.as_ref().map(|m| m.value.logical_type)
            ),
            Field::Reference => format!(
                "ref={:?}",
                p.relationships
                    .iter()
                    .filter_map(|r| r.to.as_ref())
                    .map(|t| t.as_slice()[0].as_str().to_owned())
                    .collect::<Vec<_>>()
            ),
        };
        s.push(v);
    }
    out.insert(here.clone(), s.join(" "));
    if fields.contains(&Field::Nested) {
        for c in &p.properties {
            column(c, fields, out, &here);
        }
    }
}

pub(crate) fn shape(c: &Contract, fields: &[Field]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for o in &c.schema {
        for p in &o.properties {
            column(p, fields, &mut out, &o.name);
        }
    }
    out
}

/// The entries of two shapes that differ, for a readable failure.
pub(crate) fn differences(
    got: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    for (k, v) in want {
        match got.get(k) {
            Some(g) if g == v => {}
            Some(g) => out.push_str(&format!("{k}:\n  want {v}\n  got  {g}\n")),
            None => out.push_str(&format!("{k}: missing\n")),
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push_str(&format!("{k}: unexpected\n"));
    }
    out
}

pub(crate) fn original() -> Contract {
    contract(&read(&dir("inputs").join("roundtrip.odcs.yaml")))
}

/// Exports, imports back, and compares the fields the format carries.
fn round_trip(
    to: ExportFormat,
    from: ImportFormat,
    dialect: Option<Dialect>,
    fields: &[Field],
) -> (Contract, Vec<String>) {
    let c = original();
    let exported = mesh_interop::export(
        to,
        &c,
        &ExportOptions {
            dialect,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    let options = ImportOptions {
        dialect,
        ..ImportOptions::default()
    };
    let back = mesh_interop::import(from, "roundtrip", &exported.text, &options)
        .unwrap_or_else(|p| panic!("{p}\n{}", exported.text));
    let back = contract(&back.contract_yaml());
    let (got, want) = (shape(&back, fields), shape(&c, fields));
    assert!(
        got == want,
        "{to:?} {dialect:?}: a field the format carries was lost\n{}\n{}",
        differences(&got, &want),
        exported.text
    );
    (back, exported.lost)
}

fn lists(lost: &[String], needle: &str) {
    assert!(
        lost.iter().any(|l| l.contains(needle)),
        "the export does not list `{needle}` as lost: {lost:#?}"
    );
}

#[test]
fn sql_keeps_types_keys_constraints_and_comments() {
    use Field::*;
    for dialect in [Dialect::Postgres, Dialect::Duckdb, Dialect::Snowflake] {
        let fields: &[Field] = if dialect == Dialect::Snowflake {
            // Snowflake keeps descriptions in COMMENT ON, types as VARCHAR/NUMBER; no UUID type.
            &[Required, Unique, Key, Description, Enum, Bounds, Reference]
        } else {
            &[Required, Unique, Key, Description, Enum, Bounds, Reference]
        };
        let (back, lost) = round_trip(ExportFormat::Sql, ImportFormat::Sql, Some(dialect), fields);
        lists(&lost, "orders.currency: quality rule nullValues");
        lists(&lost, "slaProperties.latency");
        let orders = back.schema_object("orders").unwrap();
        assert_eq!(
            orders
                .property("currency")
                .unwrap()
                .logical_type_options
                .as_ref()
                .and_then(|o| o.max_length),
            Some(3),
            "{dialect:?}"
        );
    }
    let (_, lost) = round_trip(
        ExportFormat::Sql,
        ImportFormat::Sql,
        Some(Dialect::Postgres),
        &[Field::Format, Field::Lengths],
    );
    lists(&lost, "orders.address: the nested properties");
}

#[test]
fn json_schema_keeps_structure_values_and_documentation() {
    use Field::*;
    let (_, lost) = round_trip(
        ExportFormat::JsonSchema,
        ImportFormat::JsonSchema,
        None,
        &[
            Type,
            Required,
            Description,
            Enum,
            Bounds,
            Lengths,
            Pattern,
            Format,
            Nested,
        ],
    );
    lists(&lost, "customers.email: unique");
    lists(&lost, "orders.order_id: primaryKey");
}

#[test]
fn avro_keeps_structure_types_nullability_and_allowed_values() {
    use Field::*;
    let (back, lost) = round_trip(
        ExportFormat::Avro,
        ImportFormat::Avro,
        None,
        &[Type, Required, Description, Enum, Nested],
    );
    let amount = back
        .schema_object("orders")
        .unwrap()
        .property("amount")
        .unwrap();
    assert_eq!(amount.physical_type.as_deref(), Some("decimal(12,2)"));
    lists(&lost, "orders.amount: minimum");
    lists(&lost, "customers.email: unique");
}

#[test]
fn protobuf_keeps_structure_types_presence_and_allowed_values() {
    use Field::*;
    let (back, lost) = round_trip(
        ExportFormat::Protobuf,
        ImportFormat::Protobuf,
        None,
        &[Required, Description, Enum],
    );
    // Types Protobuf has: dates and times become strings (listed), the rest come back.
    let orders = back.schema_object("orders").unwrap();
    for (name, lt) in [
        ("order_id", LogicalType::Integer),
        ("amount", LogicalType::Number),
        ("placed_at", LogicalType::Timestamp),
        ("tags", LogicalType::Array),
        ("attributes", LogicalType::Map),
        ("address", LogicalType::Object),
    ] {
        assert_eq!(
            orders.property(name).unwrap().logical_type,
            Some(lt),
            "{name}"
        );
    }
    lists(&lost, "orders.shipped_on: the date type");
    lists(&lost, "orders.amount: the exact decimal");
    lists(&lost, "customers.email: unique");
}

#[test]
fn exports_match_their_golden_files() {
    let c = original();
    for (format, dialect, name) in [
        (
            ExportFormat::Sql,
            Some(Dialect::Postgres),
            "roundtrip.postgres.sql",
        ),
        (
            ExportFormat::Sql,
            Some(Dialect::Mysql),
            "roundtrip.mysql.sql",
        ),
        (
            ExportFormat::Sql,
            Some(Dialect::Sqlite),
            "roundtrip.sqlite.sql",
        ),
        (
            ExportFormat::Sql,
            Some(Dialect::Bigquery),
            "roundtrip.bigquery.sql",
        ),
        (ExportFormat::JsonSchema, None, "roundtrip.schema.json"),
        (ExportFormat::Avro, None, "roundtrip.avsc"),
        (ExportFormat::Protobuf, None, "roundtrip.proto"),
        (ExportFormat::Dbt, None, "roundtrip.dbt.yml"),
        (ExportFormat::GreatExpectations, None, "roundtrip.gx.json"),
        (ExportFormat::SodaCl, None, "roundtrip.sodacl.yml"),
        (ExportFormat::Markdown, None, "roundtrip.md"),
        (ExportFormat::Html, None, "roundtrip.html"),
    ] {
        let e = mesh_interop::export(
            format,
            &c,
            &ExportOptions {
                dialect,
                ..ExportOptions::default()
            },
        )
        .unwrap();
        golden(&format!("export/{name}"), &e.text);
        golden(&format!("export/{name}.lost"), &(e.lost.join("\n") + "\n"));
    }
}

#[test]
fn odcs_goes_down_to_v3_1_and_back_keeping_allowed_values_as_a_rule() {
    let c = original();
    let down = mesh_interop::export(
        ExportFormat::Odcs,
        &c,
        &ExportOptions {
            odcs_version: Some("v3.1.0".into()),
            ..ExportOptions::default()
        },
    )
    .unwrap();
    golden("export/roundtrip.v3.1.0.odcs.yaml", &down.text);
    assert!(crate::lint_errors("down", &down.text).is_empty());
    let old = contract(&down.text);
    let status = old
        .schema_object("orders")
        .unwrap()
        .property("status")
        .unwrap();
    assert!(status.enum_values.is_empty());
    let rule = status
        .quality
        .iter()
        .find(|q| q.metric == Some(mesh_model::odcs::Metric::InvalidValues))
        .expect("the values as a rule");
    assert_eq!(
        rule.arguments.as_ref().unwrap().0["validValues"],
        serde_json::json!(["placed", "shipped", "delivered"])
    );
    lists(
        &down.lost,
        "orders.attributes: the map's key and value types",
    );
    // Normalised in its own version: the same contract.
    let same = mesh_interop::export(ExportFormat::Odcs, &c, &ExportOptions::default()).unwrap();
    assert_eq!(contract(&same.text), c);
    assert!(same.lost.is_empty());
    // Up again: v3.2.0 refuses a property without a logicalType, and says so.
    let untyped = contract(
        "apiVersion: v3.1.0\nkind: DataContract\nid: u\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: anything\n",
    );
    let err = mesh_interop::export(
        ExportFormat::Odcs,
        &untyped,
        &ExportOptions {
            odcs_version: Some("v3.2.0".into()),
            ..ExportOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.contains("must have `map`"), "{err}");
}

/// Avro and Protobuf name the same value constraints as lost, item counts and `multipleOf` too.
#[test]
fn formats_without_value_constraints_list_every_one_they_drop() {
    let c = contract(
        "apiVersion: v3.2.0\nkind: DataContract\nid: t\nversion: 1.0.0\nschema:\n  - name: t\n    properties:\n      - name: tags\n        logicalType: array\n        logicalTypeOptions:\n          minItems: 1\n          uniqueItems: true\n        items:\n          logicalType: string\n      - name: price\n        logicalType: number\n        logicalTypeOptions:\n          multipleOf: 0.01\n",
    );
    for (format, name) in [
        (ExportFormat::Avro, "Avro"),
        (ExportFormat::Protobuf, "Protobuf"),
    ] {
        let lost = mesh_interop::export(format, &c, &ExportOptions::default())
            .unwrap()
            .lost;
        for key in [
            "t.tags: minItems",
            "t.tags: uniqueItems",
            "t.price: multipleOf",
        ] {
            let line = format!("{key} ({name} types carry no value constraints)");
            assert!(lost.contains(&line), "{name}: `{line}` not in {lost:#?}");
        }
    }
}
