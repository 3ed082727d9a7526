//! Round trip: every valid vector parsed, written back (as JSON and as YAML) and parsed again
//! gives an equal model, and the written document is the original one (up to dropped empty
//! lists, which the standards treat like absent ones).

use mesh_model::document::{Parsed, parse_contract, parse_product};
use serde_json::Value;

use crate::vectors;

fn without_empty_lists(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                .map(|(k, v)| (k.clone(), without_empty_lists(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty_lists).collect()),
        other => other.clone(),
    }
}

fn check<T: PartialEq + std::fmt::Debug + serde::Serialize>(
    path: &str,
    text: &str,
    parse: fn(&str) -> Parsed<T>,
) {
    let first = parse(text);
    assert!(
        !first.has_errors(),
        "{path}: valid vector has errors: {:?}",
        first.diagnostics
    );
    let original = first.root.as_ref().expect("root").to_json();
    let model = first.model.expect("model");

    let written = serde_json::to_value(&model).expect("serialises");
    // Free-form values keep what was written; our lists drop only `[]`.
    assert_eq!(
        written,
        without_empty_lists(&original),
        "{path}: serialised document differs from the original"
    );

    for (format, text) in [
        ("json", serde_json::to_string_pretty(&model).expect("json")),
        ("yaml", yaml_serde::to_string(&model).expect("yaml")),
    ] {
        let again = parse(&text);
        assert!(
            !again.has_errors(),
            "{path} ({format}): written document has errors: {:?}\n{text}",
            again.diagnostics
        );
        assert_eq!(
            again.model.as_ref(),
            Some(&model),
            "{path} ({format}): model changed in the round trip"
        );
    }
}

#[test]
fn every_valid_vector_round_trips() {
    let Some(dir) = vectors::dir() else { return };
    let mut n = 0;
    for row in vectors::rows(&dir).into_iter().filter(|r| r.valid) {
        let text = std::fs::read_to_string(dir.join(&row.path)).expect("vector readable");
        if row.standard.starts_with("odps") {
            check(&row.path, &text, parse_product);
        } else {
            check(&row.path, &text, parse_contract);
        }
        n += 1;
    }
    assert!(n >= 55, "expected the valid ODCS/ODPS vectors, found {n}");
}
