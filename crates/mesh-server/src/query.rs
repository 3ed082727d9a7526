//! `POST /api/v1/query`: the governed read over HTTP. The read itself — which ports the query
//! may touch, masking, the audit log — is the service's ([`mesh_service::Service::read`]); this
//! handler takes one query from the consumer's budget, bounds it in time, and streams the result
//! in the format asked for.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use mesh_catalog::Principal;
use mesh_engine::query::{RecordBatch, ResultFormat};
use mesh_service::ReadError;
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
/// right to does not exist for them; columns outside their grant come back masked.
#[utoipa::path(post, path = "/api/v1/query", tag = "access",
    params(FormatParams),
    request_body = QueryRequest,
    security(("token" = [])),
    responses((status = 200, body = QueryResult), (status = 400, description = "Not a read the caller may make", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "A table the caller may not read (to them it does not exist)", body = Problem),
        (status = 408, description = "The query ran longer than the server allows", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 429, description = "Too many queries from this consumer", body = Problem),
        (status = 503, description = "A port's data could not be read", body = Problem)))]
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
    state
        .limits
        .take(&who.name)
        .await
        .map_err(|e| ApiError::of(&e))?;
    let deadline = tokio::time::Instant::now() + state.limits.limits.timeout;
    // Boxed: planning futures are large, and a debug build's 2 MiB stacks are not.
    tokio::time::timeout_at(
        deadline,
        Box::pin(run(&state, &who, &body.sql, format, deadline)),
    )
    .await
    .map_err(|_| ApiError::of(&state.limits.timed_out()))?
}

/// Why a result stream stopped early.
pub(crate) enum Cut {
    Failed(ReadError),
    TimedOut,
}

/// `batches` until `deadline`: past it, one [`Cut::TimedOut`] and the end.
pub(crate) fn until(
    batches: BoxStream<'static, Result<RecordBatch, ReadError>>,
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

async fn run(
    state: &AppState,
    who: &Principal,
    sql: &str,
    format: ResultFormat,
    deadline: tokio::time::Instant,
) -> Result<Response, ApiError> {
    let read = Box::pin(state.service.read(who, sql)).await?;
    let mut batches = read.batches.peekable();
    // An error before the first batch is still a problem with a status; after it, the body breaks.
    if let Some(Err(_)) = std::pin::Pin::new(&mut batches).peek().await
        && let Some(Err(e)) = batches.next().await
    {
        return Err(e.into());
    }
    let encoder = mesh_engine::query::Encoder::new(format, read.schema)
        .map_err(|e| ApiError::of(&ReadError::from(e)))?;
    let timed_out = state.limits.timed_out();
    let batches = until(batches.boxed(), deadline);
    let body = futures::stream::unfold(Some((batches, encoder)), move |s| {
        let timed_out = timed_out.clone();
        async move {
            let (mut batches, mut encoder) = s?;
            let broken = |e: String| Some((Err(std::io::Error::other(e)), None));
            loop {
                match batches.next().await {
                    Some(Ok(batch)) => match encoder.push(&batch) {
                        Ok(bytes) if bytes.is_empty() => continue,
                        Ok(bytes) => {
                            return Some((Ok(Bytes::from(bytes)), Some((batches, encoder))));
                        }
                        Err(e) => return broken(e.to_string()),
                    },
                    Some(Err(Cut::TimedOut)) => return broken(timed_out.to_string()),
                    Some(Err(Cut::Failed(e))) => return broken(e.to_string()),
                    None => {
                        return match encoder.finish() {
                            Ok(bytes) => Some((Ok(Bytes::from(bytes)), None)),
                            Err(e) => broken(e.to_string()),
                        };
                    }
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
