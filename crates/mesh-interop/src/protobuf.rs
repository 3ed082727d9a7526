//! Protobuf in and out. In: a `.proto` file compiled with `protox` (imports resolved from the
//! file's folder and `--proto-path`s, Google's well-known types built in), its top-level messages
//! read through `prost-reflect`: scalar types, enums, nested and imported messages, `repeated`,
//! `map<K, V>`, `optional`/`required`, oneofs, well-known types (`Timestamp`, wrappers), and the
//! comments above messages and fields as descriptions. Out: a proto3 file, one message per schema
//! object, that `protoc` compiles.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mesh_model::odcs::{Contract, LogicalType, SchemaObject, SchemaProperty};
use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};
use serde_json::json;

use crate::table::{Column, Imported, Table};
// Protobuf identifiers: letters, digits, `_`, not starting with a digit.
use crate::identifier as ident;
use crate::{Exported, Problem, place};

const MAX_BYTES: usize = 16 << 20;
const MAX_DEPTH: usize = 32;

/// The main file from memory (what the caller read), everything else from the include paths.
struct Main {
    name: String,
    source: String,
}

impl FileResolver for Main {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name {
            File::from_source(name, &self.source)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// The byte offset of a diagnostic's first label, as line and column of `text`.
fn position(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

pub(crate) fn import(file: &str, text: &str, includes: &[PathBuf]) -> Result<Imported, Problem> {
    if text.len() > MAX_BYTES {
        return Err(Problem::new(
            file,
            None,
            "Protobuf: the file is over 16 MiB",
        ));
    }
    let path = Path::new(file);
    let name = path
        .file_name()
        .map_or_else(|| file.to_owned(), |n| n.to_string_lossy().into_owned());
    let mut chain = ChainFileResolver::new();
    chain.add(Main {
        name: name.clone(),
        source: text.to_owned(),
    });
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    chain.add(IncludeFileResolver::new(folder.to_owned()));
    for include in includes {
        chain.add(IncludeFileResolver::new(include.clone()));
    }
    chain.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(chain);
    compiler.include_source_info(true).include_imports(true);
    compiler
        .open_file(&name)
        .map_err(|e| compile_problem(file, &name, text, folder, &e))?;
    let pool = compiler.descriptor_pool();
    let Some(main) = pool.get_file_by_name(&name) else {
        return Err(Problem::new(
            file,
            None,
            "Protobuf: the file did not compile to a descriptor",
        ));
    };
    let mut out = Imported::new(file, format!("the Protobuf file {name}"));
    let (comments, spans) = comments(&pool, &name);
    let mut reader = Reader {
        comments,
        spans,
        out: &mut out,
        text,
    };
    for message in main.messages() {
        let table = reader.table(&message)?;
        reader.out.tables.push(table);
    }
    if out.tables.is_empty() {
        return Err(Problem::new(
            file,
            None,
            "Protobuf: the file defines no message",
        ));
    }
    if let [only] = out.tables.as_slice() {
        out.name = only.name.clone();
        out.description.clone_from(&only.description);
    }
    Ok(out)
}

fn compile_problem(
    file: &str,
    name: &str,
    text: &str,
    folder: &Path,
    e: &protox::Error,
) -> Problem {
    use miette::Diagnostic as _;
    let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let (shown, at) = match e.file() {
        Some(f) if f == name => (file.to_owned(), offset.map(|o| position(text, o))),
        Some(other) => {
            let other_path = folder.join(other);
            let other_text = std::fs::read_to_string(&other_path).unwrap_or_default();
            (
                other_path.display().to_string(),
                offset.map(|o| position(&other_text, o)),
            )
        }
        None => (file.to_owned(), None),
    };
    let mut p = Problem::new(&shown, at, format!("Protobuf: {e}"));
    if let Some(help) = e.help() {
        p = p.hint(help.to_string());
    }
    p
}

type Comments = HashMap<(String, Vec<i32>), String>;
type Spans = HashMap<(String, Vec<i32>), (u32, u32)>;

/// Leading comments by (file, source path), and where the main file's elements start.
fn comments(pool: &DescriptorPool, main: &str) -> (Comments, Spans) {
    let mut out = HashMap::new();
    let mut spans = HashMap::new();
    for file in pool.files() {
        let proto = file.file_descriptor_proto();
        for location in proto.source_code_info.iter().flat_map(|i| &i.location) {
            if proto.name() == main
                && let [line, col, ..] = location.span.as_slice()
            {
                let p = |n: i32| u32::try_from(n).unwrap_or(0).saturating_add(1);
                spans.insert(
                    (proto.name().to_owned(), location.path.clone()),
                    (p(*line), p(*col)),
                );
            }
            let text = location
                .leading_comments
                .as_deref()
                .or(location.trailing_comments.as_deref())
                .map(|c| {
                    c.lines()
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" ")
                        .trim()
                        .to_owned()
                })
                .filter(|c| !c.is_empty());
            if let Some(text) = text {
                out.insert((proto.name().to_owned(), location.path.clone()), text);
            }
        }
    }
    (out, spans)
}

struct Reader<'a> {
    comments: HashMap<(String, Vec<i32>), String>,
    /// Where each element of the main file starts (1-based line and column).
    spans: HashMap<(String, Vec<i32>), (u32, u32)>,
    out: &'a mut Imported,
    text: &'a str,
}

impl Reader<'_> {
    fn doc(&self, file: &str, path: &[i32]) -> Option<String> {
        self.comments
            .get(&(file.to_owned(), path.to_vec()))
            .cloned()
    }

    fn table(&mut self, message: &MessageDescriptor) -> Result<Table, Problem> {
        let mut table = Table::new(message.name());
        table.physical_type = Some("message".into());
        table.physical_name = Some(message.full_name().to_owned()).filter(|f| f != message.name());
        table.description = self.doc(message.parent_file().name(), message.path());
        let mut stack = vec![message.full_name().to_owned()];
        table.columns = self.fields(message, message.name(), &mut stack)?;
        Ok(table)
    }

    fn fields(
        &mut self,
        message: &MessageDescriptor,
        path: &str,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Column>, Problem> {
        let mut out = Vec::new();
        for field in message.fields() {
            let here = format!("{path}.{}", field.name());
            let at = self
                .spans
                .get(&(field.parent_file().name().to_owned(), field.path().to_vec()))
                .copied();
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                self.out.note(
                    at,
                    format!(
                        "`{here}` is one of oneof `{}`: imported as an optional field",
                        oneof.name()
                    ),
                );
            }
            let mut c = self.field(&field, &here, stack)?;
            if let Some(doc) = self.doc(field.parent_file().name(), field.path()) {
                c.description = Some(doc);
            }
            out.push(c);
        }
        Ok(out)
    }

    fn field(
        &mut self,
        field: &FieldDescriptor,
        path: &str,
        stack: &mut Vec<String>,
    ) -> Result<Column, Problem> {
        if let (true, Kind::Message(entry)) = (field.is_map(), field.kind()) {
            let mut c = Column::new(field.name(), LogicalType::Map);
            let key = self.kind(
                &entry.map_entry_key_field(),
                "",
                &format!("{path}{{key}}"),
                stack,
            )?;
            let value = self.kind(
                &entry.map_entry_value_field(),
                "",
                &format!("{path}{{}}"),
                stack,
            )?;
            c.map = Some((Box::new(key), Box::new(value)));
            c.physical = Some(format!(
                "map<{}, {}>",
                type_name(&entry.map_entry_key_field()),
                type_name(&entry.map_entry_value_field())
            ));
            return Ok(c);
        }
        if field.is_list() {
            let mut c = Column::new(field.name(), LogicalType::Array);
            let item = self.kind(field, "", &format!("{path}[]"), stack)?;
            c.physical = Some(format!("repeated {}", type_name(field)));
            c.items = Some(Box::new(item));
            return Ok(c);
        }
        let mut c = self.kind(field, field.name(), path, stack)?;
        // proto3: a field without `optional` (and outside a oneof) is required; proto2: `required`.
        let proto3 = field.parent_file().file_descriptor_proto().syntax() == "proto3";
        c.required = match field.cardinality() {
            Cardinality::Required => true,
            Cardinality::Repeated => false,
            Cardinality::Optional => {
                proto3
                    && !field.field_descriptor_proto().proto3_optional()
                    && field.containing_oneof().is_none()
            }
        };
        Ok(c)
    }

    /// The column a field's type makes (its label aside).
    fn kind(
        &mut self,
        field: &FieldDescriptor,
        name: &str,
        path: &str,
        stack: &mut Vec<String>,
    ) -> Result<Column, Problem> {
        let mut c = Column::new(name, LogicalType::String);
        c.physical = Some(type_name(field));
        let format = |c: &mut Column, f: &str| {
            c.options.insert("format".into(), json!(f));
        };
        match field.kind() {
            Kind::Double => c.logical = LogicalType::Number,
            Kind::Float => {
                c.logical = LogicalType::Number;
                format(&mut c, "f32");
            }
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                c.logical = LogicalType::Integer;
                format(&mut c, "i32");
            }
            Kind::Uint32 | Kind::Fixed32 => {
                c.logical = LogicalType::Integer;
                format(&mut c, "u32");
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => c.logical = LogicalType::Integer,
            Kind::Uint64 | Kind::Fixed64 => {
                c.logical = LogicalType::Integer;
                format(&mut c, "u64");
            }
            Kind::Bool => c.logical = LogicalType::Boolean,
            Kind::String => {}
            Kind::Bytes => {
                let at = self
                    .spans
                    .get(&(field.parent_file().name().to_owned(), field.path().to_vec()))
                    .copied();
                self.out.note(at, format!("`{path}`: bytes (binary) has no ODCS logical type: imported as a string, physicalType bytes"));
            }
            Kind::Enum(e) => {
                c.enum_values = e
                    .values()
                    .filter(|v| !(v.number() == 0 && v.name().ends_with("_UNSPECIFIED")))
                    .map(|v| json!(v.name()))
                    .collect();
                if c.description.is_none() {
                    c.description = self.doc(e.parent_file().name(), e.path());
                }
            }
            Kind::Message(m) => match m.full_name() {
                "google.protobuf.Timestamp" => c.logical = LogicalType::Timestamp,
                "google.type.Date" => c.logical = LogicalType::Date,
                "google.type.TimeOfDay" => c.logical = LogicalType::Time,
                "google.protobuf.Duration" => {}
                "google.protobuf.StringValue" | "google.protobuf.BytesValue" => {}
                "google.protobuf.BoolValue" => c.logical = LogicalType::Boolean,
                "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
                    c.logical = LogicalType::Number
                }
                "google.protobuf.Int32Value"
                | "google.protobuf.Int64Value"
                | "google.protobuf.UInt32Value"
                | "google.protobuf.UInt64Value" => {
                    c.logical = LogicalType::Integer;
                }
                "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.Any" => {
                    c.logical = LogicalType::Object
                }
                full => {
                    c.logical = LogicalType::Object;
                    if stack.iter().any(|s| s == full) || stack.len() >= MAX_DEPTH {
                        let at = self
                            .spans
                            .get(&(field.parent_file().name().to_owned(), field.path().to_vec()))
                            .copied();
                        self.out.note(at, format!("`{path}`: message {full} contains itself: imported as an object without its properties"));
                    } else {
                        stack.push(full.to_owned());
                        c.properties = self.fields(&m, path, stack)?;
                        stack.pop();
                    }
                    if c.description.is_none() {
                        c.description = self.doc(m.parent_file().name(), m.path());
                    }
                }
            },
        }
        let _ = self.text;
        Ok(c)
    }
}

fn type_name(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        k => format!("{k:?}").to_ascii_lowercase(),
    }
}

// ---------------------------------------------------------------------------------------------
// Export

fn pascal(name: &str) -> String {
    ident(name)
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}

fn comment(out: &mut String, indent: &str, text: Option<&str>) {
    if let Some(t) = text {
        for line in t.lines() {
            out.push_str(&format!("{indent}// {line}\n"));
        }
    }
}

struct Writer<'a> {
    lost: &'a mut Vec<String>,
    imports: std::collections::BTreeSet<&'static str>,
}

pub(crate) fn export(contract: &Contract) -> Exported {
    let mut lost = Vec::new();
    let package = contract.id.as_deref().map(|id| {
        id.split('.')
            .map(|p| ident(&p.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(".")
    });
    let mut w = Writer {
        lost: &mut lost,
        imports: std::collections::BTreeSet::new(),
    };
    let mut body = String::new();
    for o in &contract.schema {
        w.message(o, &mut body);
    }
    crate::sql::lost_common(contract, w.lost);
    let mut out = format!(
        "// Written by `mesh export --to protobuf` from contract {} {}.\nsyntax = \"proto3\";\n",
        contract.id.as_deref().unwrap_or_default(),
        contract.version.as_deref().unwrap_or_default()
    );
    if let Some(p) = package {
        out.push_str(&format!("\npackage {p};\n"));
    }
    if !w.imports.is_empty() {
        out.push('\n');
        for i in &w.imports {
            out.push_str(&format!("import \"{i}\";\n"));
        }
    }
    out.push_str(&body);
    Exported { text: out, lost }
}

impl Writer<'_> {
    fn message(&mut self, o: &SchemaObject, out: &mut String) {
        out.push('\n');
        comment(out, "", o.description.as_deref());
        let name = ident(&o.name);
        if name != o.name {
            self.lost
                .push(format!("{}: the name (written as message {name})", o.name));
        }
        out.push_str(&format!("message {name} {{\n"));
        self.body(&o.properties, &o.name, "  ", out);
        out.push_str("}\n");
        for rule in &o.quality {
            self.lost.push(format!(
                "{}: quality rule {}",
                o.name,
                crate::sql::describe_rule(rule)
            ));
        }
    }

    fn body(&mut self, props: &[SchemaProperty], path: &str, indent: &str, out: &mut String) {
        let mut nested = String::new();
        let mut fields = String::new();
        for (i, p) in props.iter().enumerate() {
            let here = place(path, p.name());
            let name = ident(p.name());
            if name != p.name() {
                self.lost
                    .push(format!("{here}: the name (written as {name})"));
            }
            let ty = self.ty(p, &here, indent, &mut nested);
            let label = match p.logical_type {
                Some(LogicalType::Array | LogicalType::Vector) => "repeated ",
                Some(LogicalType::Map) => "",
                _ if p.is_required() || p.is_primary_key() => "",
                _ => "optional ",
            };
            comment(&mut fields, indent, p.description.as_deref());
            fields.push_str(&format!("{indent}{label}{ty} {name} = {};\n", i + 1));
            crate::lost_constraints(p, &here, "Protobuf", self.lost);
        }
        out.push_str(&nested);
        out.push_str(&fields);
    }

    /// The type of a field (declaring nested messages and enums in `nested`).
    fn ty(&mut self, p: &SchemaProperty, here: &str, indent: &str, nested: &mut String) -> String {
        let format = p
            .logical_type_options
            .as_ref()
            .and_then(|o| o.format.as_deref());
        match p.logical_type {
            Some(LogicalType::String) | None => {
                if p.enum_values.is_empty() {
                    return "string".into();
                }
                let values: Vec<&str> = p
                    .allowed_values()
                    .filter_map(serde_json::Value::as_str)
                    .collect();
                let valid =
                    values.len() == p.enum_values.len() && values.iter().all(|v| ident(v) == *v);
                if !valid {
                    self.lost.push(format!(
                        "{here}: enum (its values are not all Protobuf identifiers)"
                    ));
                    return "string".into();
                }
                let name = pascal(&format!("{}_values", p.name()));
                let zero = format!("{}_UNSPECIFIED", ident(&p.name().to_ascii_uppercase()));
                nested.push_str(&format!("{indent}enum {name} {{\n{indent}  {zero} = 0;\n"));
                for (i, v) in values.iter().enumerate() {
                    nested.push_str(&format!("{indent}  {v} = {};\n", i + 1));
                }
                nested.push_str(&format!("{indent}}}\n"));
                name
            }
            Some(LogicalType::Integer) => match format {
                Some("i8" | "i16" | "i32") => "int32".into(),
                Some("u8" | "u16" | "u32") => "uint32".into(),
                Some("u64" | "u128") => "uint64".into(),
                _ => "int64".into(),
            },
            Some(LogicalType::Number) => {
                let physical = p
                    .physical_type
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if physical.starts_with("decimal") || physical.starts_with("numeric") {
                    self.lost.push(format!(
                        "{here}: the exact decimal {physical} (written as double)"
                    ));
                }
                if format == Some("f32") {
                    "float".into()
                } else {
                    "double".into()
                }
            }
            Some(LogicalType::Boolean) => "bool".into(),
            Some(LogicalType::Timestamp) => {
                self.imports.insert("google/protobuf/timestamp.proto");
                "google.protobuf.Timestamp".into()
            }
            Some(LogicalType::Date | LogicalType::Time) => {
                self.lost.push(format!(
                    "{here}: the {} type (written as an ISO 8601 string)",
                    p.logical_type.map_or("", LogicalType::as_str)
                ));
                "string".into()
            }
            Some(LogicalType::Object) => {
                if p.properties.is_empty() {
                    self.imports.insert("google/protobuf/struct.proto");
                    return "google.protobuf.Struct".into();
                }
                let name = pascal(p.name());
                nested.push_str(&format!("{indent}message {name} {{\n"));
                self.body(&p.properties, here, &format!("{indent}  "), nested);
                nested.push_str(&format!("{indent}}}\n"));
                name
            }
            Some(LogicalType::Array) => match p.items.as_deref() {
                Some(items)
                    if matches!(
                        items.logical_type,
                        Some(LogicalType::Array | LogicalType::Map)
                    ) =>
                {
                    self.lost.push(format!(
                        "{here}: a list of lists or maps (written as a list of strings)"
                    ));
                    "string".into()
                }
                Some(items) => {
                    let mut item = items.clone();
                    if item.name.is_none() {
                        item.name = Some(format!("{}_item", p.name()));
                    }
                    self.ty(&item, &format!("{here}[]"), indent, nested)
                }
                None => "string".into(),
            },
            Some(LogicalType::Vector) => "float".into(),
            Some(LogicalType::Map) => {
                let key = p.map.as_ref().map_or_else(
                    || "string".into(),
                    |m| self.ty(&m.key, &format!("{here}{{key}}"), indent, nested),
                );
                let key = if ["string", "int32", "int64", "uint32", "uint64", "bool"]
                    .contains(&key.as_str())
                {
                    key
                } else {
                    self.lost.push(format!("{here}: the map's key type (Protobuf map keys are strings, integers or booleans)"));
                    "string".into()
                };
                let value = match p.map.as_ref() {
                    Some(m)
                        if matches!(
                            m.value.logical_type,
                            Some(LogicalType::Array | LogicalType::Map)
                        ) =>
                    {
                        self.lost.push(format!(
                            "{here}: a map of lists or maps (written as a map of strings)"
                        ));
                        "string".into()
                    }
                    Some(m) => {
                        let mut v = (*m.value).clone();
                        if v.name.is_none() {
                            v.name = Some(format!("{}_value", p.name()));
                        }
                        self.ty(&v, &format!("{here}{{}}"), indent, nested)
                    }
                    None => "string".into(),
                };
                format!("map<{key}, {value}>")
            }
        }
    }
}
