//! The governed read: SQL over the output ports a reader may read (their domain's, and what their
//! grants cover), with columns outside a grant masked in the plan, every read and refused read
//! recorded. The one path for HTTP, Flight SQL and the CLI's local catalog.
//!
//! Its phases, in order: the tables the query names ([`ReadRequest::parse`]); the decision
//! ([`Service::authorize_read`]: each name resolved to a port the reader may read, at the
//! snapshot readers get, with its masking — a name that resolves to none is refused and
//! recorded, and to the reader it does not exist); the engine's session over exactly those
//! snapshots; the stream, recorded when it ends, however it ends.

use std::time::Instant;

use futures::StreamExt;
use futures::stream::BoxStream;
use mesh_catalog::access::{AccessError, ReadablePort, Reader};
use mesh_catalog::audit::{DeniedRead, ReadBy, ReadOutcome};
use mesh_catalog::store::StoreError;
use mesh_catalog::{Catalog, ErrorCode, Principal, ToProblem};
use mesh_engine::query::{
    self, MaskKey, MaskKeys, QueryError, RecordBatch, SchemaRef, SessionContext,
};

use crate::Service;

/// Why a governed read was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The query names tables that are not ports the reader may read: to the reader they do not
    /// exist (so a refusal says nothing of what exists).
    #[error("not found: table {}: no output port {} may read has that name", quoted(.tables), .reader)]
    Denied { reader: String, tables: Vec<String> },
    /// The reader's rights could not be decided.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The query failed: by its own fault, the data's, or the platform's.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The read could not be recorded in the audit log (then it is not made).
    #[error("recording the read: {0}")]
    Audit(#[from] StoreError),
}

fn quoted(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ToProblem for ReadError {
    fn code(&self) -> ErrorCode {
        match self {
            ReadError::Denied { .. } => ErrorCode::NotFound,
            ReadError::Access(e) => e.code(),
            ReadError::Query(QueryError::Invalid(_) | QueryError::Resources(_)) => {
                ErrorCode::BadRequest
            }
            ReadError::Query(QueryError::Data { .. }) => ErrorCode::Unavailable,
            ReadError::Query(QueryError::Internal(_)) => ErrorCode::Internal,
            ReadError::Audit(e) => e.code(),
        }
    }
}

/// What a reader asks to read: a query, and the tables it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub sql: String,
    /// As the query names them (`mesh.domain.table`, `domain.table` or `table`); table functions
    /// (`generate_series`, ...) are not tables.
    pub tables: Vec<String>,
}

impl ReadRequest {
    /// The request `sql` makes (a query that does not parse names no table; planning says why).
    pub fn parse(sql: &str) -> ReadRequest {
        ReadRequest {
            sql: sql.to_owned(),
            tables: query::named(sql),
        }
    }
}

/// A read decided: the reader, the query, and exactly the ports it may read of those the query
/// names, each at the snapshot readers get, with the columns it shows and how the others are
/// masked. What the engine reads, and nothing else.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub reader: Principal,
    pub sql: String,
    pub ports: Vec<ReadablePort>,
    /// The deployment's masking key, which hashed columns are keyed with.
    pub mask_key: MaskKey,
}

impl ReadPlan {
    /// The ports as the engine registers them.
    pub fn readable(&self) -> Vec<query::Readable> {
        self.ports
            .iter()
            .map(|p| readable(p, self.mask_key))
            .collect()
    }
}

/// A port as the engine registers it: its table, snapshot and masking (hashes keyed by
/// `mask_key`, or by the product's own key derived from it).
pub fn readable(p: &ReadablePort, mask_key: MaskKey) -> query::Readable {
    query::Readable {
        domain: p.domain.clone(),
        table: p.table.clone(),
        location: p.location.clone(),
        delta_version: p.delta_version,
        columns: p.columns.clone(),
        masks: p
            .masks
            .iter()
            .filter_map(|(c, m)| Some((c.clone(), query::Mask::parse(m)?)))
            .collect(),
        mask: p
            .masks
            .get("*")
            .and_then(|m| query::Mask::parse(m))
            .unwrap_or_default(),
        keys: MaskKeys::of(mask_key, &p.product),
    }
}

/// A governed read in progress: the result's schema, and its batches as the plan produces them.
/// The read is recorded in the audit log when the stream ends (before its end is seen), or when
/// it is dropped early (then as incomplete).
pub struct GovernedRead {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch, ReadError>>,
}

impl std::fmt::Debug for GovernedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedRead")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Every output port `who` may read now, with its table name and masking (what Flight SQL's
    /// metadata calls and the CLI list).
    pub async fn readable(&self, who: &Principal) -> Result<Vec<ReadablePort>, ReadError> {
        Ok(self.catalog.readable_ports(Reader::Principal(who)).await?)
    }

    /// The deployment's masking key, as the engine takes it.
    pub async fn mask_key(&self) -> Result<MaskKey, StoreError> {
        mask_key(&self.catalog).await
    }

    /// The decision on a read: which ports the tables `request` names are, of those `who` may
    /// read. A name that is none of them is refused — recorded in the audit log as
    /// `access.read_denied` (its subject the product the name would be) before the refusal.
    pub async fn authorize_read(
        &self,
        who: &Principal,
        request: &ReadRequest,
    ) -> Result<ReadPlan, ReadError> {
        // Only queries read; a statement that is not one touches no port.
        query::read_only(&request.sql)?;
        let ports = self.readable(who).await?;
        let denied: Vec<String> = request
            .tables
            .iter()
            .filter(|n| !ports.iter().any(|p| names(p, n)))
            .cloned()
            .collect();
        if !denied.is_empty() {
            let records: Vec<DeniedRead> = denied
                .iter()
                .map(|t| DeniedRead {
                    table: t.clone(),
                    by: ReadBy::Query(request.sql.clone()),
                })
                .collect();
            self.catalog
                .record_denied_reads(&who.name, &records)
                .await?;
            return Err(ReadError::Denied {
                reader: who.name.clone(),
                tables: denied,
            });
        }
        let ports = ports
            .into_iter()
            .filter(|p| request.tables.iter().any(|n| names(p, n)))
            .collect();
        Ok(ReadPlan {
            reader: who.clone(),
            sql: request.sql.clone(),
            ports,
            mask_key: self.mask_key().await?,
        })
    }

    /// A governed read: `sql` over the ports `who` may read, masked as their grants say,
    /// streamed, recorded in the audit log.
    pub async fn read(&self, who: &Principal, sql: &str) -> Result<GovernedRead, ReadError> {
        self.read_with(who, sql, None).await
    }

    /// [`Service::read`] of a statement with parameters (`$1`, ...) bound to `params`: a
    /// prepared statement's execution (PostgreSQL wire), the values never spliced into the SQL.
    pub async fn read_with(
        &self,
        who: &Principal,
        sql: &str,
        params: Option<query::ParamValues>,
    ) -> Result<GovernedRead, ReadError> {
        let started = Instant::now();
        let plan = self.authorize_read(who, &ReadRequest::parse(sql)).await?;
        let ctx = Box::pin(self.open(&plan, started)).await?;
        // A query that does not plan is the caller's mistake, not the ports': nothing is
        // recorded. A panic in the engine is this read's failure, not the process's.
        let (schema, inner) = unwound(Box::pin(query::stream_with(&ctx, sql, params))).await??;
        let record = ReadRecord::new(&self.catalog, plan, started);
        let cap = self.result_bytes;
        let batches = futures::stream::unfold(Some((inner, record, 0usize)), move |state| async move {
            let (mut inner, mut record, mut bytes) = state?;
            let next = match unwound(inner.next()).await {
                Ok(next) => next.map(|r| r.map_err(QueryError::of)),
                Err(e) => Some(Err(e)),
            };
            match next {
                Some(Ok(batch)) => {
                    record.rows += batch.num_rows() as u64;
                    bytes = bytes.saturating_add(batch.get_array_memory_size());
                    if bytes > cap {
                        let e = QueryError::Resources(format!(
                            "the result is larger than the {} MiB one query may return (MESH_RESULT_MEMORY): select fewer rows or columns, or aggregate",
                            cap >> 20
                        ));
                        let _ = record.finish(false).await;
                        return Some((Err(e.into()), None));
                    }
                    // Readers get the rows, not the data pages the rows were filtered from.
                    let batch = query::compact(batch).map_err(ReadError::from);
                    Some((batch, Some((inner, record, bytes))))
                }
                Some(Err(e)) => {
                    // The data's fault counts against the port; the query's does not.
                    if e.is_data() {
                        record.error = Some(e.to_string());
                    }
                    let _ = record.finish(false).await;
                    Some((Err(e.into()), None))
                }
                None => match record.finish(true).await {
                    Ok(()) => None,
                    Err(e) => Some((Err(e.into()), None)),
                },
            }
        })
        .boxed();
        Ok(GovernedRead { schema, batches })
    }

    /// The schema `sql` would return to `who`, without reading anything.
    pub async fn read_schema(&self, who: &Principal, sql: &str) -> Result<SchemaRef, ReadError> {
        let plan = self.authorize_read(who, &ReadRequest::parse(sql)).await?;
        let ctx = self.open(&plan, Instant::now()).await?;
        Ok(unwound(Box::pin(query::schema_of(&ctx, sql))).await??)
    }

    /// The schema `sql` would return to `who` and the types of its parameters, without reading
    /// anything (a prepared statement's description). Refused names are refused and audited as
    /// for a read.
    pub async fn describe(
        &self,
        who: &Principal,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<Option<query::arrow::datatypes::DataType>>), ReadError> {
        let plan = self.authorize_read(who, &ReadRequest::parse(sql)).await?;
        let ctx = self.open(&plan, Instant::now()).await?;
        Ok(unwound(Box::pin(query::describe(&ctx, sql))).await??)
    }

    /// An engine session over `ports` (as [`Service::readable`] gave them to a reader, masked as
    /// that reader's reads are), for describing them to a SQL tool: its catalog tables list
    /// them. Nothing read through it is recorded, so a caller runs there only statements that
    /// name none of its ports.
    pub async fn session_over(&self, ports: &[ReadablePort]) -> Result<SessionContext, ReadError> {
        let mask_key = self.mask_key().await?;
        let readable: Vec<query::Readable> = ports.iter().map(|p| readable(p, mask_key)).collect();
        let refs: Vec<&query::Readable> = readable.iter().collect();
        Ok(query::session_within(&refs, Some(&self.memory)).await?)
    }

    /// [`Service::read`], collected.
    pub async fn read_all(
        &self,
        who: &Principal,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), ReadError> {
        use futures::TryStreamExt as _;
        let read = self.read(who, sql).await?;
        let batches = read.batches.try_collect().await?;
        Ok((read.schema, batches))
    }

    /// The engine's session over exactly the plan's snapshots. A snapshot that cannot be opened
    /// is a failed read of each port, for the SLA monitor.
    async fn open(&self, plan: &ReadPlan, started: Instant) -> Result<SessionContext, ReadError> {
        let readable = plan.readable();
        let refs: Vec<&query::Readable> = readable.iter().collect();
        match query::session_within(&refs, Some(&self.memory)).await {
            Ok(ctx) => Ok(ctx),
            Err(e) => {
                let mut record = ReadRecord::new(&self.catalog, plan.clone(), started);
                record.error = Some(e.to_string());
                record.finish(false).await?;
                Err(e.into())
            }
        }
    }
}

/// `work`'s output, or its panic as an internal error: an engine bug on one query fails that
/// query, and the server goes on.
async fn unwound<T>(work: impl std::future::Future<Output = T>) -> Result<T, QueryError> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let what = crate::logging::panic_message(panic.as_ref());
            QueryError::Internal(format!("the query engine failed on this query: {what}"))
        })
}

/// The deployment's masking key of `catalog`.
pub(crate) async fn mask_key(catalog: &Catalog) -> Result<MaskKey, StoreError> {
    let key = catalog.masking_key().await?;
    MaskKey::from_hex(&key)
        .ok_or_else(|| StoreError::Corrupt("the masking key is not 64 hex digits".into()))
}

/// Whether a query's table reference names port `p`.
fn names(p: &ReadablePort, reference: &str) -> bool {
    mesh_model::names::TableName {
        domain: p.domain.clone(),
        table: p.table.clone(),
    }
    .is_named_by(reference)
}

/// The audit record of one read, written when the read ends however it ends.
struct ReadRecord {
    catalog: Catalog,
    plan: ReadPlan,
    rows: u64,
    started: Instant,
    /// Why reading the data failed.
    error: Option<String>,
    recorded: bool,
}

impl ReadRecord {
    fn new(catalog: &Catalog, plan: ReadPlan, started: Instant) -> ReadRecord {
        ReadRecord {
            catalog: catalog.clone(),
            plan,
            rows: 0,
            started,
            error: None,
            recorded: false,
        }
    }

    async fn finish(&mut self, complete: bool) -> Result<(), StoreError> {
        self.recorded = true;
        let seconds = self.started.elapsed().as_secs_f64();
        for p in &self.plan.ports {
            crate::metrics::observe_read(&p.product, &p.port, seconds, self.error.is_some());
        }
        let read = ReadOutcome {
            rows: self.rows,
            complete,
            latency_ms: seconds * 1000.0,
            error: self.error.as_deref(),
        };
        self.catalog
            .record_read(
                &self.plan.reader.name,
                &self.plan.ports,
                &read,
                &self.plan.sql,
            )
            .await
    }
}

impl Drop for ReadRecord {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        // The reader went away mid-result: what it read is still recorded.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut record = ReadRecord {
                catalog: self.catalog.clone(),
                plan: self.plan.clone(),
                rows: self.rows,
                started: self.started,
                error: self.error.take(),
                // Never recorded again from its own drop (a runtime shutting down drops what is
                // spawned at once).
                recorded: true,
            };
            self.recorded = true;
            runtime.spawn(async move {
                let _ = record.finish(false).await;
            });
        }
    }
}
