//! `mesh init`: creates the workspace, never overwrites, and keeps `.mesh/` out of git.

use std::fs;

use crate::{mesh, stdout};

#[test]
fn init_creates_a_workspace_and_is_safe_to_repeat() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path().join("shop");

    let out = mesh(tmp.path(), &["init", "shop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Created mesh workspace"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("mesh lint ."),
        "prints what to do next: {}",
        stdout(&out)
    );
    let config = fs::read_to_string(ws.join("mesh.toml")).expect("mesh.toml");
    assert!(
        config.contains("url = \"sqlite://.mesh/catalog.db\""),
        "{config}"
    );
    assert!(config.contains("url = \"file://.mesh/data\""), "{config}");
    assert!(ws.join(".mesh/data").is_dir());
    // The catalog exists, with the deployment's masking key (its fingerprint shown, never it).
    assert!(ws.join(".mesh/catalog.db").is_file());
    assert!(stdout(&out).contains("masking key "), "{}", stdout(&out));
    let ignore = fs::read_to_string(ws.join(".gitignore")).expect(".gitignore");
    assert!(ignore.lines().any(|l| l == ".mesh/"), "{ignore}");

    // A second run keeps the user's edits and does not duplicate the ignore entry.
    fs::write(ws.join("mesh.toml"), "# edited\n").expect("edit");
    let out = mesh(tmp.path(), &["init", "shop"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("already a mesh workspace"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs::read_to_string(ws.join("mesh.toml")).expect("mesh.toml"),
        "# edited\n"
    );
    let ignore = fs::read_to_string(ws.join(".gitignore")).expect(".gitignore");
    assert_eq!(ignore.matches(".mesh/").count(), 1, "{ignore}");
}

#[test]
fn init_appends_to_an_existing_gitignore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join(".gitignore"), "target").expect("write");
    let out = mesh(tmp.path(), &["init", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json output");
    assert_eq!(doc["config"], "mesh.toml");
    let fingerprint = doc["masking_key"]["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 16, "{doc}");
    // Running it again keeps the key.
    let again = mesh(tmp.path(), &["init", "--output", "json"]);
    let again: serde_json::Value = serde_json::from_str(&stdout(&again)).expect("json output");
    assert_eq!(again["masking_key"]["fingerprint"], fingerprint);
    assert_eq!(
        fs::read_to_string(tmp.path().join(".gitignore")).expect("read"),
        "target\n# mesh: local catalog and data\n.mesh/\n"
    );
}

/// CI systems set a variable that is not configured to the empty string (GitHub Actions'
/// `MESH_SERVER: ${{ vars.MESH_SERVER }}`): empty reads as unset, never as a value.
#[test]
fn empty_settings_in_the_environment_read_as_unset() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    assert_eq!(crate::code(&mesh(ws, &["init"])), 0);
    let out = crate::mesh_with_env(
        ws,
        &["plan"],
        &[
            ("MESH_CATALOG", ""),
            ("MESH_SERVER", ""),
            ("MESH_TOKEN", ""),
            ("MESH_STORAGE", ""),
        ],
    );
    assert_eq!(
        crate::code(&out),
        0,
        "{}{}",
        stdout(&out),
        crate::stderr(&out)
    );
    // A value pasted with its line break is the value.
    let url = format!("sqlite://{}\n", ws.join(".mesh/catalog.db").display());
    let out = crate::mesh_with_env(ws, &["plan"], &[("MESH_CATALOG", url.as_str())]);
    assert_eq!(crate::code(&out), 0, "{}", crate::stderr(&out));
    assert!(
        !ws.join(".mesh/catalog.db\n").exists(),
        "a catalog was made at a path with a line break"
    );
}
