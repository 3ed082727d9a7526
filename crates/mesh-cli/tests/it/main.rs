//! Integration tests of the `mesh` binary (one test binary per crate, see STYLE.md §3): they run
//! the real executable, as users and CI do.

mod contract_tests;
mod golden;
mod init;
mod lint;
// The same access rules to ../shared/vectors as mesh-model's tests (skip, or fail under CI=true).
#[path = "../../../mesh-model/tests/it/vectors.rs"]
mod vectors;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `mesh ARGS` in `dir` without colours.
pub(crate) fn mesh(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("the mesh binary runs")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
