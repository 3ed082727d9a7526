//! What the tests of every mesh crate share, so none includes another crate's test files:
//!
//! - [`vectors`]: the conformance vectors in `../shared/vectors` (copies of the standards' own
//!   files): a test skips with a notice when they are absent, and fails under `CI=true`;
//! - [`notice`]: a line printed past the test harness's capture (a skip must be seen);
//! - [`python`]: a `python3` that can import what a test drives (ADBC, prometheus_client, ...),
//!   or a skip with a notice, or a failure under `CI=true`;
//! - [`fuzz`]: bounded fuzz campaigns from the repository's seeds (`fuzz/seeds/`).
//!
//! Standard library only: the pure crates' tests use it and must build in seconds.

#![allow(clippy::print_stderr)]

use std::io::Write;
use std::os::fd::AsFd;
use std::process::Command;

pub mod fuzz;
pub mod vectors;

/// Whether the tests run in CI (`CI=true`), where a missing service or oracle fails the run
/// rather than skipping it.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Prints to the process's real standard error: the test harness captures `eprintln!` of passing
/// tests, and a skipped test must be seen.
pub fn notice(message: &str) {
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = writeln!(std::fs::File::from(fd), "{message}");
    }
}

/// Skips (with a notice) what needs something this machine lacks, or fails under `CI=true`,
/// where `.ci/run` provides it.
pub fn skip(what: &str, how: &str) {
    assert!(!ci(), "CI=true but {what} is missing: {how}");
    notice(&format!("notice: {what} is missing; skipping ({how})"));
}

/// `python3` when it can `import modules` (e.g. `"adbc_driver_flightsql.dbapi, pyarrow"`);
/// otherwise `None` with a printed notice, or a failure under `CI=true` (`.ci/run` installs
/// `packages` from PyPI). `part` names what is skipped.
pub fn python(modules: &str, packages: &str, part: &str) -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    assert!(
        !ci(),
        "CI=true needs python3 with {packages}: pip install {packages}"
    );
    notice(&format!(
        "skipping {part}: pip install {packages} to run it"
    ));
    None
}
