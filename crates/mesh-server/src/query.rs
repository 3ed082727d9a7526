//! `POST /api/v1/query`: SQL over the output ports the caller may read (their domain's, and what
//! their grants cover), with columns outside a grant masked in the plan; every read recorded.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

/// A read-only query.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    /// DataFusion SQL; tables are `domain.product` (see `GET /api/v1/readable`).
    sql: String,
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
    request_body = QueryRequest,
    security(("token" = [])),
    responses((status = 200, body = QueryResult), (status = 400, description = "Not a read the caller may make", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn query(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Json<QueryResult>, ApiError> {
    let who = caller.principal()?;
    let Json(body) = body?;
    let ports = state.catalog.readable_ports(&who).await?;
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
    let bad = |e: mesh_engine::pipeline::RunError| ApiError::bad_request(e.to_string());
    let ctx = mesh_engine::query::session(&readable, &body.sql)
        .await
        .map_err(bad)?;
    let named = mesh_engine::query::tables_named(&ctx, &body.sql);
    let batches = mesh_engine::query::run(&ctx, &body.sql)
        .await
        .map_err(bad)?;
    let rows = mesh_engine::query::json_rows(&batches).map_err(bad)?;
    let columns = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let read: Vec<mesh_catalog::access::ReadablePort> = ports
        .into_iter()
        .filter(|p| {
            named.iter().any(|n| {
                let n = n.trim_start_matches("mesh.");
                n == format!("{}.{}", p.domain, p.table) || n == p.table
            })
        })
        .collect();
    state
        .catalog
        .record_read(&who, &read, rows.len() as u64, &body.sql)
        .await?;
    Ok(Json(QueryResult { columns, rows }))
}
