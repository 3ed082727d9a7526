//! `POST /api/v1/query`: SQL over the output ports the caller may read (their domain's, and what
//! their grants cover), with columns outside a grant masked in the plan; every read recorded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use mesh_catalog::access::{ReadOutcome, ReadablePort};
use mesh_catalog::{Catalog, CatalogError, Principal};
use mesh_engine::query::{RecordBatch, ResultFormat, SchemaRef, SessionContext};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

/// Per-consumer token buckets and the query timeout.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) limits: crate::QueryLimits,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limits {
    pub(crate) fn new(limits: crate::QueryLimits) -> Limits {
        Limits {
            limits,
            buckets: Mutex::default(),
        }
    }

    /// Takes one query from `who`'s bucket; how long to wait when it is empty.
    pub(crate) fn take(&self, who: &str) -> Result<(), std::time::Duration> {
        let rate = f64::from(self.limits.per_minute.max(1)) / 60.0;
        let burst = f64::from(self.limits.burst.max(1));
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let (tokens, at) = buckets.entry(who.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

/// A read-only query.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    /// DataFusion SQL; tables are `domain.product` (see `GET /api/v1/readable`).
    sql: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FormatParams {
    /// `json` (default: `{columns, rows}`), `csv`, `arrow` (Arrow IPC stream) or `parquet`.
    format: Option<String>,
}

/// The rows of a query.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QueryResult {
    columns: Vec<String>,
    rows: Vec<serde_json::Value>,
}

/// Runs one read-only query over the ports the caller may read. A table the caller has no
/// right to does not exist for them; columns outside their grant come back masked (null).
#[utoipa::path(post, path = "/api/v1/query", tag = "access",
    params(FormatParams),
    request_body = QueryRequest,
    security(("token" = [])),
    responses((status = 200, body = QueryResult), (status = 400, description = "Not a read the caller may make", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 408, description = "The query ran longer than the server allows", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 429, description = "Too many queries from this consumer", body = Problem)))]
pub(crate) async fn query(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<FormatParams>, QueryRejection>,
    body: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller.principal()?;
    let Query(params) = params?;
    let Json(body) = body?;
    let format = match params.format.as_deref() {
        None => ResultFormat::Json,
        Some(f) => ResultFormat::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!("format `{f}` is not json, csv, arrow or parquet"))
        })?,
    };
    if let Err(wait) = state.limits.take(&who.name) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "{} has used up {} queries a minute; try again in {} s",
                who.name,
                state.limits.limits.per_minute,
                wait.as_secs() + 1
            ),
        ));
    }
    let timeout = state.limits.limits.timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    // Boxed: planning futures are large, and a debug build's 2 MiB stacks are not.
    tokio::time::timeout_at(
        deadline,
        Box::pin(run(&state, &who, &body.sql, format, deadline)),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the query ran longer than {} s and was stopped",
                timeout.as_secs_f64()
            ),
        )
    })?
}

/// A governed read in progress: the result's schema, and its batches as the plan produces them.
/// The read is recorded in the audit log when the stream ends (before its end is seen), or when
/// it is dropped early (then as incomplete).
pub struct GovernedRead {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch, CatalogError>>,
}

impl std::fmt::Debug for GovernedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedRead")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn bad(e: mesh_engine::pipeline::RunError) -> CatalogError {
    CatalogError::BadRequest(e.to_string())
}

/// The session `sql` runs in for `who`: exactly the ports it names that `who` may read, masked as
/// their grants say; and those ports.
async fn governed_session(
    catalog: &Catalog,
    who: &Principal,
    sql: &str,
    started: Instant,
) -> Result<(SessionContext, Vec<ReadablePort>), CatalogError> {
    let ports = catalog.readable_ports(who).await?;
    let named = mesh_engine::query::named(sql);
    let names = |p: &ReadablePort, n: &str| mesh_engine::query::names(n, &p.domain, &p.table);
    let denied: Vec<String> = named
        .iter()
        .filter(|n| !ports.iter().any(|p| names(p, n)))
        .cloned()
        .collect();
    // A refused read is a read decision too: it goes to the audit log before the query fails.
    catalog.record_denied_read(who, &denied, sql).await?;
    let read: Vec<ReadablePort> = ports
        .into_iter()
        .filter(|p| named.iter().any(|n| names(p, n)))
        .collect();
    let readable: Vec<mesh_engine::query::Readable> = read.iter().map(readable).collect();
    let refs: Vec<&mesh_engine::query::Readable> = readable.iter().collect();
    match mesh_engine::query::session_with(&refs).await {
        Ok(ctx) => Ok((ctx, read)),
        Err(e) => {
            // The ports' data could not be opened: a failed read of each, for the SLA monitor.
            let error = e.to_string();
            let mut record = ReadRecord::new(catalog, who, read, sql, started);
            record.error = Some(error);
            record.finish(false).await?;
            Err(bad(e))
        }
    }
}

pub(crate) fn readable(p: &ReadablePort) -> mesh_engine::query::Readable {
    mesh_engine::query::Readable {
        domain: p.domain.clone(),
        table: p.table.clone(),
        location: p.location.clone(),
        delta_version: p.delta_version,
        columns: p.columns.clone(),
        masks: p
            .masks
            .iter()
            .filter_map(|(c, m)| Some((c.clone(), mesh_engine::query::Mask::parse(m)?)))
            .collect(),
        mask: p
            .masks
            .get("*")
            .and_then(|m| mesh_engine::query::Mask::parse(m))
            .unwrap_or_default(),
    }
}

/// The schema `sql` would return to `who`, without reading anything.
pub async fn governed_schema(
    catalog: &Catalog,
    who: &Principal,
    sql: &str,
) -> Result<SchemaRef, CatalogError> {
    let (ctx, _) = governed_session(catalog, who, sql, Instant::now()).await?;
    mesh_engine::query::schema_of(&ctx, sql).await.map_err(bad)
}

/// A governed read: `sql` over the ports `who` may read, masked as their grants say, streamed,
/// recorded in the audit log. The one path for HTTP, Flight SQL and the CLI's local catalog.
pub async fn governed_stream(
    catalog: &Catalog,
    who: &Principal,
    sql: &str,
) -> Result<GovernedRead, CatalogError> {
    let started = Instant::now();
    let (ctx, ports) = Box::pin(governed_session(catalog, who, sql, started)).await?;
    // A query that does not plan is the caller's mistake, not the ports': nothing is recorded.
    let (schema, inner) = Box::pin(mesh_engine::query::stream(&ctx, sql))
        .await
        .map_err(bad)?;
    let record = ReadRecord::new(catalog, who, ports, sql, started);
    let batches = futures::stream::unfold(Some((inner, record)), |state| async move {
        let (mut inner, mut record) = state?;
        match inner.next().await {
            Some(Ok(batch)) => {
                record.rows += batch.num_rows() as u64;
                // Readers get the rows, not the data pages the rows were filtered from.
                let batch = mesh_engine::query::compact(batch).map_err(bad);
                Some((batch, Some((inner, record))))
            }
            Some(Err(e)) => {
                // The data's fault counts against the port; the query's does not.
                if mesh_engine::query::is_storage_error(&e) {
                    record.error = Some(e.to_string());
                }
                let _ = record.finish(false).await;
                Some((Err(CatalogError::BadRequest(e.to_string())), None))
            }
            None => match record.finish(true).await {
                Ok(()) => None,
                Err(e) => Some((Err(e), None)),
            },
        }
    })
    .boxed();
    Ok(GovernedRead { schema, batches })
}

/// [`governed_stream`], collected.
pub async fn governed_read(
    catalog: &Catalog,
    who: &Principal,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), CatalogError> {
    let read = governed_stream(catalog, who, sql).await?;
    let batches = read.batches.try_collect().await?;
    Ok((read.schema, batches))
}

/// Why a result stream stopped early.
pub(crate) enum Cut {
    Failed(CatalogError),
    TimedOut,
}

/// `batches` until `deadline`: past it, one [`Cut::TimedOut`] and the end.
pub(crate) fn until(
    batches: BoxStream<'static, Result<RecordBatch, CatalogError>>,
    deadline: tokio::time::Instant,
) -> BoxStream<'static, Result<RecordBatch, Cut>> {
    futures::stream::unfold(Some(batches), move |state| async move {
        let mut batches = state?;
        match tokio::time::timeout_at(deadline, batches.next()).await {
            Err(_) => Some((Err(Cut::TimedOut), None)),
            Ok(Some(Ok(batch))) => Some((Ok(batch), Some(batches))),
            Ok(Some(Err(e))) => Some((Err(Cut::Failed(e)), None)),
            Ok(None) => None,
        }
    })
    .boxed()
}

/// The audit record of one read, written when the read ends however it ends.
struct ReadRecord {
    catalog: Catalog,
    who: Principal,
    ports: Vec<ReadablePort>,
    sql: String,
    rows: u64,
    started: Instant,
    /// Why reading the data failed.
    error: Option<String>,
    recorded: bool,
}

impl ReadRecord {
    fn new(
        catalog: &Catalog,
        who: &Principal,
        ports: Vec<ReadablePort>,
        sql: &str,
        started: Instant,
    ) -> ReadRecord {
        ReadRecord {
            catalog: catalog.clone(),
            who: who.clone(),
            ports,
            sql: sql.to_owned(),
            rows: 0,
            started,
            error: None,
            recorded: false,
        }
    }

    async fn finish(&mut self, complete: bool) -> Result<(), CatalogError> {
        self.recorded = true;
        let seconds = self.started.elapsed().as_secs_f64();
        for p in &self.ports {
            crate::sla::observe_read(&p.product, &p.port, seconds, self.error.is_some());
        }
        let read = ReadOutcome {
            rows: self.rows,
            complete,
            latency_ms: seconds * 1000.0,
            error: self.error.as_deref(),
        };
        self.catalog
            .record_read(&self.who, &self.ports, &read, &self.sql)
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
                who: self.who.clone(),
                ports: std::mem::take(&mut self.ports),
                sql: std::mem::take(&mut self.sql),
                rows: self.rows,
                started: self.started,
                error: self.error.take(),
                // Never recorded again from its own drop (a runtime shutting down drops
                // what is spawned at once).
                recorded: true,
            };
            self.recorded = true;
            runtime.spawn(async move {
                let _ = record.finish(false).await;
            });
        }
    }
}

async fn run(
    state: &AppState,
    who: &Principal,
    sql: &str,
    format: ResultFormat,
    deadline: tokio::time::Instant,
) -> Result<Response, ApiError> {
    let read = Box::pin(governed_stream(&state.catalog, who, sql)).await?;
    let mut batches = read.batches.peekable();
    // An error before the first batch is still a problem with a status; after it, the body breaks.
    if let Some(Err(_)) = std::pin::Pin::new(&mut batches).peek().await
        && let Some(Err(e)) = batches.next().await
    {
        return Err(e.into());
    }
    let encoder = mesh_engine::query::Encoder::new(format, read.schema)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let timeout = state.limits.limits.timeout;
    let batches = until(batches.boxed(), deadline);
    let body = futures::stream::unfold(Some((batches, encoder)), move |state| async move {
        let (mut batches, mut encoder) = state?;
        let broken = |e: String| Some((Err(std::io::Error::other(e)), None));
        loop {
            match batches.next().await {
                Some(Ok(batch)) => match encoder.push(&batch) {
                    Ok(bytes) if bytes.is_empty() => continue,
                    Ok(bytes) => return Some((Ok(Bytes::from(bytes)), Some((batches, encoder)))),
                    Err(e) => return broken(e.to_string()),
                },
                Some(Err(Cut::TimedOut)) => {
                    return broken(format!(
                        "the query ran longer than {} s and was stopped",
                        timeout.as_secs_f64()
                    ));
                }
                Some(Err(Cut::Failed(e))) => return broken(e.to_string()),
                None => {
                    return match encoder.finish() {
                        Ok(bytes) => Some((Ok(Bytes::from(bytes)), None)),
                        Err(e) => broken(e.to_string()),
                    };
                }
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(body),
    )
        .into_response())
}
