//! A product's pipeline, as `mesh run` and the orchestrator run it: the published version's
//! sources and input ports turned into the engine's inputs (each source confined to the product
//! folder or a registered location, each input port read through the one read decision), the
//! catalog as the run's ledger, and the fingerprint of what a run would read and run (so an
//! unchanged scheduled run is skipped, with no new Delta version).

use std::path::{Path, PathBuf};

use mesh_catalog::runs::{RunEnd as CatalogEnd, RunInput, RunStart};
use mesh_catalog::{Catalog, Principal};
use mesh_engine::Location;
use mesh_engine::mask::Mask;
use mesh_engine::pipeline::{Begun, Input, Ledger, OpenRun, RunEnd, RunPlan};
use sha2::Digest as _;

use crate::{ResolvedInput, ResolvedSource};

/// Why a pipeline's inputs could not be made ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

fn fail(message: String) -> SourceError {
    SourceError(message)
}

/// This machine's name, for the owner of a run.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Who owns the runs this process starts: `host:pid`.
pub fn owner() -> String {
    format!("{}:{}", host(), std::process::id())
}

/// Whether the process that owns an open run is gone: on this host, its pid is not running;
/// elsewhere, it has not been heard of for ten minutes.
pub fn dead(run: &OpenRun) -> bool {
    let (run_host, pid) = run
        .owner
        .rsplit_once(':')
        .unwrap_or((run.owner.as_str(), ""));
    if run_host == host() {
        return match pid.parse::<u32>() {
            Ok(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => true,
        };
    }
    chrono::DateTime::parse_from_rfc3339(&run.heartbeat_at)
        .map(|at| chrono::Utc::now().signed_duration_since(at) > chrono::Duration::minutes(10))
        .unwrap_or(true)
}

/// The catalog itself as a run's ledger (in the server's process: the orchestrator's runs).
#[derive(Debug, Clone)]
pub struct CatalogLedger {
    pub catalog: Catalog,
    pub who: Principal,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[async_trait::async_trait]
impl Ledger for CatalogLedger {
    async fn begin(&self, plan: &RunPlan) -> Result<Begun, String> {
        let run = self
            .catalog
            .begin_run(&self.who, &run_start(plan))
            .await
            .map_err(text)?;
        Ok(Begun {
            run: run.id,
            location: run.location,
        })
    }

    async fn committing(&self, run: &str, delta_version: i64) -> Result<(), String> {
        self.catalog
            .committing_run(&self.who, run, delta_version)
            .await
            .map(|_| ())
            .map_err(text)
    }

    async fn finish(&self, run: &str, end: &RunEnd) -> Result<(), String> {
        self.catalog
            .finish_run(&self.who, run, &run_end(end))
            .await
            .map(|_| ())
            .map_err(text)
    }

    async fn open_runs(&self, product: &str, port: &str) -> Result<Vec<OpenRun>, String> {
        let runs = self
            .catalog
            .open_runs(&self.who, product, port)
            .await
            .map_err(text)?;
        Ok(runs
            .into_iter()
            .map(|r| OpenRun {
                id: r.id,
                owner: r.owner,
                heartbeat_at: r.heartbeat_at,
                location: r.location,
            })
            .collect())
    }

    async fn settle(&self, run: &str, delta_version: Option<i64>) -> Result<(), String> {
        self.catalog
            .settle_run(&self.who, run, delta_version)
            .await
            .map(|_| ())
            .map_err(text)
    }

    async fn heartbeat(&self, run: &str) -> Result<(), String> {
        self.catalog
            .heartbeat_run(&self.who, run)
            .await
            .map(|_| ())
            .map_err(text)
    }

    async fn lineage(&self, event: &serde_json::Value) -> Result<(), String> {
        self.catalog
            .ingest_lineage(&self.who, event)
            .await
            .map(|_| ())
            .map_err(text)
    }
}

/// What the catalog records when a run begins.
pub fn run_start(plan: &RunPlan) -> RunStart {
    RunStart {
        product: plan.product.clone(),
        port: plan.port.clone(),
        location: (!plan.location.is_empty()).then(|| plan.location.clone()),
        inputs: plan
            .inputs
            .iter()
            .map(|i| RunInput {
                name: i.name.clone(),
                product: i.product.clone(),
                location: i.location.target.clone(),
                delta_version: i.delta_version,
            })
            .collect(),
        owner: plan.owner.clone(),
    }
}

/// What the catalog records when a run ends.
pub fn run_end(end: &RunEnd) -> CatalogEnd {
    CatalogEnd {
        delta_version: end.delta_version,
        rows_in: end.rows_in,
        rows_out: end.rows_out,
        bytes_out: end.bytes_out,
        checks: end.checks.clone(),
        error: end.error.clone(),
        skipped: end.skipped.clone(),
    }
}

/// The upstream ports a run reads, as the engine takes them.
pub fn input_ports(resolved: Vec<ResolvedInput>) -> Result<Vec<Input>, SourceError> {
    resolved
        .into_iter()
        .map(|input| {
            Ok(Input {
                location: Location::from_path(&input.location, Some("delta"))
                    .map_err(|e| fail(format!("input port `{}`: {e}", input.name)))?,
                delta_version: Some(input.delta_version),
                masks: input
                    .masks
                    .iter()
                    .filter_map(|(c, m)| Some((c.clone(), Mask::parse(m)?)))
                    .collect(),
                mask: input
                    .masks
                    .get("*")
                    .and_then(|m| Mask::parse(m))
                    .unwrap_or_default(),
                keys: input.mask_keys(),
                columns: input.columns,
                name: input.name,
                product: Some(input.product),
                contract: Some(input.contract),
                database: None,
            })
        })
        .collect()
}

/// A product's sources as the catalog allowed them (from its published version): a relative
/// path must stay in the product folder `dir` once links are resolved (without a folder, a
/// relative source cannot be read), and an absolute one under the registered location the
/// catalog found it under.
pub fn sources(
    allowed: Vec<ResolvedSource>,
    dir: Option<&Path>,
) -> Result<Vec<Input>, SourceError> {
    let root = dir
        .map(|dir| {
            std::fs::canonicalize(dir).map_err(|e| {
                fail(format!(
                    "cannot open the product folder {}: {e}",
                    dir.display()
                ))
            })
        })
        .transpose()?;
    let mut out = Vec::new();
    for source in allowed {
        // A database (the catalog checked its URL is under a location registered for the
        // domain): a table or a read-only query there.
        if let Some(relation) = database_relation(&source)? {
            let target = mesh_engine::db::Target::from_url(&source.path, &source.name)
                .map_err(|e| fail(format!("source `{}`: {}", source.name, e.reason)))?;
            let database = mesh_engine::db::source::DbSource {
                target,
                relation,
                incremental: source.incremental.clone(),
            };
            out.push(source_input(
                source.name,
                &source.path,
                Some("parquet"),
                Some(database),
            )?);
            continue;
        }
        // Absolute, so the run records (and OpenLineage names) where the data really is.
        let local = source.path.strip_prefix("file://").unwrap_or(&source.path);
        let path = match (&source.location_url, local.contains("://")) {
            (_, true) => source.path.clone(),
            (Some(location), false) => {
                let name = source.location.as_deref().unwrap_or_default();
                let folder = location.strip_prefix("file://").ok_or_else(|| {
                    fail(format!(
                        "source `{}`: location `{name}` ({location}) is not a folder",
                        source.name
                    ))
                })?;
                let folder = std::fs::canonicalize(folder)
                    .map_err(|e| fail(format!("location `{name}`: cannot read {folder}: {e}")))?;
                confine(&source.name, Path::new(local), &folder, &|real| {
                    format!(
                        "leads to {}, outside location `{name}` ({location}); a platform admin registers locations with: mesh location add NAME URL --domain DOMAIN",
                        real.display()
                    )
                })?
            }
            (None, false) => {
                let Some(root) = &root else {
                    return Err(fail(format!(
                        "source `{}` is a file of the product's folder ({}), and this server has no checkout of it: give `mesh serve --workspace DIR`, or read the data from a registered location (mesh location add NAME URL --domain DOMAIN)",
                        source.name, source.path
                    )));
                };
                confine(&source.name, &root.join(&source.path), root, &|real| {
                    format!(
                        "leads to {}, outside the product folder; data elsewhere is read from a registered location: mesh location add NAME URL --domain DOMAIN",
                        real.display()
                    )
                })?
            }
        };
        out.push(source_input(
            source.name,
            &path,
            source.format.as_deref(),
            None,
        )?);
    }
    Ok(out)
}

/// A source (files, or a database's table or query) as the engine reads it: no upstream port,
/// nothing masked.
fn source_input(
    name: String,
    path: &str,
    format: Option<&str>,
    database: Option<mesh_engine::db::source::DbSource>,
) -> Result<Input, SourceError> {
    Ok(Input {
        location: Location::from_path(path, format)
            .map_err(|e| fail(format!("source `{name}`: {e}")))?,
        name,
        product: None,
        contract: None,
        delta_version: None,
        columns: None,
        masks: Vec::new(),
        mask: Mask::Null,
        keys: Default::default(),
        database,
    })
}

/// What a database source reads: its `table`, or its `query` (one read-only query); `None` for
/// a source of files.
fn database_relation(
    source: &ResolvedSource,
) -> Result<Option<mesh_engine::db::source::Relation>, SourceError> {
    use mesh_engine::db::source::Relation;
    let scheme = source
        .path
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let database = matches!(
        scheme.as_deref(),
        Some("postgres" | "postgresql" | "mysql" | "mariadb" | "sqlite")
    );
    if !database {
        if source.table.is_some() || source.query.is_some() || source.incremental.is_some() {
            return Err(fail(format!(
                "source `{}`: `table`, `query` and `incremental` are for database sources (postgres://, mysql://, sqlite://)",
                source.name
            )));
        }
        return Ok(None);
    }
    match (&source.table, &source.query) {
        (Some(table), None) => Ok(Some(Relation::Table(table.clone()))),
        (None, Some(query)) => Ok(Some(Relation::Query(query.clone()))),
        _ => Err(fail(format!(
            "source `{}` reads a database: give it a `table` or a `query` (not both)",
            source.name
        ))),
    }
}

/// Past this many entries under one source, a walk stops (a source that large belongs in object
/// storage).
const MAX_ENTRIES: usize = 1_000_000;

/// `path` (a file, a folder or a glob) as the engine should read it, once everything it could
/// read — the path itself, and every file and folder under it, links followed — is known to be
/// inside `root`; `outside` says why not. (Links are checked now; one made between this check and
/// the read is not: keep writes to source folders to their domain.)
fn confine(
    source: &str,
    path: &Path,
    root: &Path,
    outside: &dyn Fn(&Path) -> String,
) -> Result<String, SourceError> {
    let text = path.display().to_string();
    // A glob reads what matches under the folder before its first pattern character.
    let (base, pattern) = match text.find(['*', '?', '[']) {
        Some(i) => {
            let cut = text[..i].rfind('/').unwrap_or(0);
            (text[..cut].to_owned(), text[cut..].to_owned())
        }
        None => (text.clone(), String::new()),
    };
    let real = std::fs::canonicalize(&base)
        .map_err(|e| fail(format!("source `{source}`: cannot read {base}: {e}")))?;
    if !real.starts_with(root) {
        return Err(fail(format!("source `{source}` {}", outside(&real))));
    }
    walk(source, &real, &mut |entry, target| {
        if target.starts_with(root) {
            Ok(())
        } else {
            Err(fail(format!(
                "source `{source}`: {} {}",
                entry.display(),
                outside(target)
            )))
        }
    })?;
    Ok(format!("{}{pattern}", real.display()))
}

/// Visits every entry under `real` (links followed, each folder once) with its resolved target.
fn walk(
    source: &str,
    real: &Path,
    visit: &mut dyn FnMut(&Path, &Path) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    let mut folders = vec![real.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    let mut entries = 0;
    while let Some(folder) = folders.pop() {
        if !folder.is_dir() || !seen.insert(folder.clone()) {
            continue;
        }
        let listing = std::fs::read_dir(&folder).map_err(|e| {
            fail(format!(
                "source `{source}`: cannot read {}: {e}",
                folder.display()
            ))
        })?;
        for entry in listing {
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(fail(format!(
                    "source `{source}` holds more than {MAX_ENTRIES} files and folders"
                )));
            }
            let entry = entry.map_err(|e| {
                fail(format!(
                    "source `{source}`: cannot read {}: {e}",
                    folder.display()
                ))
            })?;
            // A link that leads nowhere reads nothing.
            let Ok(target) = std::fs::canonicalize(entry.path()) else {
                continue;
            };
            visit(&entry.path(), &target)?;
            if target.is_dir() {
                folders.push(target);
            }
        }
    }
    Ok(())
}

/// A hash of what a run of a published version would read and run: the version (its
/// descriptor, contracts and SQL), each input port's table and Delta version, and each file
/// source's files (names, sizes, modification times). `None` when it cannot be known without
/// running (a database source, or an object store path): such a run always runs.
pub fn fingerprint(digest: &str, inputs: &[Input]) -> Option<String> {
    let mut hash = sha2::Sha256::new();
    hash.update(digest.as_bytes());
    for input in inputs {
        hash.update(b"\0input\0");
        hash.update(input.name.as_bytes());
        if input.database.is_some() {
            return None;
        }
        if let Some(version) = input.delta_version {
            hash.update(input.location.target.as_bytes());
            hash.update(version.to_le_bytes());
            continue;
        }
        let target = input.location.target.as_str();
        if target.contains("://") && !target.starts_with("file://") {
            return None;
        }
        let local = target.strip_prefix("file://").unwrap_or(target);
        // A glob: every file under the folder before its first pattern character.
        let base = match local.find(['*', '?', '[']) {
            Some(i) => PathBuf::from(&local[..local[..i].rfind('/').unwrap_or(0)]),
            None => PathBuf::from(local),
        };
        let mut files = Vec::new();
        let mut stat = |path: &Path| {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.is_file()
            {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                files.push((path.display().to_string(), meta.len(), modified));
            }
        };
        stat(&base);
        walk(&input.name, &base, &mut |_, target| {
            stat(target);
            Ok(())
        })
        .ok()?;
        files.sort();
        for (path, len, modified) in files {
            hash.update(path.as_bytes());
            hash.update(len.to_le_bytes());
            hash.update(modified.to_le_bytes());
        }
    }
    Some(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The columns a contract partitions by (`partitioned: true`, in `partitionKeyPosition`
/// order).
pub fn partitions(contract: &mesh_model::odcs::Contract) -> Vec<String> {
    let mut keyed: Vec<(i64, String)> = contract
        .schema
        .first()
        .map(|o| {
            o.properties
                .iter()
                .filter(|p| p.partitioned == Some(true))
                .map(|p| {
                    (
                        p.partition_key_position.unwrap_or(i64::MAX),
                        p.name().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    keyed.sort();
    keyed.into_iter().map(|(_, n)| n).collect()
}

/// A descriptor's `retentionDays` custom property (JSON).
pub fn retention_days(descriptor: &serde_json::Value) -> Option<i64> {
    descriptor["customProperties"]
        .as_array()?
        .iter()
        .find(|cp| cp["property"] == mesh_model::names::props::RETENTION_DAYS)
        .and_then(|cp| cp["value"].as_i64())
}
