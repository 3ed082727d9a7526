//! ODCS `quality` rules: `text` (for humans), `library` (a named metric such as `nullValues` with
//! an operator), `sql` (a query whose single value is compared), `custom` (an engine's own rule).
//!
//! Which keys a rule may carry depends on its kind, and `library` and `sql` rules take exactly one
//! of the eight operators — the official schema's `oneOf`, which dc-cli silently ignores by using
//! the first. [`check_quality`] reports both with the fix.

use mesh_model_derive::Model;

use crate::de::{Cx, Extra, FromNode, Object};
use crate::diag::Code;
use crate::source::{Node, Value};
use crate::string_enum;

use super::{AuthoritativeDefinition, CustomProperty, StableId};

string_enum! {
    /// How a rule is expressed.
    pub enum QualityType ("quality rule type") {
        Text = "text",
        Library = "library",
        Sql = "sql",
        Custom = "custom",
    }
}

string_enum! {
    /// The metrics of `library` rules.
    pub enum Metric ("quality metric") {
        NullValues = "nullValues",
        MissingValues = "missingValues",
        InvalidValues = "invalidValues",
        DuplicateValues = "duplicateValues",
        RowCount = "rowCount",
    }
}

string_enum! {
    /// The data-quality dimension a rule measures.
    pub enum Dimension ("quality dimension") {
        Accuracy = "accuracy",
        Completeness = "completeness",
        Conformity = "conformity",
        Consistency = "consistency",
        Coverage = "coverage",
        Timeliness = "timeliness",
        Uniqueness = "uniqueness",
    }
}

/// One quality rule on a schema object or property.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "quality rule", check = check_quality)]
pub struct DataQuality {
    pub id: Option<StableId>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub business_impact: Option<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub description: Option<String>,
    pub dimension: Option<Dimension>,
    pub method: Option<String>,
    pub name: Option<String>,
    pub schedule: Option<String>,
    pub scheduler: Option<String>,
    pub severity: Option<String>,
    pub tags: Vec<String>,
    #[model(rename = "type")]
    pub quality_type: Option<QualityType>,
    pub unit: Option<String>,
    // library
    pub metric: Option<Metric>,
    #[model(deprecated = "since ODCS v3.1.0 library rules are named by `metric`")]
    pub rule: Option<String>,
    pub arguments: Option<Object>,
    // sql
    pub query: Option<String>,
    // custom
    pub engine: Option<String>,
    pub implementation: Option<Implementation>,
    // operators (library and sql)
    pub must_be: Option<serde_json::Value>,
    pub must_not_be: Option<serde_json::Value>,
    pub must_be_greater_than: Option<serde_json::Number>,
    pub must_be_greater_or_equal_to: Option<serde_json::Number>,
    pub must_be_less_than: Option<serde_json::Number>,
    pub must_be_less_or_equal_to: Option<serde_json::Number>,
    pub must_be_between: Option<Between>,
    pub must_not_be_between: Option<Between>,
    #[model(extra)]
    pub extra: Extra,
}

/// The eight operators, in the standard's spelling.
pub const OPERATORS: &[&str] = &[
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
];

/// A rule's comparison, taken from whichever operator key it uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    MustBe(serde_json::Value),
    MustNotBe(serde_json::Value),
    MustBeGreaterThan(serde_json::Number),
    MustBeGreaterOrEqualTo(serde_json::Number),
    MustBeLessThan(serde_json::Number),
    MustBeLessOrEqualTo(serde_json::Number),
    MustBeBetween(Between),
    MustNotBeBetween(Between),
}

impl DataQuality {
    /// The rule's kind as the schema reads it: the explicit `type`, else `library` when a `metric`
    /// is given; `None` for an untyped rule without a metric.
    pub fn effective_type(&self) -> Option<QualityType> {
        self.quality_type
            .or(self.metric.map(|_| QualityType::Library))
    }

    /// The rule's operator (the first, if a malformed rule has several).
    pub fn operator(&self) -> Option<Operator> {
        let o = &self;
        o.must_be
            .clone()
            .map(Operator::MustBe)
            .or_else(|| o.must_not_be.clone().map(Operator::MustNotBe))
            .or_else(|| {
                o.must_be_greater_than
                    .clone()
                    .map(Operator::MustBeGreaterThan)
            })
            .or_else(|| {
                o.must_be_greater_or_equal_to
                    .clone()
                    .map(Operator::MustBeGreaterOrEqualTo)
            })
            .or_else(|| o.must_be_less_than.clone().map(Operator::MustBeLessThan))
            .or_else(|| {
                o.must_be_less_or_equal_to
                    .clone()
                    .map(Operator::MustBeLessOrEqualTo)
            })
            .or_else(|| o.must_be_between.clone().map(Operator::MustBeBetween))
            .or_else(|| {
                o.must_not_be_between
                    .clone()
                    .map(Operator::MustNotBeBetween)
            })
    }
}

fn check_quality(node: &Node, cx: &mut Cx) {
    let ty = match node.get("type") {
        None => None,
        Some(t) => match t.as_str().and_then(QualityType::parse) {
            Some(ty) => Some(ty),
            // An invalid `type` is already reported; the schema then applies none of its branches.
            None => return,
        },
    };
    let library =
        ty == Some(QualityType::Library) || node.get("metric").and_then(Node::as_str).is_some();
    let sql = ty == Some(QualityType::Sql);
    let custom = ty == Some(QualityType::Custom);

    let mut specific: Vec<(&str, bool, &str)> = vec![
        ("metric", library, "library"),
        ("rule", library, "library"),
        ("arguments", library, "library"),
        ("query", sql, "sql"),
        ("engine", custom, "custom"),
        ("implementation", custom, "custom"),
    ];
    for op in OPERATORS {
        specific.push((op, library || sql, "library and sql"));
    }
    for (key, allowed, owner) in specific {
        let Some(entry) = node.entry(key) else {
            continue;
        };
        if allowed {
            continue;
        }
        let hint = match (key, owner) {
            ("rule", _) if ty.is_none() => {
                "since ODCS v3.1.0 library rules name their check with `metric` (e.g. `metric: nullValues`)".to_owned()
            }
            (_, "library") => "add `metric:` (or `type: library`) to make this a library rule".to_owned(),
            (_, "sql") => format!("set `type: sql`, or remove `{key}`"),
            (_, "custom") => format!("set `type: custom`, or remove `{key}`"),
            _ => "operators compare the value of a library `metric` or of an sql `query`".to_owned(),
        };
        let kind = match ty {
            Some(ty) => format!("not to {ty} rules"),
            None => "and this rule has no `type`".to_owned(),
        };
        cx.at(key, |cx| {
            cx.error(
                Code::NotAllowed,
                entry.key.span,
                format!("`{key}` only applies to {owner} rules, {kind}"),
            )
            .hint = Some(hint);
        });
    }

    let mut required = Vec::new();
    if library {
        required.push("metric");
    }
    if sql {
        required.push("query");
    }
    if custom {
        required.extend(["engine", "implementation"]);
    }
    for key in required {
        if node.entry(key).is_none() {
            let what = match key {
                "metric" => "library",
                "query" => "sql",
                _ => "custom",
            };
            cx.error(
                Code::Required,
                node.span,
                format!("{what} quality rule is missing required key `{key}`"),
            );
        }
    }

    if library || sql {
        let present: Vec<&str> = OPERATORS
            .iter()
            .copied()
            .filter(|op| node.entry(op).is_some())
            .collect();
        match present.as_slice() {
            [_] => {}
            [] => {
                cx.error(Code::Operator, node.span, "quality rule has no operator")
                    .hint = Some("add exactly one of `mustBe`, `mustNotBe`, `mustBeGreaterThan`, `mustBeGreaterOrEqualTo`, `mustBeLessThan`, `mustBeLessOrEqualTo`, `mustBeBetween`, `mustNotBeBetween`".to_owned());
            }
            [_, second, ..] => {
                let list: Vec<String> = present.iter().map(|p| format!("`{p}`")).collect();
                let span = node.key_span(second);
                cx.error(
                    Code::Operator,
                    span,
                    format!(
                        "quality rule has {} operators ({}); ODCS allows exactly one",
                        present.len(),
                        list.join(", ")
                    ),
                )
                .hint = Some(
                    "use `mustBeBetween: [low, high]` for a range, or split the rule in two"
                        .to_owned(),
                );
            }
        }
    }
}

/// The value of `mustBeBetween`/`mustNotBeBetween`: two different numbers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(into = "[serde_json::Number; 2]")]
pub struct Between {
    pub low: serde_json::Number,
    pub high: serde_json::Number,
}

impl From<Between> for [serde_json::Number; 2] {
    fn from(b: Between) -> Self {
        [b.low, b.high]
    }
}

impl FromNode for Between {
    const EXPECTED: &'static str = "a list of two numbers";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            cx.type_error(node, Self::EXPECTED);
            return None;
        };
        if items.len() != 2 {
            cx.error(
                Code::Range,
                node.span,
                format!(
                    "expected a list of two numbers, found {} items",
                    items.len()
                ),
            )
            .hint = Some("write `[low, high]`".to_owned());
            // Still type-check the items so every problem shows up at once.
            let _ = Vec::<serde_json::Number>::from_node(node, cx);
            return None;
        }
        let numbers = Vec::<serde_json::Number>::from_node(node, cx)?;
        let [low, high] = <[serde_json::Number; 2]>::try_from(numbers).ok()?;
        if low.as_f64() == high.as_f64() {
            cx.error(Code::Range, node.span, "the two bounds are equal")
                .hint = Some("use `mustBe` for a single value".to_owned());
            return None;
        }
        Some(Between { low, high })
    }
}

/// A custom rule's implementation: engine-specific text or an object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Implementation {
    Text(String),
    Object(Object),
}

impl FromNode for Implementation {
    const EXPECTED: &'static str = "a string or an object";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::String(s) => Some(Implementation::Text(s.clone())),
            Value::Map(_) => Object::from_node(node, cx).map(Implementation::Object),
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}
