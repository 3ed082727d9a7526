//! Typed reading of located nodes, collecting every problem instead of stopping at the first.
//!
//! [`FromNode`] is implemented by `#[derive(Model)]` for document objects and by hand here for
//! scalars, lists and a few unions. A conversion that fails reports why into [`Cx`] and yields
//! `None`; its parent drops just that value and carries on, so one run over a file finds every
//! problem in it. Unknown keys are kept (in each object's `extra`) and reported, which is what makes
//! the same parse serve the strict lint and tolerant readers alike.

use serde::Serialize;

use crate::diag::{Code, Diagnostic, suggest};
use crate::source::{Entry, Node, Span, Value, push_pointer};

#[doc(hidden)]
pub use serde as __serde;

/// Keys an object does not define, with their values, in source order.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The ODCS version whose rules a document is judged by.
///
/// A document declaring `apiVersion: v3.2.0` is read by the v3.2.0 schema's rules; every other
/// document by v3.1.0's (which accepts v3.0.x and v2.2.x too). The two differ: v3.2.0 adds keys,
/// types and server types, and relaxes a few requirements (`status`, an Athena server's
/// `stagingDir`), so a v3.1.0 document using v3.2.0 keys is refused with the version that has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edition {
    #[default]
    V3_1,
    V3_2,
}

impl Edition {
    /// The edition a document's root declares.
    pub fn of(root: &Node) -> Self {
        match root.get("apiVersion").and_then(Node::as_str) {
            Some("v3.2.0") => Edition::V3_2,
            _ => Edition::V3_1,
        }
    }
}

/// Conversion context: the JSON pointer of the value being read and the findings so far.
#[derive(Debug, Default)]
pub struct Cx {
    pointer: String,
    diagnostics: Vec<Diagnostic>,
    edition: Edition,
}

impl Cx {
    pub fn new() -> Self {
        Self::default()
    }

    /// A context judging by `edition`'s rules.
    pub fn with_edition(edition: Edition) -> Self {
        Self {
            edition,
            ..Self::default()
        }
    }

    /// Whose rules apply: see [`Edition`].
    pub fn edition(&self) -> Edition {
        self.edition
    }

    /// Reports `what` (at `span`) as new in ODCS v3.2.0 when the document is judged by v3.1.0;
    /// `true` when it may be used.
    pub fn since_3_2(&mut self, span: Span, what: &str) -> bool {
        if self.edition >= Edition::V3_2 {
            return true;
        }
        self.error(
            Code::UnknownKey,
            span,
            format!("{what} is new in ODCS v3.2.0, and this contract declares an older apiVersion"),
        )
        .hint = Some("set `apiVersion: v3.2.0` to use it".to_owned());
        false
    }

    /// The JSON pointer of the value being read.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// Runs `f` with the pointer extended by `segment` (a key or a list index).
    pub fn at<R>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.pointer.len();
        push_pointer(&mut self.pointer, segment);
        let out = f(self);
        self.pointer.truncate(len);
        out
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Reports an error at `span` about the value being read.
    pub fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(code, span, self.pointer.clone(), message);
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// Reports a warning at `span` about the value being read.
    pub fn warning(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::warning(code, span, self.pointer.clone(), message);
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// Reports that `node` has the wrong type. A plain YAML scalar read as a number or boolean
    /// where text is expected is the classic slip (`version: 1.0`), so the hint says to quote it.
    pub fn type_error(&mut self, node: &Node, expected: &str) {
        let found = node.kind_name();
        let hint = match &node.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) if expected.contains("string") => Some(
                "YAML read this as a number or boolean; put the value in quotes to make it text"
                    .to_owned(),
            ),
            Value::Null if !self.pointer.is_empty() => {
                Some("give it a value or remove the key".to_owned())
            }
            // `"true"` where a boolean is expected, `"5"` where a number is.
            Value::String(s) => match crate::yaml::resolve_plain(s) {
                Value::Bool(_) if expected.contains("boolean") => {
                    Some(format!("remove the quotes: `{s}` in quotes is text"))
                }
                Value::Int(_) | Value::Float(_)
                    if expected.contains("integer") || expected.contains("number") =>
                {
                    Some(format!("remove the quotes: `{s}` in quotes is text"))
                }
                _ => None,
            },
            _ => None,
        };
        let label = self.label();
        let d = self.error(
            Code::Type,
            node.span,
            format!("{label} must be {expected}, found {found}"),
        );
        d.hint = hint;
    }

    /// How to name the value being read in a message: "`name`", "item 2 of `tags`" (counted from
    /// 1, as people count; pointers count from 0), or "the document".
    pub fn label(&self) -> String {
        let mut segments = self
            .pointer
            .rsplit('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"));
        match (segments.next(), segments.next()) {
            (Some(last), parent) if !self.pointer.is_empty() && last.parse::<usize>().is_ok() => {
                let n = last.parse::<usize>().map_or(0, |i| i + 1);
                match parent {
                    Some(parent) if !parent.is_empty() => format!("item {n} of `{parent}`"),
                    _ => format!("item {n}"),
                }
            }
            (Some(last), _) if !self.pointer.is_empty() => format!("`{last}`"),
            _ => "the document".to_owned(),
        }
    }

    /// The last finding, to add a hint to it.
    pub fn last_mut(&mut self) -> Option<&mut Diagnostic> {
        self.diagnostics.last_mut()
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A type that can be read from a located node.
pub trait FromNode: Sized {
    /// What the JSON type is called in messages ("a string", "an object", ...).
    const EXPECTED: &'static str;

    /// Reads `node`, reporting problems into `cx`; `None` when no value can be made.
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self>;
}

/// How far an object's key got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Unread,
    Read,
    /// Read, but its value could not be converted (and was reported).
    Failed,
}

/// What to do with keys an object does not define. They are always kept in `extra`, as are the
/// values of defined keys that could not be read, so a tolerant reader loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeys {
    /// The standard forbids them (`additionalProperties: false`).
    Error,
    /// The standard allows them, but they are probably typos.
    Warn,
    /// The owning object's check judges them in context (e.g. options that depend on a type).
    Keep,
}

/// Reads the keys of one object for `#[derive(Model)]`, remembering which ones were used.
#[derive(Debug)]
pub struct ObjectReader<'n> {
    node: &'n Node,
    entries: &'n [Entry],
    used: Vec<Use>,
    what: &'static str,
}

impl<'n> ObjectReader<'n> {
    /// Starts reading `node` as the object users call `what`; a type error when it is not a mapping.
    pub fn new(node: &'n Node, cx: &mut Cx, what: &'static str) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            cx.type_error(node, &format!("an object ({what})"));
            return None;
        };
        Some(Self {
            node,
            entries,
            used: vec![Use::Unread; entries.len()],
            what,
        })
    }

    fn take(&mut self, key: &str) -> Option<(usize, &'n Entry)> {
        let i = self.entries.iter().position(|e| e.key.text == key)?;
        self.used[i] = Use::Read;
        Some((i, &self.entries[i]))
    }

    /// An optional key.
    pub fn optional<T: FromNode>(&mut self, cx: &mut Cx, key: &str) -> Option<T> {
        self.optional_with(cx, key, T::from_node)
    }

    /// An optional key read by a custom function (for values with more than one accepted form).
    pub fn optional_with<T>(
        &mut self,
        cx: &mut Cx,
        key: &str,
        read: impl FnOnce(&Node, &mut Cx) -> Option<T>,
    ) -> Option<T> {
        let (i, entry) = self.take(key)?;
        let value = cx.at(key, |cx| read(&entry.value, cx));
        if value.is_none() {
            self.used[i] = Use::Failed;
        }
        value
    }

    /// A key the standard requires; a missing one is reported and reads as `None`.
    pub fn required<T: FromNode>(&mut self, cx: &mut Cx, key: &str) -> Option<T> {
        if self.entries.iter().all(|e| e.key.text != key) {
            self.missing(cx, key);
            return None;
        }
        self.optional(cx, key)
    }

    /// An optional list; absent means empty.
    pub fn list<T: FromNode>(&mut self, cx: &mut Cx, key: &str) -> Vec<T> {
        self.optional::<Vec<T>>(cx, key).unwrap_or_default()
    }

    /// Reports `key`, when present, as new in ODCS v3.2.0 if the document is older.
    pub fn since_3_2(&mut self, cx: &mut Cx, key: &str) {
        if let Some(entry) = self.entries.iter().find(|e| e.key.text == key) {
            let span = entry.key.span;
            cx.at(key, |cx| cx.since_3_2(span, &format!("`{key}`")));
        }
    }

    /// Warns that `key`, when present, is deprecated.
    pub fn deprecated(&mut self, cx: &mut Cx, key: &str, message: &str) {
        if let Some(entry) = self.entries.iter().find(|e| e.key.text == key) {
            let span = entry.key.span;
            cx.at(key, |cx| {
                cx.warning(
                    Code::Deprecated,
                    span,
                    format!("`{key}` is deprecated: {message}"),
                );
            });
        }
    }

    fn missing(&self, cx: &mut Cx, key: &str) {
        let span = Span::point(self.node.span.start);
        cx.error(
            Code::Required,
            span,
            format!("{} is missing required key `{key}`", self.what),
        );
    }

    /// Collects the keys nobody read into `extra`, reporting each as `unknown` says, with the
    /// closest valid key as a hint.
    pub fn finish(self, cx: &mut Cx, known: &[&str], unknown: UnknownKeys) -> Extra {
        let mut extra = Extra::new();
        for (entry, used) in self.entries.iter().zip(&self.used) {
            let key = &entry.key.text;
            match used {
                Use::Read => continue,
                // Already reported; kept so that a tolerant reader loses nothing.
                Use::Failed => {
                    extra.insert(key.clone(), entry.value.to_json());
                    continue;
                }
                Use::Unread => {}
            }
            let message = format!("unknown key `{key}` in {}", self.what);
            let hint = suggest(key, known);
            cx.at(key, |cx| {
                let d = match unknown {
                    UnknownKeys::Error => cx.error(Code::UnknownKey, entry.key.span, message),
                    UnknownKeys::Warn => cx.warning(Code::UnknownKey, entry.key.span, message),
                    UnknownKeys::Keep => return,
                };
                d.hint = hint;
            });
            let value = cx.at(key, |cx| json_value(&entry.value, cx));
            extra.insert(key.clone(), value);
        }
        extra
    }
}

/// Converts a node to JSON for free-form values, reporting the one thing JSON cannot hold.
fn json_value(node: &Node, cx: &mut Cx) -> serde_json::Value {
    check_finite(node, cx);
    node.to_json()
}

fn check_finite(node: &Node, cx: &mut Cx) {
    match &node.value {
        Value::Float(f) if !f.is_finite() => {
            cx.error(
                Code::Type,
                node.span,
                "this number is infinite or not a number, which JSON cannot hold",
            )
            .hint = Some("use a finite number (mesh stores documents as JSON)".to_owned());
        }
        Value::Seq(items) => items.iter().for_each(|i| check_finite(i, cx)),
        Value::Map(entries) => entries.iter().for_each(|e| check_finite(&e.value, cx)),
        _ => {}
    }
}

impl FromNode for String {
    const EXPECTED: &'static str = "a string";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

impl FromNode for bool {
    const EXPECTED: &'static str = "a boolean";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

/// JSON Schema's `integer`: any number with a zero fractional part (so `2.0` and `1e20` count, as
/// in every draft since 4). Values beyond `[min, max]` are read as the nearest bound, with a warning:
/// the document is valid, but mesh cannot hold the number exactly.
fn integer(node: &Node, cx: &mut Cx, expected: &str, min: i128, max: i128) -> Option<i128> {
    let whole = match node.value {
        Value::Int(i) => i128::from(i),
        // Saturating: `as` clamps floats beyond i128 (and the range check below reports them).
        #[allow(clippy::cast_possible_truncation)]
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => f as i128,
        _ => {
            cx.type_error(node, expected);
            return None;
        }
    };
    if min == 0 && whole < 0 {
        cx.error(
            Code::Range,
            node.span,
            format!("must be 0 or more, found {whole}"),
        );
        return None;
    }
    let clamped = whole.clamp(min, max);
    if clamped != whole {
        cx.warning(
            Code::Range,
            node.span,
            format!("{whole} is beyond what mesh can hold here; read as {clamped}"),
        );
    }
    Some(clamped)
}

impl FromNode for i64 {
    const EXPECTED: &'static str = "an integer";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let v = integer(
            node,
            cx,
            Self::EXPECTED,
            i128::from(i64::MIN),
            i128::from(i64::MAX),
        )?;
        i64::try_from(v).ok()
    }
}

impl FromNode for u64 {
    const EXPECTED: &'static str = "a non-negative integer";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let v = integer(node, cx, Self::EXPECTED, 0, i128::from(u64::MAX))?;
        u64::try_from(v).ok()
    }
}

impl FromNode for serde_json::Number {
    const EXPECTED: &'static str = "a number";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match node.value {
            Value::Int(i) => Some(i.into()),
            Value::Float(f) if f.is_finite() => serde_json::Number::from_f64(f),
            Value::Float(_) => {
                check_finite(node, cx);
                None
            }
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

/// Any JSON value (the standard's `AnyType`).
impl FromNode for serde_json::Value {
    const EXPECTED: &'static str = "any value";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        Some(json_value(node, cx))
    }
}

impl<T: FromNode> FromNode for Vec<T> {
    const EXPECTED: &'static str = "a list";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            cx.type_error(node, Self::EXPECTED);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = cx.at(&i.to_string(), |cx| T::from_node(item, cx)) {
                out.push(v);
            }
        }
        Some(out)
    }
}

impl<T: FromNode> FromNode for Box<T> {
    const EXPECTED: &'static str = T::EXPECTED;

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        T::from_node(node, cx).map(Box::new)
    }
}

/// A JSON object with free-form content (the standard's `type: object` without properties).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Object(pub serde_json::Map<String, serde_json::Value>);

impl FromNode for Object {
    const EXPECTED: &'static str = "an object";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match json_value(node, cx) {
            serde_json::Value::Object(map) if matches!(node.value, Value::Map(_)) => {
                Some(Object(map))
            }
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

/// A scalar (string, number, boolean or null) — the standard's `AnyNonCollectionType`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub serde_json::Value);

impl FromNode for Scalar {
    const EXPECTED: &'static str = "a string, number, boolean or null";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match node.value {
            Value::Seq(_) | Value::Map(_) => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
            _ => Some(Scalar(json_value(node, cx))),
        }
    }
}

/// Defines a closed set of string values: the enum, its `FromNode` (with a did-you-mean hint for a
/// misspelt value), `Serialize`, `as_str` and `Display`.
#[macro_export]
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, spelled as in the standard.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::de::__serde::Serialize for $name {
            fn serialize<S: $crate::de::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $crate::de::FromNode for $name {
            const EXPECTED: &'static str = "a string";

            fn from_node(node: &$crate::source::Node, cx: &mut $crate::de::Cx) -> Option<Self> {
                let text = <String as $crate::de::FromNode>::from_node(node, cx)?;
                let parsed = Self::parse(&text);
                if parsed.is_none() {
                    let hint = $crate::diag::suggest(&text, Self::ALL);
                    let d = cx.error(
                        $crate::diag::Code::Enum,
                        node.span,
                        format!("`{}` is not a valid {}", text, $what),
                    );
                    d.hint = hint;
                }
                parsed
            }
        }
    };
}
