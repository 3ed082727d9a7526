//! Fuzzing OpenLineage ingestion (issue 19): whatever event a job reports to
//! `POST /api/v1/lineage`, ingesting it finishes without panicking — mutated seed events,
//! random bytes, and every event that parses as JSON goes through the catalog.

use std::sync::Arc;

use mesh_catalog::{Catalog, Principal, store::SqliteStore};
use mesh_testkit::fuzz;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "1e999",
    "-0",
    "\"eventType\": \"COMPLETE\"",
    "\"inputs\": [",
    "\"outputs\": [",
    "\"facets\": {",
    "\"columnLineage\": {\"fields\": {",
    "\"inputFields\": [",
    "\"namespace\": \"mesh\"",
    "\"name\": \"a.b.c\"",
    "\"name\": \"\"",
    "\"field\": \"x\"",
    "\"job\": {",
    "\"run\": {\"runId\": \"x\"}",
    "\"schema\": {\"fields\": [",
    "\\u0000",
    "\\ud800",
    "\u{1F600}",
];

#[test]
fn openlineage_events_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let catalog = runtime.block_on(async {
        let store = SqliteStore::open(dir.path().join("c.db").to_str().unwrap())
            .await
            .unwrap();
        Catalog::new(Arc::new(store))
    });
    let admin = Principal::local();
    let seeds: Vec<serde_json::Value> = fuzz::seeds("openlineage")
        .iter()
        .map(|(_, text)| serde_json::from_str(text).unwrap())
        .collect();
    fuzz::campaign("openlineage", fuzz::cases(300), TOKENS, |text| {
        // Text that is not JSON stands for a structural edit of a seed event (most byte edits
        // break the JSON, and the parser is not what is fuzzed here).
        let event = serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|_| {
            let mut rng = fuzz::Rng::new(
                text.bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
            );
            let mut event = rng.pick(&seeds).clone();
            for _ in 0..1 + rng.below(6) {
                edit(&mut rng, &mut event, 0);
            }
            event
        });
        let _ = runtime.block_on(catalog.ingest_lineage(&admin, &event));
    });
}

/// One structural edit somewhere in `value`: a node replaced by another type, a key removed,
/// an array's item duplicated many times, an object nested in itself.
fn edit(rng: &mut fuzz::Rng, value: &mut serde_json::Value, depth: usize) {
    use serde_json::{Value, json};
    let replacement = |rng: &mut fuzz::Rng| match rng.below(8) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(1e300),
        4 => json!(""),
        5 => json!("mesh"),
        6 => json!([]),
        _ => json!({}),
    };
    match value {
        Value::Object(map) if !map.is_empty() && depth < 12 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(5) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, replacement(rng));
                }
                2 => {
                    let copy = Value::Object(map.clone());
                    map.insert(format!("{key}_"), copy);
                }
                _ => {
                    if let Some(child) = map.get_mut(&key) {
                        edit(rng, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 12 => {
            let i = rng.below(items.len());
            match rng.below(3) {
                0 => {
                    let copy = items[i].clone();
                    items.extend(std::iter::repeat_n(copy, rng.below(200)));
                }
                1 => items[i] = replacement(rng),
                _ => edit(rng, &mut items[i], depth + 1),
            }
        }
        other => *other = replacement(rng),
    }
}
