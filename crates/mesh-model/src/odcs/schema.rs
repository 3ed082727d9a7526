//! ODCS `schema`: objects (tables, topics, documents), their properties (columns, fields, nested
//! objects and array items), logical types with their options, and relationships (foreign keys).
//!
//! Which `logicalTypeOptions`, `items` and nested `properties` a property may have depends on its
//! `logicalType`; [`check_property`] applies those rules exactly as the official schema's
//! `if/then` blocks do — including the surprising corner that a property *without* `logicalType`
//! must have empty options, because every branch applies at once.

use std::sync::LazyLock;

use mesh_model_derive::Model;
use regex::Regex;

use crate::de::{Cx, Edition, Extra, FromNode, Scalar};
use crate::diag::{Code, suggest};
use crate::source::{Node, Span, Value};
use crate::string_enum;

use super::{AuthoritativeDefinition, Context, CustomProperty, DataQuality, StableId};

string_enum! {
    /// The logical types: nine in ODCS v3.1.0, and `map` and `vector` since v3.2.0.
    pub enum LogicalType ("logical type") {
        String = "string",
        Date = "date",
        Timestamp = "timestamp",
        Time = "time",
        Number = "number",
        Integer = "integer",
        Object = "object",
        Array = "array",
        Boolean = "boolean",
        Map = "map",
        Vector = "vector",
    }
}

impl LogicalType {
    /// `map` and `vector` exist only from ODCS v3.2.0 on.
    pub fn is_v3_2(self) -> bool {
        matches!(self, LogicalType::Map | LogicalType::Vector)
    }
}

string_enum! {
    /// The role a property plays in an analytical model (v3.2.0).
    pub enum SemanticType ("semantic type") {
        Column = "column",
        Measure = "measure",
        Dimension = "dimension",
    }
}

string_enum! {
    /// The numeric type of each element of a `vector` property.
    pub enum VectorElementType ("vector element type") {
        Bfloat16 = "bfloat16",
        Binary = "binary",
        Float16 = "float16",
        Float32 = "float32",
        Float64 = "float64",
        Int8 = "int8",
        Uint8 = "uint8",
    }
}

string_enum! {
    /// The similarity metric a `vector` property is meant for.
    pub enum DistanceMetric ("distance metric") {
        Cosine = "cosine",
        DotProduct = "dotProduct",
        Euclidean = "euclidean",
        Hamming = "hamming",
        Manhattan = "manhattan",
    }
}

/// Another name for a schema object or property (v3.2.0), for catalogs and search.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "synonym")]
pub struct Synonym {
    pub id: Option<StableId>,
    pub synonym: String,
    pub description: Option<String>,
    pub locale: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// One allowed value of a property's `enum` (v3.2.0).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "enum value")]
pub struct EnumValue {
    pub value: Scalar,
    pub label: Option<String>,
    pub id: Option<StableId>,
    pub description: Option<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub tags: Vec<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// The key and value types of a `map` property (v3.2.0).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "map")]
pub struct MapType {
    pub key: Box<SchemaProperty>,
    pub value: Box<SchemaProperty>,
    #[model(extra)]
    pub extra: Extra,
}

string_enum! {
    /// A schema object's `logicalType`, which can only be `object`.
    pub enum ObjectLogicalType ("schema object logical type") {
        Object = "object",
    }
}

/// One element of `schema`: a table, view, topic or document type.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "schema object", check = check_object)]
pub struct SchemaObject {
    pub id: Option<StableId>,
    pub name: String,
    pub physical_type: Option<String>,
    pub description: Option<String>,
    pub business_name: Option<String>,
    #[model(since_3_2)]
    pub deprecated: Option<bool>,
    #[model(since_3_2)]
    pub synonyms: Vec<Synonym>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub logical_type: Option<ObjectLogicalType>,
    pub physical_name: Option<String>,
    pub data_granularity_description: Option<String>,
    pub properties: Vec<SchemaProperty>,
    pub relationships: Vec<Relationship>,
    pub quality: Vec<DataQuality>,
    #[model(since_3_2)]
    pub context: Option<Context>,
    #[model(extra)]
    pub extra: Extra,
}

fn check_object(node: &Node, cx: &mut Cx) {
    check_child_properties(node, cx);
    each_relationship(node, cx, check_schema_level_relationship);
}

impl SchemaObject {
    /// The property called `name`.
    pub fn property(&self, name: &str) -> Option<&SchemaProperty> {
        self.properties.iter().find(|p| p.name() == name)
    }
}

/// A property (column, field) of a schema object, a nested property of an `object` property, or
/// the `items` of an `array` property. Items may be unnamed; everything else must have a `name`
/// (checked by the parent, which knows which case it is).
///
/// `properties` are nested properties of an `object` property (or of object-typed array items).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "schema property", check = check_property)]
pub struct SchemaProperty {
    pub id: Option<StableId>,
    pub name: Option<String>,
    pub physical_type: Option<String>,
    pub description: Option<String>,
    pub business_name: Option<String>,
    #[model(since_3_2)]
    pub deprecated: Option<bool>,
    #[model(since_3_2)]
    pub synonyms: Vec<Synonym>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub primary_key: Option<bool>,
    pub primary_key_position: Option<i64>,
    pub logical_type: Option<LogicalType>,
    #[model(with = LogicalTypeOptions::read_unchecked)]
    pub logical_type_options: Option<LogicalTypeOptions>,
    pub physical_name: Option<String>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub partitioned: Option<bool>,
    pub partition_key_position: Option<i64>,
    pub classification: Option<String>,
    pub encrypted_name: Option<String>,
    pub transform_source_objects: Vec<String>,
    pub transform_logic: Option<String>,
    pub transform_description: Option<String>,
    pub examples: Vec<serde_json::Value>,
    pub critical_data_element: Option<bool>,
    pub relationships: Vec<Relationship>,
    pub quality: Vec<DataQuality>,
    /// Nested properties of an `object` property.
    pub properties: Vec<SchemaProperty>,
    /// The element type of an `array` property.
    pub items: Option<Box<SchemaProperty>>,
    /// The allowed values (v3.2.0).
    #[model(since_3_2, rename = "enum")]
    pub enum_values: Vec<EnumValue>,
    #[model(since_3_2)]
    pub semantic_type: Option<SemanticType>,
    /// The key and value types of a `map` property (v3.2.0).
    #[model(since_3_2)]
    pub map: Option<MapType>,
    #[model(extra)]
    pub extra: Extra,
}

impl SchemaProperty {
    /// The property's name; empty only for unnamed array items.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(false)
    }

    pub fn is_unique(&self) -> bool {
        self.unique.unwrap_or(false)
    }

    pub fn is_primary_key(&self) -> bool {
        self.primary_key.unwrap_or(false)
    }

    pub fn is_deprecated(&self) -> bool {
        self.deprecated.unwrap_or(false)
    }

    /// The allowed values of an `enum` property, as JSON scalars.
    pub fn allowed_values(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.enum_values.iter().map(|v| &v.value.0)
    }
}

/// Options keyed by logical type: `string` (lengths, pattern, format), `date`/`timestamp`/`time`
/// (bounds as strings, time zone), `integer`/`number` (numeric bounds, multipleOf, format),
/// `object` (property counts, required names), `array` (item counts, uniqueness).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "logicalTypeOptions", silent)]
pub struct LogicalTypeOptions {
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<String>,
    pub format: Option<String>,
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
    pub exclusive_minimum: Option<Bound>,
    pub exclusive_maximum: Option<Bound>,
    pub multiple_of: Option<serde_json::Number>,
    pub timezone: Option<bool>,
    pub default_timezone: Option<String>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub required: Option<Vec<String>>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: Option<bool>,
    pub dimensions: Option<u64>,
    pub element_type: Option<VectorElementType>,
    pub distance_metric: Option<DistanceMetric>,
    pub embedding_model: Option<String>,
    pub embedding_model_version: Option<String>,
    pub normalized: Option<bool>,
    #[model(extra)]
    pub extra: Extra,
}

impl LogicalTypeOptions {
    /// Reads the options without reporting anything: which keys apply, and so which values must
    /// have which type, depends on the property's `logicalType` — [`check_property`] reports.
    /// (For `boolean`, or no `logicalType`, the schema does not constrain the values at all.)
    fn read_unchecked(node: &Node, cx: &mut Cx) -> Option<Self> {
        if node.as_map().is_none() {
            cx.type_error(node, "an object (logicalTypeOptions)");
            return None;
        }
        Self::from_node(node, &mut Cx::new())
    }

    /// The option keys that apply to `logical_type` (none for `boolean`).
    pub fn keys_for(logical_type: LogicalType) -> &'static [&'static str] {
        const TEMPORAL: &[&str] = &[
            "format",
            "exclusiveMaximum",
            "maximum",
            "exclusiveMinimum",
            "minimum",
        ];
        const NUMERIC: &[&str] = &[
            "multipleOf",
            "maximum",
            "exclusiveMaximum",
            "minimum",
            "exclusiveMinimum",
            "format",
        ];
        match logical_type {
            LogicalType::String => &["minLength", "maxLength", "pattern", "format"],
            LogicalType::Date => TEMPORAL,
            LogicalType::Timestamp | LogicalType::Time => &[
                "format",
                "exclusiveMaximum",
                "maximum",
                "exclusiveMinimum",
                "minimum",
                "timezone",
                "defaultTimezone",
            ],
            LogicalType::Integer | LogicalType::Number => NUMERIC,
            LogicalType::Object => &["maxProperties", "minProperties", "required"],
            LogicalType::Array => &["maxItems", "minItems", "uniqueItems"],
            LogicalType::Vector => &[
                "dimensions",
                "elementType",
                "distanceMetric",
                "embeddingModel",
                "embeddingModelVersion",
                "normalized",
            ],
            LogicalType::Boolean | LogicalType::Map => &[],
        }
    }
}

/// A bound in `logicalTypeOptions`: a number for `integer`/`number`, a string for temporal types.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Bound {
    Number(serde_json::Number),
    Text(String),
}

impl FromNode for Bound {
    const EXPECTED: &'static str = "a number or a string";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::String(s) => Some(Bound::Text(s.clone())),
            Value::Int(_) | Value::Float(_) => {
                serde_json::Number::from_node(node, cx).map(Bound::Number)
            }
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

const INTEGER_FORMATS: &[&str] = &[
    "i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128",
];
const NUMBER_FORMATS: &[&str] = &["f32", "f64"];

fn check_property(node: &Node, cx: &mut Cx) {
    let lt = match node.get("logicalType") {
        None => None,
        Some(t) => match t.as_str().and_then(LogicalType::parse) {
            Some(lt) => Some(lt),
            // An invalid logicalType is already reported; the schema then applies none of its branches.
            None => return,
        },
    };
    if let (Some(t), Some(n)) = (lt.filter(|t| t.is_v3_2()), node.get("logicalType")) {
        let what = format!("the logical type `{t}`");
        if !cx.at("logicalType", |cx| cx.since_3_2(n.span, &what)) {
            return;
        }
    }
    if cx.edition() >= Edition::V3_2 {
        check_map(lt, node, cx);
        check_enum(node, cx);
    }
    if let Some(options) = node.get("logicalTypeOptions") {
        cx.at("logicalTypeOptions", |cx| check_options(lt, options, cx));
    }
    if let Some(entry) = node.entry("items")
        && !matches!(lt, None | Some(LogicalType::Array))
    {
        let lt = lt.map_or("", LogicalType::as_str);
        cx.at("items", |cx| {
            cx.error(
                Code::NotAllowed,
                entry.key.span,
                format!("`items` is only for `array` properties, not `{lt}`"),
            )
            .hint = Some("set `logicalType: array`, or remove `items`".to_owned());
        });
    }
    // Nested `properties` only for objects — also on array items: the shared base schema's own
    // `unevaluatedProperties: false` applies there too, whatever the item schema adds.
    if let Some(entry) = node.entry("properties")
        && let Some(lt) = lt.filter(|lt| *lt != LogicalType::Object)
    {
        cx.at("properties", |cx| {
            cx.error(
                Code::NotAllowed,
                entry.key.span,
                format!("nested `properties` are only for `object` properties, not `{lt}`"),
            )
            .hint = Some("set `logicalType: object`, or remove `properties`".to_owned());
        });
    }
    check_child_properties(node, cx);
    each_relationship(node, cx, check_property_level_relationship);
}

/// `map` (v3.2.0): required on `map` properties — and, by the official schema's letter, on every
/// property without a `logicalType`, since its `if logicalType is map` holds vacuously there —
/// and refused on every other type.
fn check_map(lt: Option<LogicalType>, node: &Node, cx: &mut Cx) {
    match (lt, node.entry("map")) {
        (None | Some(LogicalType::Map), None) => {
            let (message, hint) = if lt.is_none() {
                (
                    "a property without `logicalType` must have `map` under ODCS v3.2.0",
                    "give the property a `logicalType` (the v3.2.0 schema reads a property without one as a map)",
                )
            } else {
                (
                    "a `map` property needs `map:` with its `key` and `value`",
                    "add `map: {key: {logicalType: string}, value: {logicalType: ...}}`",
                )
            };
            cx.error(Code::Required, Span::point(node.span.start), message)
                .hint = Some(hint.to_owned());
        }
        (Some(lt), Some(entry)) if lt != LogicalType::Map => {
            cx.at("map", |cx| {
                cx.error(
                    Code::NotAllowed,
                    entry.key.span,
                    format!("`map` is only for `map` properties, not `{lt}`"),
                )
                .hint = Some("set `logicalType: map`, or remove `map`".to_owned());
            });
        }
        _ => {}
    }
}

/// `enum` (v3.2.0): at least one value, no value listed twice.
fn check_enum(node: &Node, cx: &mut Cx) {
    let Some(values) = node.get("enum").and_then(Node::as_seq) else {
        return;
    };
    cx.at("enum", |cx| {
        if values.is_empty() {
            cx.error(
                Code::Range,
                node.get("enum").map_or(node.span, |n| n.span),
                "`enum` must list at least one value",
            );
        }
        let mut seen = Vec::new();
        for value in values {
            let json = value.to_json();
            if seen.contains(&json) {
                cx.error(
                    Code::UniqueItems,
                    value.span,
                    "this enum value is listed twice",
                );
            } else {
                seen.push(json);
            }
        }
    });
}

/// Entries of a `properties` list need a `name` (array `items` do not, which is why the parent
/// checks this rather than the property itself).
fn check_child_properties(node: &Node, cx: &mut Cx) {
    let Some(children) = node.get("properties").and_then(Node::as_seq) else {
        return;
    };
    cx.at("properties", |cx| {
        for (i, child) in children.iter().enumerate() {
            if child.as_map().is_some() && child.entry("name").is_none() {
                cx.at(&i.to_string(), |cx| {
                    cx.error(
                        Code::Required,
                        child.span,
                        "schema property is missing required key `name`",
                    );
                });
            }
        }
    });
}

fn check_options(lt: Option<LogicalType>, options: &Node, cx: &mut Cx) {
    let Some(entries) = options.as_map() else {
        return;
    };
    let Some(lt) = lt else {
        if cx.edition() >= Edition::V3_2 {
            // The v3.2.0 schema applies every type's options rule to a property without a type, and
            // `vector`'s requires `dimensions` where the others forbid it: no options can pass.
            cx.error(
                Code::NotAllowed,
                entries.first().map_or(options.span, |e| e.key.span),
                "`logicalTypeOptions` need a `logicalType` to say which options apply",
            )
            .hint = Some("add `logicalType:` to this property".to_owned());
        } else if let Some(first) = entries.first() {
            cx.error(
                Code::NotAllowed,
                first.key.span,
                "`logicalTypeOptions` need a `logicalType` to say which options apply",
            )
            .hint = Some("add `logicalType:` to this property".to_owned());
        }
        return;
    };
    let allowed = LogicalTypeOptions::keys_for(lt);
    // The values of the keys that apply, typed: the options read as one object with only them.
    let applicable = Node::new(
        Value::Map(
            entries
                .iter()
                .filter(|e| allowed.contains(&e.key.text.as_str()))
                .cloned()
                .collect(),
        ),
        options.span,
    );
    let _ = LogicalTypeOptions::from_node(&applicable, cx);
    if lt == LogicalType::Vector && !entries.iter().any(|e| e.key.text == "dimensions") {
        cx.error(
            Code::Required,
            Span::point(options.span.start),
            "the options of a `vector` property need `dimensions`",
        )
        .hint = Some("add `dimensions:` (the length of each vector, e.g. 384)".to_owned());
    }
    if matches!(lt, LogicalType::Boolean | LogicalType::Map) {
        if let Some(first) = entries.first() {
            cx.warning(
                Code::NotAllowed,
                first.key.span,
                format!("no `logicalTypeOptions` apply to `{lt}` properties"),
            );
        }
        return;
    }
    for entry in entries {
        let key = entry.key.text.as_str();
        let value = &entry.value;
        cx.at(key, |cx| {
            if !allowed.contains(&key) {
                let known = LogicalTypeOptions::KEYS.contains(&key);
                let (code, message) = if known {
                    (
                        Code::NotAllowed,
                        format!("`{key}` does not apply to `{lt}` properties"),
                    )
                } else {
                    (
                        Code::UnknownKey,
                        format!("unknown key `{key}` in logicalTypeOptions"),
                    )
                };
                let hint = suggest(key, allowed);
                cx.error(code, entry.key.span, message).hint = hint;
                return;
            }
            match key {
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    // Other types are reported by the options' own parse ("a number or a string").
                    let numeric = matches!(lt, LogicalType::Integer | LogicalType::Number);
                    match (&value.value, numeric) {
                        (Value::String(_), true) => cx.type_error(value, "a number"),
                        (Value::Int(_) | Value::Float(_), false) => {
                            cx.type_error(value, "a string (a date or time)");
                        }
                        _ => {}
                    }
                }
                "format" => {
                    let formats = match lt {
                        LogicalType::Integer => Some(INTEGER_FORMATS),
                        LogicalType::Number => Some(NUMBER_FORMATS),
                        _ => None,
                    };
                    if let (Some(formats), Some(text)) = (formats, value.as_str())
                        && !formats.contains(&text)
                    {
                        cx.error(
                            Code::Enum,
                            value.span,
                            format!("`{text}` is not a valid {lt} format"),
                        )
                        .hint = suggest(text, formats);
                    }
                }
                "multipleOf" => {
                    let positive = match value.value {
                        Value::Int(i) => i > 0,
                        Value::Float(f) => f > 0.0,
                        _ => true, // the type error is reported by the options' own parse
                    };
                    if !positive {
                        cx.error(
                            Code::Range,
                            value.span,
                            "`multipleOf` must be greater than 0",
                        );
                    }
                }
                "required" => {
                    if let Some(names) = value.as_seq() {
                        if names.is_empty() {
                            cx.error(
                                Code::Range,
                                value.span,
                                "`required` must list at least one property name",
                            );
                        }
                        let mut seen = std::collections::HashSet::new();
                        for name in names {
                            if let Some(text) = name.as_str()
                                && !seen.insert(text)
                            {
                                cx.error(
                                    Code::UniqueItems,
                                    name.span,
                                    format!("`{text}` is listed twice in `required`"),
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        });
    }
}

string_enum! {
    /// The kind of a relationship; ODCS v3.1.0 defines only foreign keys.
    pub enum RelationshipType ("relationship type") {
        ForeignKey = "foreignKey",
    }
}

/// A relationship (foreign key) between properties. At schema-object level it names `from` and
/// `to` (lists for composite keys); at property level `from` is the property itself.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "relationship")]
pub struct Relationship {
    #[model(since_3_2)]
    pub id: Option<String>,
    #[model(rename = "type")]
    pub relationship_type: Option<RelationshipType>,
    pub from: Option<RefList>,
    #[model(required)]
    pub to: Option<RefList>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// Runs `check` on each entry of `node`'s `relationships`, with the pointer set to it.
fn each_relationship(node: &Node, cx: &mut Cx, check: fn(&Node, &mut Cx)) {
    let Some(relationships) = node.get("relationships").and_then(Node::as_seq) else {
        return;
    };
    cx.at("relationships", |cx| {
        for (i, rel) in relationships.iter().enumerate() {
            cx.at(&i.to_string(), |cx| check(rel, cx));
        }
    });
}

fn check_schema_level_relationship(rel: &Node, cx: &mut Cx) {
    let (Some(from), Some(to)) = (rel.get("from"), rel.get("to")) else {
        if rel.as_map().is_some() && rel.get("from").is_none() {
            cx.error(
                Code::Required,
                rel.span,
                "a schema-level relationship needs `from` (and `to`)",
            )
            .hint = Some("name the source columns, e.g. `from: orders.customer_id`".to_owned());
        }
        return;
    };
    let same_shape = matches!(
        (&from.value, &to.value),
        (Value::String(_), Value::String(_)) | (Value::Seq(_), Value::Seq(_))
    );
    if !same_shape {
        cx.error(
            Code::Type,
            rel.span,
            "`from` and `to` must both be references or both be lists",
        )
        .hint = Some("for a composite key write both as lists of the same length".to_owned());
    }
}

fn check_property_level_relationship(rel: &Node, cx: &mut Cx) {
    if let Some(entry) = rel.entry("from") {
        cx.at("from", |cx| {
            cx.error(
                Code::NotAllowed,
                entry.key.span,
                "a relationship on a property takes no `from`: it is the property",
            )
            .hint = Some("remove `from`, or move the relationship to the schema object".to_owned());
        });
    }
}

/// One reference or a list of them (composite keys).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum RefList {
    One(Reference),
    Many(Vec<Reference>),
}

impl RefList {
    pub fn as_slice(&self) -> &[Reference] {
        match self {
            RefList::One(r) => std::slice::from_ref(r),
            RefList::Many(list) => list,
        }
    }
}

impl FromNode for RefList {
    const EXPECTED: &'static str = "a reference or a list of references";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::Seq(items) => {
                if items.is_empty() {
                    cx.error(Code::Range, node.span, "the list of references is empty");
                    return None;
                }
                Vec::<Reference>::from_node(node, cx).map(RefList::Many)
            }
            Value::String(_) => Reference::from_node(node, cx).map(RefList::One),
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

/// A reference to a property: `table.column`, or `/schema/<id>/properties/<id>` optionally
/// prefixed by another contract file (`other.yaml#/schema/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Reference(String);

static SHORTHAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex")
});
static FULLY_QUALIFIED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:https?://)?[A-Za-z0-9._\-/]+\.yaml#)?/?[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_-]+(?:/[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_-]+)*$",
    )
    .expect("valid regex")
});
/// v3.2.0: dashes in names, and nested paths (`table.column.field`).
static SHORTHAND_3_2: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)+$").expect("valid regex")
});
/// v3.2.0: other files may be `.yml` as well as `.yaml`.
static FULLY_QUALIFIED_3_2: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:https?://)?[A-Za-z0-9._\-/]+\.ya?ml#)?/?[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_-]+(?:/[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_-]+)*$",
    )
    .expect("valid regex")
});

/// A reference taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget<'a> {
    /// `table.column`: by names.
    Shorthand { object: &'a str, property: &'a str },
    /// `/schema/<id>/properties/<id>[/properties/<id>...]`: by ids, in this contract.
    Path(Vec<(&'a str, &'a str)>),
    /// A reference into another file; not resolvable from this one.
    External,
}

impl Reference {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Valid in some version (v3.2.0's patterns accept everything v3.1.0's do).
    pub fn is_valid(text: &str) -> bool {
        Self::is_valid_in(text, Edition::V3_2)
    }

    /// Valid by `edition`'s patterns.
    pub fn is_valid_in(text: &str, edition: Edition) -> bool {
        match edition {
            Edition::V3_1 => SHORTHAND.is_match(text) || FULLY_QUALIFIED.is_match(text),
            Edition::V3_2 => SHORTHAND_3_2.is_match(text) || FULLY_QUALIFIED_3_2.is_match(text),
        }
    }

    /// Wraps text already known to pass [`Reference::is_valid`].
    pub(crate) fn from_valid(text: &str) -> Self {
        Reference(text.to_owned())
    }

    pub fn target(&self) -> RefTarget<'_> {
        if SHORTHAND_3_2.is_match(&self.0)
            && let Some((object, property)) = self.0.split_once('.')
        {
            return RefTarget::Shorthand { object, property };
        }
        if self.0.contains('#') {
            return RefTarget::External;
        }
        let parts: Vec<&str> = self.0.trim_start_matches('/').split('/').collect();
        RefTarget::Path(
            parts
                .chunks(2)
                .filter_map(|c| Some((c[0], *c.get(1)?)))
                .collect(),
        )
    }
}

impl FromNode for Reference {
    const EXPECTED: &'static str = "a string";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let text = String::from_node(node, cx)?;
        if !Self::is_valid_in(&text, cx.edition()) {
            let later = cx.edition() < Edition::V3_2 && Self::is_valid(&text);
            cx.error(
                Code::Pattern,
                node.span,
                if later {
                    format!("`{text}` is a reference only ODCS v3.2.0 accepts")
                } else {
                    format!("`{text}` is not a valid reference")
                },
            )
            .hint =
                Some("write `table.column`, or `/schema/<id>/properties/<id>` with ids".to_owned());
            return None;
        }
        Some(Reference(text))
    }
}
