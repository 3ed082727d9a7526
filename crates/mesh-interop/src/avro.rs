//! Avro schemas in and out. In: a record (or a union of records, of which each becomes a table)
//! with its fields' types, logical types (`date`, `time-*`, `timestamp-*`, `local-timestamp-*`,
//! `decimal`, `uuid`), nullability (`["null", T]`), enums, arrays, maps, nested and named records,
//! and docs. Out: one record per schema object, in a union when there are several.

use mesh_model::odcs::{Contract, LogicalType, SchemaObject, SchemaProperty};
use mesh_model::source::Node;
use serde_json::{Map, Value, json};

use crate::jsonschema::{located, pos};
use crate::table::{Column, Imported, Table};
// Avro names: `[A-Za-z_][A-Za-z0-9_]*`.
use crate::identifier as avro_name;
use crate::{Exported, Problem, place};

const MAX_DEPTH: usize = 32;

struct Reader<'a> {
    file: &'a str,
    /// Named types seen so far (records, enums, fixed), by full and short name.
    named: Vec<(String, &'a Node)>,
    out: Imported,
}

pub(crate) fn import(file: &str, text: &str) -> Result<Imported, Problem> {
    let root = located(file, text, "Avro schema")?;
    let mut reader = Reader {
        file,
        named: Vec::new(),
        out: Imported::new(file, format!("the Avro schema {}", crate::file_name(file))),
    };
    let records: Vec<&Node> = match (root.as_seq(), root.as_map()) {
        (Some(union), _) => union.iter().collect(),
        (_, Some(_)) => vec![&root],
        _ => {
            return Err(Problem::new(
                file,
                pos(&root),
                "Avro schema: expected a record (an object with `type: record`) or a union of records",
            ));
        }
    };
    for record in records {
        let ty = record.get("type").and_then(Node::as_str);
        if ty != Some("record") {
            reader.out.note(
                pos(record),
                format!(
                    "a top-level `{}` is not a record: skipped",
                    ty.unwrap_or("schema")
                ),
            );
            continue;
        }
        let table = reader.table(record)?;
        reader.out.tables.push(table);
    }
    if reader.out.tables.is_empty() {
        return Err(Problem::new(
            file,
            pos(&root),
            "Avro schema: no record to import",
        ));
    }
    if let [only] = reader.out.tables.as_slice() {
        reader.out.name = only.name.clone();
        reader.out.description.clone_from(&only.description);
    }
    Ok(reader.out)
}

fn text<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    node.get(key).and_then(Node::as_str)
}

impl<'a> Reader<'a> {
    fn problem(&self, node: &Node, message: impl Into<String>) -> Problem {
        Problem::new(
            self.file,
            pos(node),
            format!("Avro schema: {}", message.into()),
        )
    }

    fn remember(&mut self, node: &'a Node) {
        if let Some(name) = text(node, "name") {
            let full = match text(node, "namespace") {
                Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                _ => name.to_owned(),
            };
            let short = full.rsplit('.').next().unwrap_or_default().to_owned();
            self.named.push((full, node));
            self.named.push((short, node));
        }
    }

    fn table(&mut self, record: &'a Node) -> Result<Table, Problem> {
        let name =
            text(record, "name").ok_or_else(|| self.problem(record, "a record needs a `name`"))?;
        self.remember(record);
        let mut table = Table::new(name);
        table.physical_type = Some("record".into());
        if let Some(ns) = text(record, "namespace") {
            table.physical_name = Some(format!("{ns}.{name}"));
        }
        table.description = text(record, "doc").map(str::to_owned);
        table.columns = self.fields(record, name, 0)?;
        Ok(table)
    }

    fn fields(
        &mut self,
        record: &'a Node,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Column>, Problem> {
        let fields = record.get("fields").and_then(Node::as_seq).ok_or_else(|| {
            self.problem(record, format!("record `{path}` needs a list of `fields`"))
        })?;
        let mut out = Vec::new();
        for f in fields {
            let name = text(f, "name").ok_or_else(|| self.problem(f, "a field needs a `name`"))?;
            let ty = f
                .get("type")
                .ok_or_else(|| self.problem(f, format!("field `{name}` needs a `type`")))?;
            let here = format!("{path}.{name}");
            let mut c = self.column(name, ty, &here, depth + 1)?;
            if let Some(doc) = text(f, "doc") {
                c.description = Some(doc.to_owned());
            }
            if let Some(default) = f.get("default") {
                c.custom.push(("avroDefault".into(), default.to_json()));
            }
            if let Some(aliases) = f.get("aliases").and_then(Node::as_seq) {
                let aliases: Vec<&str> = aliases.iter().filter_map(Node::as_str).collect();
                self.out.note(
                    pos(f),
                    format!(
                        "`{here}`: aliases ({}) are not imported",
                        aliases.join(", ")
                    ),
                );
            }
            out.push(c);
        }
        Ok(out)
    }

    /// A type as a column; `required` is whether null is impossible.
    fn column(
        &mut self,
        name: &str,
        ty: &'a Node,
        path: &str,
        depth: usize,
    ) -> Result<Column, Problem> {
        if depth > MAX_DEPTH {
            return Err(self
                .problem(
                    ty,
                    format!("`{path}` nests deeper than {MAX_DEPTH} levels (a recursive record?)"),
                )
                .hint("ODCS describes a fixed structure; cut the recursion"));
        }
        // A union: `["null", T]` is an optional T; other unions keep their first branch.
        if let Some(branches) = ty.as_seq() {
            let nullable = branches.iter().any(|b| b.as_str() == Some("null"));
            let others: Vec<&Node> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            let Some(first) = others.first() else {
                return Err(self.problem(ty, format!("`{path}` is always null")));
            };
            if others.len() > 1 {
                let names: Vec<String> = others.iter().map(|b| type_name(b)).collect();
                let records = others
                    .iter()
                    .filter(|b| text(b, "type") == Some("record"))
                    .count();
                let what = if records > 1 {
                    "a union of records"
                } else {
                    "a union of several types"
                };
                self.out.note(
                    pos(ty),
                    format!(
                        "`{path}`: {what} ({}) has no ODCS equivalent: imported as the first, {}",
                        names.join(", "),
                        names[0]
                    ),
                );
            }
            let mut c = self.column(name, first, path, depth)?;
            c.required = !nullable && c.required;
            return Ok(c);
        }
        let mut c = Column::new(name, LogicalType::String);
        c.required = true;
        let (kind, node): (&str, Option<&'a Node>) = match (ty.as_str(), ty.as_map()) {
            (Some(s), _) => (s, None),
            (_, Some(_)) => (
                text(ty, "type").ok_or_else(|| {
                    self.problem(ty, format!("`{path}`: a complex type needs a `type`"))
                })?,
                Some(ty),
            ),
            _ => {
                return Err(self.problem(
                    ty,
                    format!("`{path}`: a type is a name, an object or a union"),
                ));
            }
        };
        let logical = node.and_then(|n| text(n, "logicalType"));
        c.physical = Some(match logical {
            Some(l) => format!("{kind}/{l}"),
            None => kind.to_owned(),
        });
        c.logical = match (kind, logical) {
            ("int", Some("date")) => LogicalType::Date,
            ("int", Some("time-millis")) | ("long", Some("time-micros")) => LogicalType::Time,
            ("long", Some("timestamp-millis" | "timestamp-micros" | "timestamp-nanos")) => {
                LogicalType::Timestamp
            }
            (
                "long",
                Some("local-timestamp-millis" | "local-timestamp-micros" | "local-timestamp-nanos"),
            ) => {
                c.options.insert("timezone".into(), json!(false));
                LogicalType::Timestamp
            }
            ("bytes" | "fixed", Some("decimal")) => {
                let n = node.expect("complex");
                let precision = n
                    .get("precision")
                    .map(Node::to_json)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(38);
                let scale = n
                    .get("scale")
                    .map(Node::to_json)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                c.physical = Some(format!("decimal({precision},{scale})"));
                LogicalType::Number
            }
            ("string", Some("uuid")) => {
                c.options.insert("format".into(), json!("uuid"));
                LogicalType::String
            }
            ("string", _) => LogicalType::String,
            ("int", _) => {
                c.options.insert("format".into(), json!("i32"));
                LogicalType::Integer
            }
            ("long", _) => LogicalType::Integer,
            ("float", _) => {
                c.options.insert("format".into(), json!("f32"));
                LogicalType::Number
            }
            ("double", _) => LogicalType::Number,
            ("boolean", _) => LogicalType::Boolean,
            ("bytes" | "fixed", _) => {
                self.out.note(pos(ty), format!("`{path}`: Avro {kind} (binary) has no ODCS logical type: imported as a string, physicalType {kind}"));
                if let Some(size) = node.and_then(|n| n.get("size")).map(Node::to_json) {
                    c.options.insert("maxLength".into(), size);
                }
                LogicalType::String
            }
            ("null", _) => {
                c.required = false;
                LogicalType::String
            }
            ("enum", _) => {
                let n = node.expect("complex");
                self.remember(n);
                c.physical = Some(format!("enum {}", text(n, "name").unwrap_or_default()));
                c.enum_values = n
                    .get("symbols")
                    .and_then(Node::as_seq)
                    .map(|s| s.iter().map(Node::to_json).collect())
                    .unwrap_or_default();
                if let Some(doc) = text(n, "doc") {
                    c.description = Some(doc.to_owned());
                }
                LogicalType::String
            }
            ("array", _) => {
                let n = node.expect("complex");
                let items = n
                    .get("items")
                    .ok_or_else(|| self.problem(n, format!("`{path}`: an array needs `items`")))?;
                let mut item = self.column("", items, &format!("{path}[]"), depth + 1)?;
                item.required = false;
                c.items = Some(Box::new(item));
                LogicalType::Array
            }
            ("map", _) => {
                let n = node.expect("complex");
                let values = n
                    .get("values")
                    .ok_or_else(|| self.problem(n, format!("`{path}`: a map needs `values`")))?;
                let mut value = self.column("", values, &format!("{path}{{}}"), depth + 1)?;
                value.required = false;
                c.map = Some((
                    Box::new(Column::new("", LogicalType::String)),
                    Box::new(value),
                ));
                LogicalType::Map
            }
            ("record" | "error", _) => {
                let n = node.expect("complex");
                self.remember(n);
                c.physical = Some(format!("record {}", text(n, "name").unwrap_or_default()));
                if let Some(doc) = text(n, "doc") {
                    c.description = Some(doc.to_owned());
                }
                c.properties = self.fields(n, path, depth)?;
                LogicalType::Object
            }
            (named, _) => {
                // A reference to a named type defined earlier.
                let found = self
                    .named
                    .iter()
                    .find(|(n, _)| n == named)
                    .map(|(_, node)| *node);
                match found {
                    Some(def) => {
                        let mut inner = self.column(name, def, path, depth + 1)?;
                        inner.required = true;
                        return Ok(inner);
                    }
                    None => {
                        return Err(self
                            .problem(ty, format!("`{path}`: unknown type `{named}`"))
                            .hint("Avro needs a named type defined before it is used"));
                    }
                }
            }
        };
        if let Some(l) = logical
            && c.physical.as_deref() == Some(&format!("{kind}/{l}"))
            && !matches!(
                l,
                "date" | "time-millis" | "time-micros" | "uuid" | "decimal"
            )
            && !l.contains("timestamp")
        {
            self.out.note(
                pos(ty),
                format!("`{path}`: logical type {l} is not one mesh knows: imported as {kind}"),
            );
        }
        Ok(c)
    }
}

fn type_name(node: &Node) -> String {
    match (node.as_str(), text(node, "type")) {
        (Some(s), _) => s.to_owned(),
        (_, Some(t)) => match text(node, "name") {
            Some(n) => format!("{t} {n}"),
            None => t.to_owned(),
        },
        _ => "a union".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Export

pub(crate) fn export(contract: &Contract) -> Exported {
    let mut lost = Vec::new();
    let namespace = contract
        .id
        .as_deref()
        .map(|id| id.split('.').map(avro_name).collect::<Vec<_>>().join("."));
    let mut records: Vec<Value> = contract
        .schema
        .iter()
        .map(|o| record(o, namespace.as_deref(), &mut lost))
        .collect();
    crate::sql::lost_common(contract, &mut lost);
    let schema = if records.len() == 1 {
        records.remove(0)
    } else {
        Value::Array(records)
    };
    Exported {
        text: serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n",
        lost,
    }
}

fn record(o: &SchemaObject, namespace: Option<&str>, lost: &mut Vec<String>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("record"));
    m.insert("name".into(), json!(avro_name(&o.name)));
    if avro_name(&o.name) != o.name {
        lost.push(format!(
            "{}: the name (Avro names are letters, digits and _; written as {})",
            o.name,
            avro_name(&o.name)
        ));
    }
    if let Some(ns) = namespace {
        m.insert("namespace".into(), json!(ns));
    }
    if let Some(d) = &o.description {
        m.insert("doc".into(), json!(d));
    }
    m.insert(
        "fields".into(),
        Value::Array(fields(&o.properties, &o.name, lost)),
    );
    for rule in &o.quality {
        lost.push(format!(
            "{}: quality rule {}",
            o.name,
            crate::sql::describe_rule(rule)
        ));
    }
    Value::Object(m)
}

fn fields(props: &[SchemaProperty], path: &str, lost: &mut Vec<String>) -> Vec<Value> {
    props
        .iter()
        .map(|p| {
            let here = place(path, p.name());
            let mut f = Map::new();
            f.insert("name".into(), json!(avro_name(p.name())));
            if avro_name(p.name()) != p.name() {
                lost.push(format!(
                    "{here}: the name (written as {})",
                    avro_name(p.name())
                ));
            }
            if let Some(d) = &p.description {
                f.insert("doc".into(), json!(d));
            }
            let ty = avro_type(p, &here, lost);
            if p.is_required() || p.is_primary_key() {
                f.insert("type".into(), ty);
            } else {
                f.insert("type".into(), json!(["null", ty]));
                f.insert("default".into(), Value::Null);
            }
            crate::lost_constraints(p, &here, "Avro", lost);
            Value::Object(f)
        })
        .collect()
}

fn avro_type(p: &SchemaProperty, here: &str, lost: &mut Vec<String>) -> Value {
    let o = p.logical_type_options.as_ref();
    let format = o.and_then(|o| o.format.as_deref());
    let physical = p
        .physical_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match p.logical_type {
        Some(LogicalType::String) | None => {
            if !p.enum_values.is_empty() {
                let symbols: Vec<String> = p
                    .allowed_values()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let valid = symbols.len() == p.enum_values.len()
                    && symbols.iter().all(|s| avro_name(s) == *s);
                if valid {
                    return json!({ "type": "enum", "name": avro_name(&format!("{}_values", p.name())), "symbols": symbols });
                }
                lost.push(format!(
                    "{here}: enum (its values are not all Avro enum symbols)"
                ));
            }
            if format == Some("uuid") {
                json!({ "type": "string", "logicalType": "uuid" })
            } else {
                json!("string")
            }
        }
        Some(LogicalType::Integer) => {
            if matches!(format, Some("i8" | "i16" | "i32" | "u8" | "u16")) {
                json!("int")
            } else {
                json!("long")
            }
        }
        Some(LogicalType::Number) => {
            let decimal = physical
                .strip_prefix("decimal(")
                .or_else(|| physical.strip_prefix("numeric("));
            if let Some((p_, s_)) = decimal.and_then(|d| d.trim_end_matches(')').split_once(','))
                && let (Ok(precision), Ok(scale)) =
                    (p_.trim().parse::<u64>(), s_.trim().parse::<u64>())
            {
                json!({ "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale })
            } else if format == Some("f32") {
                json!("float")
            } else {
                json!("double")
            }
        }
        Some(LogicalType::Boolean) => json!("boolean"),
        Some(LogicalType::Date) => json!({ "type": "int", "logicalType": "date" }),
        Some(LogicalType::Time) => json!({ "type": "long", "logicalType": "time-micros" }),
        Some(LogicalType::Timestamp) => {
            if o.and_then(|o| o.timezone) == Some(false) {
                json!({ "type": "long", "logicalType": "local-timestamp-micros" })
            } else {
                json!({ "type": "long", "logicalType": "timestamp-micros" })
            }
        }
        Some(LogicalType::Object) => {
            if p.properties.is_empty() {
                lost.push(format!(
                    "{here}: an object without properties (written as a map of strings)"
                ));
                return json!({ "type": "map", "values": "string" });
            }
            json!({ "type": "record", "name": avro_name(&format!("{}_record", p.name())), "fields": fields(&p.properties, here, lost) })
        }
        Some(LogicalType::Array) => {
            let items = p.items.as_deref().map_or(json!("string"), |i| {
                avro_type(i, &format!("{here}[]"), lost)
            });
            json!({ "type": "array", "items": items })
        }
        Some(LogicalType::Vector) => json!({ "type": "array", "items": "float" }),
        Some(LogicalType::Map) => {
            let value = p.map.as_ref().map_or(json!("string"), |m| {
                avro_type(&m.value, &format!("{here}{{}}"), lost)
            });
            if p.map
                .as_ref()
                .is_some_and(|m| m.key.logical_type.is_some_and(|t| t != LogicalType::String))
            {
                lost.push(format!(
                    "{here}: the map's key type (Avro map keys are strings)"
                ));
            }
            json!({ "type": "map", "values": value })
        }
    }
}
