//! Golden tests: `testdata/<command>/<case>/` holds input files, an optional `cmd` (the arguments
//! after `mesh <command>`, default `.`) and `expected.txt` — the exact output followed by
//! `[exit N]` (and, for commands whose errors matter, what went to standard error). The command
//! runs inside the case folder, so paths print relative to it.
//!
//! `MESH_BLESS=1 cargo test` rewrites the expectations; review the diff like code.

use std::path::{Path, PathBuf};

use crate::{mesh, stderr, stdout};

fn cases(command: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(command);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("testdata/{command}: {e}"))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir() && (command == "lint" || p.join("cmd").is_file()))
        .collect();
    cases.sort();
    cases
}

/// Runs every case of `testdata/<command>` and compares (or blesses) its output.
fn golden(command: &str, min_cases: usize, with_stderr: bool) {
    let bless = std::env::var_os("MESH_BLESS").is_some();
    let cases = cases(command);
    assert!(
        cases.len() >= min_cases,
        "expected at least {min_cases} golden cases for {command}, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let cmd = std::fs::read_to_string(case.join("cmd")).unwrap_or_else(|_| ".".to_owned());
        let mut args = vec![command];
        args.extend(cmd.split_whitespace());
        let out = mesh(case, &args);
        let mut actual = format!(
            "{}[exit {}]\n",
            stdout(&out),
            out.status.code().unwrap_or(-1)
        );
        if with_stderr {
            let err = stderr(&out);
            if !err.is_empty() {
                actual.push_str(&format!("[stderr]\n{err}"));
            }
        }
        let expected_path = case.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ (MESH_BLESS=1 rewrites):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn lint_golden_cases() {
    golden("lint", 15, false);
}

#[test]
fn changelog_golden_cases() {
    golden("changelog", 7, true);
}
