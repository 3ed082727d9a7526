//! Access to the conformance vectors in `../shared/vectors` (copies of the standards' own files).
//!
//! They are not part of this repository. When they are absent a test prints a notice and skips —
//! unless `CI=true`, where a missing oracle must fail the run rather than pass it silently.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The vectors directory, or `None` (after printing why) when the test should skip.
pub(crate) fn dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MESH_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    if dir.join("EXPECTED.tsv").is_file() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
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
pub(crate) struct Row {
    pub(crate) path: String,
    pub(crate) standard: String,
    pub(crate) valid: bool,
}

/// The ODCS and ODPS rows of `EXPECTED.tsv`.
pub(crate) fn rows(dir: &std::path::Path) -> Vec<Row> {
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

/// Prints to the process's real standard error: the test harness captures `eprintln!` of passing
/// tests, and a skipped conformance test must be seen.
fn notice(message: &str) {
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = writeln!(std::fs::File::from(fd), "{message}");
    }
}
