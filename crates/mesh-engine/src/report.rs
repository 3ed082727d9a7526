//! Test results and their forms: datacontract-cli's Run result JSON (so tools that read it can
//! read ours), JUnit XML for CI systems, and the fields the CLI's table prints.

use serde::Serialize;

use crate::checks::{Category, Check};

/// The outcome of one check; a run's outcome is the worst of its checks'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    // Ordered from best to worst.
    Passed,
    Skipped,
    Warning,
    Failed,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Skipped => "skipped",
            Outcome::Warning => "warning",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: Check,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// The measured value (a count, a query's value, an age in seconds).
    pub value: Option<f64>,
    /// datacontract-cli's `diagnostics` object: metric, value, threshold, row_count, ...
    pub diagnostics: Option<serde_json::Value>,
    /// Up to N offending rows (`--include-failed-samples N`).
    pub failed_samples: Option<Vec<serde_json::Value>>,
}

impl CheckResult {
    pub fn new(check: Check, outcome: Outcome, reason: Option<String>) -> Self {
        Self {
            check,
            outcome,
            reason,
            value: None,
            diagnostics: None,
            failed_samples: None,
        }
    }
}

/// A whole `mesh test` run.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub contract_id: Option<String>,
    pub contract_version: Option<String>,
    pub server: Option<String>,
    /// RFC 3339.
    pub started: String,
    pub finished: String,
    pub results: Vec<CheckResult>,
}

impl Run {
    /// The worst outcome, skipped checks aside (a run of only skipped checks passes).
    pub fn outcome(&self) -> Outcome {
        self.results
            .iter()
            .map(|r| r.outcome)
            .filter(|o| *o != Outcome::Skipped)
            .max()
            .unwrap_or(Outcome::Passed)
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// datacontract-cli's Run result (the `--output json` document).
    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|r| {
                let c = &r.check;
                serde_json::json!({
                    "id": c.key,
                    "key": c.key,
                    "category": c.category,
                    "type": c.check_type,
                    "name": c.name,
                    "model": c.model,
                    "field": c.field,
                    "qualityId": c.quality_id,
                    "tags": if c.tags.is_empty() { None } else { Some(&c.tags) },
                    "dimension": c.dimension,
                    "engine": "mesh",
                    "result": r.outcome,
                    "reason": r.reason,
                    "diagnostics": r.diagnostics,
                    "failedSamples": r.failed_samples,
                })
            })
            .collect();
        serde_json::json!({
            "runId": self.run_id,
            "dataContractId": self.contract_id,
            "dataContractVersion": self.contract_version,
            "server": self.server,
            "timestampStart": self.started,
            "timestampEnd": self.finished,
            "result": self.outcome(),
            "checks": checks,
        })
    }

    /// JUnit XML: one test suite per model, one test case per check.
    pub fn to_junit(&self) -> String {
        let mut models: Vec<&str> = Vec::new();
        for r in &self.results {
            if !models.contains(&r.check.model.as_str()) {
                models.push(&r.check.model);
            }
        }
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failures = self.count(Outcome::Failed);
        let errors = self.count(Outcome::Error);
        let skipped = self.count(Outcome::Skipped);
        out.push_str(&format!(
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n",
            xml(self.contract_id.as_deref().unwrap_or("mesh test")),
            self.results.len()
        ));
        for model in models {
            let results: Vec<&CheckResult> = self
                .results
                .iter()
                .filter(|r| r.check.model == model)
                .collect();
            let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
            out.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" timestamp=\"{}\">\n",
                xml(model),
                results.len(),
                count(Outcome::Failed),
                count(Outcome::Error),
                count(Outcome::Skipped),
                xml(&self.started)
            ));
            for r in results {
                let class = match r.check.category {
                    Category::Schema => "schema",
                    Category::Quality => "quality",
                    Category::Servicelevel => "servicelevel",
                };
                out.push_str(&format!(
                    "    <testcase classname=\"{}.{class}\" name=\"{}\">",
                    xml(model),
                    xml(&r.check.key)
                ));
                let reason = xml(r.reason.as_deref().unwrap_or(""));
                match r.outcome {
                    Outcome::Passed => {}
                    Outcome::Skipped => out.push_str(&format!("<skipped message=\"{reason}\"/>")),
                    Outcome::Warning => {
                        out.push_str(&format!("<system-out>warning: {reason}</system-out>"))
                    }
                    Outcome::Failed => out.push_str(&format!(
                        "<failure message=\"{reason}\" type=\"{}\"/>",
                        r.check.check_type
                    )),
                    Outcome::Error => out.push_str(&format!(
                        "<error message=\"{reason}\" type=\"{}\"/>",
                        r.check.check_type
                    )),
                }
                out.push_str("</testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Escapes text for XML attributes and content.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_order_from_best_to_worst() {
        assert!(
            Outcome::Error > Outcome::Failed
                && Outcome::Failed > Outcome::Warning
                && Outcome::Warning > Outcome::Passed
        );
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
