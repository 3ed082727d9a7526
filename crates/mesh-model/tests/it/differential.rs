//! Differential test against the official JSON schemas: thousands of mutated variants of the
//! vectors (keys dropped, added, moved between objects; values retyped; enum values swapped), each
//! judged by the official schema (with the `jsonschema` crate) and by our typed parse. They must
//! agree on every one, which is what lets `mesh lint` claim the official verdict without shipping
//! the schema.
//!
//! Deterministic: the seed is fixed (override with `MESH_DIFF_SEED`), and every disagreement
//! prints the mutated document.

use mesh_model::odcs::{LogicalType, Metric, QualityType, ServerType};
use serde_json::{Value, json};

use crate::vectors;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn all_paths(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(path.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(Seg::Key(k.clone()));
                all_paths(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                all_paths(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a Value, path: &[Seg]) -> &'a Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &v[k.as_str()],
        Seg::Index(i) => &v[*i],
    })
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

fn strings() -> Vec<String> {
    let mut pool: Vec<String> = Vec::new();
    pool.extend(LogicalType::ALL.iter().map(|s| s.to_string()));
    pool.extend(ServerType::ALL.iter().step_by(3).map(|s| s.to_string()));
    pool.extend(QualityType::ALL.iter().map(|s| s.to_string()));
    pool.extend(Metric::ALL.iter().map(|s| s.to_string()));
    for s in [
        "foreignKey",
        "tbl.col",
        "/schema/tbl/properties/col",
        "bad ref!",
        "i32",
        "f64",
        "i7",
        "sftp://h/p",
        "s3://b/k",
        "DataContract",
        "DataProduct",
        "v3.2.0",
        "v3.1.0",
        "v3.0.2",
        "v1.0.0",
        "v9",
        "completeness",
        "x y",
        "2024-01-01",
        "ok_id-1",
        "map",
        "vector",
        "measure",
        "dimension",
        "${DB_PORT}",
        "hana",
        "iceberg",
        "teradata",
        "a-b.c.d",
        "other.yml#/schema/t/properties/c",
        "float32",
        "cosine",
    ] {
        pool.push(s.to_owned());
    }
    pool
}

const KEYS: &[&str] = &[
    "logicalType",
    "logicalTypeOptions",
    "items",
    "properties",
    "metric",
    "query",
    "engine",
    "implementation",
    "rule",
    "arguments",
    "mustBe",
    "mustBeLessThan",
    "mustBeBetween",
    "from",
    "to",
    "type",
    "port",
    "location",
    "format",
    "delimiter",
    "id",
    "name",
    "required",
    "unique",
    "minLength",
    "maximum",
    "multipleOf",
    "team",
    "members",
    "contractId",
    "relationships",
    "quality",
    "status",
    "description",
    "value",
    // ODCS v3.2.0
    "enum",
    "map",
    "key",
    "semanticType",
    "synonyms",
    "synonym",
    "deprecated",
    "context",
    "instructions",
    "dimensions",
    "elementType",
    "encoding",
    "workgroup",
    "catalogUrl",
    "vendor",
    "stagingDir",
];

fn scalars(rng: &mut Rng, pool: &[String]) -> Value {
    match rng.below(10) {
        9 => json!(1e20),
        0 => Value::Null,
        1 => json!(true),
        2 => json!(7),
        3 => json!(-1),
        4 => json!(2.5),
        5 => json!([]),
        6 => json!({}),
        7 => json!([1, 2]),
        _ => json!(rng.pick(pool).cloned().unwrap_or_default()),
    }
}

/// Applies one random mutation; `false` when the picked one did not apply.
fn mutate(doc: &mut Value, rng: &mut Rng, pool: &[String]) -> bool {
    let mut paths = Vec::new();
    all_paths(doc, &mut Vec::new(), &mut paths);
    let objects: Vec<Vec<Seg>> = paths
        .iter()
        .filter(|p| at(doc, p).is_object())
        .cloned()
        .collect();
    match rng.below(7) {
        0 => {
            // drop a key
            let Some(path) = rng.pick(&objects) else {
                return false;
            };
            let map = at_mut(doc, path).as_object_mut().expect("object");
            let keys: Vec<String> = map.keys().cloned().collect();
            let Some(key) = rng.pick(&keys) else {
                return false;
            };
            map.remove(key);
        }
        1 => {
            // add a key from the vocabulary with a random value
            let Some(path) = rng.pick(&objects) else {
                return false;
            };
            let key = rng.pick(KEYS).copied().unwrap_or("x");
            let value = scalars(rng, pool);
            at_mut(doc, path)
                .as_object_mut()
                .expect("object")
                .insert(key.to_owned(), value);
        }
        2 => {
            // retype any value
            let Some(path) = rng.pick(&paths[1..]) else {
                return false;
            };
            *at_mut(doc, path) = scalars(rng, pool);
        }
        3 => {
            // swap a string for a meaningful word
            let strs: Vec<Vec<Seg>> = paths
                .iter()
                .filter(|p| at(doc, p).is_string())
                .cloned()
                .collect();
            let Some(path) = rng.pick(&strs) else {
                return false;
            };
            *at_mut(doc, path) = json!(rng.pick(pool).cloned().unwrap_or_default());
        }
        4 => {
            // move a key/value pair into another object
            let Some(from) = rng.pick(&objects).cloned() else {
                return false;
            };
            let pairs: Vec<(String, Value)> = at_mut(doc, &from)
                .as_object()
                .expect("object")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let Some((k, v)) = rng.pick(&pairs).cloned() else {
                return false;
            };
            let Some(to) = rng.pick(&objects) else {
                return false;
            };
            at_mut(doc, to)
                .as_object_mut()
                .expect("object")
                .insert(k, v);
        }
        5 => {
            // drop or duplicate a list item
            let lists: Vec<Vec<Seg>> = paths
                .iter()
                .filter(|p| at(doc, p).is_array())
                .cloned()
                .collect();
            let Some(path) = rng.pick(&lists) else {
                return false;
            };
            let dup = rng.below(2) == 0;
            let list = at_mut(doc, path).as_array_mut().expect("array");
            if list.is_empty() {
                return false;
            }
            let i = rng.below(list.len());
            if dup {
                let item = list[i].clone();
                list.push(item);
            } else {
                list.remove(i);
            }
        }
        _ => {
            // a second operator or an option on a random object
            let Some(path) = rng.pick(&objects) else {
                return false;
            };
            let (key, value) = match rng.below(8) {
                0 => ("mustBeGreaterThan", json!(1)),
                1 => ("mustBeBetween", json!([5, 1])),
                2 => ("logicalTypeOptions", json!({ "minLength": 1 })),
                3 => (
                    "enum",
                    json!([{ "value": "a" }, { "value": 1, "label": "one" }]),
                ),
                4 => (
                    "map",
                    json!({ "key": { "logicalType": "string" }, "value": { "logicalType": "integer" } }),
                ),
                5 => (
                    "logicalTypeOptions",
                    json!({ "dimensions": 8, "elementType": "int8" }),
                ),
                6 => ("synonyms", json!([{ "synonym": "alias", "locale": "en" }])),
                _ => (
                    "logicalTypeOptions",
                    json!({ "format": "i64", "minimum": 0 }),
                ),
            };
            at_mut(doc, path)
                .as_object_mut()
                .expect("object")
                .insert(key.to_owned(), value);
        }
    }
    true
}

/// The official verdict on an ODCS document: the v3.2.0 schema's for one declaring v3.2.0, the
/// v3.1.0 schema's otherwise (mesh judges each document by the version it declares; the v3.2.0
/// schema would also accept older apiVersions while applying its own, looser rules).
struct Odcs {
    v3_1: jsonschema::Validator,
    v3_2: jsonschema::Validator,
}

impl Odcs {
    fn load(dir: &std::path::Path) -> Self {
        let read = |p: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join(p)).expect("schema readable"))
                .expect("schema is JSON")
        };
        Odcs {
            v3_1: oracle(&read("odcs/schema/odcs-json-schema-v3.1.0.json")),
            v3_2: oracle(&read("odcs-3.2/schema/odcs-json-schema-v3.2.0.json")),
        }
    }

    fn for_doc(&self, doc: &Value) -> &jsonschema::Validator {
        if doc.get("apiVersion").and_then(Value::as_str) == Some("v3.2.0") {
            &self.v3_2
        } else {
            &self.v3_1
        }
    }
}

fn oracle(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(false)
        .build(schema)
        .expect("official schema compiles")
}

#[test]
fn typed_parse_agrees_with_the_official_schemas_on_mutated_documents() {
    let Some(dir) = vectors::dir() else { return };
    let read = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(p)).expect("schema readable"))
            .expect("schema is JSON")
    };
    let odcs = Odcs::load(&dir);
    let odps = oracle(&read("odps/schema/odps-json-schema-v1.0.0.json"));
    let seed = std::env::var("MESH_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE_u64);
    let mut rng = Rng(seed);
    let pool = strings();
    let mut checked = 0;
    let mut failures = Vec::new();

    for row in vectors::rows(&dir) {
        let text = std::fs::read_to_string(dir.join(&row.path)).expect("vector readable");
        let parsed = mesh_model::yaml::parse(&text);
        let base = parsed.root.expect("vectors are well-formed YAML").to_json();
        let product = row.standard.starts_with("odps");
        let validator = if product { &odps } else { odcs.for_doc(&base) };
        // The unmutated document must get the official verdict from the oracle too.
        assert_eq!(
            validator.is_valid(&base),
            row.valid,
            "oracle disagrees with EXPECTED.tsv on {}",
            row.path
        );
        let rounds = if text.len() > 50_000 { 20 } else { 160 };
        for round in 0..rounds {
            let mut doc = base.clone();
            let n = 1 + rng.below(3);
            let mut applied = 0;
            for _ in 0..n {
                applied += usize::from(mutate(&mut doc, &mut rng, &pool));
            }
            if applied == 0 {
                continue;
            }
            let validator = if product { &odps } else { odcs.for_doc(&doc) };
            let official = validator.is_valid(&doc);
            let json_text = serde_json::to_string_pretty(&doc).expect("serialises");
            let (ours, diagnostics) = if product {
                let p = mesh_model::parse_product(&json_text);
                (!p.has_errors(), p.diagnostics)
            } else {
                let p = mesh_model::parse_contract(&json_text);
                (!p.has_errors(), p.diagnostics)
            };
            checked += 1;
            if ours != official {
                let errors: Vec<String> = validator
                    .iter_errors(&doc)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                let shown: Vec<String> = diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.render("doc"))
                    .collect();
                failures.push(format!(
                    "{} round {round}: official {}, ours {}\nofficial errors: {errors:#?}\nour errors: {shown:#?}\n{}",
                    row.path,
                    if official { "valid" } else { "invalid" },
                    if ours { "valid" } else { "invalid" },
                    json_text
                ));
            }
        }
    }
    eprintln!(
        "differential: {checked} mutated documents checked against the official schemas (seed {seed:#x})"
    );
    assert!(
        checked > 5_000,
        "too few mutated documents checked: {checked}"
    );
    let shown: Vec<&String> = failures.iter().take(3).collect();
    assert!(
        failures.is_empty(),
        "{} disagreement(s); first ones:\n{}",
        failures.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// The same differential run on mesh's own ODCS v3.2.0 vectors (the standard publishes none), judged
/// by the official v3.2.0 schema: every key v3.2.0 added is mutated, dropped, retyped and moved.
#[test]
fn typed_parse_agrees_with_the_official_v3_2_schema_on_mutated_documents() {
    let Some(dir) = vectors::dir() else { return };
    let odcs = Odcs::load(&dir);
    let seed = std::env::var("MESH_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0DC5_3200_u64);
    let mut rng = Rng(seed);
    let pool = strings();
    let (mut checked, mut as_3_2) = (0, 0);
    let mut failures = Vec::new();
    for (path, expected) in crate::odcs32::vectors() {
        let text = std::fs::read_to_string(&path).expect("vector readable");
        let base = mesh_model::yaml::parse(&text)
            .root
            .expect("vectors are well-formed YAML")
            .to_json();
        assert_eq!(
            odcs.for_doc(&base).is_valid(&base),
            expected,
            "the official schema disagrees with EXPECTED.tsv on {}",
            path.display()
        );
        for round in 0..1_200 {
            let mut doc = base.clone();
            let n = 1 + rng.below(3);
            let applied: usize = (0..n)
                .map(|_| usize::from(mutate(&mut doc, &mut rng, &pool)))
                .sum();
            if applied == 0 {
                continue;
            }
            let validator = odcs.for_doc(&doc);
            let official = validator.is_valid(&doc);
            let json_text = serde_json::to_string_pretty(&doc).expect("serialises");
            let parsed = mesh_model::parse_contract(&json_text);
            let ours = !parsed.has_errors();
            checked += 1;
            as_3_2 += usize::from(std::ptr::eq(validator, &odcs.v3_2));
            if ours != official {
                let errors: Vec<String> = validator
                    .iter_errors(&doc)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                let shown: Vec<String> = parsed
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.render("doc"))
                    .collect();
                failures.push(format!(
                    "{} round {round}: official {official}, ours {ours}\nofficial errors: {errors:#?}\nour errors: {shown:#?}\n{json_text}",
                    path.display()
                ));
            }
        }
    }
    eprintln!(
        "differential v3.2.0: {checked} mutated documents checked, {as_3_2} of them declaring v3.2.0 (seed {seed:#x})"
    );
    assert!(
        as_3_2 >= 5_000,
        "too few v3.2.0 documents checked: {as_3_2}"
    );
    assert!(
        failures.is_empty(),
        "{} disagreement(s); first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
