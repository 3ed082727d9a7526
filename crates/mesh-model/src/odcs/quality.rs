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
    /// Deprecated since v3.1.0 in favour of `metric` (reported by the check, where it applies).
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
        use Operator as O;
        let values = [
            self.must_be.clone().map(O::MustBe),
            self.must_not_be.clone().map(O::MustNotBe),
        ];
        let numbers = [
            self.must_be_greater_than.clone().map(O::MustBeGreaterThan),
            self.must_be_greater_or_equal_to
                .clone()
                .map(O::MustBeGreaterOrEqualTo),
            self.must_be_less_than.clone().map(O::MustBeLessThan),
            self.must_be_less_or_equal_to
                .clone()
                .map(O::MustBeLessOrEqualTo),
        ];
        let ranges = [
            self.must_be_between.clone().map(O::MustBeBetween),
            self.must_not_be_between.clone().map(O::MustNotBeBetween),
        ];
        values
            .into_iter()
            .chain(numbers)
            .chain(ranges)
            .flatten()
            .next()
    }
}

/// The kinds of rule a key belongs to (the schema's `if/then` branches).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Library,
    Sql,
    Custom,
    /// Operators: library and sql rules.
    Comparison,
}

impl Owner {
    fn of(key: &str) -> Option<Owner> {
        match key {
            "metric" | "rule" | "arguments" => Some(Owner::Library),
            "query" => Some(Owner::Sql),
            "engine" | "implementation" => Some(Owner::Custom),
            _ if OPERATORS.contains(&key) => Some(Owner::Comparison),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Owner::Library => "library",
            Owner::Sql => "sql",
            Owner::Custom => "custom",
            Owner::Comparison => "library and sql",
        }
    }
}

fn check_quality(node: &Node, cx: &mut Cx) {
    let Some(entries) = node.as_map() else { return };
    let ty = match node.get("type") {
        None => None,
        Some(t) => match t.as_str().and_then(QualityType::parse) {
            Some(ty) => Some(ty),
            // An invalid `type` is already reported; the schema then applies none of its branches.
            None => return,
        },
    };
    // As the schema reads it: a `metric` makes a rule a library rule even without `type`.
    let library =
        ty == Some(QualityType::Library) || node.get("metric").and_then(Node::as_str).is_some();
    let sql = ty == Some(QualityType::Sql);
    let custom = ty == Some(QualityType::Custom);
    let applies = |owner: Owner| match owner {
        Owner::Library => library,
        Owner::Sql => sql,
        Owner::Custom => custom,
        Owner::Comparison => library || sql,
    };

    for entry in entries {
        let key = entry.key.text.as_str();
        let Some(owner) = Owner::of(key) else {
            continue;
        };
        if applies(owner) {
            if key == "rule" {
                cx.at(key, |cx| {
                    cx.warning(
                        Code::Deprecated,
                        entry.key.span,
                        "`rule` is deprecated since ODCS v3.1.0",
                    )
                    .hint =
                        Some("name the check with `metric` (e.g. `metric: nullValues`)".to_owned());
                });
            }
            continue;
        }
        let hint = match owner {
            Owner::Library if key == "rule" && ty.is_none() => {
                "since ODCS v3.1.0 library rules name their check with `metric` (e.g. `metric: nullValues`)".to_owned()
            }
            Owner::Library => "add `metric:` (or `type: library`) to make this a library rule".to_owned(),
            Owner::Sql | Owner::Custom => format!("set `type: {}`, or remove `{key}`", owner.name()),
            Owner::Comparison => "operators compare the value of a library `metric` or of an sql `query`".to_owned(),
        };
        let kind = match ty {
            Some(ty) => format!("not to {ty} rules"),
            None => "and this rule has no `type`".to_owned(),
        };
        cx.at(key, |cx| {
            cx.error(
                Code::NotAllowed,
                entry.key.span,
                format!("`{key}` only applies to {} rules, {kind}", owner.name()),
            )
            .hint = Some(hint);
        });
    }

    for (owner, key) in [
        (Owner::Library, "metric"),
        (Owner::Sql, "query"),
        (Owner::Custom, "engine"),
        (Owner::Custom, "implementation"),
    ] {
        if applies(owner) && node.entry(key).is_none() {
            cx.error(
                Code::Required,
                node.span,
                format!(
                    "{} quality rule is missing required key `{key}`",
                    owner.name()
                ),
            );
        }
    }

    if applies(Owner::Comparison) {
        let present: Vec<&str> = OPERATORS
            .iter()
            .copied()
            .filter(|op| node.entry(op).is_some())
            .collect();
        match present.as_slice() {
            [_] => {}
            [] => {
                let all: Vec<String> = OPERATORS.iter().map(|op| format!("`{op}`")).collect();
                cx.error(Code::Operator, node.span, "quality rule has no operator")
                    .hint = Some(format!("add exactly one of {}", all.join(", ")));
            }
            [_, second, ..] => {
                let list: Vec<String> = present.iter().map(|p| format!("`{p}`")).collect();
                let span = node.key_span(second);
                cx.at(second, |cx| {
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
                });
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
            cx.error(Code::UniqueItems, node.span, "the two bounds are equal")
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
