//! `POST /api/v1/query`: SQL over the output ports the caller may read (their domain's, and what
//! their grants cover), with columns outside a grant masked in the plan; every read recorded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

/// Per-consumer token buckets and the query timeout.
#[derive(Debug)]
pub(crate) struct Limits {
    limits: crate::QueryLimits,
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
    fn take(&self, who: &str) -> Result<(), std::time::Duration> {
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
        None => mesh_engine::query::ResultFormat::Json,
        Some(f) => mesh_engine::query::ResultFormat::parse(f).ok_or_else(|| {
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
    tokio::time::timeout(timeout, run(&state, &who, &body.sql, format))
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

/// A governed read: `sql` over the ports `who` may read, masked as their grants say, recorded
/// in the audit log. The one path for the HTTP endpoint and the CLI's local catalog.
pub async fn governed_read(
    catalog: &mesh_catalog::Catalog,
    who: &mesh_catalog::Principal,
    sql: &str,
) -> Result<
    (
        mesh_engine::query::SchemaRef,
        Vec<mesh_engine::query::RecordBatch>,
    ),
    mesh_catalog::CatalogError,
> {
    let bad =
        |e: mesh_engine::pipeline::RunError| mesh_catalog::CatalogError::BadRequest(e.to_string());
    let ports = catalog.readable_ports(who).await?;
    let readable: Vec<mesh_engine::query::Readable> = ports
        .iter()
        .map(|p| mesh_engine::query::Readable {
            domain: p.domain.clone(),
            table: p.table.clone(),
            location: p.location.clone(),
            delta_version: p.delta_version,
            columns: p.columns.clone(),
            mask: mesh_engine::query::Mask::Null,
        })
        .collect();
    let ctx = mesh_engine::query::session(&readable, sql)
        .await
        .map_err(bad)?;
    let named = mesh_engine::query::tables_named(&ctx, sql);
    let (schema, batches) = mesh_engine::query::run_with_schema(&ctx, sql)
        .await
        .map_err(bad)?;
    let count: usize = batches.iter().map(|b| b.num_rows()).sum();
    let read: Vec<mesh_catalog::access::ReadablePort> = ports
        .into_iter()
        .filter(|p| {
            named.iter().any(|n| {
                let n = n.trim_start_matches("mesh.");
                n == format!("{}.{}", p.domain, p.table) || n == p.table
            })
        })
        .collect();
    catalog.record_read(who, &read, count as u64, sql).await?;
    Ok((schema, batches))
}

async fn run(
    state: &AppState,
    who: &mesh_catalog::Principal,
    sql: &str,
    format: mesh_engine::query::ResultFormat,
) -> Result<Response, ApiError> {
    let (schema, batches) = governed_read(&state.catalog, who, sql).await?;
    let bad = |e: mesh_engine::pipeline::RunError| ApiError::bad_request(e.to_string());
    if format == mesh_engine::query::ResultFormat::Json {
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let rows = mesh_engine::query::json_rows(&batches).map_err(bad)?;
        return Ok(Json(QueryResult { columns, rows }).into_response());
    }
    let bytes = mesh_engine::query::encode(&batches, schema, format).map_err(bad)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response())
}
