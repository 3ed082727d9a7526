//! Write-audit-publish of a data product's output port on Delta Lake.
//!
//! [`run_port`] executes `transform.sql` over the product's inputs, writes the result as data
//! files of the port's Delta table **without committing them**, runs the port's contract checks
//! on exactly those files, and commits them as the table's new snapshot only when no blocking
//! check fails. A [`Ledger`] (the catalog) records the run before anything is written, is told
//! the Delta version about to be committed, and moves the port's snapshot when the run ends.
//! Every commit carries the run id (`mesh.run` in the Delta commit info), so a run whose process
//! died is settled from the Delta log by the next one ([`settle`]).
//!
//! Which checks block: schema checks and quality rules of severity error. Service levels
//! (freshness, retention) describe the pipeline's schedule, not the new data's validity: they
//! are reported, and monitored, but do not hold back the freshest data there is.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::datafile::writer::{DeltaWriter as DataWriter, WriterConfig};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use mesh_model::odcs::Contract;

use crate::checks::{self, Categories};
pub use crate::delta::{open, table_url};
use crate::error::{DeltaError, EngineError};
use crate::mask::{Mask, MaskKeys, masked};
use crate::report::{CheckResult, Outcome};

/// The key of the run id in a Delta commit's info.
pub const RUN_KEY: &str = "mesh.run";
/// The keys of the rows and bytes a run's commit wrote, in its commit info.
pub const ROWS_KEY: &str = "mesh.rows";
pub const BYTES_KEY: &str = "mesh.bytes";
/// The key of an incremental run's marks in its commit info: per source, the watermark column
/// and the greatest value read (`{"raw_orders": {"column": "id", "value": "1042"}}`). Kept with
/// the data, so a mark moves exactly when the rows it covers are committed.
pub const WATERMARKS_KEY: &str = "mesh.watermarks";

/// How often a run tells its ledger it is still at work: every minute, or every
/// `MESH_RUN_HEARTBEAT` seconds.
pub fn heartbeat_interval() -> std::time::Duration {
    std::env::var("MESH_RUN_HEARTBEAT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs_f64,
        )
}

/// A table a transform reads: a source (files) or an upstream port's Delta table at a version.
#[derive(Debug, Clone)]
pub struct Input {
    /// The table name in `transform.sql`.
    pub name: String,
    /// `domain.product` for an input port.
    pub product: Option<String>,
    /// The contract id of the upstream port, for an input port (its OpenLineage dataset name).
    pub contract: Option<String>,
    pub location: crate::source::Location,
    /// For an input port: the Delta version readers get (the catalog's snapshot).
    pub delta_version: Option<i64>,
    /// For an input port read through a grant with a column scope: the columns the transform
    /// sees; the others are there, masked as `masks` says (else `mask`). `None`: all.
    pub columns: Option<Vec<String>>,
    /// How each masked column is hidden (the contract's `mask` custom properties).
    pub masks: Vec<(String, Mask)>,
    /// How the other masked columns are hidden.
    pub mask: Mask,
    /// The keys of hashed columns (a mask whose key is missing is refused).
    pub keys: MaskKeys,
    /// A source in a database: read from there (`location` then only names it).
    pub database: Option<crate::db::source::DbSource>,
}

/// Where a transform runs. Either way the plan is DataFusion's; only the session differs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Executor {
    /// DataFusion in this process, on all cores.
    #[default]
    InProcess,
    /// Ballista: the physical plan is split into stages and sent to executors. Standalone runs a
    /// scheduler and an executor in this process; a cluster runs the same plan.
    #[cfg(feature = "ballista")]
    BallistaStandalone,
    /// A Ballista scheduler at `HOST:PORT` (`mesh cluster scheduler`), whose executors are other
    /// processes (`mesh cluster executor`): they read inputs from where the catalog says they are.
    #[cfg(feature = "ballista")]
    Ballista(String),
}

impl Executor {
    /// The session a transform runs in.
    async fn session(&self) -> Result<SessionContext, RunError> {
        match self {
            Executor::InProcess => Ok(crate::session()),
            #[cfg(feature = "ballista")]
            Executor::BallistaStandalone => crate::cluster::session(None)
                .await
                .map_err(|e| RunError::Transform(format!("starting Ballista: {e}"))),
            #[cfg(feature = "ballista")]
            Executor::Ballista(scheduler) => {
                // Ballista connects when the plan runs and then reports a transport error;
                // a scheduler that is not there is said so before anything starts.
                let reach = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    tokio::net::TcpStream::connect(scheduler.as_str()),
                )
                .await;
                let unreachable = match reach {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("no answer in 10 s".to_owned()),
                };
                if let Some(why) = unreachable {
                    return Err(RunError::Transform(format!(
                        "the Ballista scheduler at {scheduler} cannot be reached ({why}): is `mesh cluster scheduler` running there?"
                    )));
                }
                crate::cluster::session(Some(&format!("df://{scheduler}")))
                    .await
                    .map_err(|e| {
                        RunError::Transform(format!("the Ballista scheduler at {scheduler}: {e}"))
                    })
            }
        }
    }

    /// Whether plans leave this process (so inputs must be tables any executor can read).
    fn distributed(&self) -> bool {
        *self != Executor::InProcess
    }
}

/// What the ledger records when a run starts.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Where the transform runs.
    pub executor: Executor,
    pub product: String,
    pub port: String,
    /// The port's contract id: the output's OpenLineage dataset name.
    pub contract: String,
    /// The owning team, for OpenLineage's ownership facets.
    pub team: Option<String>,
    /// Where the runner expects the port's Delta table (empty: no expectation). The ledger
    /// names the table: [`run_port`] and [`rollback`] write where its `begin` says, and a ledger
    /// refuses an expectation that differs.
    pub location: String,
    pub inputs: Vec<Input>,
    /// `host:pid`.
    pub owner: String,
    /// Read incremental sources in full and replace the table, as on a first run.
    pub full_refresh: bool,
}

/// How a run ended, for the ledger.
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    pub delta_version: Option<i64>,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    pub bytes_out: Option<i64>,
    pub checks: Option<serde_json::Value>,
    pub error: Option<String>,
    /// Why the run had nothing to commit (not a failure).
    pub skipped: Option<String>,
}

/// A run not finished, as the ledger knows it.
#[derive(Debug, Clone)]
pub struct OpenRun {
    pub id: String,
    pub owner: String,
    pub heartbeat_at: String,
    pub location: String,
}

/// Where runs are recorded (the catalog, local or over HTTP). Errors are messages for people.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// Records the run; returns its id and where the port's table is. Refused while another
    /// run of the port is open.
    async fn begin(&self, plan: &RunPlan) -> Result<Begun, String>;
    async fn committing(&self, run: &str, delta_version: i64) -> Result<(), String>;
    async fn finish(&self, run: &str, end: &RunEnd) -> Result<(), String>;
    async fn open_runs(&self, product: &str, port: &str) -> Result<Vec<OpenRun>, String>;
    /// Settles a run whose process is gone: committed as this version, or not at all.
    async fn settle(&self, run: &str, delta_version: Option<i64>) -> Result<(), String>;
    /// Says the run is still at work (every [`heartbeat_interval`] while it runs).
    async fn heartbeat(&self, run: &str) -> Result<(), String>;
    /// Records an OpenLineage RunEvent of a run (START, then COMPLETE or FAIL).
    async fn lineage(&self, event: &serde_json::Value) -> Result<(), String>;
}

/// A run the ledger recorded: its id, and the table it writes (the ledger's to decide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub run: String,
    pub location: String,
}

/// Why a run did not publish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The ledger refused or failed (e.g. another run is open).
    #[error("{0}")]
    Ledger(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the Delta table at {location}: {reason}")]
    Delta { location: String, reason: String },
    #[error("transform.sql: {0}")]
    Transform(String),
}

fn delta(location: &str) -> impl Fn(deltalake::DeltaTableError) -> RunError + '_ {
    move |e| DeltaError::at(location)(e).into()
}

impl From<DeltaError> for RunError {
    fn from(e: DeltaError) -> RunError {
        RunError::Delta {
            location: e.location,
            reason: e.reason,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run: String,
    /// The port's Delta table, where the ledger said.
    pub location: String,
    /// The Delta version committed, when it published.
    pub delta_version: Option<i64>,
    pub rows_out: u64,
    pub bytes_out: u64,
    pub checks: Vec<CheckResult>,
    /// The blocking checks that failed (empty when it published).
    pub blocking: Vec<CheckResult>,
    /// Rows read from the sources and input ports (unknown on a distributed executor, whose
    /// scans report to their own process).
    pub rows_in: Option<u64>,
    /// Why nothing was committed although nothing failed: incremental sources without new rows.
    pub skipped: Option<String>,
    /// Bytes the transform's sorts, joins and aggregations spilled to disk (in this process).
    pub spilled_bytes: u64,
    /// The output was too big to hold: it streamed to its files, and the checks read them.
    pub streamed: bool,
}

/// The steps of a run, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Transforming,
    Writing,
    /// Still writing: this many rows so far (said every million rows).
    Written(u64),
    Checking,
    Committing,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Transforming => f.write_str("transforming"),
            Stage::Writing => f.write_str("writing uncommitted Delta files"),
            Stage::Written(rows) => write!(f, "writing uncommitted Delta files: {rows} rows"),
            Stage::Checking => f.write_str("checking the contract on them"),
            Stage::Committing => f.write_str("committing"),
        }
    }
}

/// Rows the leaves of an executed plan (its scans) produced.
fn rows_read(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> u64 {
    let children = plan.children();
    if children.is_empty() {
        return plan
            .metrics()
            .and_then(|m| m.output_rows())
            .unwrap_or_default() as u64;
    }
    children.into_iter().map(rows_read).sum()
}

/// Bytes an executed plan's operators spilled to disk.
fn spilled_bytes(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> u64 {
    let own = plan
        .metrics()
        .and_then(|m| m.spilled_bytes())
        .unwrap_or_default() as u64;
    own + plan.children().into_iter().map(spilled_bytes).sum::<u64>()
}

/// The run's output schema as Delta's.
fn kernel_schema(schema: &SchemaRef, location: &str) -> Result<StructType, RunError> {
    schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| RunError::Delta {
            location: location.to_owned(),
            reason: format!("the output's schema has no Delta form: {e}"),
        })
}

/// Opens the port's table, creating it (an empty version 0) with `schema` when it is not there.
pub async fn open_or_create(
    location: &str,
    schema: &SchemaRef,
    partition_by: &[String],
) -> Result<DeltaTable, RunError> {
    let table = open(location).await?;
    if table.version().is_some() {
        return Ok(table);
    }
    let kernel = kernel_schema(schema, location)?;
    table
        .create()
        .with_columns(kernel.fields().cloned())
        .with_partition_columns(partition_by.to_vec())
        .with_save_mode(SaveMode::Ignore)
        .await
        .map_err(delta(location))
}

/// The data files of a new snapshot, written but not committed, and the shape they have.
#[derive(Debug)]
pub struct Staged {
    actions: Vec<Action>,
    /// The new files' paths inside the table.
    paths: Vec<String>,
    /// The schema the files were written with (the table's next schema).
    schema: SchemaRef,
    /// The table's partition columns.
    partition_by: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    /// The files add to the current version instead of replacing it.
    append: bool,
}

/// Why a run's output cannot become the next snapshot of the table it writes: readers of the
/// table's major version would lose a column or read a type they do not expect.
fn incompatible(location: &str, reason: String) -> RunError {
    RunError::Delta {
        location: location.to_owned(),
        reason: format!(
            "{reason}; within a major version a run may add columns and widen types (integers to \
             wider integers, FLOAT to DOUBLE, a DECIMAL to more digits), nothing else: publish \
             a new major version for a breaking change"
        ),
    }
}

/// Whether values of `old` are read unchanged as `new`: the same type (nullability of nested
/// fields aside), or one Delta's type widening allows.
fn widens(old: &DataType, new: &DataType) -> bool {
    use DataType as T;
    match (old, new) {
        (T::Int8, T::Int16 | T::Int32 | T::Int64)
        | (T::Int16, T::Int32 | T::Int64)
        | (T::Int32, T::Int64)
        | (T::Float32, T::Float64) => true,
        (T::Decimal128(p1, s1), T::Decimal128(p2, s2)) => s1 == s2 && p2 >= p1,
        (T::List(a), T::List(b)) | (T::LargeList(a), T::LargeList(b)) => {
            a.data_type() == b.data_type() || widens(a.data_type(), b.data_type())
        }
        (T::Struct(a), T::Struct(b)) => a.iter().all(|fa| {
            b.iter()
                .any(|fb| fb.name() == fa.name() && widens(fa.data_type(), fb.data_type()))
        }),
        (T::Map(a, _), T::Map(b, _)) => widens(a.data_type(), b.data_type()),
        _ => old == new || loose(old) == loose(new),
    }
}

/// `dt` with every nested field nullable (runs differ in what the planner can prove non-null).
fn loose(dt: &DataType) -> DataType {
    use datafusion::arrow::datatypes::Field;
    let field = |f: &Field| {
        Arc::new(
            f.clone()
                .with_nullable(true)
                .with_data_type(loose(f.data_type())),
        )
    };
    match dt {
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| field(f)).collect()),
        other => other.clone(),
    }
}

/// The schema a run writes, checked against the table's current one: every column of the
/// table is still there, of the same or a wider type. Columns may be added.
fn evolves(table: &DeltaTable, schema: &SchemaRef, location: &str) -> Result<(), RunError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow as _;
    let Ok(snapshot) = table.snapshot() else {
        return Ok(());
    };
    let current: datafusion::arrow::datatypes::Schema = snapshot
        .schema()
        .as_ref()
        .try_into_arrow()
        .map_err(|e| RunError::Delta {
            location: location.to_owned(),
            reason: format!("the table's schema has no Arrow form: {e}"),
        })?;
    for old in current.fields() {
        match schema.field_with_name(old.name()) {
            Err(_) => {
                return Err(incompatible(
                    location,
                    format!(
                        "this run's output has no column `{}`, which the published table has",
                        old.name()
                    ),
                ));
            }
            Ok(new) if !widens(old.data_type(), new.data_type()) => {
                return Err(incompatible(
                    location,
                    format!(
                        "column `{}` is {} in the published table and {} in this run's output",
                        old.name(),
                        old.data_type(),
                        new.data_type()
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// How the table wants its files written: Snappy, statistics on the columns its
/// `delta.dataSkipping*` properties name (the first 32 by default).
fn writer_config(table: &DeltaTable, schema: &SchemaRef, partition_by: &[String]) -> WriterConfig {
    use delta_kernel::table_properties::DataSkippingNumIndexedCols;
    let configuration = table
        .snapshot()
        .map(|s| s.metadata().configuration().clone())
        .unwrap_or_default();
    let indexed = configuration
        .get("delta.dataSkippingNumIndexedCols")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(32);
    let stats_columns = configuration
        .get("delta.dataSkippingStatsColumns")
        .map(|v| v.split(',').map(|c| c.trim().to_owned()).collect());
    WriterConfig::new(
        Arc::clone(schema),
        partition_by.to_vec(),
        None,
        None,
        None,
        DataSkippingNumIndexedCols::NumColumns(indexed),
        stats_columns,
    )
}

/// Writes `batches` (of `schema`) as data files of `table`, committing nothing and creating no
/// table: a run whose checks fail leaves no trace in the table, not even its schema. The files
/// replace every file of the current version when committed, or, when `append`, are added to
/// them. An existing table keeps its partition columns, and its schema may only evolve as
/// [`evolves`] allows; a new one takes `partition_by`.
///
/// The batches are taken as they come: memory holds a few batches per writer and the files
/// being written, never the whole output. A batch that is an error stops the writing; files
/// already written are deleted.
pub async fn stage(
    table: &DeltaTable,
    schema: &SchemaRef,
    partition_by: &[String],
    batches: impl futures::Stream<Item = Result<datafusion::arrow::record_batch::RecordBatch, RunError>>,
    location: &str,
    append: bool,
    written: &(dyn Fn(u64) + Send + Sync),
) -> Result<Staged, RunError> {
    use futures::StreamExt as _;
    let partition_by: Vec<String> = match table.snapshot() {
        Ok(snapshot) => {
            evolves(table, schema, location)?;
            snapshot.metadata().partition_columns().to_vec()
        }
        Err(_) => partition_by.to_vec(),
    };
    // As many lanes as there are cores, each a writer that streams its files to the store as
    // it encodes them; batches go to the lanes in turn through short queues.
    let config = writer_config(table, schema, &partition_by);
    let lanes = std::thread::available_parallelism().map_or(1, usize::from);
    let mut writers = tokio::task::JoinSet::new();
    let mut queues = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<datafusion::arrow::record_batch::RecordBatch>(2);
        queues.push(tx);
        let mut writer = DataWriter::new(table.object_store(), config.clone());
        writers.spawn(async move {
            while let Some(batch) = rx.recv().await {
                if let Err(e) = writer.write(&batch).await {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
            writer.close().await
        });
    }
    let mut rows: u64 = 0;
    let mut failed: Option<RunError> = None;
    let mut batches = std::pin::pin!(batches);
    let mut turn = 0usize;
    while let Some(batch) = batches.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        if batch.num_rows() == 0 {
            continue;
        }
        rows += batch.num_rows() as u64;
        // A lane whose writer failed has dropped its queue; its error is reported below.
        if queues[turn % lanes].send(batch).await.is_err() {
            break;
        }
        turn += 1;
        written(rows);
    }
    drop(queues);
    let mut adds = Vec::new();
    while let Some(lane) = writers.join_next().await {
        match lane {
            Ok(Ok(written)) => adds.extend(written),
            Ok(Err(e)) => {
                failed.get_or_insert(delta(location)(e));
            }
            Err(e) => {
                failed.get_or_insert(RunError::Delta {
                    location: location.to_owned(),
                    reason: format!("a writer stopped: {e}"),
                });
            }
        }
    }
    if let Some(e) = failed {
        // The lanes that finished wrote files nobody will commit.
        let store = table.object_store();
        for add in &adds {
            let _ = object_store::ObjectStoreExt::delete(
                &store,
                &deltalake::Path::from(add.path.as_str()),
            )
            .await;
        }
        return Err(e);
    }
    let paths = adds.iter().map(|a| a.path.clone()).collect();
    let bytes = adds.iter().map(|a| a.size.max(0) as u64).sum();
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let append = append && table.version().is_some();
    if table.version().is_some() && !append {
        let snapshot = table.snapshot().map_err(delta(location))?;
        actions.extend(
            snapshot
                .log_data()
                .iter()
                .map(|f| Action::Remove(f.remove_action(true))),
        );
    }
    Ok(Staged {
        actions,
        paths,
        schema: Arc::clone(schema),
        partition_by,
        rows,
        bytes,
        append,
    })
}

/// Deletes staged files that will not be committed. Nobody ever saw them (they are in no Delta
/// version); a file that cannot be deleted is left for `VACUUM`.
pub async fn discard(table: &DeltaTable, staged: &Staged) {
    let store = table.object_store();
    for path in &staged.paths {
        let _ = object_store::ObjectStoreExt::delete(&store, &deltalake::Path::from(path.as_str()))
            .await;
    }
}

/// Commits the staged files as the table's new version, tagged with the run id (and, for an
/// incremental run, its sources' `marks`); returns it. A table that is not there yet is created
/// first (an empty version 0, of the staged schema); a table whose schema the staged files
/// evolve gets the new schema in the same commit.
pub async fn commit(
    table: &DeltaTable,
    staged: Staged,
    run: &str,
    location: &str,
    marks: Option<&serde_json::Value>,
) -> Result<i64, RunError> {
    let created;
    let table = if table.version().is_some() {
        table
    } else {
        created = open_or_create(location, &staged.schema, &staged.partition_by).await?;
        &created
    };
    let snapshot = table.snapshot().map_err(delta(location))?;
    let partition_by: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let next = kernel_schema(&staged.schema, location)?;
    let mut actions = staged.actions;
    if snapshot.schema().as_ref() != &next {
        use deltalake::kernel::MetadataExt as _;
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&next)
            .map_err(|e| RunError::Delta {
                location: location.to_owned(),
                reason: format!("cannot evolve the table's schema: {e}"),
            })?;
        actions.insert(0, Action::Metadata(metadata));
    }
    let mut metadata = HashMap::from([
        (RUN_KEY.to_owned(), serde_json::Value::from(run)),
        (ROWS_KEY.to_owned(), serde_json::Value::from(staged.rows)),
        (BYTES_KEY.to_owned(), serde_json::Value::from(staged.bytes)),
    ]);
    if let Some(marks) = marks {
        metadata.insert(WATERMARKS_KEY.to_owned(), marks.clone());
    }
    let mode = if staged.append {
        SaveMode::Append
    } else {
        SaveMode::Overwrite
    };
    let done = CommitBuilder::default()
        .with_actions(actions)
        .with_app_metadata(metadata)
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Write {
                mode,
                partition_by: Some(partition_by),
                predicate: None,
            },
        )
        .await
        .map_err(delta(location))?;
    Ok(done.version() as i64)
}

/// Moves a port back to an earlier snapshot: a Delta RESTORE of `to_version`, committed (as a
/// new version, tagged like any run's commit) under a run of its own, so the catalog moves its
/// snapshot the same crash-safe way. Returns the new version.
pub async fn rollback(
    ledger: &dyn Ledger,
    plan: &RunPlan,
    to_version: i64,
) -> Result<i64, RunError> {
    let begun = ledger.begin(plan).await.map_err(RunError::Ledger)?;
    let run = begun.run;
    let plan = &RunPlan {
        location: begun.location,
        ..plan.clone()
    };
    let result = async {
        let table = open(&plan.location).await?;
        let latest = table.version().ok_or_else(|| RunError::Delta {
            location: plan.location.clone(),
            reason: "no Delta table there".into(),
        })?;
        if to_version < 0 || to_version as u64 > latest {
            return Err(RunError::Delta {
                location: plan.location.clone(),
                reason: format!("there is no version {to_version} (the latest is {latest})"),
            });
        }
        ledger
            .committing(&run, latest as i64 + 1)
            .await
            .map_err(RunError::Ledger)?;
        let properties = deltalake::kernel::transaction::CommitProperties::default()
            .with_metadata([(RUN_KEY.to_owned(), serde_json::Value::from(run.as_str()))]);
        let (restored, _) = table
            .restore()
            .with_version_to_restore(to_version as u64)
            .with_commit_properties(properties)
            .await
            .map_err(delta(&plan.location))?;
        let version = restored.version().unwrap_or_default() as i64;
        ledger
            .finish(
                &run,
                &RunEnd {
                    delta_version: Some(version),
                    ..RunEnd::default()
                },
            )
            .await
            .map_err(RunError::Ledger)?;
        Ok(version)
    }
    .await;
    if let Err(e) = &result {
        let end = RunEnd {
            error: Some(e.to_string()),
            ..RunEnd::default()
        };
        let _ = ledger.finish(&run, &end).await;
    }
    result
}

/// Deletes the table's data files that no version younger than `retention_days` needs (and
/// files no version ever committed, such as a killed run's), keeping version `keep` readable.
/// Returns how many files were deleted.
pub async fn vacuum(location: &str, retention_days: i64, keep: i64) -> Result<usize, RunError> {
    let table = open(location).await?;
    if table.version().is_none() {
        return Ok(0);
    }
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(chrono::Duration::days(retention_days.max(0)))
        .with_enforce_retention_duration(false)
        .with_keep_versions(&[keep.max(0) as u64])
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .await
        .map_err(delta(location))?;
    Ok(metrics.files_deleted.len())
}

/// The run that made version `version` of the Delta table at `location`: the `mesh.run` of the
/// version's commit info (`None` when the commit carries none). An error when there is no table
/// there or no such version in its log.
pub async fn committed_by(location: &str, version: i64) -> Result<Option<String>, RunError> {
    let info = commit_info(location, version).await?;
    Ok(info[RUN_KEY].as_str().map(str::to_owned))
}

/// The rows and bytes version `version` of the table at `location` wrote, as a run's commit
/// records them (`None` for a commit that does not say).
pub async fn written(location: &str, version: i64) -> Result<Option<(i64, i64)>, RunError> {
    let info = commit_info(location, version).await?;
    Ok(info[ROWS_KEY].as_i64().zip(info[BYTES_KEY].as_i64()))
}

/// The commit info of version `version` (`null` when it has none).
async fn commit_info(location: &str, version: i64) -> Result<serde_json::Value, RunError> {
    if version < 0 {
        return Err(RunError::Delta {
            location: location.to_owned(),
            reason: format!("version {version} is not a Delta version"),
        });
    }
    let table = open(location).await?;
    let bytes = table
        .log_store()
        .read_commit_entry(version as u64)
        .await
        .map_err(delta(location))?
        .ok_or_else(|| RunError::Delta {
            location: location.to_owned(),
            reason: format!("version {version} is not in the table's log"),
        })?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .find_map(|line| {
            let mut entry = serde_json::from_str::<serde_json::Value>(line).ok()?;
            entry.get_mut("commitInfo").map(serde_json::Value::take)
        })
        .unwrap_or(serde_json::Value::Null))
}

/// Deletes the table's data files that no version in its log has ever named and that are
/// older than `before`: what a run killed between writing its files and committing them left
/// behind (the catalog lets one run write a port at a time, so a run that has just committed
/// knows every such file is an orphan). Returns how many were deleted.
pub async fn sweep_orphans(
    location: &str,
    before: std::time::SystemTime,
) -> Result<usize, RunError> {
    use futures::TryStreamExt as _;
    let table = open(location).await?;
    let Some(latest) = table.version() else {
        return Ok(0);
    };
    let mut named: std::collections::HashSet<String> = table
        .snapshot()
        .map_err(delta(location))?
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect();
    let store = table.log_store();
    for version in 0..=latest {
        let Some(bytes) = store
            .read_commit_entry(version)
            .await
            .map_err(delta(location))?
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            for kind in ["add", "remove"] {
                if let Some(path) = entry[kind]["path"].as_str() {
                    named.insert(path.to_owned());
                    if let Ok(decoded) = urlencoding_decode(path) {
                        named.insert(decoded);
                    }
                }
            }
        }
    }
    let objects = table.object_store();
    let before: chrono::DateTime<chrono::Utc> = before.into();
    let files: Vec<object_store::ObjectMeta> =
        objects
            .list(None)
            .try_collect()
            .await
            .map_err(|e| RunError::Delta {
                location: location.to_owned(),
                reason: format!("cannot list the table's files: {e}"),
            })?;
    let mut deleted = 0;
    for file in files {
        let path = file.location.to_string();
        let hidden = path
            .split('/')
            .any(|part| part.starts_with('_') || part.starts_with('.'));
        if hidden || !path.ends_with(".parquet") || file.last_modified >= before {
            continue;
        }
        if named.contains(&path) || named.contains(file.location.as_ref()) {
            continue;
        }
        if object_store::ObjectStoreExt::delete(&objects, &file.location)
            .await
            .is_ok()
        {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// `%XX` escapes decoded (Delta logs store paths URL-encoded).
fn urlencoding_decode(path: &str) -> Result<String, std::string::FromUtf8Error> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// The version whose commit carries run `run`, among the table's last 100 commits.
pub async fn find_commit(location: &str, run: &str) -> Result<Option<i64>, RunError> {
    let table = open(location).await?;
    let Some(latest) = table.version() else {
        return Ok(None);
    };
    let latest = latest as i64;
    let store = table.log_store();
    let mut version = latest;
    while version >= 0 && latest - version < 100 {
        if let Some(bytes) = store
            .read_commit_entry(version as u64)
            .await
            .map_err(delta(location))?
        {
            let text = String::from_utf8_lossy(&bytes);
            let tagged = text.lines().any(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .is_some_and(|v| v["commitInfo"][RUN_KEY] == run)
            });
            if tagged {
                return Ok(Some(version));
            }
        }
        version -= 1;
    }
    Ok(None)
}

/// Settles the port's runs whose process is gone (`dead` decides from the owner and
/// heartbeat): each is found committed in the Delta log, or not. Returns how many.
pub async fn settle(
    ledger: &dyn Ledger,
    product: &str,
    port: &str,
    dead: impl Fn(&OpenRun) -> bool,
) -> Result<usize, RunError> {
    let mut settled = 0;
    for open in ledger
        .open_runs(product, port)
        .await
        .map_err(RunError::Ledger)?
    {
        if !dead(&open) {
            continue;
        }
        let version = find_commit(&open.location, &open.id).await?;
        ledger
            .settle(&open.id, version)
            .await
            .map_err(RunError::Ledger)?;
        settled += 1;
    }
    Ok(settled)
}

/// Registers an input: a source's files, or an upstream Delta table at the pinned version. For a
/// distributed executor the Delta version is registered as the Parquet files it is made of, with
/// their partition values ([`crate::pinned::PinnedFiles`]: a table every executor can read).
pub async fn register_input(
    ctx: &SessionContext,
    input: &Input,
    executor: &Executor,
) -> Result<(), RunError> {
    register_unmasked(ctx, input, executor).await?;
    let Some(columns) = &input.columns else {
        return Ok(());
    };
    let query = |e: datafusion::error::DataFusionError| RunError::Engine(EngineError::Query(e));
    let df = ctx.table(input.name.as_str()).await.map_err(query)?;
    let mask_of = |name: &str| {
        input
            .masks
            .iter()
            .find(|(c, _)| c == name)
            .map_or(input.mask, |(_, m)| *m)
    };
    let view = masked(df, Some(columns), &mask_of, &input.keys)
        .map_err(query)?
        .into_view();
    ctx.deregister_table(input.name.as_str()).map_err(query)?;
    ctx.register_table(input.name.as_str(), view)
        .map_err(query)?;
    Ok(())
}

async fn register_unmasked(
    ctx: &SessionContext,
    input: &Input,
    executor: &Executor,
) -> Result<(), RunError> {
    if let Some(db) = &input.database {
        if executor.distributed() {
            return Err(RunError::Transform(format!(
                "source `{}` is a database table, which a distributed executor cannot read \
                 yet; run in process",
                input.name
            )));
        }
        let table = crate::db::source::DbTable::open(&db.target, &db.relation)
            .await
            .map_err(|e| RunError::Engine(EngineError::Database(e)))?;
        ctx.register_table(input.name.as_str(), Arc::new(table))
            .map_err(|e| RunError::Engine(EngineError::Query(e)))?;
        return Ok(());
    }
    let query = |e: datafusion::error::DataFusionError| RunError::Engine(EngineError::Query(e));
    let Some(version) = input.delta_version else {
        if executor.distributed() && input.location.endpoint.is_some() {
            // The executors' stores come from their own `AWS_*` environment.
            return Err(RunError::Transform(format!(
                "source `{}` names its own S3 endpoint, which a distributed executor does not \
                 use: set AWS_ENDPOINT_URL for the cluster's processes instead, or run in process",
                input.name
            )));
        }
        return Ok(crate::source::register(ctx, &input.name, &input.location, None).await?);
    };
    let location = input.location.target.as_str();
    let mut table = open(location).await?;
    table
        .load_version(version.max(0) as u64)
        .await
        .map_err(delta(location))?;
    let provider = if executor.distributed() {
        crate::pinned::PinnedFiles::of(&table)
            .and_then(|files| files.into_table(ctx))
            .map_err(|e| RunError::Delta {
                location: location.to_owned(),
                reason: e.to_string(),
            })?
    } else {
        table
            .update_datafusion_session(&ctx.state())
            .map_err(delta(location))?;
        table.table_provider().await.map_err(query)?
    };
    ctx.register_table(input.name.as_str(), provider)
        .map_err(query)?;
    Ok(())
}

/// The transform's output in types Delta stores: timestamps as microseconds (in UTC once
/// [`in_utc`] has labelled the naive ones), view and large strings and binaries as plain ones.
fn for_delta(
    df: datafusion::prelude::DataFrame,
) -> datafusion::error::Result<datafusion::prelude::DataFrame> {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use datafusion::prelude::{cast, col};
    let target = |dt: &DataType| match dt {
        // A naive timestamp is a time in UTC. Arrow's cast would convert each value from
        // "local time in UTC" one by one through the time zone database; the values do not
        // change, so [`in_utc`] only relabels the column.
        DataType::Timestamp(unit, None) if *unit != TimeUnit::Microsecond => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        }
        DataType::Timestamp(unit, Some(tz))
            if *unit != TimeUnit::Microsecond || tz.as_ref() != "UTC" =>
        {
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            ))
        }
        DataType::Utf8View | DataType::LargeUtf8 => Some(DataType::Utf8),
        DataType::BinaryView | DataType::LargeBinary => Some(DataType::Binary),
        _ => None,
    };
    let fields = df.schema().fields().clone();
    if fields.iter().all(|f| target(f.data_type()).is_none()) {
        return Ok(df);
    }
    let exprs: Vec<datafusion::prelude::Expr> = fields
        .iter()
        .map(|f| {
            let column = col(datafusion::common::Column::from_name(f.name()));
            match target(f.data_type()) {
                Some(dt) => cast(column, dt).alias(f.name()),
                None => column,
            }
        })
        .collect();
    df.select(exprs)
}

/// `schema` with its naive microsecond timestamps labelled UTC, the Delta `timestamp` type.
fn utc_schema(schema: &SchemaRef) -> SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    if !schema.fields().iter().any(|f| is_naive(f.data_type())) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_naive(f.data_type()) {
                f.as_ref().clone().with_data_type(DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("UTC".into()),
                ))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn is_naive(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None)
    )
}

/// `batch` as `schema` (from [`utc_schema`]): naive microsecond timestamps relabelled UTC,
/// their values untouched.
fn in_utc(
    batch: datafusion::arrow::record_batch::RecordBatch,
    schema: &SchemaRef,
) -> datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    if Arc::ptr_eq(&batch.schema(), schema) || batch.schema() == *schema {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if is_naive(c.data_type()) {
                Arc::new(
                    c.as_primitive::<TimestampMicrosecondType>()
                        .clone()
                        .with_timezone("UTC"),
                ) as Arc<dyn Array>
            } else {
                Arc::clone(c)
            }
        })
        .collect();
    Ok(datafusion::arrow::record_batch::RecordBatch::try_new(
        Arc::clone(schema),
        columns,
    )?)
}

/// For tests of a run in progress: when `MESH_PAUSE` names this point, the run waits
/// `MESH_PAUSE_SECONDS` (default 5) here, heartbeating as it would while working.
async fn pause(name: &str) {
    if std::env::var("MESH_PAUSE").is_ok_and(|p| p == name) {
        let seconds = std::env::var("MESH_PAUSE_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(5.0);
        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
    }
}

/// Fault injection for crash tests: when `MESH_FAILPOINT` names this point, the process aborts
/// here, as a `kill -9` would stop it (no destructor, no cleanup).
fn failpoint(name: &str) {
    if std::env::var("MESH_FAILPOINT").is_ok_and(|p| p == name) {
        std::process::abort();
    }
}

/// Whether a check holds the snapshot back: a failed (or unreadable) schema or quality check.
/// Rules of severity warning end as warnings, never as failures.
fn blocks(result: &CheckResult) -> bool {
    matches!(result.outcome, Outcome::Failed | Outcome::Error)
        && result.check.category != checks::Category::Servicelevel
}

/// One write-audit-publish run of `contract`'s port: transform, stage, check, commit.
pub async fn run_port(
    ledger: &dyn Ledger,
    plan: &RunPlan,
    transform_sql: &str,
    contract: &Contract,
    partition_by: &[String],
    progress: &(dyn Fn(Stage) + Send + Sync),
) -> Result<RunReport, RunError> {
    let begun = ledger.begin(plan).await.map_err(RunError::Ledger)?;
    let run = begun.run;
    let plan = &RunPlan {
        location: begun.location,
        ..plan.clone()
    };
    failpoint("after-begin");
    let start = openlineage("START", &run, plan, transform_sql, None, None);
    ledger.lineage(&start).await.map_err(RunError::Ledger)?;
    let work = write_check_commit(
        ledger,
        &run,
        plan,
        transform_sql,
        contract,
        partition_by,
        progress,
    );
    // While it works, the run says so every interval: a run on another host is not taken for
    // dead (and settled) while it is alive. A heartbeat that fails is retried at the next one.
    let heartbeat = async {
        let interval = heartbeat_interval();
        loop {
            tokio::time::sleep(interval).await;
            let _ = ledger.heartbeat(&run).await;
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        () = heartbeat => Err(RunError::Ledger("the run's heartbeat stopped".into())),
    };
    match outcome {
        Ok(report) => Ok(report),
        Err(e) => {
            // Record the failure; the ledger's own error would hide the real one.
            let end = RunEnd {
                error: Some(e.to_string()),
                ..RunEnd::default()
            };
            let _ = ledger.finish(&run, &end).await;
            let fail = openlineage(
                "FAIL",
                &run,
                plan,
                transform_sql,
                None,
                Some(&e.to_string()),
            );
            let _ = ledger.lineage(&fail).await;
            Err(e)
        }
    }
}

/// What a run produced, for its OpenLineage event.
#[derive(Debug)]
pub struct Produced<'a> {
    pub schema: &'a SchemaRef,
    pub lineage: &'a [(String, std::collections::BTreeSet<crate::lineage::Source>)],
    pub checks: &'a [CheckResult],
    pub rows: u64,
    pub bytes: u64,
}

const PRODUCER: &str = concat!(
    "https://github.com/mesh-data/mesh/tree/v",
    env!("CARGO_PKG_VERSION")
);

fn facet(schema: &str) -> serde_json::Value {
    serde_json::json!({
        "_producer": PRODUCER,
        "_schemaURL": format!("https://openlineage.io/spec/facets/{schema}"),
    })
}

/// An input's OpenLineage dataset: `mesh` + the upstream contract id for an input port, the
/// storage scheme + path for a source.
fn dataset_of(input: &Input) -> (String, String) {
    if let Some(db) = &input.database {
        return db.dataset();
    }
    match &input.contract {
        Some(contract) => ("mesh".to_owned(), contract.clone()),
        None => {
            let target = &input.location.target;
            match target.split_once("://") {
                Some((scheme, rest)) if scheme != "file" => {
                    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                    (format!("{scheme}://{bucket}"), format!("/{path}"))
                }
                _ => (
                    "file".to_owned(),
                    target.trim_start_matches("file://").to_owned(),
                ),
            }
        }
    }
}

/// An OpenLineage 2-0-2 RunEvent for a run: the job is the product, the inputs its sources and
/// input ports, the output its port — with the schema, column lineage, quality assertions,
/// ownership and output statistics once it has run.
pub fn openlineage(
    kind: &str,
    run: &str,
    plan: &RunPlan,
    sql: &str,
    produced: Option<&Produced<'_>>,
    error: Option<&str>,
) -> serde_json::Value {
    let mut run_facets = serde_json::Map::new();
    if let Some(message) = error {
        let mut f = facet("1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet");
        f["message"] = message.into();
        f["programmingLanguage"] = "SQL".into();
        run_facets.insert("errorMessage".into(), f);
    }
    let mut sql_facet = facet("1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet");
    sql_facet["query"] = sql.into();
    sql_facet["dialect"] = "datafusion".into();
    let mut job_type = facet("2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet");
    job_type["processingType"] = "BATCH".into();
    job_type["integration"] = "MESH".into();
    job_type["jobType"] = "DATA_PRODUCT".into();
    let inputs: Vec<serde_json::Value> = plan
        .inputs
        .iter()
        .map(|i| {
            let (namespace, name) = dataset_of(i);
            serde_json::json!({ "namespace": namespace, "name": name })
        })
        .collect();
    let mut output = serde_json::json!({ "namespace": "mesh", "name": plan.contract });
    let mut facets = serde_json::Map::new();
    if let Some(team) = &plan.team {
        let mut f = facet("1-0-1/OwnershipDatasetFacet.json#/$defs/OwnershipDatasetFacet");
        f["owners"] = serde_json::json!([{ "name": format!("team:{team}"), "type": "OWNER" }]);
        facets.insert("ownership".into(), f);
    }
    let mut output_facets = serde_json::Map::new();
    if let Some(p) = produced {
        let mut schema = facet("1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet");
        schema["fields"] = p
            .schema
            .fields()
            .iter()
            .map(|f| serde_json::json!({ "name": f.name(), "type": crate::exec::arrow_type_name(f.data_type()) }))
            .collect();
        facets.insert("schema".into(), schema);
        let tables: HashMap<&str, (String, String)> = plan
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), dataset_of(i)))
            .collect();
        let mut fields = serde_json::Map::new();
        for (column, sources) in p.lineage {
            let input_fields: Vec<serde_json::Value> = sources
                .iter()
                .filter_map(|(table, field)| {
                    let (namespace, name) = tables.get(table.as_str())?;
                    Some(serde_json::json!({
                        "namespace": namespace, "name": name, "field": field,
                    }))
                })
                .collect();
            if !input_fields.is_empty() {
                fields.insert(
                    column.clone(),
                    serde_json::json!({ "inputFields": input_fields }),
                );
            }
        }
        let mut lineage =
            facet("1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet");
        lineage["fields"] = fields.into();
        facets.insert("columnLineage".into(), lineage);
        let mut quality = facet(
            "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
        );
        quality["assertions"] = p
            .checks
            .iter()
            .filter(|r| r.outcome != Outcome::Skipped)
            .map(|r| {
                let mut a = serde_json::json!({
                    "assertion": r.check.key,
                    "success": matches!(r.outcome, Outcome::Passed | Outcome::Warning),
                });
                if let Some(field) = &r.check.field {
                    a["column"] = field.clone().into();
                }
                a
            })
            .collect();
        facets.insert("dataQualityAssertions".into(), quality);
        let mut stats = facet(
            "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
        );
        stats["rowCount"] = p.rows.into();
        stats["size"] = p.bytes.into();
        output_facets.insert("outputStatistics".into(), stats);
    }
    if !facets.is_empty() {
        output["facets"] = facets.into();
    }
    if !output_facets.is_empty() {
        output["outputFacets"] = output_facets.into();
    }
    serde_json::json!({
        "eventType": kind,
        "eventTime": crate::now_rfc3339(),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": { "runId": run, "facets": run_facets },
        "job": {
            "namespace": "mesh",
            "name": plan.product,
            "facets": { "sql": sql_facet, "jobType": job_type },
        },
        "inputs": inputs,
        "outputs": [output],
    })
}

async fn write_check_commit(
    ledger: &dyn Ledger,
    run: &str,
    plan: &RunPlan,
    transform_sql: &str,
    contract: &Contract,
    partition_by: &[String],
    progress: &(dyn Fn(Stage) + Send + Sync),
) -> Result<RunReport, RunError> {
    progress(Stage::Transforming);
    let ctx = plan.executor.session().await?;
    // An incremental run reads above the marks of the table's latest commit, so it opens the
    // table first; any other run opens it only once the transform has run (a refused source
    // leaves no folder behind).
    let incremental = plan
        .inputs
        .iter()
        .any(|i| i.database.as_ref().is_some_and(|d| d.incremental.is_some()));
    let early = if incremental {
        Some(open(&plan.location).await?)
    } else {
        None
    };
    let Increments {
        append,
        marks,
        tables: windows,
        unchanged,
    } = match &early {
        Some(table) => increments(plan, table).await?,
        None => Increments::none(),
    };
    if let Some(reason) = unchanged {
        return skip(ledger, run, plan, transform_sql, reason, Some(0)).await;
    }
    let mut windows = windows;
    for input in &plan.inputs {
        match windows.iter().position(|(name, _)| *name == input.name) {
            Some(at) => {
                let (name, window) = windows.swap_remove(at);
                ctx.register_table(name.as_str(), Arc::new(window))
                    .map_err(|e| RunError::Engine(EngineError::Query(e)))?;
            }
            None => register_input(&ctx, input, &plan.executor).await?,
        }
    }
    // One query: its result goes to the port the catalog names, through the contract checks.
    // A `COPY ... TO`, an external table or an `INSERT` would write or read wherever the runner's
    // credentials reach.
    let only_queries = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(transform_sql, only_queries)
        .await
        .map_err(|e| RunError::Transform(e.to_string()))?;
    let df = for_delta(df).map_err(|e| RunError::Transform(e.to_string()))?;
    let lineage = crate::lineage::column_lineage(df.logical_plan());
    let physical = df
        .create_physical_plan()
        .await
        .map_err(|e| RunError::Transform(e.to_string()))?;
    // The table takes the schema of the batches as they are produced: the logical plan's can
    // differ (a CASE mixing `0` and a DOUBLE column is BIGINT there, DOUBLE when it runs).
    let schema: SchemaRef = utc_schema(&physical.schema());
    // Small outputs are held, checked in memory while they are written (the checks see exactly
    // the rows the files are encoded from). Past a share of the memory limit (or 256 MiB) the
    // output streams to the files instead and the checks read the files back: memory holds a
    // few batches, never the output.
    let transform_error =
        |e: datafusion::error::DataFusionError| RunError::Transform(e.to_string());
    let mut stream =
        datafusion::physical_plan::execute_stream(Arc::clone(&physical), ctx.task_ctx())
            .map_err(transform_error)?;
    let hold_at = crate::memory_limit().map_or(HELD_OUTPUT, |limit| (limit / 8).min(HELD_OUTPUT));
    let mut batches = Vec::new();
    let mut held = 0usize;
    let mut streamed = false;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch
            .and_then(|b| in_utc(b, &schema))
            .map_err(transform_error)?;
        held += batch.get_array_memory_size();
        batches.push(batch);
        if held > hold_at {
            streamed = true;
            break;
        }
    }
    let mut rows_in = (!plan.executor.distributed() && !streamed).then(|| rows_read(&physical));
    if append && batches.iter().all(|b| b.num_rows() == 0) {
        let reason = "the new rows of the incremental sources gave no rows to add; their marks \
                      stay where they were"
            .to_owned();
        return skip(ledger, run, plan, transform_sql, reason, rows_in).await;
    }
    progress(Stage::Writing);
    // Nothing of the table, not even its schema, changes until the checks pass.
    let table = match early {
        Some(table) => table,
        None => open(&plan.location).await?,
    };
    let model = contract
        .schema
        .first()
        .map(|o| o.name.clone())
        .unwrap_or_else(|| plan.port.clone());
    let check_ctx = crate::session();
    let query = |e: datafusion::error::DataFusionError| RunError::Engine(EngineError::Query(e));
    let reported = std::sync::atomic::AtomicU64::new(0);
    let written = |rows: u64| {
        // Every million rows, so a long write shows it is moving.
        let step = rows / 1_000_000;
        if step > reported.load(std::sync::atomic::Ordering::Relaxed) {
            reported.store(step, std::sync::atomic::Ordering::Relaxed);
            progress(Stage::Written(rows));
        }
    };
    let (staged, results) = if streamed {
        let rest = futures::StreamExt::map(stream, |b| {
            b.and_then(|b| in_utc(b, &schema)).map_err(transform_error)
        });
        let all =
            futures::StreamExt::chain(futures::stream::iter(batches.into_iter().map(Ok)), rest);
        let staged = stage(
            &table,
            &schema,
            partition_by,
            all,
            &plan.location,
            append,
            &written,
        )
        .await;
        match staged {
            Ok(staged) => {
                // The transform has run to its end.
                rows_in = (!plan.executor.distributed()).then(|| rows_read(&physical));
                progress(Stage::Checking);
                let registered = crate::pinned::PinnedFiles::staged(
                    table.table_url().as_str(),
                    &staged.actions,
                    &schema,
                    &staged.partition_by,
                )
                .and_then(|files| files.into_table(&check_ctx))
                .and_then(|view| check_ctx.register_table(model.as_str(), view));
                if let Err(e) = registered {
                    // Files nobody will commit.
                    discard(&table, &staged).await;
                    return Err(query(e));
                }
                let results = check_rows(&check_ctx, contract, &model).await;
                (Ok(staged), results)
            }
            Err(e) => (Err(e), Vec::new()),
        }
    } else {
        // The checks run while the files are written: encoding is one core's work per lane,
        // and the checks (DataFusion, over the batches in as many partitions as there are
        // cores) take the others.
        let lanes = std::thread::available_parallelism().map_or(1, usize::from);
        let mut partitions: Vec<Vec<datafusion::arrow::record_batch::RecordBatch>> =
            vec![Vec::new(); lanes];
        for (i, batch) in batches.iter().enumerate() {
            partitions[i % lanes].push(batch.clone());
        }
        let rows = datafusion::datasource::MemTable::try_new(Arc::clone(&schema), partitions)
            .map_err(query)?;
        check_ctx
            .register_table(model.as_str(), Arc::new(rows))
            .map_err(query)?;
        tokio::join!(
            stage(
                &table,
                &schema,
                partition_by,
                futures::stream::iter(batches.into_iter().map(Ok)),
                &plan.location,
                append,
                &written,
            ),
            check_rows(&check_ctx, contract, &model)
        )
    };
    let staged = staged?;
    failpoint("after-stage");
    pause("after-stage").await;
    progress(Stage::Checking);
    let blocking: Vec<CheckResult> = results.iter().filter(|r| blocks(r)).cloned().collect();
    failpoint("after-check");
    let checks_json = crate::report::Run {
        run_id: run.to_owned(),
        contract_id: contract.id.clone(),
        contract_version: contract.version.clone(),
        server: None,
        started: String::new(),
        finished: crate::now_rfc3339(),
        results: results.clone(),
    }
    .to_json();
    let (rows, bytes) = (staged.rows, staged.bytes);
    if !blocking.is_empty() {
        discard(&table, &staged).await;
        let end = RunEnd {
            delta_version: None,
            rows_in: rows_in.map(|r| r as i64),
            rows_out: Some(rows as i64),
            bytes_out: Some(bytes as i64),
            checks: Some(checks_json),
            error: Some(format!(
                "{} blocking check(s) failed; nothing was committed",
                blocking.len()
            )),
            skipped: None,
        };
        ledger.finish(run, &end).await.map_err(RunError::Ledger)?;
        let produced = Produced {
            schema: &schema,
            lineage: &lineage,
            checks: &results,
            rows,
            bytes,
        };
        let why = format!("{} blocking check(s) failed", blocking.len());
        let fail = openlineage(
            "FAIL",
            run,
            plan,
            transform_sql,
            Some(&produced),
            Some(&why),
        );
        ledger.lineage(&fail).await.map_err(RunError::Ledger)?;
        return Ok(RunReport {
            run: run.to_owned(),
            location: plan.location.clone(),
            delta_version: None,
            rows_out: rows,
            bytes_out: bytes,
            checks: results,
            blocking,
            rows_in,
            skipped: None,
            spilled_bytes: spilled_bytes(&physical),
            streamed,
        });
    }
    progress(Stage::Committing);
    // A new table is created (version 0) just before its first snapshot (version 1).
    let next = table.version().map_or(1, |v| v as i64 + 1);
    ledger
        .committing(run, next)
        .await
        .map_err(RunError::Ledger)?;
    failpoint("after-committing");
    let version = commit(&table, staged, run, &plan.location, marks.as_ref()).await?;
    failpoint("after-commit");
    let end = RunEnd {
        delta_version: Some(version),
        rows_in: rows_in.map(|r| r as i64),
        rows_out: Some(rows as i64),
        bytes_out: Some(bytes as i64),
        checks: Some(checks_json),
        error: None,
        skipped: None,
    };
    ledger.finish(run, &end).await.map_err(RunError::Ledger)?;
    let produced = Produced {
        schema: &schema,
        lineage: &lineage,
        checks: &results,
        rows,
        bytes,
    };
    let complete = openlineage("COMPLETE", run, plan, transform_sql, Some(&produced), None);
    ledger.lineage(&complete).await.map_err(RunError::Ledger)?;
    Ok(RunReport {
        run: run.to_owned(),
        location: plan.location.clone(),
        delta_version: Some(version),
        rows_out: rows,
        bytes_out: bytes,
        checks: results,
        blocking,
        rows_in,
        skipped: None,
        spilled_bytes: spilled_bytes(&physical),
        streamed,
    })
}

/// How much of a transform's output a run holds in memory to check it while it is written;
/// a bigger output is streamed to its files and checked from them.
const HELD_OUTPUT: usize = 256 << 20;

/// The contract's checks on table `model` of `ctx` (the rows about to be committed).
async fn check_rows(ctx: &SessionContext, contract: &Contract, model: &str) -> Vec<CheckResult> {
    let plans = checks::plan(contract, Some(model), Categories::default());
    let mut results = Vec::new();
    for p in &plans {
        let info = crate::exec::TableInfo {
            name: p.model.clone(),
            text: None,
        };
        let keys = crate::primary_key(contract, &p.model);
        let options = crate::exec::RunOptions {
            filter: None,
            failed_samples: 5,
            hidden: &crate::hidden_columns(contract, &p.model),
            keys: &keys,
        };
        results.extend(crate::exec::run_model(ctx, &info, &p.checks, &options).await);
    }
    results
}

/// How a run reads its incremental database sources.
struct Increments {
    /// The new files add to the table's current version (every incremental source has a mark
    /// from the latest commit), instead of replacing it.
    append: bool,
    /// The marks the commit records (`None` when no source is incremental).
    marks: Option<serde_json::Value>,
    /// Each incremental source, opened on the window this run reads.
    tables: Vec<(String, crate::db::source::DbTable)>,
    /// Why there is nothing to read: every source is still at its mark.
    unchanged: Option<String>,
}

impl Increments {
    /// No incremental source: read everything, replace the table.
    fn none() -> Increments {
        Increments {
            append: false,
            marks: None,
            tables: Vec::new(),
            unchanged: None,
        }
    }
}

/// The window of each incremental source: above the mark of the table's latest commit (when
/// every such source has one, and no full refresh is asked) and at most the column's greatest
/// value now — rows added meanwhile wait for the next run, so each row is read exactly once.
async fn increments(plan: &RunPlan, table: &DeltaTable) -> Result<Increments, RunError> {
    let incremental: Vec<(&Input, &crate::db::source::DbSource, &str)> = plan
        .inputs
        .iter()
        .filter_map(|i| {
            let db = i.database.as_ref()?;
            Some((i, db, db.incremental.as_deref()?))
        })
        .collect();
    if incremental.is_empty() {
        return Ok(Increments::none());
    }
    if plan.executor.distributed() {
        return Err(RunError::Transform(
            "incremental database sources are read in process only; run in process".into(),
        ));
    }
    let last = match table.version() {
        Some(v) if !plan.full_refresh => {
            commit_info(&plan.location, v as i64).await?[WATERMARKS_KEY].clone()
        }
        _ => serde_json::Value::Null,
    };
    let db_error = |e| RunError::Engine(EngineError::Database(e));
    let mut opened = Vec::new();
    for (input, db, column) in &incremental {
        let source = crate::db::source::DbTable::open(&db.target, &db.relation)
            .await
            .map_err(db_error)?;
        let high = source.high_water(column).await.map_err(db_error)?;
        let mark = &last[input.name.as_str()];
        let previous = (mark["column"].as_str() == Some(*column))
            .then(|| mark["value"].as_str().map(str::to_owned))
            .flatten();
        opened.push((input.name.clone(), *column, source, high, previous));
    }
    let append = table.version().is_some()
        && !plan.full_refresh
        && opened
            .iter()
            .all(|(_, _, _, _, previous)| previous.is_some());
    let unchanged = append
        && opened
            .iter()
            .all(|(_, _, _, high, previous)| high.is_none() || high == previous);
    let mut marks = serde_json::Map::new();
    let mut tables = Vec::new();
    let mut names = Vec::new();
    for (name, column, source, high, previous) in opened {
        let after = if append { previous.as_deref() } else { None };
        // A source left without rows reads nothing new, and keeps its mark.
        let upto = high.as_deref().or(after);
        if let Some(value) = upto {
            marks.insert(
                name.clone(),
                serde_json::json!({"column": column, "value": value}),
            );
        }
        let window = source.window(column, after, upto).map_err(db_error)?;
        names.push(format!("`{name}` ({column} {})", upto.unwrap_or("empty")));
        tables.push((name, window));
    }
    Ok(Increments {
        append,
        marks: Some(serde_json::Value::Object(marks)),
        tables,
        unchanged: unchanged.then(|| {
            format!(
                "no new rows: {} still at the last run's mark",
                names.join(", ")
            )
        }),
    })
}

/// Ends a run that has nothing to commit without failing it: the catalog records it as
/// skipped, the snapshot stays, and OpenLineage hears it completed.
async fn skip(
    ledger: &dyn Ledger,
    run: &str,
    plan: &RunPlan,
    transform_sql: &str,
    reason: String,
    rows_in: Option<u64>,
) -> Result<RunReport, RunError> {
    let end = RunEnd {
        rows_in: rows_in.map(|r| r as i64),
        rows_out: Some(0),
        bytes_out: Some(0),
        skipped: Some(reason.clone()),
        ..RunEnd::default()
    };
    ledger.finish(run, &end).await.map_err(RunError::Ledger)?;
    let complete = openlineage("COMPLETE", run, plan, transform_sql, None, None);
    ledger.lineage(&complete).await.map_err(RunError::Ledger)?;
    Ok(RunReport {
        run: run.to_owned(),
        location: plan.location.clone(),
        delta_version: None,
        rows_out: 0,
        bytes_out: 0,
        checks: Vec::new(),
        blocking: Vec::new(),
        rows_in,
        skipped: Some(reason),
        spilled_bytes: 0,
        streamed: false,
    })
}
