//! From an ODCS contract to checks: what to measure on the data and how to judge the measure.
//!
//! Pure planning — no I/O, no DataFusion — so every rule of the standard can be unit-tested here.
//! [`crate::exec`] turns the measures into as few scans as possible; this module decides names,
//! keys (datacontract-cli's `{model}__{field}__{type}`), thresholds and severities.
//!
//! Readings we chose where the standard is ambiguous (see docs/testing-contracts.md):
//! - `mustBeBetween: [a, b]` is inclusive (`a <= v <= b`), as datacontract-cli and Soda evaluate it;
//!   `mustNotBeBetween: [a, b]` passes when `v < a` or `v > b`.
//! - Null values never violate a value rule (length, pattern, bounds, format, valid values); only
//!   `required` and the `nullValues`/`missingValues` metrics count them.
//! - `unit: percent` compares `100 * count / rowCount` instead of the count.

use std::fmt;

use mesh_model::odcs::sla::span;
use mesh_model::odcs::{
    Bound, Contract, DataQuality, LogicalType, Metric, Operator, QualityType, SchemaObject,
    SchemaProperty,
};
use serde::Serialize;

/// Which part of the contract a check comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Schema,
    Quality,
    Servicelevel,
}

/// A path to a (possibly nested) field: `address`, `address.street`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<String>);

impl FieldPath {
    pub fn top(name: &str) -> Self {
        FieldPath(vec![name.to_owned()])
    }

    pub fn child(&self, name: &str) -> Self {
        let mut v = self.0.clone();
        v.push(name.to_owned());
        FieldPath(v)
    }
}

impl fmt::Display for FieldPath {
    /// `address.street`, `tags[]`, `lines[].sku`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 && seg != "[]" {
                f.write_str(".")?;
            }
            f.write_str(seg)?;
        }
        Ok(())
    }
}

/// A string format that `logicalTypeOptions.format` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    Email,
    Uuid,
    Uri,
    Ipv4,
    Ipv6,
    Hostname,
    Date,
    DateTime,
    Time,
}

impl StringFormat {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "email" => StringFormat::Email,
            "uuid" => StringFormat::Uuid,
            "uri" | "url" => StringFormat::Uri,
            "ipv4" => StringFormat::Ipv4,
            "ipv6" => StringFormat::Ipv6,
            "hostname" => StringFormat::Hostname,
            "date" | "yyyy-mm-dd" => StringFormat::Date,
            "date-time" | "datetime" => StringFormat::DateTime,
            "time" => StringFormat::Time,
            _ => return None,
        })
    }

    /// The regular expression a value must match (Rust `regex` syntax, as DataFusion uses).
    pub fn pattern(self) -> &'static str {
        match self {
            StringFormat::Email => r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
            StringFormat::Uuid => {
                r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
            }
            StringFormat::Uri => r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$",
            StringFormat::Ipv4 => {
                r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
            }
            StringFormat::Ipv6 => {
                r"^(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){0,7}:([0-9A-Fa-f]{1,4}:){0,7}[0-9A-Fa-f]{0,4})$"
            }
            StringFormat::Hostname => {
                r"^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$"
            }
            StringFormat::Date => r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
            StringFormat::DateTime => {
                r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+\-]([01]\d|2[0-3]):?[0-5]\d)?$"
            }
            StringFormat::Time => r"^([01]\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d+)?)?$",
        }
    }
}

/// A predicate over the rows of a model; a check counts the rows for which it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The field is null.
    Null(FieldPath),
    /// The field is null or one of the listed values.
    Missing(FieldPath, Vec<serde_json::Value>),
    /// The field is not null and not valid: outside `valid_values`, or not matching `pattern`.
    Invalid {
        field: FieldPath,
        valid_values: Option<Vec<serde_json::Value>>,
        pattern: Option<String>,
    },
    MinLength(FieldPath, u64),
    MaxLength(FieldPath, u64),
    Pattern(FieldPath, String),
    Format(FieldPath, StringFormat),
    /// Below the bound (`exclusive`: at or below).
    Below {
        field: FieldPath,
        bound: Bound,
        exclusive: bool,
    },
    /// Above the bound (`exclusive`: at or above).
    Above {
        field: FieldPath,
        bound: Bound,
        exclusive: bool,
    },
    NotMultipleOf(FieldPath, f64),
    MinItems(FieldPath, u64),
    MaxItems(FieldPath, u64),
    RepeatedItems(FieldPath),
}

impl Predicate {
    /// The field the predicate is about.
    pub fn field(&self) -> &FieldPath {
        match self {
            Predicate::Null(f)
            | Predicate::Missing(f, _)
            | Predicate::Invalid { field: f, .. }
            | Predicate::MinLength(f, _)
            | Predicate::MaxLength(f, _)
            | Predicate::Pattern(f, _)
            | Predicate::Format(f, _)
            | Predicate::Below { field: f, .. }
            | Predicate::Above { field: f, .. }
            | Predicate::NotMultipleOf(f, _)
            | Predicate::MinItems(f, _)
            | Predicate::MaxItems(f, _)
            | Predicate::RepeatedItems(f) => f,
        }
    }
}

/// What to measure for a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// The field exists in the data's schema.
    Present(FieldPath),
    /// The field's type in the data is compatible with the contract's (text formats: every value
    /// reads as that type).
    Type {
        field: FieldPath,
        logical: LogicalType,
        physical: Option<String>,
    },
    /// Rows in the model.
    RowCount,
    /// Rows for which the predicate holds.
    Count(Predicate),
    /// Values (or value combinations) that occur more than once, over non-null rows.
    Duplicates(Vec<FieldPath>),
    /// The single value a read-only SQL query returns.
    Sql(String),
    /// Age of the newest value of a timestamp field (freshness / latency).
    NewestAge(FieldPath),
    /// Age of the oldest value of a timestamp field (retention).
    OldestAge(FieldPath),
    /// Not measured, with the reason.
    Skip(String),
    /// The check cannot be made, with the reason (reported as an error).
    Invalid(String),
}

/// The comparison a measured value must satisfy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq(f64),
    Ne(f64),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Between(f64, f64),
    NotBetween(f64, f64),
}

impl Op {
    pub fn accepts(self, v: f64) -> bool {
        match self {
            Op::Eq(x) => v == x,
            Op::Ne(x) => v != x,
            Op::Gt(x) => v > x,
            Op::Ge(x) => v >= x,
            Op::Lt(x) => v < x,
            Op::Le(x) => v <= x,
            Op::Between(a, b) => a <= v && v <= b,
            Op::NotBetween(a, b) => v < a || v > b,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |x: f64| fmt_number(x);
        match *self {
            Op::Eq(x) => write!(f, "= {}", n(x)),
            Op::Ne(x) => write!(f, "!= {}", n(x)),
            Op::Gt(x) => write!(f, "> {}", n(x)),
            Op::Ge(x) => write!(f, ">= {}", n(x)),
            Op::Lt(x) => write!(f, "< {}", n(x)),
            Op::Le(x) => write!(f, "<= {}", n(x)),
            Op::Between(a, b) => write!(f, "between {} and {}", n(a), n(b)),
            Op::NotBetween(a, b) => write!(f, "not between {} and {}", n(a), n(b)),
        }
    }
}

/// `3` rather than `3.0`, `0.5` as is.
pub fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// How a measured value is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: Op,
    /// Compare `100 * value / rowCount` instead of the value.
    pub percent: bool,
    /// The value is an age in seconds (SLA checks) and the threshold a maximum age.
    pub seconds: bool,
}

impl Threshold {
    pub const ZERO: Threshold = Threshold {
        op: Op::Eq(0.0),
        percent: false,
        seconds: false,
    };
}

/// What a failing check means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    Fail,
    Warn,
}

/// One check of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `{model}__{field}__{type}` (or `{model}__{type}`), unique within a run.
    pub key: String,
    pub category: Category,
    /// datacontract-cli's check type names (`field_required`, `row_count`, ...).
    pub check_type: &'static str,
    pub name: String,
    pub model: String,
    pub field: Option<String>,
    pub quality_id: Option<String>,
    pub dimension: Option<String>,
    pub tags: Vec<String>,
    pub on_fail: OnFail,
    pub measure: Measure,
    pub threshold: Threshold,
}

/// The checks of one schema object (table).
#[derive(Debug, Clone)]
pub struct ModelPlan {
    /// The schema object's `name` (the model in check keys).
    pub model: String,
    /// The name of the data: `physicalName`, else `name`.
    pub physical_name: String,
    pub checks: Vec<Check>,
}

/// Which check categories to plan (`--checks schema,quality,servicelevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Categories {
    pub schema: bool,
    pub quality: bool,
    pub servicelevel: bool,
}

impl Default for Categories {
    fn default() -> Self {
        Categories {
            schema: true,
            quality: true,
            servicelevel: true,
        }
    }
}

impl Categories {
    fn wants(self, c: Category) -> bool {
        match c {
            Category::Schema => self.schema,
            Category::Quality => self.quality,
            Category::Servicelevel => self.servicelevel,
        }
    }
}

/// Plans the checks of every schema object of `contract` (or just `only`).
pub fn plan(contract: &Contract, only: Option<&str>, categories: Categories) -> Vec<ModelPlan> {
    contract
        .schema
        .iter()
        .filter(|o| only.is_none_or(|m| o.name == m))
        .map(|object| {
            let mut planner = Planner {
                model: &object.name,
                checks: Vec::new(),
                composite_key: false,
            };
            planner.object(object, contract);
            let mut checks = planner.checks;
            checks.retain(|c| categories.wants(c.category));
            ModelPlan {
                model: object.name.clone(),
                physical_name: object
                    .physical_name
                    .clone()
                    .unwrap_or_else(|| object.name.clone()),
                checks,
            }
        })
        .collect()
}

struct Planner<'a> {
    model: &'a str,
    checks: Vec<Check>,
    /// The object's primary key has several columns: unique together, not each.
    composite_key: bool,
}

impl Planner<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        category: Category,
        check_type: &'static str,
        field: Option<&FieldPath>,
        name: String,
        measure: Measure,
        threshold: Threshold,
        rule: Option<&DataQuality>,
    ) {
        let base = match field {
            Some(f) => format!("{}__{}__{}", self.model, f, check_type),
            None => format!("{}__{}", self.model, check_type),
        };
        // Two rules of one type on one field get distinct keys: `...__field_regex__2`.
        let mut key = base.clone();
        let mut n = 1;
        while self.checks.iter().any(|c| c.key == key) {
            n += 1;
            key = format!("{base}__{n}");
        }
        let on_fail = match rule
            .and_then(|r| r.severity.as_deref())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("warning" | "warn" | "info" | "low") => OnFail::Warn,
            _ => OnFail::Fail,
        };
        self.checks.push(Check {
            key,
            category,
            check_type,
            name,
            model: self.model.to_owned(),
            field: field.map(ToString::to_string),
            quality_id: rule.and_then(|r| r.id.as_ref()).map(ToString::to_string),
            dimension: rule
                .and_then(|r| r.dimension)
                .map(|d| d.as_str().to_owned()),
            tags: rule.map(|r| r.tags.clone()).unwrap_or_default(),
            on_fail,
            measure,
            threshold,
        });
    }

    fn object(&mut self, object: &SchemaObject, contract: &Contract) {
        self.composite_key = object
            .properties
            .iter()
            .filter(|p| p.is_primary_key())
            .count()
            > 1;
        for prop in &object.properties {
            self.property(prop, &FieldPath::top(prop.name()));
        }
        // A composite primary key: the columns by primaryKeyPosition.
        let mut keys: Vec<&SchemaProperty> = object
            .properties
            .iter()
            .filter(|p| p.is_primary_key())
            .collect();
        if keys.len() > 1 {
            keys.sort_by_key(|p| p.primary_key_position.unwrap_or(i64::MAX));
            let cols: Vec<FieldPath> = keys.iter().map(|p| FieldPath::top(p.name())).collect();
            let shown: Vec<String> = cols.iter().map(ToString::to_string).collect();
            self.push(
                Category::Schema,
                "model_primary_key_unique",
                None,
                format!(
                    "Check that the primary key ({}) of {} is unique",
                    shown.join(", "),
                    self.model
                ),
                Measure::Duplicates(cols),
                Threshold::ZERO,
                None,
            );
        }
        for rule in &object.quality {
            self.quality(rule, None);
        }
        self.service_levels(object, contract);
    }

    fn property(&mut self, prop: &SchemaProperty, path: &FieldPath) {
        self.push(
            Category::Schema,
            "field_is_present",
            Some(path),
            format!("Check that field '{path}' is present"),
            Measure::Present(path.clone()),
            Threshold::ZERO,
            None,
        );
        if let Some(lt) = prop.logical_type {
            self.push(
                Category::Schema,
                "field_type",
                Some(path),
                format!("Check that field {path} has type {lt}"),
                Measure::Type {
                    field: path.clone(),
                    logical: lt,
                    physical: prop.physical_type.clone(),
                },
                Threshold::ZERO,
                None,
            );
        }
        if prop.is_required() {
            self.push(
                Category::Schema,
                "field_required",
                Some(path),
                format!("Check that field {path} has no null values"),
                Measure::Count(Predicate::Null(path.clone())),
                Threshold::ZERO,
                None,
            );
        }
        if prop.is_unique() {
            self.push(
                Category::Schema,
                "field_unique",
                Some(path),
                format!("Check that field {path} is unique"),
                Measure::Duplicates(vec![path.clone()]),
                Threshold::ZERO,
                None,
            );
        }
        if prop.is_primary_key() && path.0.len() == 1 && !prop.is_unique() && !self.composite_key {
            self.push(
                Category::Schema,
                "field_primary_key_unique",
                Some(path),
                format!("Check that primary key field {path} is unique"),
                Measure::Duplicates(vec![path.clone()]),
                Threshold::ZERO,
                None,
            );
        }
        if !prop.enum_values.is_empty() {
            let values: Vec<serde_json::Value> = prop.allowed_values().cloned().collect();
            let shown: Vec<String> = values.iter().map(ToString::to_string).collect();
            self.push(
                Category::Schema,
                "field_enum",
                Some(path),
                format!(
                    "Check that field {path} only has the values {}",
                    shown.join(", ")
                ),
                Measure::Count(Predicate::Invalid {
                    field: path.clone(),
                    valid_values: Some(values),
                    pattern: None,
                }),
                Threshold::ZERO,
                None,
            );
        }
        if let Some(o) = &prop.logical_type_options {
            self.options(prop.logical_type, o, path);
        }
        for rule in &prop.quality {
            self.quality(rule, Some(path));
        }
        for child in &prop.properties {
            self.property(child, &path.child(child.name()));
        }
        if let Some(item) = &prop.items {
            self.item_structure(item, &path.child("[]"));
        }
    }

    /// The structure of array items: their type and their properties' presence and types. (Value
    /// rules inside arrays are not measured yet.)
    fn item_structure(&mut self, item: &SchemaProperty, path: &FieldPath) {
        if let Some(lt) = item.logical_type {
            self.push(
                Category::Schema,
                "field_type",
                Some(path),
                format!("Check that items of {path} have type {lt}"),
                Measure::Type {
                    field: path.clone(),
                    logical: lt,
                    physical: item.physical_type.clone(),
                },
                Threshold::ZERO,
                None,
            );
        }
        for child in &item.properties {
            let p = path.child(child.name());
            self.push(
                Category::Schema,
                "field_is_present",
                Some(&p),
                format!("Check that field '{p}' is present"),
                Measure::Present(p.clone()),
                Threshold::ZERO,
                None,
            );
            self.item_structure(child, &p);
        }
        if let Some(inner) = &item.items {
            self.item_structure(inner, &path.child("[]"));
        }
    }

    fn options(
        &mut self,
        lt: Option<LogicalType>,
        o: &mesh_model::odcs::LogicalTypeOptions,
        path: &FieldPath,
    ) {
        let count = |p: Predicate| Measure::Count(p);
        let f = || path.clone();
        let add = |this: &mut Self, ty: &'static str, name: String, m: Measure| {
            this.push(
                Category::Schema,
                ty,
                Some(path),
                name,
                m,
                Threshold::ZERO,
                None,
            );
        };
        if let Some(n) = o.min_length {
            add(
                self,
                "field_min_length",
                format!("Check that field {path} has a min length of {n}"),
                count(Predicate::MinLength(f(), n)),
            );
        }
        if let Some(n) = o.max_length {
            add(
                self,
                "field_max_length",
                format!("Check that field {path} has a max length of {n}"),
                count(Predicate::MaxLength(f(), n)),
            );
        }
        if let Some(p) = &o.pattern {
            add(
                self,
                "field_regex",
                format!("Check that field {path} matches regex pattern {p}"),
                count(Predicate::Pattern(f(), p.clone())),
            );
        }
        if let (Some(format), Some(LogicalType::String)) = (&o.format, lt) {
            let m = match StringFormat::parse(format) {
                Some(sf) => count(Predicate::Format(f(), sf)),
                None => Measure::Skip(format!(
                    "format `{format}` is not one mesh checks (email, uuid, uri, ipv4, ipv6, hostname, date, date-time, time)"
                )),
            };
            add(
                self,
                "field_format",
                format!("Check that field {path} has format {format}"),
                m,
            );
        }
        for (bound, ty, exclusive, below) in [
            (&o.minimum, "field_minimum", false, true),
            (&o.exclusive_minimum, "field_exclusive_minimum", true, true),
            (&o.maximum, "field_maximum", false, false),
            (&o.exclusive_maximum, "field_exclusive_maximum", true, false),
        ] {
            let Some(b) = bound else { continue };
            let shown = match b {
                Bound::Number(n) => n.to_string(),
                Bound::Text(t) => t.clone(),
            };
            let (word, p) = if below {
                (
                    "minimum",
                    Predicate::Below {
                        field: f(),
                        bound: b.clone(),
                        exclusive,
                    },
                )
            } else {
                (
                    "maximum",
                    Predicate::Above {
                        field: f(),
                        bound: b.clone(),
                        exclusive,
                    },
                )
            };
            let adj = if exclusive { " exclusive" } else { "" };
            add(
                self,
                ty,
                format!("Check that field {path} has a{adj} {word} of {shown}"),
                count(p),
            );
        }
        if let Some(m) = o.multiple_of.as_ref().and_then(serde_json::Number::as_f64) {
            add(
                self,
                "field_multiple_of",
                format!("Check that field {path} is a multiple of {}", fmt_number(m)),
                count(Predicate::NotMultipleOf(f(), m)),
            );
        }
        if let Some(n) = o.min_items {
            add(
                self,
                "field_min_items",
                format!("Check that field {path} has at least {n} items"),
                count(Predicate::MinItems(f(), n)),
            );
        }
        if let Some(n) = o.max_items {
            add(
                self,
                "field_max_items",
                format!("Check that field {path} has at most {n} items"),
                count(Predicate::MaxItems(f(), n)),
            );
        }
        if o.unique_items == Some(true) {
            add(
                self,
                "field_unique_items",
                format!("Check that the items of field {path} are unique"),
                count(Predicate::RepeatedItems(f())),
            );
        }
    }

    fn quality(&mut self, rule: &DataQuality, field: Option<&FieldPath>) {
        let threshold = |rule: &DataQuality| -> Result<Threshold, String> {
            let op = match rule.operator() {
                Some(op) => to_op(&op)?,
                None => return Err("the rule has no operator".to_owned()),
            };
            Ok(Threshold {
                op,
                percent: rule.unit.as_deref() == Some("percent"),
                seconds: false,
            })
        };
        let on = field.map_or_else(|| format!("model {}", self.model), |f| format!("field {f}"));
        match rule.effective_type() {
            Some(QualityType::Text) | None if rule.query.is_none() => {
                let name = rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Text rule on {on}"));
                let ty = if field.is_some() {
                    "field_quality_text"
                } else {
                    "model_quality_text"
                };
                let reason =
                    "a text rule describes quality for people; there is nothing to run".to_owned();
                self.push(
                    Category::Quality,
                    ty,
                    field,
                    name,
                    Measure::Skip(reason),
                    Threshold::ZERO,
                    Some(rule),
                );
            }
            Some(QualityType::Custom) => {
                let engine = rule.engine.clone().unwrap_or_default();
                let name = rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Custom {engine} rule on {on}"));
                let ty = if field.is_some() {
                    "field_quality_custom"
                } else {
                    "model_quality_custom"
                };
                let reason =
                    format!("custom rules run in their own engine (`{engine}`), not in mesh");
                self.push(
                    Category::Quality,
                    ty,
                    field,
                    name,
                    Measure::Skip(reason),
                    Threshold::ZERO,
                    Some(rule),
                );
            }
            Some(QualityType::Sql) | Some(QualityType::Text) | None => {
                let ty = if field.is_some() {
                    "field_quality_sql"
                } else {
                    "model_quality_sql"
                };
                let name = rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("SQL quality rule on {on}"));
                let (measure, th) = match (threshold(rule), &rule.query) {
                    (Ok(th), Some(q)) => (Measure::Sql(q.clone()), th),
                    (Err(e), _) => (Measure::Invalid(e), Threshold::ZERO),
                    (_, None) => (
                        Measure::Invalid("the sql rule has no query".to_owned()),
                        Threshold::ZERO,
                    ),
                };
                self.push(Category::Quality, ty, field, name, measure, th, Some(rule));
            }
            Some(QualityType::Library) => {
                let Some(metric) = rule.metric else {
                    let m = Measure::Invalid("the library rule has no metric".to_owned());
                    self.push(
                        Category::Quality,
                        "quality",
                        field,
                        format!("Library rule on {on}"),
                        m,
                        Threshold::ZERO,
                        Some(rule),
                    );
                    return;
                };
                let th = threshold(rule);
                let described = |ty: &str, th: &Result<Threshold, String>| {
                    let t = th.as_ref().map_or(String::new(), |t| {
                        format!(" {}{}", t.op, if t.percent { "%" } else { "" })
                    });
                    format!("Check that {on} has {ty}{t}")
                };
                let args = rule.arguments.as_ref().map(|a| &a.0);
                let (ty, name, measure) = match (metric, field) {
                    (Metric::RowCount, _) => {
                        ("row_count", described("row_count", &th), Measure::RowCount)
                    }
                    (Metric::NullValues, Some(f)) => (
                        "field_null_values",
                        described("null_count", &th),
                        Measure::Count(Predicate::Null(f.clone())),
                    ),
                    (Metric::MissingValues, Some(f)) => {
                        let values = args
                            .and_then(|a| a.get("missingValues"))
                            .and_then(|v| v.as_array().cloned())
                            .unwrap_or_else(|| vec![serde_json::Value::Null]);
                        (
                            "field_missing_values",
                            described("missing_count", &th),
                            Measure::Count(Predicate::Missing(f.clone(), values)),
                        )
                    }
                    (Metric::InvalidValues, Some(f)) => {
                        let valid_values = args
                            .and_then(|a| a.get("validValues"))
                            .and_then(|v| v.as_array().cloned());
                        let pattern = args
                            .and_then(|a| a.get("pattern"))
                            .and_then(|v| v.as_str())
                            .map(str::to_owned);
                        let m = if valid_values.is_none() && pattern.is_none() {
                            Measure::Invalid("invalidValues needs `arguments.validValues` or `arguments.pattern`".to_owned())
                        } else {
                            Measure::Count(Predicate::Invalid {
                                field: f.clone(),
                                valid_values,
                                pattern,
                            })
                        };
                        ("field_invalid_values", described("invalid_count", &th), m)
                    }
                    (Metric::DuplicateValues, _) => {
                        let listed: Option<Vec<FieldPath>> = args
                            .and_then(|a| a.get("properties"))
                            .and_then(|v| v.as_array())
                            .map(|l| {
                                l.iter()
                                    .filter_map(|p| p.as_str())
                                    .map(|p| FieldPath(p.split('.').map(str::to_owned).collect()))
                                    .collect()
                            });
                        match (listed, field) {
                            (Some(cols), _) if !cols.is_empty() => {
                                ("model_duplicate_values", described("duplicate_count", &th), Measure::Duplicates(cols))
                            }
                            (_, Some(f)) => ("field_duplicate_values", described("duplicate_count", &th), Measure::Duplicates(vec![f.clone()])),
                            _ => (
                                "model_duplicate_values",
                                described("duplicate_count", &th),
                                Measure::Invalid("duplicateValues on a schema object needs `arguments.properties`".to_owned()),
                            ),
                        }
                    }
                    (m, None) => (
                        "quality",
                        format!("Library rule {m} on {on}"),
                        Measure::Invalid(format!(
                            "`{m}` is measured on a property; put the rule under the property"
                        )),
                    ),
                };
                let (measure, th) = match th {
                    Ok(th) => (measure, th),
                    Err(e) => (Measure::Invalid(e), Threshold::ZERO),
                };
                let name = rule.name.clone().unwrap_or(name);
                self.push(Category::Quality, ty, field, name, measure, th, Some(rule));
            }
        }
    }

    /// Freshness (`latency`, the age of the newest value of `element`) and retention (the age of
    /// the oldest) from the contract's `slaProperties`, for SLA elements on this model.
    fn service_levels(&mut self, object: &SchemaObject, contract: &Contract) {
        for sla in &contract.sla_properties {
            let (ty, newest) = match sla.property.to_ascii_lowercase().as_str() {
                "latency" | "freshness" => ("servicelevel_freshness", true),
                "retention" => ("servicelevel_retention", false),
                _ => continue,
            };
            let element = sla
                .element
                .as_deref()
                .or(contract.sla_default_element.as_deref());
            let Some(element) = element else { continue };
            let Some((model, column)) = element.split_once('.') else {
                continue;
            };
            if model != object.name {
                continue;
            }
            let field = FieldPath(column.split('.').map(str::to_owned).collect());
            let what = if newest { "freshness" } else { "retention" };
            let (measure, threshold) = match span(&sla.value.0, sla.unit.as_deref()) {
                Ok(span) => (
                    if newest {
                        Measure::NewestAge(field.clone())
                    } else {
                        Measure::OldestAge(field.clone())
                    },
                    Threshold {
                        op: Op::Le(span.seconds),
                        percent: false,
                        seconds: true,
                    },
                ),
                Err(e) => (Measure::Invalid(e), Threshold::ZERO),
            };
            let shown = format!(
                "{}{}",
                sla.value.0,
                sla.unit
                    .as_deref()
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default()
            );
            self.push(
                Category::Servicelevel,
                ty,
                Some(&field),
                format!("Check {what} of {element} is within {shown}"),
                measure,
                threshold,
                None,
            );
        }
    }
}

/// The threshold of an operator; values must be numbers.
fn to_op(op: &Operator) -> Result<Op, String> {
    let num = |n: &serde_json::Number| {
        n.as_f64()
            .ok_or_else(|| format!("`{n}` is not a usable number"))
    };
    let val = |v: &serde_json::Value| {
        v.as_f64().ok_or_else(|| {
            format!("operator value `{v}` is not a number; mesh compares numeric measures")
        })
    };
    Ok(match op {
        Operator::MustBe(v) => Op::Eq(val(v)?),
        Operator::MustNotBe(v) => Op::Ne(val(v)?),
        Operator::MustBeGreaterThan(n) => Op::Gt(num(n)?),
        Operator::MustBeGreaterOrEqualTo(n) => Op::Ge(num(n)?),
        Operator::MustBeLessThan(n) => Op::Lt(num(n)?),
        Operator::MustBeLessOrEqualTo(n) => Op::Le(num(n)?),
        Operator::MustBeBetween(b) => Op::Between(num(&b.low)?, num(&b.high)?),
        Operator::MustNotBeBetween(b) => Op::NotBetween(num(&b.low)?, num(&b.high)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(text: &str) -> Contract {
        let parsed = mesh_model::parse_contract(text);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        parsed.model.expect("contract")
    }

    const BASE: &str =
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\n";

    #[test]
    fn keys_types_and_thresholds() {
        let c = contract(&format!(
            "{BASE}schema:\n  - name: orders\n    quality:\n      - metric: rowCount\n        mustBeGreaterThan: 0\n    properties:\n      - name: id\n        logicalType: string\n        required: true\n        unique: true\n        quality:\n          - metric: nullValues\n            unit: percent\n            mustBeLessOrEqualTo: 1\n            severity: warning\n"
        ));
        let plans = plan(&c, None, Categories::default());
        let keys: Vec<&str> = plans[0].checks.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "orders__id__field_is_present",
                "orders__id__field_type",
                "orders__id__field_required",
                "orders__id__field_unique",
                "orders__id__field_null_values",
                "orders__row_count",
            ]
        );
        let nulls = &plans[0].checks[4];
        assert_eq!(
            nulls.threshold,
            Threshold {
                op: Op::Le(1.0),
                percent: true,
                seconds: false
            }
        );
        assert_eq!(nulls.on_fail, OnFail::Warn);
        assert_eq!(plans[0].checks[5].threshold.op, Op::Gt(0.0));
    }

    #[test]
    fn a_composite_key_is_unique_as_a_whole_not_column_by_column() {
        let c = contract(&format!(
            "{BASE}schema:\n  - name: lines\n    properties:\n      - name: order_id\n        primaryKey: true\n        primaryKeyPosition: 1\n      - name: line_no\n        primaryKey: true\n        primaryKeyPosition: 2\n"
        ));
        let plans = plan(&c, None, Categories::default());
        let types: Vec<&str> = plans[0].checks.iter().map(|c| c.check_type).collect();
        assert!(!types.contains(&"field_primary_key_unique"), "{types:?}");
        assert_eq!(
            types
                .iter()
                .filter(|t| **t == "model_primary_key_unique")
                .count(),
            1,
            "{types:?}"
        );
    }

    #[test]
    fn between_is_inclusive() {
        assert!(Op::Between(1.0, 3.0).accepts(1.0) && Op::Between(1.0, 3.0).accepts(3.0));
        assert!(!Op::NotBetween(1.0, 3.0).accepts(3.0) && Op::NotBetween(1.0, 3.0).accepts(3.5));
    }

    #[test]
    fn categories_filter_and_text_rules_are_skipped() {
        let c = contract(&format!(
            "{BASE}schema:\n  - name: t\n    quality:\n      - type: text\n        description: complete by 6am\n    properties:\n      - name: a\n"
        ));
        let only_quality = Categories {
            schema: false,
            quality: true,
            servicelevel: false,
        };
        let plans = plan(&c, None, only_quality);
        assert_eq!(plans[0].checks.len(), 1);
        assert!(matches!(plans[0].checks[0].measure, Measure::Skip(_)));
    }
}
