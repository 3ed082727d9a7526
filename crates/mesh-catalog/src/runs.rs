//! Pipeline runs in the catalog: the ledger of write-audit-publish.
//!
//! A run is recorded before it writes anything ([`Catalog::begin_run`]), marked `committing`
//! with the Delta version it is about to commit ([`Catalog::committing_run`]), and finished
//! ([`Catalog::finish_run`]): on success the output port's snapshot moves to the committed
//! version in the same transaction, so the catalog and the table never disagree for longer than
//! the window between the Delta commit and that transaction. A run left `running` or
//! `committing` by a process that died is settled by the next run from the Delta log
//! ([`Catalog::settle_run`]): its commit is there, and the snapshot moves; or it is not, and the
//! run failed (its files were never committed, so no reader ever saw them).

use mesh_model::names::RunState;
use serde::{Deserialize, Serialize};

use crate::auth::Action;
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::store::{NewEvent, RunRow, SnapshotRow, StoreError};

/// Why the run ledger refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    /// Another run of the port has not finished.
    #[error(
        "run {run} of {product}.{port} ({owner}, started {started_at} by {actor}) is still {state}"
    )]
    RunOpen {
        run: String,
        product: String,
        port: String,
        owner: String,
        started_at: String,
        actor: String,
        state: String,
    },
    #[error("run {run} is {state}, not running")]
    NotRunning { run: String, state: String },
    #[error("run {run} is already {state}")]
    Finished { run: String, state: String },
    /// A run asked to write somewhere else than the catalog's place for the port.
    #[error(
        "the catalog decides where a port's table is: {product}.{port} is written at {expected}, not at location {given}"
    )]
    Location {
        product: String,
        port: String,
        expected: String,
        given: String,
    },
    /// The catalog was not told where output ports' tables are.
    #[error(
        "this catalog has no storage location for output ports (the [storage] url of mesh.toml, or MESH_STORAGE)"
    )]
    NoStorage,
    /// A port (or product) name that cannot be a folder name.
    #[error("`{port}` cannot name a folder (letters, digits, `_` and `-` only)")]
    BadPort { port: String },
    /// The version a run says it committed is not its own commit in the port's table.
    #[error(
        "run {run} did not commit version {version} of the Delta table at {location}: {reason}"
    )]
    NotCommitted {
        run: String,
        version: i64,
        location: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the table of port `port` of `domain.name` at major `major` is, under `root`; the error
/// is `None` without a root, else the part that cannot be a folder name.
fn port_location(
    root: Option<&str>,
    domain: &str,
    name: &str,
    port: &str,
    major: i64,
) -> Result<String, Option<String>> {
    let root = root.ok_or(None)?;
    // Product ids are checked names already; checked again, as they become folders.
    for part in [domain, name, port] {
        let folder = !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !folder {
            return Err(Some(part.to_owned()));
        }
    }
    Ok(format!("{root}/{domain}/{name}/{port}/v{major}"))
}

pub use crate::catalog::DeltaLog;

impl ToProblem for RunsError {
    fn code(&self) -> ErrorCode {
        match self {
            RunsError::Denied(_) => ErrorCode::Forbidden,
            RunsError::NotFound(_) => ErrorCode::NotFound,
            RunsError::RunOpen { .. }
            | RunsError::NotRunning { .. }
            | RunsError::Finished { .. }
            | RunsError::NotCommitted { .. } => ErrorCode::Lifecycle,
            RunsError::Location { .. } | RunsError::BadPort { .. } => ErrorCode::BadRequest,
            RunsError::NoStorage => ErrorCode::Internal,
            RunsError::Store(e) => e.code(),
        }
    }
}

/// What a run read from one input port (or source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunInput {
    /// The input port (or source) name: the table `transform.sql` reads.
    pub name: String,
    /// `domain.product` for an input port; absent for a source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The location read (a Delta table, a file, a glob).
    pub location: String,
    /// The Delta version read, for an input port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<i64>,
}

/// A run, as the catalog shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: String,
    pub product: String,
    pub version: String,
    pub port: String,
    pub major: i64,
    pub location: String,
    /// `running`, `committing`, `succeeded` or `failed`.
    pub state: String,
    pub started_at: String,
    pub heartbeat_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `host:pid` of the process that ran it.
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<i64>,
    /// Rows read from the sources and input ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<i64>,
    pub inputs: Vec<RunInput>,
    /// The contract checks' results (datacontract-cli's run shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub actor: String,
    /// How it ended when no one saw it end: settled by a later run, from the Delta log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RunView {
    fn of(row: RunRow) -> RunView {
        RunView {
            inputs: serde_json::from_str(&row.inputs).unwrap_or_default(),
            checks: row
                .checks
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
            id: row.id,
            product: row.product,
            version: row.version,
            port: row.port,
            major: row.major,
            location: row.location,
            state: row.state,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
            finished_at: row.finished_at,
            owner: row.owner,
            delta_version: row.delta_version,
            rows_in: row.rows_in,
            rows_out: row.rows_out,
            bytes_out: row.bytes_out,
            error: row.error,
            actor: row.actor,
            note: row.note,
        }
    }
}

/// The snapshot of an output port that readers get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    pub product: String,
    pub port: String,
    pub major: i64,
    /// The product version that produced it.
    pub version: String,
    pub run: String,
    /// The Delta table.
    pub location: String,
    /// The table version readers get (time travel pins it).
    pub delta_version: i64,
    pub updated_at: String,
}

impl From<SnapshotRow> for Snapshot {
    fn from(r: SnapshotRow) -> Snapshot {
        Snapshot {
            product: r.product,
            port: r.port,
            major: r.major,
            version: r.version,
            run: r.run,
            location: r.location,
            delta_version: r.delta_version,
            updated_at: r.updated_at,
        }
    }
}

/// What a run asks to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStart {
    /// `domain.product`; its latest version is what runs.
    pub product: String,
    pub port: String,
    /// Where the run expects the port's table to be: the catalog names it (see
    /// [`RunView::location`]); one that differs is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub inputs: Vec<RunInput>,
    /// `host:pid` of the running process.
    pub owner: String,
}

/// How a run ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEnd {
    /// The Delta version committed; absent when the run failed.
    pub delta_version: Option<i64>,
    #[serde(default)]
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    pub bytes_out: Option<i64>,
    pub checks: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Why it had nothing to commit, when it ended without a version and without failing (an
    /// incremental source with no new rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Catalog {
    /// Records a run of `start.product`'s latest version for one output port. Refused while
    /// another run of that port is open: the caller settles runs whose process is gone first
    /// ([`Catalog::open_runs`], [`Catalog::settle_run`]).
    pub async fn begin_run(
        &self,
        who: &crate::Principal,
        start: &RunStart,
    ) -> Result<RunView, RunsError> {
        let mut tx = self.store.write().await?;
        let product = tx
            .product(&start.product)
            .await?
            .ok_or_else(|| Missing::Product {
                product: start.product.clone(),
            })?;
        Self::allow(
            who,
            Action::Publish {
                domain: &product.domain,
            },
        )?;
        let version = product.latest.clone().ok_or_else(|| Missing::NoVersion {
            product: start.product.clone(),
        })?;
        let ports = tx.ports(&start.product, &version).await?;
        let port = ports
            .iter()
            .find(|p| p.port == start.port)
            .ok_or_else(|| Missing::Port {
                product: start.product.clone(),
                version: version.clone(),
                port: start.port.clone(),
            })?;
        let (domain, name) = product
            .id
            .split_once('.')
            .ok_or_else(|| StoreError::Corrupt(format!("`{}` is not a product id", product.id)))?;
        let location = port_location(
            self.storage.as_deref(),
            domain,
            name,
            &port.port,
            port.major,
        )
        .map_err(|bad| match bad {
            None => RunsError::NoStorage,
            Some(port) => RunsError::BadPort { port },
        })?;
        if let Some(given) = &start.location
            && given.trim_end_matches('/') != location
        {
            return Err(RunsError::Location {
                product: start.product.clone(),
                port: start.port.clone(),
                expected: location,
                given: given.clone(),
            });
        }
        if let Some(open) = tx.open_runs(&start.product, &start.port).await?.first() {
            return Err(RunsError::RunOpen {
                run: open.id.clone(),
                product: open.product.clone(),
                port: open.port.clone(),
                owner: open.owner.clone(),
                started_at: open.started_at.clone(),
                actor: open.actor.clone(),
                state: open.state.clone(),
            });
        }
        let now = stamp(self.clock.now());
        let row = RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            product: start.product.clone(),
            version: version.clone(),
            port: start.port.clone(),
            major: port.major,
            location,
            state: RunState::Running.as_str().into(),
            started_at: now.clone(),
            heartbeat_at: now.clone(),
            finished_at: None,
            owner: start.owner.clone(),
            delta_version: None,
            rows_in: None,
            rows_out: None,
            bytes_out: None,
            inputs: serde_json::to_string(&start.inputs).unwrap_or_else(|_| "[]".into()),
            checks: None,
            error: None,
            actor: who.name.clone(),
            note: None,
        };
        tx.insert_run(&row).await?;
        tx.append_event(&NewEvent {
            at: now,
            kind: "run.started".into(),
            subject: start.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "run": row.id, "version": version, "port": start.port, "inputs": start.inputs,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(RunView::of(row))
    }

    /// Marks a run as about to commit Delta version `delta_version`.
    pub async fn committing_run(
        &self,
        who: &crate::Principal,
        id: &str,
        delta_version: i64,
    ) -> Result<RunView, RunsError> {
        let mut tx = self.store.write().await?;
        let mut row = self.own_run(tx.as_mut(), who, id).await?;
        if row.state != RunState::Running.as_str() {
            return Err(RunsError::NotRunning {
                run: id.to_owned(),
                state: row.state,
            });
        }
        row.state = RunState::Committing.as_str().into();
        row.delta_version = Some(delta_version);
        row.heartbeat_at = stamp(self.clock.now());
        tx.update_run(&row, RunState::Running.as_str()).await?;
        tx.commit().await?;
        Ok(RunView::of(row))
    }

    /// Finishes a run: `succeeded` (the port's snapshot moves to the committed Delta version) or
    /// `failed`.
    pub async fn finish_run(
        &self,
        who: &crate::Principal,
        id: &str,
        end: &RunEnd,
    ) -> Result<RunView, RunsError> {
        self.end_run(who, id, end, None).await
    }

    async fn end_run(
        &self,
        who: &crate::Principal,
        id: &str,
        end: &RunEnd,
        note: Option<String>,
    ) -> Result<RunView, RunsError> {
        // The version must be the run's own commit in the port's table: checked before the write
        // (reading a log may take a while), against the location the catalog gave the run.
        if let Some(version) = end.delta_version {
            let mut tx = self.store.read().await?;
            let row = self.own_run(tx.as_mut(), who, id).await?;
            drop(tx);
            self.check_commit(&row, version).await?;
        }
        let mut tx = self.store.write().await?;
        let mut row = self.own_run(tx.as_mut(), who, id).await?;
        let expected = row.state.clone();
        if !RunState::parse(&expected).is_ok_and(RunState::is_open) {
            return Err(RunsError::Finished {
                run: id.to_owned(),
                state: expected,
            });
        }
        let now = stamp(self.clock.now());
        row.finished_at = Some(now.clone());
        row.heartbeat_at = now.clone();
        row.rows_in = end.rows_in;
        row.rows_out = end.rows_out;
        row.bytes_out = end.bytes_out;
        row.checks = end.checks.as_ref().map(ToString::to_string);
        row.error = end.error.clone();
        row.note = note.or_else(|| end.skipped.clone());
        match end.delta_version {
            Some(v) => {
                row.state = RunState::Succeeded.as_str().into();
                row.delta_version = Some(v);
                tx.put_snapshot(&SnapshotRow {
                    product: row.product.clone(),
                    port: row.port.clone(),
                    major: row.major,
                    version: row.version.clone(),
                    run: row.id.clone(),
                    location: row.location.clone(),
                    delta_version: v,
                    updated_at: now.clone(),
                })
                .await?;
            }
            None if end.error.is_none() && end.skipped.is_some() => {
                row.state = RunState::Skipped.as_str().into();
            }
            None => {
                row.state = RunState::Failed.as_str().into();
            }
        }
        tx.update_run(&row, &expected).await?;
        tx.append_event(&NewEvent {
            at: now,
            kind: format!("run.{}", row.state),
            subject: row.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "run": row.id, "version": row.version, "port": row.port,
                "delta_version": row.delta_version, "rows_in": row.rows_in,
                "rows_out": row.rows_out,
                "error": row.error, "note": row.note,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(RunView::of(row))
    }

    /// That version `version` of the run's table is a commit of the run.
    async fn check_commit(&self, row: &RunRow, version: i64) -> Result<(), RunsError> {
        let refused = |reason: String| RunsError::NotCommitted {
            run: row.id.clone(),
            version,
            location: row.location.clone(),
            reason,
        };
        let log = self
            .delta_log
            .as_ref()
            .ok_or_else(|| refused("this catalog cannot read Delta logs to check it".to_owned()))?;
        match log.committed_by(&row.location, version).await {
            Ok(Some(run)) if run == row.id => Ok(()),
            Ok(Some(other)) => Err(refused(format!("that commit is run {other}'s"))),
            Ok(None) => Err(refused("that commit carries no run id".to_owned())),
            Err(reason) => Err(refused(reason)),
        }
    }

    /// Settles a run whose process is gone, from what the Delta log says: committed as
    /// `delta_version` (it succeeded; its rows and bytes are read from that commit), or never
    /// committed (it failed). The run's note says it was settled, and why.
    pub async fn settle_run(
        &self,
        who: &crate::Principal,
        id: &str,
        delta_version: Option<i64>,
    ) -> Result<RunView, RunsError> {
        let written = match (delta_version, &self.delta_log) {
            (Some(version), Some(log)) => {
                let mut tx = self.store.read().await?;
                let row = self.own_run(tx.as_mut(), who, id).await?;
                drop(tx);
                log.written(&row.location, version).await.ok().flatten()
            }
            _ => None,
        };
        let end = RunEnd {
            delta_version,
            rows_in: None,
            rows_out: written.map(|(rows, _)| rows),
            bytes_out: written.map(|(_, bytes)| bytes),
            checks: None,
            error: delta_version
                .is_none()
                .then(|| "interrupted before its commit; nothing of it was published".to_owned()),
            skipped: None,
        };
        let note = match delta_version {
            Some(v) => format!(
                "settled by a later run: its process stopped after committing Delta version {v}, before recording its end"
            ),
            None => "settled by a later run: its process stopped before committing".to_owned(),
        };
        self.end_run(who, id, &end, Some(note)).await
    }

    /// Records that a run is still at work (its process heartbeats while it runs, so that no
    /// other host takes it for dead).
    pub async fn heartbeat_run(
        &self,
        who: &crate::Principal,
        id: &str,
    ) -> Result<RunView, RunsError> {
        let mut tx = self.store.write().await?;
        let mut row = self.own_run(tx.as_mut(), who, id).await?;
        let state = row.state.clone();
        if !RunState::parse(&state).is_ok_and(RunState::is_open) {
            return Err(RunsError::Finished {
                run: id.to_owned(),
                state,
            });
        }
        row.heartbeat_at = stamp(self.clock.now());
        tx.update_run(&row, &state).await?;
        tx.commit().await?;
        Ok(RunView::of(row))
    }

    /// The runs of a port that have not finished.
    pub async fn open_runs(
        &self,
        who: &crate::Principal,
        product: &str,
        port: &str,
    ) -> Result<Vec<RunView>, RunsError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .open_runs(product, port)
            .await?
            .into_iter()
            .map(RunView::of)
            .collect())
    }

    /// A product's runs, newest first.
    pub async fn runs(
        &self,
        who: &crate::Principal,
        product: &str,
        port: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunView>, RunsError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .runs(product, port, limit.clamp(1, 1000))
            .await?
            .into_iter()
            .map(RunView::of)
            .collect())
    }

    /// One run.
    pub async fn run(&self, who: &crate::Principal, id: &str) -> Result<RunView, RunsError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        tx.run(id)
            .await?
            .map(RunView::of)
            .ok_or_else(|| Missing::Run { run: id.to_owned() }.into())
    }

    /// Every output port's current snapshot (per major version) of a product.
    pub async fn snapshots(
        &self,
        who: &crate::Principal,
        product: &str,
    ) -> Result<Vec<Snapshot>, RunsError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .snapshots(product)
            .await?
            .into_iter()
            .map(Snapshot::from)
            .collect())
    }

    /// The snapshot readers get of an output port: of `major`, or of the product's latest major.
    pub async fn snapshot(
        &self,
        who: &crate::Principal,
        product: &str,
        port: &str,
        major: Option<i64>,
    ) -> Result<Snapshot, RunsError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let found = match major {
            Some(m) => tx.snapshot(product, port, m).await?,
            None => tx
                .snapshots(product)
                .await?
                .into_iter()
                .filter(|s| s.port == port)
                .max_by_key(|s| s.major),
        };
        found.map(Snapshot::from).ok_or_else(|| {
            Missing::Snapshot {
                product: product.to_owned(),
                port: port.to_owned(),
                major,
            }
            .into()
        })
    }

    /// A run the caller may act on: one it may publish for.
    async fn own_run(
        &self,
        tx: &mut dyn crate::store::Tx,
        who: &crate::Principal,
        id: &str,
    ) -> Result<RunRow, RunsError> {
        let row = tx
            .run(id)
            .await?
            .ok_or_else(|| Missing::Run { run: id.to_owned() })?;
        let product = tx
            .product(&row.product)
            .await?
            .ok_or_else(|| Missing::Product {
                product: row.product.clone(),
            })?;
        Self::allow(
            who,
            Action::Publish {
                domain: &product.domain,
            },
        )?;
        Ok(row)
    }
}
