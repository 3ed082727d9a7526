//! The data plane of mesh: ODCS contracts checked against data on DataFusion.
//!
//! [`checks`] plans what to measure (pure), [`source`] finds and registers the data, [`exec`]
//! measures in as few scans as possible, [`report`] writes results other tools read.
//! [`test_contract`] is the whole of `mesh test`.

pub mod checks;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod db;
pub mod delta;
pub mod dup;
pub mod error;
pub mod exec;
pub mod import;
pub mod lineage;
pub mod mask;
pub mod pinned;
pub mod pipeline;
pub mod progress;
pub mod query;
pub mod report;
pub mod source;

use std::path::Path;
use std::sync::Arc;

use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use mesh_model::odcs::Contract;

pub use checks::Categories;
pub use error::{EngineError, QueryError};
pub use report::{CheckResult, Outcome, Run};
pub use source::{Format, Location};

/// What `mesh test` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// The contract server to read (default: the first).
    pub server: Option<String>,
    /// Read this path instead of a server.
    pub data: Option<String>,
    /// The format of `data` (default: from its extension).
    pub format: Option<String>,
    /// Only this schema object.
    pub model: Option<String>,
    pub categories: Categories,
    /// A SQL predicate restricting the rows checked.
    pub filter: Option<String>,
    /// Up to this many offending rows per failed check.
    pub failed_samples: usize,
    /// Only quality rules with one of these ids, tags or dimensions (all checks when all empty).
    pub select: Selection,
    /// Counts bytes read against the data's size, for a progress bar.
    pub progress: Option<std::sync::Arc<progress::Progress>>,
}

/// Quality rules picked by id, tag or dimension (`--quality-id`, `--tag`, `--dimension`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub quality_ids: Vec<String>,
    pub tags: Vec<String>,
    pub dimensions: Vec<String>,
}

impl Selection {
    fn is_empty(&self) -> bool {
        self.quality_ids.is_empty() && self.tags.is_empty() && self.dimensions.is_empty()
    }

    fn picks(&self, check: &checks::Check) -> bool {
        check
            .quality_id
            .as_ref()
            .is_some_and(|id| self.quality_ids.contains(id))
            || check.tags.iter().any(|t| self.tags.contains(t))
            || check
                .dimension
                .as_ref()
                .is_some_and(|d| self.dimensions.contains(d))
    }
}

/// How much memory the engine of this process may hold, and where it spills beyond that
/// (mesh.toml's `[engine]`).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes all sessions of the process share: sorts, joins and aggregations spill to disk
    /// past it, and whatever cannot spill fails with what held the memory. `None`: no limit.
    pub memory: Option<usize>,
    /// Where spill files go (the system's temporary folder when `None`).
    pub spill_dir: Option<std::path::PathBuf>,
}

/// The process's runtime, once [`limit`] has set it: one memory pool for every session, so the
/// limit holds for a transform and the checks running beside it together.
static RUNTIME: std::sync::OnceLock<Arc<RuntimeEnv>> = std::sync::OnceLock::new();

/// Sets the engine's limits for the rest of the process (the first call wins).
pub fn limit(limits: &Limits) -> Result<(), EngineError> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    let mut builder = RuntimeEnvBuilder::new();
    if let Some(bytes) = limits.memory {
        // Errors name the five biggest holders of memory.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(bytes),
            std::num::NonZeroUsize::new(5).unwrap_or(std::num::NonZeroUsize::MIN),
        );
        builder = builder.with_memory_pool(Arc::new(pool));
    }
    if let Some(dir) = &limits.spill_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            EngineError::Query(datafusion::error::DataFusionError::Execution(format!(
                "the spill folder {}: {e}",
                dir.display()
            )))
        })?;
        builder = builder.with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![dir.clone()])),
        );
    }
    let runtime = builder.build_arc().map_err(EngineError::Query)?;
    let _ = RUNTIME.set(runtime);
    Ok(())
}

/// The memory limit [`limit`] set, if any.
pub fn memory_limit() -> Option<usize> {
    RUNTIME
        .get()
        .and_then(|r| match r.memory_pool.memory_limit() {
            datafusion::execution::memory_pool::MemoryLimit::Finite(bytes) => Some(bytes),
            _ => None,
        })
}

/// A session tuned for checks: all cores, large batches, the process's limits.
pub fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_batch_size(64 * 1024)
        .with_information_schema(false);
    match RUNTIME.get() {
        Some(runtime) => SessionContext::new_with_config_rt(config, Arc::clone(runtime)),
        None => SessionContext::new_with_config(config),
    }
}

/// Checks `contract` against its data; `contract_dir` anchors relative server paths.
pub async fn test_contract(
    contract: &Contract,
    contract_dir: &Path,
    options: &TestOptions,
) -> Result<Run, EngineError> {
    let started = now_rfc3339();
    if let Some(model) = &options.model
        && contract.schema_object(model).is_none()
    {
        let known: Vec<&str> = contract.schema.iter().map(|o| o.name.as_str()).collect();
        return Err(EngineError::UnknownModel {
            name: model.clone(),
            known: known.join(", "),
        });
    }
    let mut plans = checks::plan(contract, options.model.as_deref(), options.categories);
    if !options.select.is_empty() {
        for plan in &mut plans {
            plan.checks.retain(|c| options.select.picks(c));
        }
    }
    // A database server: every check runs in the database.
    if options.data.is_none() {
        let server = match &options.server {
            Some(name) => contract.servers.iter().find(|s| s.server == *name),
            None => contract.servers.first(),
        };
        if let Some(server) = server
            && let Some(target) = db::Target::from_server(server, contract_dir)?
        {
            let mut conn = target.connect().await?;
            let mut results = Vec::new();
            for plan in &plans {
                let hidden = hidden_columns(contract, &plan.model);
                let keys = primary_key(contract, &plan.model);
                let db_options = db::checks::Options {
                    filter: options.filter.as_deref(),
                    failed_samples: options.failed_samples,
                    hidden: &hidden,
                    keys: &keys,
                };
                results.extend(db::checks::run_model(&target, &mut conn, plan, &db_options).await);
            }
            conn.close().await;
            return Ok(Run {
                run_id: uuid::Uuid::new_v4().to_string(),
                contract_id: contract.id.clone(),
                contract_version: contract.version.clone(),
                server: Some(server.server.clone()),
                started,
                finished: now_rfc3339(),
                results,
            });
        }
    }

    let (location, server) = match &options.data {
        Some(path) => (Location::from_path(path, options.format.as_deref())?, None),
        None => {
            let server = match &options.server {
                Some(name) => contract
                    .servers
                    .iter()
                    .find(|s| s.server == *name)
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            contract.servers.iter().map(|s| s.server.as_str()).collect();
                        EngineError::UnknownServer {
                            name: name.clone(),
                            known: known.join(", "),
                        }
                    })?,
                None => contract.servers.first().ok_or(EngineError::NoServer)?,
            };
            (
                Location::from_server(server, contract_dir)?,
                Some(server.server.clone()),
            )
        }
    };

    let ctx = session();
    if let Some(progress) = &options.progress {
        let local = std::sync::Arc::new(object_store::local::LocalFileSystem::new());
        let metered = progress::Metered::new(local, std::sync::Arc::clone(progress));
        let root = url::Url::parse("file:///").expect("a valid URL");
        ctx.register_object_store(&root, std::sync::Arc::new(metered));
    }
    let mut results = Vec::new();
    for plan in &plans {
        let loc = if plans.len() > 1 {
            location.for_model(&plan.physical_name)
        } else {
            location.clone()
        };
        let table = exec::TableInfo {
            name: plan.model.clone(),
            text: loc.format.text_read(),
        };
        let hidden = hidden_columns(contract, &plan.model);
        let keys = primary_key(contract, &plan.model);
        let registered = if table.text.is_some() {
            exec::TableInfo::text_table(&plan.model)
        } else {
            plan.model.clone()
        };
        match source::register(&ctx, &registered, &loc, options.progress.as_ref()).await {
            Ok(()) => {
                let run_options = exec::RunOptions {
                    filter: options.filter.as_deref(),
                    failed_samples: options.failed_samples,
                    hidden: &hidden,
                    keys: &keys,
                };
                results.extend(exec::run_model(&ctx, &table, &plan.checks, &run_options).await);
            }
            Err(e) => {
                let reason = e.to_string();
                results.extend(
                    plan.checks
                        .iter()
                        .map(|c| CheckResult::new(c.clone(), Outcome::Error, Some(reason.clone()))),
                );
            }
        }
    }
    Ok(Run {
        run_id: uuid::Uuid::new_v4().to_string(),
        contract_id: contract.id.clone(),
        contract_version: contract.version.clone(),
        server,
        started,
        finished: now_rfc3339(),
        results,
    })
}

/// Columns never shown in failed samples: classified as sensitive.
pub(crate) fn hidden_columns(contract: &Contract, model: &str) -> Vec<String> {
    contract
        .schema_object(model)
        .map(|o| {
            o.properties
                .iter()
                .filter(|p| {
                    mesh_model::names::Sensitivity::of(p.classification.as_deref()).is_sensitive()
                })
                .map(|p| p.name().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The primary-key columns of a model, by position.
pub(crate) fn primary_key(contract: &Contract, model: &str) -> Vec<String> {
    let Some(object) = contract.schema_object(model) else {
        return Vec::new();
    };
    let mut keys: Vec<_> = object
        .properties
        .iter()
        .filter(|p| p.is_primary_key())
        .collect();
    keys.sort_by_key(|p| p.primary_key_position.unwrap_or(i64::MAX));
    keys.into_iter().map(|p| p.name().to_owned()).collect()
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
