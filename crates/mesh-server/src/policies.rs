//! The `/api/v1/policies` endpoints: governance policies kept in the catalog, versioned per scope
//! (`global` or a domain), the policies in effect for a domain, and the catalog-wide audit.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mesh_catalog::audit::AuditReport;
use mesh_catalog::governance::{
    EffectivePolicies, PolicyBundle, PolicyBundleView, PolicyPublishReport, PolicyScope,
};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PublishPoliciesParams {
    /// Check everything (load, federation, Rego tests) and store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Publishes a new version of the policies of a scope: `global` (admins; added to the standard
/// pack) or a domain (its owners; Rego files and `overrides` that tighten global policies).
/// Refused when they do not load with the policies they join, or when their Rego tests fail.
#[utoipa::path(post, path = "/api/v1/policies/{scope}", tag = "governance",
    params(
        ("scope" = String, Path, description = "`global` or a domain name"),
        PublishPoliciesParams,
    ),
    request_body = PolicyBundle,
    security(("token" = [])),
    responses(
        (status = 201, description = "Published as a new version", body = PolicyPublishReport),
        (status = 200, description = "Unchanged (the current version), or checked (dry run)", body = PolicyPublishReport),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 415, body = Problem),
        (status = 422, description = "The policies do not load, clash with others, or fail their tests", body = Problem),
    ))]
pub(crate) async fn publish_policies(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<PublishPoliciesParams>, QueryRejection>,
    body: Result<Json<PolicyBundle>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<PolicyPublishReport>)> {
    let who = caller.principal()?;
    let Path(scope) = path?;
    let Query(params) = params?;
    let Json(bundle) = body?;
    let scope = PolicyScope::parse(&scope)?;
    let report = state
        .catalog
        .publish_policies(&who, &scope, bundle, params.dry_run)
        .await?;
    let status = if report.outcome == "published" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}

/// Every version of a scope's policies, oldest first (file names, not their text).
#[utoipa::path(get, path = "/api/v1/policies/{scope}/versions", tag = "governance",
    params(("scope" = String, Path, description = "`global` or a domain name")),
    security(("token" = [])),
    responses((status = 200, body = [PolicyBundleView]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn policy_versions(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<PolicyBundleView>>> {
    let who = caller.principal()?;
    let Path(scope) = path?;
    let scope = PolicyScope::parse(&scope)?;
    Ok(Json(state.catalog.policy_bundles(&who, &scope).await?))
}

/// One version of a scope's policies, with the text of its files.
#[utoipa::path(get, path = "/api/v1/policies/{scope}/versions/{version}", tag = "governance",
    params(
        ("scope" = String, Path, description = "`global` or a domain name"),
        ("version" = i64, Path, description = "1, 2, ..."),
    ),
    security(("token" = [])),
    responses((status = 200, body = PolicyBundleView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn policy_version(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> ApiResult<Json<PolicyBundleView>> {
    let who = caller.principal()?;
    let Path((scope, version)) = path?;
    let scope = PolicyScope::parse(&scope)?;
    Ok(Json(
        state.catalog.policy_bundle(&who, &scope, version).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EffectiveParams {
    /// The policies a product of this domain is judged by (without: the global ones).
    domain: Option<String>,
}

/// The policies in effect: id, title, type, enforcement and scope of each, with the bundle
/// versions they come from.
#[utoipa::path(get, path = "/api/v1/policies", tag = "governance",
    params(EffectiveParams),
    security(("token" = [])),
    responses((status = 200, body = EffectivePolicies), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn effective_policies(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<EffectiveParams>, QueryRejection>,
) -> ApiResult<Json<EffectivePolicies>> {
    let who = caller.principal()?;
    let Query(params) = params?;
    Ok(Json(
        state
            .catalog
            .effective_policies(&who, params.domain.as_deref())
            .await?,
    ))
}

/// Audits every product's latest version against the policies in effect for its domain:
/// compliance per domain and per policy, every violation; the run is kept in the event log
/// (`policy.audit`).
#[utoipa::path(post, path = "/api/v1/audit", tag = "governance",
    security(("token" = [])),
    responses((status = 200, body = AuditReport), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditReport>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.audit(&who).await?))
}
