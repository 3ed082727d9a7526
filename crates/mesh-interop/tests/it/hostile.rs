//! What a careless client or a hostile domain sends: malformed files get file:line:col, deep and
//! self-referring schemas are refused, huge inputs are refused before they are parsed, and nothing
//! panics.

use mesh_interop::{Dialect, ImportFormat, ImportOptions, import};

fn problem(format: ImportFormat, file: &str, text: &str) -> mesh_interop::Problem {
    match import(format, file, text, &ImportOptions::default()) {
        Ok(i) => panic!("{file} was imported: {:?}", i.tables),
        Err(p) => p,
    }
}

#[test]
fn malformed_inputs_are_errors_at_their_place() {
    let p = problem(
        ImportFormat::Sql,
        "bad.sql",
        "CREATE TABLE t (\n  a INT,\n  b VARCHAR(10) NOT NULL,,\n);\n",
    );
    assert_eq!((p.line, p.col), (3, 26), "{p}");
    assert!(
        p.to_string()
            .starts_with("bad.sql:3:26: error: PostgreSQL DDL: "),
        "{p}"
    );

    let p = problem(
        ImportFormat::JsonSchema,
        "bad.json",
        "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"a\": {\"type\": \"string\",}\n  }\n}\n",
    );
    assert_eq!(p.line, 4, "{p}");

    let p = problem(
        ImportFormat::Avro,
        "bad.avsc",
        "{\"type\": \"record\", \"name\": \"R\", \"fields\": [\n  {\"name\": \"a\", \"type\": \"Nope\"}\n]}\n",
    );
    assert_eq!(p.line, 2, "{p}");
    assert!(p.message.contains("unknown type `Nope`"), "{p}");

    let p = problem(
        ImportFormat::Dbt,
        "manifest.json",
        "{\"nodes\": {\n \"model.x.y\": {\"resource_type\": \"model\",\n",
    );
    assert!(p.line >= 2, "{p}");
    assert!(p.message.starts_with("dbt manifest:"), "{p}");

    let p = problem(ImportFormat::Dbt, "manifest.json", "{\"nodes\": {}}");
    assert!(p.message.contains("no models"), "{p}");
    let p = problem(ImportFormat::Sql, "views.sql", "CREATE VIEW v AS SELECT 1;");
    assert!(p.message.contains("no CREATE TABLE"), "{p}");
}

#[test]
fn recursive_and_deep_schemas_are_refused_not_followed_forever() {
    // A $ref loop.
    let p = problem(
        ImportFormat::JsonSchema,
        "loop.json",
        r##"{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"$ref":"#/$defs/y"},"y":{"$ref":"#/$defs/x"}}}"##,
    );
    assert!(p.message.contains("loop"), "{p}");
    // A tree that refers to itself.
    let p = problem(
        ImportFormat::JsonSchema,
        "tree.json",
        r##"{"type":"object","properties":{"node":{"$ref":"#/$defs/node"}},"$defs":{"node":{"type":"object","properties":{"child":{"$ref":"#/$defs/node"}}}}}"##,
    );
    assert!(p.message.contains("nests deeper"), "{p}");
    // Avro: a linked list.
    let p = problem(
        ImportFormat::Avro,
        "list.avsc",
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
    );
    assert!(p.message.contains("nests deeper"), "{p}");
    // Nesting beyond the located parser's limit.
    let deep = format!(
        "{}{}",
        "{\"type\":\"object\",\"properties\":{\"a\":".repeat(200),
        "}".repeat(400)
    );
    let p = problem(ImportFormat::JsonSchema, "deep.json", &deep);
    assert!(p.line >= 1, "{p}");
    // A $ref to another file is not fetched.
    let p = problem(
        ImportFormat::JsonSchema,
        "remote.json",
        r#"{"type":"object","properties":{"a":{"$ref":"https://evil.example/x.json"}}}"#,
    );
    assert!(p.message.contains("outside this file"), "{p}");
}

#[test]
fn huge_inputs_are_refused_before_parsing() {
    let huge = format!(
        "CREATE TABLE t (a INT);\n{}",
        "-- padding\n".repeat(2_000_000)
    );
    let p = problem(ImportFormat::Sql, "huge.sql", &huge);
    assert!(p.message.contains("16 MiB"), "{p}");
    // Deeply nested expressions in a CHECK are bounded by the parser's recursion limit.
    let nested = format!(
        "CREATE TABLE t (a INT CHECK ({}a > 0{}));",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let p = problem(ImportFormat::Sql, "nested.sql", &nested);
    assert!(p.message.contains("too deeply"), "{p}");
}

#[test]
fn arbitrary_bytes_never_panic_any_reader() {
    let seeds = [
        "CREATE TABLE t (a INT PRIMARY KEY, b TEXT CHECK (b IN ('x','y')), FOREIGN KEY (a) REFERENCES u (id));",
        r##"{"type":"object","properties":{"a":{"type":["string","null"],"enum":["x",null]},"b":{"type":"array","items":{"$ref":"#/$defs/c"}}},"$defs":{"c":{"type":"object"}}}"##,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"map","values":{"type":"array","items":"long"}}}]}"#,
        "syntax = \"proto3\";\nmessage M { enum E { E_UNSPECIFIED = 0; A = 1; } E e = 1; repeated M kids = 2; map<string, int64> m = 3; oneof o { string s = 4; int32 i = 5; } }\n",
        r#"{"nodes":{"model.p.m":{"resource_type":"model","name":"m","columns":{"a":{"name":"a","data_type":"int","constraints":[{"type":"check","expression":"a > 0"}]}}},"test.p.t":{"resource_type":"test","test_metadata":{"name":"accepted_values","kwargs":{"values":[1,2],"column_name":"a"}},"attached_node":"model.p.m","column_name":"a"}}}"#,
    ];
    let formats = [
        ImportFormat::Sql,
        ImportFormat::JsonSchema,
        ImportFormat::Avro,
        ImportFormat::Dbt,
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut imported = 0;
    for round in 0..4_000 {
        let seed = seeds[round % seeds.len()].as_bytes();
        let mut bytes = seed.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = b"{}[]\",:'()0a -"[(next() as usize) % 14],
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, bytes[(next() as usize) % bytes.len()]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        for (f, format) in formats.iter().enumerate() {
            let options = ImportOptions {
                dialect: Some(Dialect::ALL[round % Dialect::ALL.len()]),
                ..ImportOptions::default()
            };
            let name = if *format == ImportFormat::Protobuf {
                "fuzz.proto"
            } else {
                "fuzz"
            };
            if let Ok(i) = import(*format, name, &text, &options) {
                // Whatever is imported must lint clean.
                let yaml = i.contract_yaml();
                let errors = crate::lint_errors("fuzz", &yaml);
                assert!(
                    errors.is_empty(),
                    "format {f}, round {round}: {errors:#?}\n{text}\n{yaml}"
                );
                imported += 1;
            }
        }
    }
    eprintln!("fuzz: 20,000 mutated inputs, {imported} imported and linted clean");
}

#[test]
fn broken_protobuf_files_are_errors_at_their_place_and_recursion_is_named() {
    let p = problem(
        ImportFormat::Protobuf,
        "bad.proto",
        "syntax = \"proto3\";\n\nmessage A {\n  string a = 1\n  int32 b = 2;\n}\n",
    );
    assert_eq!(p.line, 5, "{p}");
    assert!(p.message.starts_with("Protobuf:"), "{p}");
    let p = problem(
        ImportFormat::Protobuf,
        "missing.proto",
        "syntax = \"proto3\";\nimport \"nowhere/x.proto\";\nmessage A { string a = 1; }\n",
    );
    assert_eq!((p.line, p.col), (2, 1), "{p}");
    assert!(p.message.contains("nowhere/x.proto"), "{p}");
    let p = problem(
        ImportFormat::Protobuf,
        "types.proto",
        "syntax = \"proto3\";\nmessage A { Nope a = 1; }\n",
    );
    assert_eq!(p.line, 2, "{p}");
    // A message that contains itself is common (trees, JSON-like values): imported, with a note.
    let text = "syntax = \"proto3\";\nmessage Node {\n  string name = 1;\n  repeated Node children = 2;\n}\n";
    let imported = import(
        ImportFormat::Protobuf,
        "tree.proto",
        text,
        &ImportOptions::default(),
    )
    .unwrap();
    let note = imported
        .notes
        .iter()
        .find(|n| n.message.contains("contains itself"))
        .expect("a note");
    assert_eq!(note.at, Some((4, 3)));
    assert!(crate::lint_errors("tree", &imported.contract_yaml()).is_empty());
}
