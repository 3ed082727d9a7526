//! The guides' commands run, exactly as written: every ```sh block of a guide, in order, in one
//! bash session (`set -euo pipefail`) in a fresh folder, with this build's `mesh` first on the
//! PATH. A guide whose commands stop working fails here, not in a reader's terminal.

use std::path::Path;
use std::process::Command;

use crate::code;

/// The guides whose commands are all run.
const GUIDES: [&str; 2] = ["docs/onboarding.md", "docs/policies.md"];

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
    for guide in GUIDES {
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
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(tmp.path())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("MESH_CATALOG")
            .output()
            .expect("bash runs");
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
