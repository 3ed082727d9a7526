//! The user's files: text read as UTF-8 (a byte-order mark dropped), and product folders read into
//! the bundle the catalog publishes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_catalog::{Bundle, Source};

pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

/// Reads a product folder (or a descriptor file and its folder) into a bundle.
pub(crate) fn load_bundle(path: &Path) -> anyhow::Result<Bundle> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (dir, descriptor) = if meta.is_file() {
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            path.to_path_buf(),
        )
    } else {
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && has_suffix(p, ".odps.yaml"))
            .collect();
        found.sort();
        match found.len() {
            1 => (path.to_path_buf(), found.remove(0)),
            0 => bail!(
                "no data product descriptor (*.odps.yaml) in {}",
                path.display()
            ),
            _ => bail!(
                "more than one data product descriptor in {}: {}",
                path.display(),
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    let mut contracts = Vec::new();
    for entry in ignore::WalkBuilder::new(&dir).require_git(false).build() {
        let entry = entry.with_context(|| format!("cannot search {}", dir.display()))?;
        let p = entry.path();
        if p.is_file() && has_suffix(p, ".odcs.yaml") {
            contracts.push(Source {
                path: shown(p),
                text: read_text(p)?,
            });
        }
    }
    contracts.sort_by(|a, b| a.path.cmp(&b.path));
    // The pipeline is published with the product (the orchestrator runs the published one).
    let transform_path = dir.join("transform.sql");
    let transform = if transform_path.is_file() {
        Some(Source {
            path: shown(&transform_path),
            text: read_text(&transform_path)?,
        })
    } else {
        None
    };
    Ok(Bundle {
        descriptor: Source {
            path: shown(&descriptor),
            text: read_text(&descriptor)?,
        },
        contracts,
        transform,
    })
}

fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(suffix) || n.ends_with(&suffix.replace(".yaml", ".yml")))
}

fn shown(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

/// `text` as a YAML scalar: plain when that reads back the same, else double-quoted.
pub(crate) fn yaml_text(text: &str) -> String {
    let plain = !text.is_empty()
        && !text.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c) || c.is_whitespace())
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with(':')
        && !text.ends_with(' ');
    if plain {
        text.to_owned()
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}
