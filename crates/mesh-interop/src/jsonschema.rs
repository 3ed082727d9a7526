//! JSON Schema in and out. In: an object schema (draft 4 to 2020-12) becomes one schema object —
//! or, for a root that only holds `$defs`/`definitions`, one per definition — with nested objects,
//! arrays, maps (`additionalProperties`), `$ref`s resolved, `required`, `enum`/`const` and the
//! string, number and array keywords as options. Out: draft 2020-12.

use mesh_model::odcs::{Bound, Contract, LogicalType, SchemaObject, SchemaProperty};
use mesh_model::source::Node;
use serde::Deserialize as _;
use serde_json::{Map, Value, json};

use crate::table::{Column, Imported, Table};
use crate::{Exported, Problem, place};

/// `$ref` chains and nesting deeper than this are refused (a schema can refer to itself).
const MAX_DEPTH: usize = 32;

pub(crate) fn located(file: &str, text: &str, what: &str) -> Result<Node, Problem> {
    // JSON files are JSON: YAML's leniency (trailing commas, comments) is not accepted there.
    if text.trim_start().starts_with(['{', '[']) {
        let mut de = serde_json::Deserializer::from_str(text);
        if let Err(e) = serde::de::IgnoredAny::deserialize(&mut de).and_then(|_| de.end()) {
            let line = u32::try_from(e.line()).unwrap_or(u32::MAX);
            let col = u32::try_from(e.column()).unwrap_or(u32::MAX);
            return Err(Problem::new(
                file,
                Some((line, col)),
                format!("{what}: {e}"),
            ));
        }
    }
    let parsed = mesh_model::yaml::parse(text);
    if let Some(d) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        let pos = d.position();
        return Err(Problem::new(
            file,
            Some((pos.line, pos.col)),
            format!("{what}: {}", d.message),
        ));
    }
    parsed
        .root
        .ok_or_else(|| Problem::new(file, None, format!("{what}: the file is empty")))
}

pub(crate) fn pos(node: &Node) -> Option<(u32, u32)> {
    node.span
        .start
        .is_known()
        .then_some((node.span.start.line, node.span.start.col))
}

struct Reader<'a> {
    file: &'a str,
    root: &'a Node,
    out: Imported,
}

pub(crate) fn import(file: &str, text: &str) -> Result<Imported, Problem> {
    let root = located(file, text, "JSON Schema")?;
    if root.as_map().is_none() {
        return Err(Problem::new(
            file,
            pos(&root),
            "JSON Schema: the schema must be an object",
        ));
    }
    let mut reader = Reader {
        file,
        root: &root,
        out: Imported::new(file, format!("the JSON Schema {}", file_name(file))),
    };
    let defs = root.get("$defs").or_else(|| root.get("definitions"));
    let title = root.get("title").and_then(Node::as_str).map(str::to_owned);
    if root.get("properties").is_some() || root.get("type").and_then(Node::as_str) == Some("object")
    {
        let name = title.clone().unwrap_or_else(|| reader.out.name.clone());
        let table = reader.table(&name, &root)?;
        reader.out.tables.push(table);
    } else if let Some(defs) = defs.and_then(Node::as_map) {
        for entry in defs {
            let node = reader.deref(&entry.value, 0)?;
            if node.get("properties").is_some() {
                let table = reader.table(&entry.key.text, node)?;
                reader.out.tables.push(table);
            }
        }
    }
    if reader.out.tables.is_empty() {
        return Err(Problem::new(
            file,
            pos(&root),
            "JSON Schema: the root describes no object (no `properties`, and no object in `$defs`)",
        )
        .hint("mesh imports object schemas: each becomes a table of the contract"));
    }
    if let Some(d) = root.get("description").and_then(Node::as_str) {
        reader.out.description = Some(d.to_owned());
    }
    if let Some(t) = title {
        reader.out.name = t;
    }
    Ok(reader.out)
}

use crate::file_name;

impl<'a> Reader<'a> {
    /// Follows `$ref`s into this document (`#/$defs/x`, `#/definitions/x`).
    fn deref(&mut self, node: &'a Node, depth: usize) -> Result<&'a Node, Problem> {
        let mut current = node;
        for _ in 0..MAX_DEPTH {
            let Some(reference) = current.get("$ref").and_then(Node::as_str) else {
                return Ok(current);
            };
            let Some(pointer) = reference.strip_prefix('#') else {
                return Err(Problem::new(
                    self.file,
                    pos(current),
                    format!("JSON Schema: `$ref: {reference}` points outside this file"),
                )
                .hint(
                    "bundle the schema into one file (references to other files are not followed)",
                ));
            };
            current = self.root.pointer(pointer).ok_or_else(|| {
                Problem::new(
                    self.file,
                    pos(current),
                    format!("JSON Schema: `$ref: {reference}` points at nothing"),
                )
            })?;
        }
        let _ = depth;
        Err(Problem::new(
            self.file,
            pos(node),
            "JSON Schema: `$ref`s refer to each other in a loop",
        ))
    }

    fn table(&mut self, name: &str, node: &'a Node) -> Result<Table, Problem> {
        let mut table = Table::new(name);
        table.physical_type = Some("object".into());
        table.description = node
            .get("description")
            .and_then(Node::as_str)
            .map(str::to_owned);
        table.columns = self.properties(node, name, 0)?;
        Ok(table)
    }

    fn properties(
        &mut self,
        node: &'a Node,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Column>, Problem> {
        if depth > MAX_DEPTH {
            return Err(Problem::new(self.file, pos(node), format!("JSON Schema: `{path}` nests deeper than {MAX_DEPTH} levels (a recursive schema?)"))
                .hint("ODCS describes a fixed structure; cut the recursion with an `object` without properties"));
        }
        let required: Vec<&str> = node
            .get("required")
            .and_then(Node::as_seq)
            .map(|r| r.iter().filter_map(Node::as_str).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        if let Some(props) = node.get("properties").and_then(Node::as_map) {
            for entry in props {
                let name = entry.key.text.as_str();
                let mut c =
                    self.column(name, &entry.value, &format!("{path}.{name}"), depth + 1)?;
                // `column` marks whether nulls are allowed; the parent's list says whether present.
                c.required = c.required && required.contains(&name);
                out.push(c);
            }
        }
        Ok(out)
    }

    fn column(
        &mut self,
        name: &str,
        node: &'a Node,
        path: &str,
        depth: usize,
    ) -> Result<Column, Problem> {
        if depth > MAX_DEPTH {
            return Err(Problem::new(
                self.file,
                pos(node),
                format!(
                    "JSON Schema: `{path}` nests deeper than {MAX_DEPTH} levels (a recursive schema?)"
                ),
            ));
        }
        let node = self.deref(node, depth)?;
        // Types: `type: x`, `type: [x, "null"]`, or a union (`oneOf`/`anyOf`) of which the first
        // non-null branch is taken.
        let mut nullable = false;
        let mut node = node;
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = node.get(key).and_then(Node::as_seq) {
                let mut kept = None;
                for b in branches {
                    let b = self.deref(b, depth)?;
                    if b.get("type").and_then(Node::as_str) == Some("null") {
                        nullable = true;
                    } else if kept.is_none() {
                        kept = Some(b);
                    } else {
                        self.out.note(
                            pos(b),
                            format!(
                                "`{path}`: `{key}` with several types: imported as the first one"
                            ),
                        );
                        break;
                    }
                }
                if let Some(k) = kept {
                    node = k;
                }
            }
        }
        if node.get("allOf").is_some() {
            self.out.note(
                pos(node),
                format!(
                    "`{path}`: `allOf` is not merged; only the property's own keywords are imported"
                ),
            );
        }
        let mut types: Vec<&str> = match node.get("type") {
            Some(t) => match (t.as_str(), t.as_seq()) {
                (Some(s), _) => vec![s],
                (_, Some(list)) => list.iter().filter_map(Node::as_str).collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        if types.contains(&"null") {
            nullable = true;
            types.retain(|t| *t != "null");
        }
        let format = node.get("format").and_then(Node::as_str);
        let ty = types.first().copied().or_else(|| {
            if node.get("properties").is_some() {
                Some("object")
            } else if node.get("items").is_some() {
                Some("array")
            } else {
                node.get("enum")
                    .and_then(Node::as_seq)
                    .and_then(|v| v.first())
                    .map(|v| match v.to_json() {
                        Value::Number(n) if n.is_i64() => "integer",
                        Value::Number(_) => "number",
                        Value::Bool(_) => "boolean",
                        _ => "string",
                    })
            }
        });
        let logical = match (ty, format) {
            (Some("string"), Some("date")) => LogicalType::Date,
            (Some("string"), Some("date-time")) => LogicalType::Timestamp,
            (Some("string"), Some("time")) => LogicalType::Time,
            (Some("string") | None, _) => LogicalType::String,
            (Some("integer"), _) => LogicalType::Integer,
            (Some("number"), _) => LogicalType::Number,
            (Some("boolean"), _) => LogicalType::Boolean,
            (Some("object"), _)
                if node.get("properties").is_none()
                    && node
                        .get("additionalProperties")
                        .and_then(Node::as_map)
                        .is_some() =>
            {
                LogicalType::Map
            }
            (Some("object"), _) => LogicalType::Object,
            (Some("array"), _) => LogicalType::Array,
            (Some(other), _) => {
                self.out.note(
                    pos(node),
                    format!(
                        "`{path}`: type `{other}` is not a JSON Schema type: imported as a string"
                    ),
                );
                LogicalType::String
            }
        };
        if ty.is_none() && node.get("enum").is_none() {
            self.out.note(
                pos(node),
                format!("`{path}`: no `type`: imported as a string"),
            );
        }
        let mut c = Column::new(name, logical);
        if types.len() > 1 {
            self.out.note(
                pos(node),
                format!(
                    "`{path}`: several types ({}): imported as {}",
                    types.join(", "),
                    types[0]
                ),
            );
        }
        c.required = !nullable;
        c.description = node
            .get("description")
            .and_then(Node::as_str)
            .map(str::to_owned);
        if let Some(values) = node.get("enum").and_then(Node::as_seq) {
            c.enum_values = values
                .iter()
                .map(Node::to_json)
                .filter(|v| !v.is_null())
                .collect();
        }
        if let Some(v) = node.get("const") {
            c.enum_values = vec![v.to_json()];
        }
        if let Some(examples) = node.get("examples").and_then(Node::as_seq) {
            c.examples = examples.iter().map(Node::to_json).collect();
        }
        if node.get("deprecated").and_then(Node::as_bool) == Some(true) {
            c.deprecated = true;
        }
        for key in [
            "minLength",
            "maxLength",
            "pattern",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "minItems",
            "maxItems",
            "uniqueItems",
            "minProperties",
            "maxProperties",
        ] {
            if let Some(v) = node.get(key) {
                let v = v.to_json();
                // Draft 4's boolean exclusive bounds apply to `minimum`/`maximum`.
                match (key, &v) {
                    ("exclusiveMinimum" | "exclusiveMaximum", Value::Bool(true)) => {
                        let plain = if key == "exclusiveMinimum" {
                            "minimum"
                        } else {
                            "maximum"
                        };
                        if let Some(b) = node.get(plain) {
                            c.options.insert(key.into(), b.to_json());
                        }
                    }
                    (_, Value::Bool(false)) if key.starts_with("exclusive") => {}
                    _ => {
                        c.options.insert(key.into(), v);
                    }
                }
            }
        }
        if node.get("exclusiveMinimum").and_then(Node::as_bool) == Some(true) {
            c.options.remove("minimum");
        }
        if node.get("exclusiveMaximum").and_then(Node::as_bool) == Some(true) {
            c.options.remove("maximum");
        }
        if let Some(f) = format {
            match logical {
                LogicalType::String => {
                    c.options.insert("format".into(), json!(f));
                }
                LogicalType::Integer if matches!(f, "int32" | "int64") => {
                    c.options.insert(
                        "format".into(),
                        json!(if f == "int32" { "i32" } else { "i64" }),
                    );
                }
                LogicalType::Number if matches!(f, "float" | "double") => {
                    c.options.insert(
                        "format".into(),
                        json!(if f == "float" { "f32" } else { "f64" }),
                    );
                }
                _ => {}
            }
        }
        match logical {
            LogicalType::Object => {
                c.properties = self.properties(node, path, depth)?;
            }
            LogicalType::Array => {
                if let Some(items) = node.get("items") {
                    let mut item = self.column("", items, &format!("{path}[]"), depth + 1)?;
                    item.required = false;
                    c.items = Some(Box::new(item));
                }
            }
            LogicalType::Map => {
                if let Some(values) = node.get("additionalProperties") {
                    let mut value = self.column("", values, &format!("{path}{{}}"), depth + 1)?;
                    value.required = false;
                    c.map = Some((
                        Box::new(Column::new("", LogicalType::String)),
                        Box::new(value),
                    ));
                }
            }
            _ => {}
        }
        Ok(c)
    }
}

// ---------------------------------------------------------------------------------------------
// Export

pub(crate) fn export(contract: &Contract) -> Exported {
    let mut lost = Vec::new();
    let mut root = Map::new();
    root.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    if let Some(id) = &contract.id {
        root.insert("$id".into(), json!(format!("urn:mesh:contract:{id}")));
    }
    let title = contract
        .name
        .clone()
        .or_else(|| contract.id.clone())
        .unwrap_or_default();
    root.insert("title".into(), json!(title));
    if let Some(purpose) = contract
        .description
        .as_ref()
        .and_then(|d| d.purpose.clone())
    {
        root.insert("description".into(), json!(purpose));
    }
    if let [only] = contract.schema.as_slice() {
        for (k, v) in object(only, &mut lost) {
            if k != "title" {
                root.insert(k, v);
            }
        }
        root.insert("title".into(), json!(only.name));
    } else {
        let mut defs = Map::new();
        for o in &contract.schema {
            defs.insert(o.name.clone(), Value::Object(object(o, &mut lost)));
        }
        root.insert("$defs".into(), Value::Object(defs));
    }
    crate::sql::lost_common(contract, &mut lost);
    Exported {
        text: serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_default() + "\n",
        lost,
    }
}

fn object(o: &SchemaObject, lost: &mut Vec<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("title".into(), json!(o.name));
    if let Some(d) = &o.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("type".into(), json!("object"));
    let (props, required) = properties(&o.properties, &o.name, lost);
    m.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        m.insert("required".into(), json!(required));
    }
    for rule in &o.quality {
        lost.push(format!(
            "{}: quality rule {}",
            o.name,
            crate::sql::describe_rule(rule)
        ));
    }
    m
}

fn properties(
    props: &[SchemaProperty],
    path: &str,
    lost: &mut Vec<String>,
) -> (Map<String, Value>, Vec<String>) {
    let mut out = Map::new();
    let mut required = Vec::new();
    for p in props {
        if p.is_required() || p.is_primary_key() {
            required.push(p.name().to_owned());
        }
        out.insert(
            p.name().to_owned(),
            property(p, &place(path, p.name()), lost),
        );
    }
    (out, required)
}

fn property(p: &SchemaProperty, here: &str, lost: &mut Vec<String>) -> Value {
    let mut m = Map::new();
    let o = p.logical_type_options.as_ref();
    let (ty, format) = match p.logical_type {
        Some(LogicalType::String) | None => ("string", None),
        Some(LogicalType::Date) => ("string", Some("date")),
        Some(LogicalType::Timestamp) => ("string", Some("date-time")),
        Some(LogicalType::Time) => ("string", Some("time")),
        Some(LogicalType::Integer) => ("integer", None),
        Some(LogicalType::Number) => ("number", None),
        Some(LogicalType::Boolean) => ("boolean", None),
        Some(LogicalType::Object | LogicalType::Map) => ("object", None),
        Some(LogicalType::Array | LogicalType::Vector) => ("array", None),
    };
    m.insert("type".into(), json!(ty));
    let string_format = o
        .and_then(|o| o.format.clone())
        .filter(|_| p.logical_type == Some(LogicalType::String));
    if let Some(f) = format.map(str::to_owned).or(string_format) {
        m.insert("format".into(), json!(f));
    }
    if let Some(d) = &p.description {
        m.insert("description".into(), json!(d));
    }
    if !p.enum_values.is_empty() {
        m.insert(
            "enum".into(),
            Value::Array(p.allowed_values().cloned().collect()),
        );
    }
    if p.is_deprecated() {
        m.insert("deprecated".into(), json!(true));
    }
    if !p.examples.is_empty() {
        m.insert("examples".into(), Value::Array(p.examples.clone()));
    }
    if let Some(o) = o {
        let number = |n: &serde_json::Number| json!(n);
        let bound = |b: &Bound| match b {
            Bound::Number(n) => Some(json!(n)),
            Bound::Text(_) => None,
        };
        for (key, value) in [
            ("minLength", o.min_length.map(|n| json!(n))),
            ("maxLength", o.max_length.map(|n| json!(n))),
            ("pattern", o.pattern.as_ref().map(|s| json!(s))),
            ("minimum", o.minimum.as_ref().and_then(bound)),
            ("maximum", o.maximum.as_ref().and_then(bound)),
            (
                "exclusiveMinimum",
                o.exclusive_minimum.as_ref().and_then(bound),
            ),
            (
                "exclusiveMaximum",
                o.exclusive_maximum.as_ref().and_then(bound),
            ),
            ("multipleOf", o.multiple_of.as_ref().map(number)),
            ("minItems", o.min_items.map(|n| json!(n))),
            ("maxItems", o.max_items.map(|n| json!(n))),
            ("uniqueItems", o.unique_items.map(|b| json!(b))),
            ("minProperties", o.min_properties.map(|n| json!(n))),
            ("maxProperties", o.max_properties.map(|n| json!(n))),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), v);
            }
        }
        for (name, b) in [
            ("minimum", &o.minimum),
            ("maximum", &o.maximum),
            ("exclusiveMinimum", &o.exclusive_minimum),
            ("exclusiveMaximum", &o.exclusive_maximum),
        ] {
            if let Some(Bound::Text(t)) = b {
                lost.push(format!(
                    "{here}: {name} {t} (JSON Schema bounds only numbers)"
                ));
            }
        }
        if let Some(dim) = o.dimensions {
            m.insert("minItems".into(), json!(dim));
            m.insert("maxItems".into(), json!(dim));
            m.insert("items".into(), json!({ "type": "number" }));
        }
    }
    match p.logical_type {
        Some(LogicalType::Object) => {
            let (props, required) = properties(&p.properties, here, lost);
            m.insert("properties".into(), Value::Object(props));
            if !required.is_empty() {
                m.insert("required".into(), json!(required));
            }
        }
        Some(LogicalType::Array) => {
            if let Some(items) = &p.items {
                m.insert("items".into(), property(items, &format!("{here}[]"), lost));
            }
        }
        Some(LogicalType::Map) => {
            if let Some(map) = &p.map {
                if map
                    .key
                    .logical_type
                    .is_some_and(|t| t != LogicalType::String)
                {
                    lost.push(format!(
                        "{here}: the map's key type (JSON object keys are strings)"
                    ));
                }
                m.insert(
                    "additionalProperties".into(),
                    property(&map.value, &format!("{here}{{}}"), lost),
                );
            }
        }
        _ => {}
    }
    if p.is_unique() {
        lost.push(format!(
            "{here}: unique (JSON Schema validates one document, not a table)"
        ));
    }
    if p.is_primary_key() {
        lost.push(format!("{here}: primaryKey"));
    }
    for rule in &p.quality {
        lost.push(format!(
            "{here}: quality rule {}",
            crate::sql::describe_rule(rule)
        ));
    }
    Value::Object(m)
}
