//! The guides' commands run, exactly as written: every ```sh block of a guide, in order, in one
//! bash session (`set -euo pipefail`) in a fresh folder, with this build's `mesh` first on the
//! PATH. A guide whose commands stop working fails here, not in a reader's terminal. The operator
//! guide runs against PostgreSQL and an S3 stand-in (skipped without them, failing under
//! `CI=true`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::code;

/// The guides whose commands are all run, and whether each needs PostgreSQL and S3.
const GUIDES: [(&str, bool); 4] = [
    ("docs/onboarding.md", false),
    ("docs/policies.md", false),
    ("docs/interop.md", false),
    ("docs/operations.md", true),
];

/// The environment of the operator guide: a fresh PostgreSQL database and S3 bucket.
fn services() -> Option<Vec<(String, String)>> {
    let endpoint = crate::s3::endpoint()?;
    let Ok(postgres) = std::env::var("MESH_TEST_POSTGRES_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "CI=true but MESH_TEST_POSTGRES_URL is not set");
        crate::notice("notice: MESH_TEST_POSTGRES_URL not set; skipping the operator guide");
        return None;
    };
    let database = format!("mesh_docs_{}", std::process::id());
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(mesh_catalog::store::PostgresStore::create_database(
            &postgres, &database, true,
        ))
        .expect("a fresh database");
    let bucket = format!("mesh-docs-{}", std::process::id());
    crate::s3::create_bucket(&endpoint, &bucket);
    Some(
        [
            ("MESH_CATALOG", url.as_str()),
            ("MESH_BUCKET", bucket.as_str()),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
    )
}

/// The ```sh blocks of a Markdown text, in order.
fn shell_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

#[test]
fn docs_commands_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mesh = Path::new(env!("CARGO_BIN_EXE_mesh"));
    let path = format!(
        "{}:{}",
        mesh.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (guide, needs_services) in GUIDES {
        let env = if needs_services {
            match services() {
                Some(env) => env,
                None => continue,
            }
        } else {
            Vec::new()
        };
        let file = guide.trim_start_matches("docs/");
        assert!(
            readme.contains(&format!("(docs/{file})")),
            "the README does not link {guide}"
        );
        let text = std::fs::read_to_string(root.join(guide)).unwrap();
        let blocks = shell_blocks(&text);
        assert!(!blocks.is_empty(), "{guide} has no ```sh block");
        let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
        let tmp = tempfile::tempdir().unwrap();
        // Its own process group: servers a guide starts in the background go when it ends,
        // however it ends.
        let child = Command::new("bash")
            .args(["-c", &script])
            .current_dir(tmp.path())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("MESH_CATALOG")
            .env_remove("MESH_SERVER")
            .env_remove("MESH_TOKEN")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs");
        let group = child.id();
        let out = child.wait_with_output().expect("bash ends");
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{group}")])
            .stderr(std::process::Stdio::null())
            .status();
        assert_eq!(
            code(&out),
            0,
            "{guide}: a command failed\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shell_blocks_are_found_in_order() {
    let text = "intro\n```sh\na\nb\n```\n```text\nnot run\n```\n  ```sh\nc\n  ```\n";
    assert_eq!(shell_blocks(text), ["a\nb\n", "c\n"]);
}
