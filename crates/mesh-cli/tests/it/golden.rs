//! Golden tests: `testdata/lint/<case>/` holds input files, an optional `cmd` (the arguments after
//! `mesh lint`, default `.`) and `expected.txt` — the exact output followed by `[exit N]`. The
//! command runs inside the case folder, so paths print relative to it.
//!
//! `MESH_BLESS=1 cargo test` rewrites the expectations; review the diff like code.

use std::path::{Path, PathBuf};

use crate::{mesh, stdout};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/lint");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testdata/lint exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn lint_golden_cases() {
    let bless = std::env::var_os("MESH_BLESS").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 15,
        "expected at least 15 golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let cmd = std::fs::read_to_string(case.join("cmd")).unwrap_or_else(|_| ".".to_owned());
        let mut args = vec!["lint"];
        args.extend(cmd.split_whitespace());
        let out = mesh(case, &args);
        let actual = format!(
            "{}[exit {}]\n",
            stdout(&out),
            out.status.code().unwrap_or(-1)
        );
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
