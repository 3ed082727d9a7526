//! Integration tests of the `mesh` binary (one test binary per crate, see STYLE.md §3): they run
//! the real executable, as users and CI do.

mod access;
mod catalog;
mod contract_tests;
mod golden;
mod init;
mod lint;
mod new;
mod policy;
mod run;
mod s3;
// The same access rules to ../shared/vectors as mesh-model's tests (skip, or fail under CI=true).
#[path = "../../../mesh-model/tests/it/vectors.rs"]
mod vectors;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `mesh ARGS` in `dir` without colours.
pub(crate) fn mesh(dir: &Path, args: &[&str]) -> Output {
    mesh_with_env(dir, args, &[])
}

/// Runs `mesh ARGS` in `dir` without colours, with extra environment variables.
pub(crate) fn mesh_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .envs(env.iter().copied())
        .output()
        .expect("the mesh binary runs")
}

/// Prints past the test harness's capture (a skipped test must be seen).
pub(crate) fn notice(message: &str) {
    use std::io::Write;
    use std::os::fd::AsFd;
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = writeln!(std::fs::File::from(fd), "{message}");
    }
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
