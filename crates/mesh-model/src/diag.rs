//! Diagnostics: what is wrong, where (line:column and JSON pointer), how bad, and how to fix it.
//!
//! Every check in this crate reports through [`Diagnostic`] and never stops at the first problem.
//! Rendering for humans and machines lives here too, so the CLI, the server and the tests print the
//! same text; colours are the caller's business.

use std::fmt;

use serde::Serialize;

use crate::source::{Pos, Span};

/// How bad a finding is. Errors fail `mesh lint`; warnings do not (unless `--strict` promotes the
/// platform-readiness ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable, machine-readable name for each kind of finding (the `code` in `--output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// The text is not valid YAML/JSON.
    Syntax,
    /// The same key twice in one mapping.
    DuplicateKey,
    /// The file holds no document, or more than one.
    Document,
    /// The document's kind cannot be told (neither `kind` nor a `*.odcs.yaml`/`*.odps.yaml` name).
    UnknownKind,
    /// The file name promises one kind (`*.odcs.yaml`) and `kind` says another.
    KindMismatch,
    /// A value of the wrong JSON type.
    Type,
    /// A required key is missing.
    Required,
    /// A key the standard does not define.
    UnknownKey,
    /// A key the standard defines, but not in this context (e.g. `port` on a redshift server).
    NotAllowed,
    /// A value outside the allowed set.
    Enum,
    /// A string that does not match the pattern the standard prescribes.
    Pattern,
    /// A number or list length out of range.
    Range,
    /// A list the standard requires to hold distinct values repeats one (`uniqueItems`).
    UniqueItems,
    /// A quality rule without exactly one operator.
    Operator,
    /// A value whose format (date, date-time, regular expression) is wrong.
    Format,
    /// A deprecated form that still parses.
    Deprecated,
    /// Two items of one list with the same identity (name, id, ...).
    Duplicate,
    /// A reference that does not resolve.
    Reference,
    /// Bounds in the wrong order (e.g. `mustBeBetween: [10, 1]`).
    Order,
    /// A rule the platform needs before a product can be published.
    Readiness,
    /// A governance policy (Rego) the product violates; the message names the policy.
    Policy,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::DuplicateKey => "duplicate-key",
            Code::Document => "document",
            Code::UnknownKind => "unknown-kind",
            Code::KindMismatch => "kind-mismatch",
            Code::Type => "type",
            Code::Required => "required",
            Code::UnknownKey => "unknown-key",
            Code::NotAllowed => "not-allowed",
            Code::Enum => "enum",
            Code::Pattern => "pattern",
            Code::Range => "range",
            Code::UniqueItems => "unique-items",
            Code::Operator => "operator",
            Code::Format => "format",
            Code::Deprecated => "deprecated",
            Code::Duplicate => "duplicate",
            Code::Reference => "reference",
            Code::Order => "order",
            Code::Readiness => "readiness",
            Code::Policy => "policy",
        }
    }
}

/// The parts of a rendered diagnostic a caller may style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `file:line:col:`
    Location,
    /// `error` / `warning`
    Severity(Severity),
    /// the word `hint`
    Hint,
}

/// One finding in one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// JSON pointer to the value concerned (`/schema/0/properties/1/logicalType`); empty = document.
    pub pointer: String,
    pub span: Span,
    /// How to fix it, when we can say.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(
        code: Code,
        span: Span,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            pointer: pointer.into(),
            span,
            hint: None,
        }
    }

    pub fn warning(
        code: Code,
        span: Span,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, span, pointer, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: severity: message`, then `  = hint: ...` when there is a hint.
    pub fn render(&self, file: &str) -> String {
        self.render_with(file, |_, text| text.to_owned())
    }

    /// [`Diagnostic::render`] with each part passed through `paint` (e.g. to colour it).
    pub fn render_with(&self, file: &str, paint: impl Fn(Part, &str) -> String) -> String {
        let pos = self.position();
        let location = paint(Part::Location, &format!("{file}:{}:{}:", pos.line, pos.col));
        let severity = paint(Part::Severity(self.severity), self.severity.as_str());
        let mut out = format!("{location} {severity}: {}", self.message);
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  = {}: {hint}", paint(Part::Hint, "hint")));
        }
        out
    }

    /// Where to point the user: the start of the span, or 1:1 for findings about the whole file.
    pub fn position(&self) -> Pos {
        if self.span.start.is_known() {
            self.span.start
        } else {
            Pos::new(1, 1)
        }
    }

    /// The JSON form used by `--output json`.
    pub fn to_json(&self, file: &str) -> serde_json::Value {
        let start = self.position();
        let end = if self.span.end.is_known() {
            self.span.end
        } else {
            start
        };
        serde_json::json!({
            "file": file,
            "line": start.line,
            "column": start.col,
            "endLine": end.line,
            "endColumn": end.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "pointer": self.pointer,
            "hint": self.hint,
        })
    }
}

/// The closest of `candidates` to a misspelt `word`, when it is close enough to be a useful hint:
/// a case-only difference, or at most one edit (a typo, a transposed pair) per four characters —
/// so short words (`i7`) only match by case, where one edit would change their meaning.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let budget = lower.chars().count() / 4;
    candidates
        .into_iter()
        .map(|c| (c, strsim::osa_distance(&lower, &c.to_lowercase())))
        .filter(|(_, distance)| *distance <= budget)
        .min_by_key(|(_, distance)| *distance)
        .map(|(c, _)| c)
}

/// "did you mean `x`?" for a misspelt word, or the list of valid words when there are few.
pub fn suggest(word: &str, candidates: &[&str]) -> Option<String> {
    if let Some(best) = closest(word, candidates.iter().copied()) {
        return Some(format!("did you mean `{best}`?"));
    }
    if candidates.len() <= 12 {
        let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
        return Some(format!("expected one of {}", list.join(", ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_prefers_case_slips_and_rejects_far_words() {
        let keys = ["logicalType", "logicalTypeOptions", "physicalType"];
        assert_eq!(closest("logicaltype", keys), Some("logicalType"));
        assert_eq!(closest("logicalTyp", keys), Some("logicalType"));
        assert_eq!(closest("physcalType", keys), Some("physicalType"));
        assert_eq!(closest("owner", keys), None);
        // Long shared prefixes are not similarity: ids differ where it matters.
        assert_eq!(
            closest("ecommerce.orders.orders", ["ecommerce.orders.refunds"]),
            None
        );
        assert_eq!(
            closest("ecommerce.orders.refund", ["ecommerce.orders.refunds"]),
            Some("ecommerce.orders.refunds")
        );
    }

    #[test]
    fn render_puts_hint_on_its_own_line() {
        let d = Diagnostic::error(
            Code::UnknownKey,
            Span::point(Pos::new(3, 5)),
            "/x",
            "unknown key `x`",
        )
        .with_hint("did you mean `y`?");
        assert_eq!(
            d.render("a.yaml"),
            "a.yaml:3:5: error: unknown key `x`\n  = hint: did you mean `y`?"
        );
    }
}
