//! The neutral shape every reader produces — tables of typed columns with their keys, constraints
//! and documentation — and its ODCS v3.2.0 rendering.

use mesh_model::odcs::{LogicalType, Reference};
use serde_json::{Map, Value, json};

/// One column (or nested field) as a source format describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub logical: LogicalType,
    /// The type as the source wrote it (`varchar(36)`, `timestamp-micros`, `int64`).
    pub physical: Option<String>,
    pub required: bool,
    pub unique: bool,
    /// Position in the primary key, from 1.
    pub primary_key: Option<u32>,
    pub description: Option<String>,
    /// Allowed values (ODCS v3.2.0 `enum`).
    pub enum_values: Vec<Value>,
    /// `logicalTypeOptions` (`maxLength`, `minimum`, `format`, ...).
    pub options: Map<String, Value>,
    pub items: Option<Box<Column>>,
    pub properties: Vec<Column>,
    /// Key and value of a `map`.
    pub map: Option<(Box<Column>, Box<Column>)>,
    /// A foreign key: `table.column`.
    pub references: Option<String>,
    /// ODCS quality rules on the column.
    pub quality: Vec<Value>,
    pub examples: Vec<Value>,
    pub tags: Vec<String>,
    pub deprecated: bool,
    pub custom: Vec<(String, Value)>,
}

impl Column {
    pub fn new(name: impl Into<String>, logical: LogicalType) -> Self {
        Column {
            name: name.into(),
            logical,
            physical: None,
            required: false,
            unique: false,
            primary_key: None,
            description: None,
            enum_values: Vec::new(),
            options: Map::new(),
            items: None,
            properties: Vec::new(),
            map: None,
            references: None,
            quality: Vec::new(),
            examples: Vec::new(),
            tags: Vec::new(),
            deprecated: false,
            custom: Vec::new(),
        }
    }

    fn to_json(&self, named: bool) -> Value {
        let mut p = Map::new();
        if named {
            p.insert("name".into(), json!(self.name));
        }
        p.insert("logicalType".into(), json!(self.logical.as_str()));
        if let Some(physical) = &self.physical {
            p.insert("physicalType".into(), json!(physical));
        }
        if let Some(d) = self.description.as_ref().filter(|d| !d.trim().is_empty()) {
            p.insert("description".into(), json!(d));
        }
        if self.required || self.primary_key.is_some() {
            p.insert("required".into(), json!(true));
        }
        if self.unique {
            p.insert("unique".into(), json!(true));
        }
        if let Some(position) = self.primary_key {
            p.insert("primaryKey".into(), json!(true));
            p.insert("primaryKeyPosition".into(), json!(position));
        }
        if self.deprecated {
            p.insert("deprecated".into(), json!(true));
        }
        let options = self.applicable_options();
        if !options.is_empty() {
            p.insert("logicalTypeOptions".into(), Value::Object(options));
        }
        let mut values: Vec<Value> = Vec::new();
        for v in &self.enum_values {
            if !values.contains(v) && !v.is_array() && !v.is_object() {
                values.push(v.clone());
            }
        }
        if !values.is_empty() {
            let values: Vec<Value> = values.into_iter().map(|v| json!({ "value": v })).collect();
            p.insert("enum".into(), Value::Array(values));
        }
        match self.logical {
            LogicalType::Array => {
                if let Some(items) = &self.items {
                    p.insert("items".into(), items.to_json(false));
                }
            }
            LogicalType::Object if !self.properties.is_empty() => {
                let props: Vec<Value> = self.properties.iter().map(|c| c.to_json(true)).collect();
                p.insert("properties".into(), Value::Array(props));
            }
            LogicalType::Map => {
                let (key, value) = match &self.map {
                    Some((k, v)) => (k.to_json(false), v.to_json(false)),
                    None => (
                        json!({ "logicalType": "string" }),
                        json!({ "logicalType": "string" }),
                    ),
                };
                p.insert("map".into(), json!({ "key": key, "value": value }));
            }
            _ => {}
        }
        if let Some(to) = self.references.as_ref().filter(|r| Reference::is_valid(r)) {
            p.insert("relationships".into(), json!([{ "to": to }]));
        }
        if !self.quality.is_empty() {
            p.insert("quality".into(), Value::Array(self.quality.clone()));
        }
        if !self.examples.is_empty() {
            p.insert("examples".into(), Value::Array(self.examples.clone()));
        }
        if !self.tags.is_empty() {
            p.insert("tags".into(), json!(self.tags));
        }
        if !self.custom.is_empty() {
            let custom: Vec<Value> = self
                .custom
                .iter()
                .map(|(k, v)| json!({ "property": k, "value": v }))
                .collect();
            p.insert("customProperties".into(), Value::Array(custom));
        }
        Value::Object(p)
    }

    /// The options that apply to the column's type (the schema refuses the others).
    fn applicable_options(&self) -> Map<String, Value> {
        let keys = mesh_model::odcs::LogicalTypeOptions::keys_for(self.logical);
        let mut out: Map<String, Value> = self
            .options
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self.logical == LogicalType::Vector && !out.contains_key("dimensions") {
            out.clear();
        }
        out
    }
}

/// One table (schema object).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub physical_name: Option<String>,
    /// `table`, `view`, `record`, `message`, `model`.
    pub physical_type: Option<String>,
    pub description: Option<String>,
    pub columns: Vec<Column>,
    /// Schema-level ODCS quality rules (composite keys, SQL checks).
    pub quality: Vec<Value>,
    /// Composite foreign keys: (from columns, `table`, to columns).
    pub foreign_keys: Vec<(Vec<String>, String, Vec<String>)>,
    pub tags: Vec<String>,
}

impl Table {
    pub fn new(name: impl Into<String>) -> Self {
        Table {
            name: name.into(),
            physical_name: None,
            physical_type: None,
            description: None,
            columns: Vec::new(),
            quality: Vec::new(),
            foreign_keys: Vec::new(),
            tags: Vec::new(),
        }
    }

    pub fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        if let Some(p) = self.physical_name.as_ref().filter(|p| **p != self.name) {
            o.insert("physicalName".into(), json!(p));
        }
        if let Some(p) = &self.physical_type {
            o.insert("physicalType".into(), json!(p));
        }
        if let Some(d) = self.description.as_ref().filter(|d| !d.trim().is_empty()) {
            o.insert("description".into(), json!(d));
        }
        if !self.tags.is_empty() {
            o.insert("tags".into(), json!(self.tags));
        }
        let props: Vec<Value> = self.columns.iter().map(|c| c.to_json(true)).collect();
        o.insert("properties".into(), Value::Array(props));
        let mut relationships = Vec::new();
        for (from, table, to) in &self.foreign_keys {
            let from: Vec<String> = from.iter().map(|c| format!("{}.{c}", self.name)).collect();
            let to: Vec<String> = to.iter().map(|c| format!("{table}.{c}")).collect();
            if from.iter().chain(&to).all(|r| Reference::is_valid(r)) {
                relationships.push(json!({ "type": "foreignKey", "from": from, "to": to }));
            }
        }
        if !relationships.is_empty() {
            o.insert("relationships".into(), Value::Array(relationships));
        }
        if !self.quality.is_empty() {
            o.insert("quality".into(), Value::Array(self.quality.clone()));
        }
        Value::Object(o)
    }
}

/// Something an import could not carry over, or carried over differently, with its place in the
/// input when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Option<(u32, u32)>,
    pub message: String,
}

impl Note {
    pub fn new(at: Option<(u32, u32)>, message: impl Into<String>) -> Self {
        Note {
            at,
            message: message.into(),
        }
    }

    /// `file:line:col: warning: message`.
    pub fn render(&self, file: &str) -> String {
        let (line, col) = self.at.unwrap_or((1, 1));
        format!("{file}:{line}:{col}: warning: {}", self.message)
    }
}

/// The result of an import: tables, and what could not be carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// What it was read from, for the contract's header (`PostgreSQL DDL in shop.sql`).
    pub origin: String,
    pub tables: Vec<Table>,
    pub notes: Vec<Note>,
}

impl Imported {
    pub fn new(file: &str, origin: impl Into<String>) -> Self {
        let stem = std::path::Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = stem.split('.').next().unwrap_or_default().to_owned();
        let id: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        Imported {
            id: if id.is_empty() { "imported".into() } else { id },
            name: stem,
            description: None,
            origin: origin.into(),
            tables: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn note(&mut self, at: Option<(u32, u32)>, message: impl Into<String>) {
        self.notes.push(Note::new(at, message));
    }

    /// The ODCS v3.2.0 contract, as JSON.
    pub fn contract_json(&self) -> Value {
        let mut c = Map::new();
        c.insert("apiVersion".into(), json!("v3.2.0"));
        c.insert("kind".into(), json!("DataContract"));
        c.insert("id".into(), json!(self.id));
        c.insert("name".into(), json!(self.name));
        c.insert("version".into(), json!("0.1.0"));
        c.insert("status".into(), json!("draft"));
        let purpose = self.description.clone().unwrap_or_else(|| {
            format!(
                "Imported from {}: say what it holds and who it is for.",
                self.origin
            )
        });
        c.insert("description".into(), json!({ "purpose": purpose }));
        let schema: Vec<Value> = self.tables.iter().map(Table::to_json).collect();
        c.insert("schema".into(), Value::Array(schema));
        Value::Object(c)
    }

    /// The contract as YAML, with a header naming the origin.
    pub fn contract_yaml(&self) -> String {
        let body = yaml_serde::to_string(&self.contract_json()).unwrap_or_default();
        format!(
            "# Written by `mesh import` from {}. Review the descriptions, add the rules the\n# data must follow, then `mesh lint` and `mesh test` it.\n{body}",
            self.origin
        )
    }
}
