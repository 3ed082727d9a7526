//! ODCS contracts to and from the formats a data team already has.
//!
//! **In** ([`import`]): SQL DDL (every dialect `sqlparser` speaks), JSON Schema, Avro schemas,
//! Protobuf files (with their imports), dbt manifests. Each reader builds the neutral [`Table`]s of this crate, and [`Imported::contract`]
//! writes them as one ODCS v3.2.0 contract that lints clean. What a reader could not carry over is a
//! [`Note`] with its position, never silently dropped.
//!
//! **Out** ([`export`]): SQL DDL per dialect, JSON Schema, Avro, Protobuf, dbt models YAML, Great Expectations
//! suites, SodaCL checks, Markdown and HTML data sheets, and ODCS itself (normalised, any supported
//! version). Each export lists what the target cannot express in [`Exported::lost`], one entry per
//! lost rule.
//!
//! Inputs are untrusted: nesting depth, `$ref` chains and sizes are bounded, and every malformed
//! input is a [`Problem`] at `file:line:col`.

mod avro;
mod dbt;
mod jsonschema;
mod merge;
mod odcs;
mod protobuf;
mod quality;
mod sheet;
mod sql;
mod table;

use std::fmt;

pub use merge::merge;
pub use sql::Dialect;
pub use table::{Column, Imported, Note, Table};

use mesh_model::odcs::Contract;

/// What `mesh import --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Sql,
    JsonSchema,
    Avro,
    Protobuf,
    Dbt,
}

/// What `mesh export --to` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Sql,
    JsonSchema,
    Avro,
    Protobuf,
    Dbt,
    GreatExpectations,
    SodaCl,
    Markdown,
    Html,
    Odcs,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 10] = [
        ExportFormat::Sql,
        ExportFormat::JsonSchema,
        ExportFormat::Avro,
        ExportFormat::Protobuf,
        ExportFormat::Dbt,
        ExportFormat::GreatExpectations,
        ExportFormat::SodaCl,
        ExportFormat::Markdown,
        ExportFormat::Html,
        ExportFormat::Odcs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Sql => "sql",
            ExportFormat::JsonSchema => "jsonschema",
            ExportFormat::Avro => "avro",
            ExportFormat::Protobuf => "protobuf",
            ExportFormat::Dbt => "dbt",
            ExportFormat::GreatExpectations => "great-expectations",
            ExportFormat::SodaCl => "sodacl",
            ExportFormat::Markdown => "markdown",
            ExportFormat::Html => "html",
            ExportFormat::Odcs => "odcs",
        }
    }
}

/// A malformed or unusable input, at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; 0 when the problem is about the whole file.
    pub line: u32,
    pub col: u32,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(file: &str, at: Option<(u32, u32)>, message: impl Into<String>) -> Self {
        let (line, col) = at.unwrap_or((1, 1));
        Problem {
            file: file.to_owned(),
            line,
            col,
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The contract's id (default: from the input's name).
    pub id: Option<String>,
    /// SQL: the dialect of the DDL.
    pub dialect: Option<Dialect>,
    /// dbt: only these models (by name); all when empty.
    pub models: Vec<String>,
    /// Protobuf: where imports are found besides the file's own folder.
    pub proto_paths: Vec<std::path::PathBuf>,
}

/// Reads `text` (the content of `file`) as `format`.
pub fn import(
    format: ImportFormat,
    file: &str,
    text: &str,
    options: &ImportOptions,
) -> Result<Imported, Problem> {
    let mut imported = match format {
        ImportFormat::Sql => sql::import(file, text, options.dialect.unwrap_or_default())?,
        ImportFormat::JsonSchema => jsonschema::import(file, text)?,
        ImportFormat::Avro => avro::import(file, text)?,
        ImportFormat::Protobuf => protobuf::import(file, text, &options.proto_paths)?,
        ImportFormat::Dbt => dbt::import(file, text, &options.models)?,
    };
    if let Some(id) = &options.id {
        imported.id.clone_from(id);
    }
    Ok(imported)
}

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// SQL and dbt: the dialect of the types (default PostgreSQL).
    pub dialect: Option<Dialect>,
    /// ODCS: the apiVersion to write (default: the contract's own).
    pub odcs_version: Option<String>,
}

/// What an export wrote, and what the target format could not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub text: String,
    /// One line per rule or field the format cannot express (`orders.amount: quality rule ...`).
    pub lost: Vec<String>,
}

/// Writes `contract` as `format`.
pub fn export(
    format: ExportFormat,
    contract: &Contract,
    options: &ExportOptions,
) -> Result<Exported, String> {
    let dialect = options.dialect.unwrap_or_default();
    Ok(match format {
        ExportFormat::Sql => sql::export(contract, dialect),
        ExportFormat::JsonSchema => jsonschema::export(contract),
        ExportFormat::Avro => avro::export(contract),
        ExportFormat::Protobuf => protobuf::export(contract),
        ExportFormat::Dbt => dbt::export(contract, dialect),
        ExportFormat::GreatExpectations => quality::great_expectations(contract),
        ExportFormat::SodaCl => quality::sodacl(contract),
        ExportFormat::Markdown => sheet::markdown(contract),
        ExportFormat::Html => sheet::html(contract),
        ExportFormat::Odcs => odcs::export(contract, options.odcs_version.as_deref())?,
    })
}

/// An identifier as Avro and Protobuf spell them: letters, digits and `_`, not starting with a
/// digit (anything else becomes `_`).
fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// What a format whose types carry no value constraints (Avro, Protobuf) loses of a property:
/// its options, `unique`, its key and its quality rules, one line each.
fn lost_constraints(
    p: &mesh_model::odcs::SchemaProperty,
    here: &str,
    format: &str,
    lost: &mut Vec<String>,
) {
    if let Some(o) = &p.logical_type_options {
        for (key, set) in [
            ("minLength", o.min_length.is_some()),
            ("maxLength", o.max_length.is_some()),
            ("pattern", o.pattern.is_some()),
            ("minimum", o.minimum.is_some()),
            ("maximum", o.maximum.is_some()),
            ("exclusiveMinimum", o.exclusive_minimum.is_some()),
            ("exclusiveMaximum", o.exclusive_maximum.is_some()),
            ("multipleOf", o.multiple_of.is_some()),
            ("minItems", o.min_items.is_some()),
            ("maxItems", o.max_items.is_some()),
            ("uniqueItems", o.unique_items == Some(true)),
        ] {
            if set {
                lost.push(format!(
                    "{here}: {key} ({format} types carry no value constraints)"
                ));
            }
        }
    }
    if p.is_unique() {
        lost.push(format!("{here}: unique"));
    }
    if p.is_primary_key() {
        lost.push(format!("{here}: primaryKey"));
    }
    for rule in &p.quality {
        lost.push(format!("{here}: quality rule {}", sql::describe_rule(rule)));
    }
}

/// A contract (or any document) as YAML.
pub fn to_yaml(value: &serde_json::Value) -> String {
    yaml_serde::to_string(value).unwrap_or_default()
}

/// The file name of a path, for headers.
fn file_name(file: &str) -> String {
    std::path::Path::new(file)
        .file_name()
        .map_or_else(|| file.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The dotted place of a property in lost-rule lines: `orders.amount`.
fn place(object: &str, property: &str) -> String {
    if property.is_empty() {
        object.to_owned()
    } else {
        format!("{object}.{property}")
    }
}
