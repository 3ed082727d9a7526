//! The `/api/v1/runs` endpoints: the ledger of pipeline runs (write-audit-publish), so `mesh run`
//! works against a server as against the catalog database, and the snapshots readers get.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mesh_catalog::runs::{RunEnd, RunStart, RunView, Snapshot};
use mesh_catalog::schedule::ScheduleView;
use mesh_service::{ResolvedInput, ResolvedSource};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

type ApiResult<T> = Result<T, ApiError>;

/// Records a run of a product's latest version for one output port (before it writes
/// anything). 409 while another run of the port is open.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs",
    request_body = RunStart,
    security(("token" = [])),
    responses((status = 201, body = RunView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Another run of the port is open", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn begin_run(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<RunStart>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    let who = caller.principal()?;
    let Json(start) = body?;
    let run = state.catalog.begin_run(&who, &start).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    security(("token" = [])),
    responses((status = 200, body = RunView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<RunView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    Ok(Json(state.catalog.run(&who, &id).await?))
}

/// The Delta version a run is about to commit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Committing {
    delta_version: i64,
}

/// Marks a running run as about to commit a Delta version.
#[utoipa::path(post, path = "/api/v1/runs/{id}/committing", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    request_body = Committing,
    security(("token" = [])),
    responses((status = 200, body = RunView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The run is not running", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn committing_run(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Committing>, JsonRejection>,
) -> ApiResult<Json<RunView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    let Json(body) = body?;
    Ok(Json(
        state
            .catalog
            .committing_run(&who, &id, body.delta_version)
            .await?,
    ))
}

/// Finishes a run: with a `delta_version` it succeeded (the port's snapshot moves to it),
/// without one it failed.
#[utoipa::path(post, path = "/api/v1/runs/{id}/finish", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    request_body = RunEnd,
    security(("token" = [])),
    responses((status = 200, body = RunView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The run has finished already", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn finish_run(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<RunEnd>, JsonRejection>,
) -> ApiResult<Json<RunView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    let Json(end) = body?;
    Ok(Json(state.catalog.finish_run(&who, &id, &end).await?))
}

/// How a run whose process is gone ended, from the Delta log.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settle {
    /// The version its commit made it into; absent when it never committed.
    delta_version: Option<i64>,
}

/// Settles a run whose process is gone.
#[utoipa::path(post, path = "/api/v1/runs/{id}/settle", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    request_body = Settle,
    security(("token" = [])),
    responses((status = 200, body = RunView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn settle_run(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Settle>, JsonRejection>,
) -> ApiResult<Json<RunView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    let Json(body) = body?;
    Ok(Json(
        state
            .catalog
            .settle_run(&who, &id, body.delta_version)
            .await?,
    ))
}

/// Says a run is still at work (its process calls this every minute while it runs, so that a
/// run on another host is not taken for dead).
#[utoipa::path(post, path = "/api/v1/runs/{id}/heartbeat", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    security(("token" = [])),
    responses((status = 200, body = RunView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The run has finished", body = Problem)))]
pub(crate) async fn heartbeat_run(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<RunView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    Ok(Json(state.catalog.heartbeat_run(&who, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsParams {
    /// Only this output port's runs.
    port: Option<String>,
    /// Only runs not finished (`running`, `committing`) of `port`.
    #[serde(default)]
    open: bool,
    /// How many, newest first (default 20, at most 1000).
    limit: Option<i64>,
}

/// A product's runs, newest first.
#[utoipa::path(get, path = "/api/v1/products/{product}/runs", tag = "runs",
    params(("product" = String, Path, description = "`domain.product`"), RunsParams),
    security(("token" = [])),
    responses((status = 200, body = [RunView]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn product_runs(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<RunsParams>, QueryRejection>,
) -> ApiResult<Json<Vec<RunView>>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    let Query(params) = params?;
    if params.open {
        let port = params
            .port
            .ok_or_else(|| ApiError::bad_request("open=true needs port"))?;
        return Ok(Json(state.catalog.open_runs(&who, &product, &port).await?));
    }
    Ok(Json(
        state
            .catalog
            .runs(
                &who,
                &product,
                params.port.as_deref(),
                params.limit.unwrap_or(20),
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScheduleParams {
    /// How many next cron slots (default 3, at most 1000).
    next: Option<u16>,
    /// How many of the latest slots, newest first (default 10, at most 1000).
    last: Option<u32>,
}

/// The product's published schedule, its next cron slots and its latest slots (how each ended:
/// succeeded, skipped, failed with the reason, or claimed while it runs).
#[utoipa::path(get, path = "/api/v1/products/{product}/schedule", tag = "runs",
    params(("product" = String, Path, description = "`domain.product`"), ScheduleParams),
    security(("token" = [])),
    responses((status = 200, body = ScheduleView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn product_schedule(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ScheduleParams>, QueryRejection>,
) -> ApiResult<Json<ScheduleView>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    let Query(params) = params?;
    let (next, last) = (params.next.unwrap_or(3), params.last.unwrap_or(10));
    if next > 1000 || last > 1000 {
        return Err(ApiError::bad_request("`next` and `last` are at most 1000"));
    }
    Ok(Json(
        state
            .catalog
            .schedule_view(&who, &product, next, last)
            .await?,
    ))
}

/// Every output port's snapshot (per major version): the Delta table and version readers get.
#[utoipa::path(get, path = "/api/v1/products/{product}/snapshots", tag = "runs",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = [Snapshot]), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub(crate) async fn product_snapshots(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<Snapshot>>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    Ok(Json(state.catalog.snapshots(&who, &product).await?))
}

/// The input ports of the product's latest published version, resolved for a run by the caller:
/// each the upstream snapshot it reads and which of its columns, through the same decision as a
/// query (another domain's port only through a grant to the product). 403 when one is refused.
#[utoipa::path(get, path = "/api/v1/products/{product}/inputs", tag = "runs",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = [ResolvedInput]), (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "An input port the product may not read", body = Problem),
        (status = 404, description = "No such product, or an input port with no snapshot yet", body = Problem)))]
pub(crate) async fn product_inputs(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<ResolvedInput>>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    Ok(Json(state.service.pipeline_inputs(&who, &product).await?))
}

/// The sources of the product's latest published version, each allowed for a run by the
/// caller: a file of the product's own folder, or data under a location registered for its
/// domain (never managed storage). 403 when one is neither, naming the command that registers
/// its location.
#[utoipa::path(get, path = "/api/v1/products/{product}/sources", tag = "runs",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = [ResolvedSource]), (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "A source outside the product's folder and its domain's locations", body = Problem),
        (status = 404, body = Problem)))]
pub(crate) async fn product_sources(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<ResolvedSource>>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    Ok(Json(state.service.pipeline_sources(&who, &product).await?))
}
