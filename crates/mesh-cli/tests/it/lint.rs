//! `mesh lint` end to end: the official verdict on every vector as an exit code, discovery of
//! files in folders, and exit code 2 for usage errors and unreadable input.

use std::fs;

use crate::{mesh, stderr, stdout, vectors};

#[test]
fn exit_code_matches_the_official_verdict_on_every_vector() {
    let Some(dir) = vectors::dir() else { return };
    for row in vectors::rows(&dir) {
        // The official verdict is on the standard alone, not on our governance policies.
        let out = mesh(&dir, &["lint", "--no-policies", &row.path]);
        let expected = if row.valid { 0 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{} ({}): official verdict {}, mesh lint said:\n{}{}",
            row.path,
            row.standard,
            if row.valid { "valid" } else { "invalid" },
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn folders_are_searched_and_foreign_yaml_is_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fs::create_dir_all(root.join("sales/orders/contracts")).expect("mkdir");
    fs::create_dir_all(root.join(".github/workflows")).expect("mkdir");
    fs::write(
        root.join(".github/workflows/ci.yml"),
        "on: push\njobs: {}\n",
    )
    .expect("write");
    fs::write(root.join("dbt_project.yml"), "name: shop\nversion: '1.0'\n").expect("write");
    fs::write(
        root.join("sales/orders/contracts/orders.yaml"),
        "kind: DataContract\napiVersion: v3.1.0\nid: x\nversion: 1.0.0\n",
    )
    .expect("write");
    let out = mesh(root, &["lint"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("sales/orders/contracts/orders.yaml:1:1: error: data contract is missing required key `status`"), "{text}");
    assert!(
        text.contains("checked 1 file:"),
        "only the contract is linted: {text}"
    );
}

#[test]
fn a_file_named_twice_is_linted_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("c")).expect("mkdir");
    fs::write(tmp.path().join("c/a.odcs.yaml"), "kind: DataContract\n").expect("write");
    let out = mesh(tmp.path(), &["lint", "c/a.odcs.yaml", "./c/", "c"]);
    assert!(stdout(&out).contains("checked 1 file:"), "{}", stdout(&out));
}

#[test]
fn gitignored_files_are_not_linted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fs::write(root.join(".gitignore"), "build/\n").expect("write");
    fs::create_dir_all(root.join("build")).expect("mkdir");
    fs::write(root.join("build/copy.odcs.yaml"), "not: [valid\n").expect("write");
    fs::write(
        root.join("ok.odcs.yaml"),
        "kind: DataContract\napiVersion: v3.1.0\nid: x\nversion: 1.0.0\nstatus: active\n",
    )
    .expect("write");
    let out = mesh(root, &["lint", "."]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn missing_paths_unreadable_files_and_bad_flags_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();

    let out = mesh(root, &["lint", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("mesh: error: cannot read no/such/dir"),
        "{}",
        stderr(&out)
    );

    let out = mesh(root, &["lint"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty folder has nothing to lint"
    );
    assert!(
        stderr(&out).contains("no data contracts or data products found"),
        "{}",
        stderr(&out)
    );

    fs::write(root.join("latin1.odcs.yaml"), b"id: caf\xe9\n").expect("write");
    let out = mesh(root, &["lint", "latin1.odcs.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));

    let out = mesh(root, &["lint", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));

    // The other inputs are still linted, and the run still exits 2.
    fs::write(
        root.join("ok.odcs.yaml"),
        "kind: DataContract\napiVersion: v3.1.0\nid: x\nversion: 1.0.0\nstatus: active\n",
    )
    .expect("write");
    let out = mesh(root, &["lint", "ok.odcs.yaml", "missing.odcs.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("checked 1 file: no problems"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("cannot read missing.odcs.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_lists_the_commands_that_exist() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = mesh(tmp.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for command in ["init", "lint"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(command)),
            "--help lacks {command}:\n{text}"
        );
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    // Enough findings that the output outgrows the pipe buffer after the reader has gone.
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..300 {
        fs::write(
            tmp.path().join(format!("c{i:03}.odcs.yaml")),
            "kind: DataContract\nfoo: 1\nbar: 2\n",
        )
        .expect("write");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["lint", "."])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("some output");
    // Dropping our end closed the pipe; mesh must stop quietly.
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "nothing on stderr for a closed pipe: {err}");
    assert_ne!(out.status.code(), Some(2), "{err}");
}
