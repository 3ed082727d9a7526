//! The `/api/v1/access` endpoints: requests to read an output port, the owning domain's
//! decisions, and the grants they make.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mesh_catalog::access::{AccessAsk, AccessDecision, GrantView, RequestView};
use mesh_catalog::credentials::{CredentialAsk, CredentialView, MintedCredential};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

type ApiResult<T> = Result<T, ApiError>;

/// Asks for access to an output port (purpose, columns or all, days). The owning domain is
/// notified through the event log.
#[utoipa::path(post, path = "/api/v1/access/requests", tag = "access",
    request_body = AccessAsk,
    security(("token" = [])),
    responses((status = 201, body = RequestView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn request_access(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<AccessAsk>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let who = caller.principal()?;
    let Json(ask) = body?;
    let request = state.catalog.request_access(&who, &ask).await?;
    crate::notify::send(&state, "access.requested", &request.product, &request);
    Ok((StatusCode::CREATED, Json(request)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestsParams {
    /// Only this product's requests (its owners see all of them; others their own).
    product: Option<String>,
    /// `pending`, `approved` or `denied`.
    state: Option<String>,
}

/// Access requests: the caller's own, or a product's for its owners.
#[utoipa::path(get, path = "/api/v1/access/requests", tag = "access",
    params(RequestsParams),
    security(("token" = [])),
    responses((status = 200, body = [RequestView]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<RequestsParams>, QueryRejection>,
) -> ApiResult<Json<Vec<RequestView>>> {
    let who = caller.principal()?;
    let Query(params) = params?;
    Ok(Json(
        state
            .catalog
            .access_requests(&who, params.product.as_deref(), params.state.as_deref())
            .await?,
    ))
}

/// Approves (perhaps fewer columns, fewer days) or denies a pending request; the owning
/// domain's owners (or the contract's named approvers) decide, never the requester.
#[utoipa::path(post, path = "/api/v1/access/requests/{id}/decision", tag = "access",
    params(("id" = String, Path, description = "The request id")),
    request_body = AccessDecision,
    security(("token" = [])),
    responses((status = 200, body = RequestView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Already decided", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<AccessDecision>, JsonRejection>,
) -> ApiResult<Json<RequestView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    let Json(decision) = body?;
    let request = state.catalog.decide_access(&who, &id, &decision).await?;
    let event = mesh_catalog::access::decision_event(&request.state, request.grant.is_some());
    crate::notify::send(&state, event, &request.product, &request);
    Ok(Json(request))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GrantsParams {
    /// Only this product's grants (its owners see all of them; others their own).
    product: Option<String>,
    /// The grants of this consuming product's service identity (`domain.product`), for the
    /// people of its domain who run its pipeline.
    consumer: Option<String>,
}

/// Grants: the caller's own, a product's for its owners, or a consuming product's for its
/// domain.
#[utoipa::path(get, path = "/api/v1/access/grants", tag = "access",
    params(GrantsParams),
    security(("token" = [])),
    responses((status = 200, body = [GrantView]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<GrantsParams>, QueryRejection>,
) -> ApiResult<Json<Vec<GrantView>>> {
    let who = caller.principal()?;
    let Query(params) = params?;
    if let Some(consumer) = &params.consumer {
        if params.product.is_some() {
            return Err(ApiError::bad_request(
                "give `product` or `consumer`, not both",
            ));
        }
        return Ok(Json(state.catalog.consumer_grants(&who, consumer).await?));
    }
    Ok(Json(
        state
            .catalog
            .access_grants(&who, params.product.as_deref())
            .await?,
    ))
}

/// Why a grant is revoked.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revoke {
    #[serde(default)]
    reason: String,
}

/// Revokes a grant at once (the owning domain, or the grantee giving it up).
#[utoipa::path(post, path = "/api/v1/access/grants/{id}/revoke", tag = "access",
    params(("id" = String, Path, description = "The grant id")),
    request_body = Revoke,
    security(("token" = [])),
    responses((status = 200, body = GrantView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Already revoked", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Revoke>, JsonRejection>,
) -> ApiResult<Json<GrantView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    let Json(body) = body?;
    let grant = state.catalog.revoke_access(&who, &id, &body.reason).await?;
    crate::notify::send(&state, "access.revoked", &grant.product, &grant);
    Ok(Json(grant))
}

/// Who has read the product's output ports through the query port, how often and how many
/// rows, most recent first: for the people of its domain.
#[utoipa::path(get, path = "/api/v1/products/{product}/usage", tag = "access",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = [mesh_catalog::audit::Usage]), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<Vec<mesh_catalog::audit::Usage>>> {
    let who = caller.principal()?;
    let axum::extract::Path(product) = path?;
    Ok(Json(state.catalog.usage(&who, &product).await?))
}

/// Mints a credential for a grant: a secret that reads the grant's port and columns and does
/// nothing else, until it or the grant ends. Shown once. The grantee mints (for a product's
/// service identity, the people of its domain).
#[utoipa::path(post, path = "/api/v1/access/grants/{id}/credentials", tag = "access",
    params(("id" = String, Path, description = "The grant id")),
    request_body = CredentialAsk,
    security(("token" = [])),
    responses((status = 201, body = MintedCredential), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The grant ended, or has too many live credentials", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn mint_credential(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<CredentialAsk>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<MintedCredential>)> {
    let who = caller.principal()?;
    let Path(id) = path?;
    let Json(ask) = body?;
    let minted = state.catalog.mint_credential(&who, &id, &ask).await?;
    Ok((StatusCode::CREATED, Json(minted)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CredentialsParams {
    /// Only this grant's credentials.
    grant: Option<String>,
}

/// Credentials (never their secrets): those the caller minted or may mint, and those on its
/// domains' products.
#[utoipa::path(get, path = "/api/v1/access/credentials", tag = "access",
    params(CredentialsParams),
    security(("token" = [])),
    responses((status = 200, body = [CredentialView]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn list_credentials(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<CredentialsParams>, QueryRejection>,
) -> ApiResult<Json<Vec<CredentialView>>> {
    let who = caller.principal()?;
    let Query(params) = params?;
    Ok(Json(
        state
            .catalog
            .credentials(&who, params.grant.as_deref())
            .await?,
    ))
}

/// Revokes one credential at once; its grant stays.
#[utoipa::path(delete, path = "/api/v1/access/credentials/{id}", tag = "access",
    params(("id" = String, Path, description = "The credential id")),
    security(("token" = [])),
    responses((status = 200, body = CredentialView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Already revoked", body = Problem)))]
pub(crate) async fn revoke_credential(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<CredentialView>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    Ok(Json(state.catalog.revoke_credential(&who, &id).await?))
}
