//! The strict lint agrees with the official JSON schemas' verdict on every ODCS 3.1.0 and ODPS
//! 1.0.0 vector, and every error it reports points inside the file.

use mesh_model::lint::{LintOptions, SourceFile, lint};

use crate::vectors;

#[test]
fn lint_agrees_with_the_official_schemas_on_every_vector() {
    let Some(dir) = vectors::dir() else { return };
    let rows = vectors::rows(&dir);
    assert!(
        rows.len() >= 60,
        "expected the ODCS/ODPS rows of EXPECTED.tsv, found {}",
        rows.len()
    );
    let mut disagreements = Vec::new();
    for row in &rows {
        let text = std::fs::read_to_string(dir.join(&row.path)).expect("vector is readable");
        let file = SourceFile {
            path: row.path.clone(),
            text: text.clone(),
            explicit: true,
        };
        let report = lint(&[file], LintOptions::default());
        let errors: Vec<_> = report
            .files
            .iter()
            .flat_map(|f| &f.diagnostics)
            .filter(|d| d.is_error())
            .collect();
        if errors.is_empty() != row.valid {
            let shown: Vec<String> = errors.iter().map(|d| d.render(&row.path)).collect();
            disagreements.push(format!(
                "{} ({}): official verdict {}, ours {}\n{}",
                row.path,
                row.standard,
                if row.valid { "valid" } else { "invalid" },
                if errors.is_empty() {
                    "valid"
                } else {
                    "invalid"
                },
                shown.join("\n")
            ));
        }
        let lines: Vec<&str> = text.lines().collect();
        for d in &errors {
            let pos = d.position();
            let line = lines.get(pos.line as usize - 1);
            assert!(
                line.is_some_and(|l| pos.col as usize <= l.chars().count() + 1),
                "{}: diagnostic position {pos} is outside the file: {}",
                row.path,
                d.message
            );
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n\n")
    );
}
