//! Property tests: whatever bytes or YAML arrive, parsing and linting finish without panicking and
//! every diagnostic has a position inside the text (or none, for whole-file findings).
//!
//! Bounded by case counts (raise them with `PROPTEST_CASES`); a failure is shrunk to a minimal
//! input and saved by proptest for replay.

use mesh_model::lint::{LintOptions, SourceFile, lint};
use proptest::prelude::*;

use crate::vectors;

fn lint_all_kinds(text: &str) {
    for path in ["x.odcs.yaml", "x.odps.yaml", "x.yaml"] {
        let file = SourceFile {
            path: path.to_owned(),
            text: text.to_owned(),
            explicit: true,
        };
        for strict in [false, true] {
            let report = lint(std::slice::from_ref(&file), LintOptions { strict });
            // YAML counts CR, LF and CRLF as line breaks (str::lines ignores a lone CR).
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() as u32 + 1;
            for d in report.files.iter().flat_map(|f| &f.diagnostics) {
                let pos = d.position();
                assert!(
                    pos.line >= 1 && pos.line <= lines,
                    "position {pos} outside a {lines}-line text: {}",
                    d.message
                );
            }
        }
    }
}

/// Tokens that make the YAML parser and the typed model work: keys of both standards, values of
/// their enums, and YAML's own syntax.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "apiVersion: v3.1.0\n",
        "kind: DataContract\n",
        "kind: DataProduct\n",
        "id: x\n",
        "version: 1.0.0\n",
        "status: active\n",
        "schema:\n",
        "- name: t\n",
        "  properties:\n",
        "    - name: c\n",
        "      logicalType: string\n",
        "      logicalType: array\n",
        "      items:\n",
        "        logicalType: object\n",
        "      logicalTypeOptions: {minLength: 3, maxLength: 1}\n",
        "      quality:\n",
        "        - metric: rowCount\n",
        "          mustBeBetween: [9, 1]\n",
        "          mustBe: 0\n",
        "      relationships:\n",
        "        - to: t.c\n",
        "          from: [t.c]\n",
        "servers:\n",
        "  - server: s\n",
        "    type: postgres\n",
        "    port: 5432\n",
        "outputPorts:\n",
        "  - name: p\n",
        "    version: 1.0.0\n",
        "    contractId: x\n",
        "team:\n",
        "  - username: u\n",
        "customProperties:\n",
        "  - property: productType\n",
        "    value: derived\n",
        "&a ",
        "*a\n",
        "<<: *a\n",
        "{",
        "}",
        "[",
        "]",
        ",",
        ": ",
        "- ",
        "  ",
        "\t",
        "\"",
        "'",
        "#c\n",
        "---\n",
        "...\n",
        "? ",
        "|\n",
        ">\n",
        "!!str ",
        "!!int ",
        ".inf",
        ".nan",
        "~",
        "1e999",
        "-0",
        "0x",
        "\u{1F600}",
        "\r\n",
        "\n",
    ])
}

/// `PROPTEST_CASES` raises (or lowers) the bound for a longer campaign.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        lint_all_kinds(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_shaped_text_never_panics(tokens in prop::collection::vec(token(), 0..60)) {
        lint_all_kinds(&tokens.concat());
    }
}

/// Edits of real documents: deletions, insertions and replacements of characters at random places
/// reach deep into the typed model with mostly-valid structure.
#[test]
fn edited_vectors_never_panic() {
    let Some(dir) = vectors::dir() else { return };
    let texts: Vec<String> = vectors::rows(&dir)
        .iter()
        .map(|r| std::fs::read_to_string(dir.join(&r.path)).expect("vector readable"))
        .filter(|t| t.len() < 20_000)
        .collect();
    let edits = (
        0..texts.len(),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases(600),
        ..ProptestConfig::default()
    });
    runner
        .run(&edits, |(i, ops)| {
            let mut chars: Vec<char> = texts[i].chars().collect();
            for (at, op, ch) in ops {
                let pos = at.index(chars.len().max(1));
                match op {
                    0 if !chars.is_empty() => {
                        chars.remove(pos.min(chars.len() - 1));
                    }
                    1 => chars.insert(pos.min(chars.len()), ch),
                    _ if !chars.is_empty() => {
                        let last = chars.len() - 1;
                        chars[pos.min(last)] = ch;
                    }
                    _ => {}
                }
            }
            lint_all_kinds(&chars.into_iter().collect::<String>());
            Ok(())
        })
        .expect("no panic on edited vectors");
}
