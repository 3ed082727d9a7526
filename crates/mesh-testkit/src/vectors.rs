//! Access to the conformance vectors in `../shared/vectors` (copies of the standards' own files).
//!
//! They are not part of this repository. When they are absent a test prints a notice and skips —
//! unless `CI=true`, where a missing oracle must fail the run rather than pass it silently.

use std::path::{Path, PathBuf};

use crate::{ci, notice};

/// The vectors directory, or `None` (after printing why) when the test should skip.
pub fn dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MESH_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        // This crate is crates/mesh-testkit: the repository's parent holds `shared/`.
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    if dir.join("EXPECTED.tsv").is_file() {
        return Some(dir);
    }
    assert!(
        !ci(),
        "CI=true but the conformance vectors are missing at {}",
        dir.display()
    );
    notice(&format!(
        "notice: conformance vectors not found at {}; skipping (set MESH_VECTORS)",
        dir.display()
    ));
    None
}

/// One row of `EXPECTED.tsv`.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub standard: String,
    pub valid: bool,
}

/// The ODCS and ODPS rows of `EXPECTED.tsv`.
pub fn rows(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv is readable");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let standard = cols.get(1)?.to_string();
            if !(standard.starts_with("odcs") || standard.starts_with("odps")) {
                return None;
            }
            let verdict = *cols.get(2)?;
            assert!(
                verdict == "valid" || verdict == "invalid",
                "unexpected verdict {verdict:?}"
            );
            Some(Row {
                path: cols[0].to_owned(),
                standard,
                valid: verdict == "valid",
            })
        })
        .collect()
}
