//! `mesh init [DIR]`: makes a folder a mesh workspace — a `mesh.toml` with the catalog and storage
//! locations (embedded defaults: SQLite and local files under `.mesh/`), the `.mesh/` folder
//! itself, and a `.gitignore` entry so local state never lands in git. Safe to run twice: it
//! never overwrites an existing file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::output::{self, LOCATION, OK, paint};
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workspace folder (created if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// The settings file every command reads from the workspace root.
pub(crate) const CONFIG_FILE: &str = "mesh.toml";

const CONFIG: &str = r#"# mesh workspace settings. Relative paths are relative to this file.

[catalog]
# Where products, contracts, versions, grants and lineage are registered.
# sqlite://<file> (embedded, the default) or postgres://user@host:port/database
url = "sqlite://.mesh/catalog.db"

[storage]
# Where output ports' Delta tables are written.
# file://<folder> (the default) or s3://bucket/prefix
url = "file://.mesh/data"
"#;

const GITIGNORE_ENTRY: &str = ".mesh/";

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut created = Vec::new();
    let mut kept = Vec::new();

    let config = dir.join(CONFIG_FILE);
    if write_new(&config, CONFIG)? {
        created.push(CONFIG_FILE);
    } else {
        kept.push(CONFIG_FILE);
    }
    for sub in [".mesh", ".mesh/data"] {
        let path = dir.join(sub);
        if path.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        if sub == ".mesh" {
            created.push(".mesh/");
        }
    }
    if ensure_gitignored(&dir.join(".gitignore"))? {
        created.push(".gitignore entry .mesh/");
    }

    // The catalog, and with it the deployment's masking key (`hash` masks are HMAC-SHA256
    // under it). Any command would make both on first use; init makes them now.
    let masking_key = crate::runtime()?.block_on(async {
        let catalog = crate::workspace::CatalogArgs::of_workspace(&config)?
            .open()
            .await?;
        catalog
            .masking_key_info(&mesh_catalog::Principal::local())
            .await
            .map_err(anyhow::Error::from)
    });
    let masking_key = match masking_key {
        Ok(info) => Some(info),
        Err(e) => {
            output::warning(&format!(
                "the catalog was not created now (it will be on first use): {e:#}"
            ));
            None
        }
    };

    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "workspace": root.display().to_string(),
                "config": CONFIG_FILE,
                "created": created,
                "kept": kept,
                "masking_key": masking_key,
            });
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        OutputFormat::Text => print_text(&root, &created, &kept, masking_key.as_ref())?,
    }
    Ok(Outcome::Ok)
}

fn print_text(
    root: &Path,
    created: &[&str],
    kept: &[&str],
    masking_key: Option<&mesh_catalog::tokens::MaskingKeyInfo>,
) -> anyhow::Result<()> {
    let mut out = output::stdout();
    if kept.contains(&CONFIG_FILE) {
        writeln!(
            out,
            "{} is already a mesh workspace ({CONFIG_FILE} kept as is)",
            paint(LOCATION, &root.display().to_string())
        )?;
    } else {
        writeln!(
            out,
            "{} mesh workspace in {}",
            paint(OK, "Created"),
            paint(LOCATION, &root.display().to_string())
        )?;
    }
    for item in created {
        writeln!(out, "  + {item}")?;
    }
    if let Some(key) = masking_key {
        writeln!(
            out,
            "  masking key {} (made {}; `mesh masking-key rotate` replaces it)",
            key.fingerprint, key.created_at
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Next:")?;
    writeln!(
        out,
        "  1. Put each data product in its own folder: <domain>/<product>/product.odps.yaml,"
    )?;
    writeln!(
        out,
        "     with one ODCS contract per output port in contracts/<port>.odcs.yaml"
    )?;
    writeln!(
        out,
        "     (what to declare: docs/data-product-standard.md)."
    )?;
    writeln!(
        out,
        "  2. mesh lint .            check every contract and product, with file:line:col"
    )?;
    writeln!(
        out,
        "  3. mesh lint --strict .   also require what publishing needs (owner, domain, contracts)"
    )?;
    out.flush()?;
    Ok(())
}

/// Writes `contents` to `path` unless it exists; `true` when written.
fn write_new(path: &Path, contents: &str) -> anyhow::Result<bool> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(contents.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Adds `.mesh/` to a `.gitignore` (creating it) unless an equivalent line is there; `true` when
/// the file changed.
fn ensure_gitignored(path: &Path) -> anyhow::Result<bool> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let covered = existing
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, ".mesh" | ".mesh/" | "/.mesh" | "/.mesh/"));
    if covered {
        return Ok(false);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# mesh: local catalog and data\n");
    text.push_str(GITIGNORE_ENTRY);
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}
