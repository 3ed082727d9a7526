//! The `/api/v1` endpoints. Each handler authenticates the caller, hands the request to the
//! catalog (which authorizes and decides), and returns JSON or a problem document.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use mesh_catalog::audit::Event;
use mesh_catalog::lifecycle::Deprecation;
use mesh_catalog::lineage::ImpactReport;
use mesh_catalog::lineage::{Direction as LineageDirection, Graph};
use mesh_catalog::products::{Domain, ProductSummary, Team};
use mesh_catalog::search::Recommendation;
use mesh_catalog::search::{SearchQuery, SearchResults};
use mesh_catalog::store::ProductQuery;
use mesh_catalog::{Bundle, ProductView, PublishOutcome, PublishReport, Role, Source, VersionView};
use mesh_model::changelog::{self, Change, Impact, SummaryLine};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mesh catalog API",
        description = "Data products, their versions and output-port contracts: publish, \
                       compatibility, changelog, deprecation, events. Every error is an RFC 9457 \
                       problem document (application/problem+json).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "products", description = "Publish and read data products"),
        (name = "catalog", description = "Domains, teams, events, tokens"),
        (name = "contracts", description = "Contract changelogs"),
        (name = "lineage", description = "Lineage graph; OpenLineage in, Marquez's graph shape out"),
        (name = "governance", description = "Rego policies versioned per scope (global, domain), and the audit"),
        (name = "runs", description = "Pipeline runs (write-audit-publish) and the snapshots readers get"),
        (name = "access", description = "Access requests, decisions and time-boxed grants"),
        (name = "sla", description = "Service levels per output port, violations, webhook deliveries, Prometheus metrics"),
    ),
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(list_products, publish))
        .routes(routes!(check_compatibility))
        .routes(routes!(get_product))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(get_contract))
        .routes(routes!(deprecate))
        .routes(routes!(retire))
        .routes(routes!(port_changelog))
        .routes(routes!(changelog_of))
        .routes(routes!(search))
        .routes(routes!(ingest_lineage, get_lineage))
        .routes(routes!(product_lineage))
        .routes(routes!(impact))
        .routes(routes!(recommendations))
        .routes(routes!(list_domains))
        .routes(routes!(put_domain))
        .routes(routes!(whoami))
        .routes(routes!(list_bindings, add_binding))
        .routes(routes!(remove_binding))
        .routes(routes!(list_teams))
        .routes(routes!(list_events))
        .routes(routes!(issue_token))
        .routes(routes!(revoke_token))
        .routes(routes!(revoke_principal))
        .routes(routes!(masking_key))
        .routes(routes!(rotate_masking_key))
        .routes(routes!(crate::policies::effective_policies))
        .routes(routes!(crate::policies::publish_policies))
        .routes(routes!(crate::policies::policy_versions))
        .routes(routes!(crate::policies::policy_version))
        .routes(routes!(crate::policies::audit))
        .routes(routes!(crate::runs::begin_run))
        .routes(routes!(crate::runs::get_run))
        .routes(routes!(crate::runs::committing_run))
        .routes(routes!(crate::runs::finish_run))
        .routes(routes!(crate::runs::settle_run))
        .routes(routes!(crate::runs::heartbeat_run))
        .routes(routes!(crate::runs::product_runs))
        .routes(routes!(crate::runs::product_snapshots))
        .routes(routes!(crate::runs::product_schedule))
        .routes(routes!(crate::runs::product_inputs))
        .routes(routes!(crate::runs::product_sources))
        .routes(routes!(list_locations, add_location))
        .routes(routes!(remove_location))
        .routes(routes!(list_subscriptions, subscribe))
        .routes(routes!(unsubscribe))
        .routes(routes!(
            crate::access::request_access,
            crate::access::list_requests
        ))
        .routes(routes!(crate::access::decide))
        .routes(routes!(crate::access::list_grants))
        .routes(routes!(crate::access::revoke))
        .routes(routes!(crate::access::mint_credential))
        .routes(routes!(crate::access::list_credentials))
        .routes(routes!(crate::access::revoke_credential))
        .routes(routes!(crate::access::usage))
        .routes(routes!(crate::query::query))
        .routes(routes!(crate::sla::status))
        .routes(routes!(crate::sla::check))
        .routes(routes!(crate::sla::violations))
        .routes(routes!(crate::sla::deliveries))
        .routes(routes!(crate::sla::metrics))
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    backend: &'static str,
}

/// Liveness: the server runs and reaches its catalog database. No token needed.
#[utoipa::path(get, path = "/health", tag = "catalog",
    responses((status = 200, body = Health), (status = 500, body = Problem)))]
async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.catalog.store().read().await.map_err(ApiError::from)?;
    Ok(Json(Health {
        status: "ok",
        backend: state.catalog.store().backend().as_str(),
    }))
}

/// One document of a publish: YAML or JSON text, or the document itself as a JSON object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    /// A name for messages, e.g. the file path (`contracts/orders.odcs.yaml`).
    path: Option<String>,
    /// The document: YAML/JSON text, or a JSON object.
    content: serde_json::Value,
}

impl Document {
    fn source(&self, default: String) -> ApiResult<Source> {
        let text = match &self.content {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Object(_) => serde_json::to_string_pretty(&self.content)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            _ => {
                return Err(ApiError::bad_request(
                    "`content` must be YAML/JSON text or a JSON object",
                ));
            }
        };
        Ok(Source {
            path: self.path.clone().unwrap_or(default),
            text,
        })
    }
}

/// A data product version to publish: its ODPS descriptor and the ODCS contract of every
/// output port.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    descriptor: Document,
    #[serde(default)]
    contracts: Vec<Document>,
    /// The pipeline's SQL (`transform.sql`), published and versioned with the product; the
    /// orchestrator runs it on the product's schedule (required when there is one).
    #[serde(default)]
    transform: Option<Document>,
}

impl PublishRequest {
    fn bundle(&self) -> ApiResult<Bundle> {
        Ok(Bundle {
            descriptor: self.descriptor.source("product.odps.yaml".to_owned())?,
            contracts: self
                .contracts
                .iter()
                .enumerate()
                .map(|(i, c)| c.source(format!("contracts[{i}].odcs.yaml")))
                .collect::<ApiResult<_>>()?,
            transform: self
                .transform
                .as_ref()
                .map(|t| match &t.content {
                    serde_json::Value::String(_) => t.source("transform.sql".to_owned()),
                    _ => Err(ApiError::bad_request(
                        "`transform.content` must be SQL text",
                    )),
                })
                .transpose()?,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PublishParams {
    /// Check everything and store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Publishes a product version: strict lint, compatibility of every output port, then a new
/// version (201), nothing when the same content is already there (200), or the reasons it was
/// refused.
#[utoipa::path(post, path = "/api/v1/products", tag = "products",
    params(PublishParams),
    request_body = PublishRequest,
    security(("token" = [])),
    responses(
        (status = 201, description = "Published", body = PublishReport),
        (status = 200, description = "Unchanged, or checked (dry run)", body = PublishReport),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Version exists with other content, or a breaking change", body = Problem),
        (status = 415, body = Problem), (status = 422, description = "Lint findings", body = Problem),
    ))]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<PublishParams>, QueryRejection>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<PublishReport>)> {
    let who = caller.principal()?;
    let Query(params) = params?;
    let Json(body) = body?;
    let report = state
        .catalog
        .publish(&who, &body.bundle()?, params.dry_run)
        .await?;
    let status = match report.outcome {
        PublishOutcome::Published => StatusCode::CREATED,
        PublishOutcome::Unchanged | PublishOutcome::Checked => StatusCode::OK,
    };
    Ok((status, Json(report)))
}

/// Dry-run publish: would this version be accepted? Same checks, nothing stored.
#[utoipa::path(post, path = "/api/v1/compatibility", tag = "products",
    request_body = PublishRequest,
    security(("token" = [])),
    responses(
        (status = 200, description = "Would publish (or is already published)", body = PublishReport),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
    ))]
async fn check_compatibility(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> ApiResult<Json<PublishReport>> {
    let who = caller.principal()?;
    let Json(body) = body?;
    Ok(Json(
        state.catalog.publish(&who, &body.bundle()?, true).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Only products of this domain.
    domain: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
}

/// A page size from `?limit=`: 100 by default, 1 to 1000.
fn page_size(limit: Option<i64>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    Ok(limit)
}

/// The cursor of the next page: the last item's key when the page is full.
fn next_cursor<T, K>(items: &[T], limit: i64, key: impl Fn(&T) -> K) -> Option<K> {
    if items.len() as i64 == limit {
        items.last().map(key)
    } else {
        None
    }
}

/// A page of products, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductPage {
    items: Vec<ProductSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<String>,
}

/// Lists products, a page at a time.
#[utoipa::path(get, path = "/api/v1/products", tag = "products",
    params(Page),
    security(("token" = [])),
    responses((status = 200, body = ProductPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_products(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Json<ProductPage>> {
    let who = caller.principal()?;
    let Query(page) = page?;
    let limit = page_size(page.limit)?;
    let items = state
        .catalog
        .products(
            &who,
            &ProductQuery {
                domain: page.domain,
                after: page.after,
                limit,
            },
        )
        .await?;
    let next = next_cursor(&items, limit, |p| p.id.clone());
    Ok(Json(ProductPage { items, next }))
}

/// A product and its versions, newest first.
#[utoipa::path(get, path = "/api/v1/products/{product}", tag = "products",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = ProductView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<ProductView>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    Ok(Json(state.catalog.product(&who, &product).await?))
}

/// The versions of a product, newest first, with their lifecycle.
#[utoipa::path(get, path = "/api/v1/products/{product}/versions", tag = "products",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = Vec<VersionView>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<VersionView>>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    Ok(Json(state.catalog.versions(&who, &product).await?))
}

/// One version with its descriptor and output-port contracts.
#[utoipa::path(get, path = "/api/v1/products/{product}/versions/{version}", tag = "products",
    params(
        ("product" = String, Path, description = "`domain.product`"),
        ("version" = String, Path, description = "`1.2.0`, a major version (`1`, `v1`) or `latest`"),
    ),
    security(("token" = [])),
    responses((status = 200, body = VersionView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<VersionView>> {
    let who = caller.principal()?;
    let Path((product, version)) = path?;
    Ok(Json(state.catalog.version(&who, &product, &version).await?))
}

/// A deprecation: the last day the version is served, and what consumers should do.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeprecateRequest {
    /// YYYY-MM-DD, after today.
    sunset: String,
    migration_guide: String,
}

/// Deprecates a version; its consumers are notified through the event log.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/deprecate", tag = "products",
    params(("product" = String, Path), ("version" = String, Path)),
    request_body = DeprecateRequest,
    security(("token" = [])),
    responses((status = 200, body = Deprecation), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn deprecate(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<DeprecateRequest>, JsonRejection>,
) -> ApiResult<Json<Deprecation>> {
    let who = caller.principal()?;
    let Path((product, version)) = path?;
    let Json(body) = body?;
    let sunset = NaiveDate::parse_from_str(&body.sunset, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "sunset `{}` is not a date (YYYY-MM-DD)",
            body.sunset
        ))
    })?;
    Ok(Json(
        state
            .catalog
            .deprecate(&who, &product, &version, sunset, &body.migration_guide)
            .await?,
    ))
}

/// Retires a deprecated version once its sunset date has come.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/retire", tag = "products",
    params(("product" = String, Path), ("version" = String, Path)),
    security(("token" = [])),
    responses((status = 200, body = VersionView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<VersionView>> {
    let who = caller.principal()?;
    let Path((product, version)) = path?;
    Ok(Json(state.catalog.retire(&who, &product, &version).await?))
}

/// Every change between two contracts, classified.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangelogResponse {
    impact: Impact,
    summary: Vec<SummaryLine>,
    changes: Vec<Change>,
}

impl From<changelog::Changelog> for ChangelogResponse {
    fn from(log: changelog::Changelog) -> Self {
        ChangelogResponse {
            impact: log.impact(),
            summary: log.summary(),
            changes: log.changes,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Between {
    /// The earlier version (a version, a major version or `latest`).
    from: String,
    /// The later version.
    to: String,
}

/// What changed in one output port's contract between two versions of a product.
#[utoipa::path(get, path = "/api/v1/products/{product}/ports/{port}/changelog", tag = "contracts",
    params(("product" = String, Path), ("port" = String, Path), Between),
    security(("token" = [])),
    responses((status = 200, body = ChangelogResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn port_changelog(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Between>, QueryRejection>,
) -> ApiResult<Json<ChangelogResponse>> {
    let who = caller.principal()?;
    let Path((product, port)) = path?;
    let Query(between) = query?;
    let log = state
        .catalog
        .changelog(&who, &product, &port, &between.from, &between.to)
        .await?;
    Ok(Json(log.into()))
}

/// Two contracts to compare.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangelogRequest {
    old: Document,
    new: Document,
}

/// Compares two contracts sent in the request (nothing is stored).
#[utoipa::path(post, path = "/api/v1/changelog", tag = "contracts",
    request_body = ChangelogRequest,
    security(("token" = [])),
    responses((status = 200, body = ChangelogResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)))]
async fn changelog_of(
    caller: Caller,
    body: Result<Json<ChangelogRequest>, JsonRejection>,
) -> ApiResult<Json<ChangelogResponse>> {
    let who = caller.principal()?;
    if !who.may(mesh_catalog::Action::Read) {
        return Err(ApiError::of(&mesh_catalog::Denied {
            principal: who.name.clone(),
            action: mesh_catalog::Action::Read.to_string(),
        }));
    }
    let Json(body) = body?;
    let parse = |doc: &Document, name: &str| -> ApiResult<mesh_model::source::Node> {
        let source = doc.source(name.to_owned())?;
        let parsed = mesh_model::yaml::parse(&source.text);
        match parsed.root {
            Some(root) if !parsed.diagnostics.iter().any(|d| d.is_error()) => Ok(root),
            _ => {
                let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).collect();
                let mut problem = mesh_catalog::Problem::new(
                    mesh_catalog::ErrorCode::Invalid,
                    format!(
                        "{} is not a readable contract ({} errors)",
                        source.path,
                        errors.len()
                    ),
                );
                problem.diagnostics = Some(
                    parsed
                        .diagnostics
                        .iter()
                        .map(|d| d.to_json(&source.path))
                        .collect(),
                );
                Err(ApiError::from_problem(problem))
            }
        }
    };
    let old = parse(&body.old, "old.odcs.yaml")?;
    let new = parse(&body.new, "new.odcs.yaml")?;
    Ok(Json(changelog::diff(&old, &new).into()))
}

/// Searches products by words (typos and prefixes tolerated), with facet filters. Ranked by
/// BM25 over names, tags, columns, owners and descriptions; deprecated products rank lower,
/// retired ones only show when `status=retired` is asked for.
#[utoipa::path(get, path = "/api/v1/search", tag = "products",
    params(SearchQuery),
    security(("token" = [])),
    responses((status = 200, body = SearchResults), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<SearchResults>> {
    let who = caller.principal()?;
    let Query(query) = query?;
    if query.limit.is_some_and(|l| !(1..=100).contains(&l)) {
        return Err(ApiError::bad_request("limit must be between 1 and 100"));
    }
    Ok(Json(state.catalog.search(&who, &query).await?))
}

/// What an ingested event added.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ingested {
    /// The group its edges belong to (`openlineage:NS:JOB`).
    origin: String,
    edges: usize,
}

/// Ingests an OpenLineage 2-0-2 event (RunEvent, DatasetEvent or JobEvent). Lenient like
/// Marquez: `schemaURL` may be missing and `eventTime` may lack an offset; a run needs a
/// `runId`.
#[utoipa::path(post, path = "/api/v1/lineage", tag = "lineage",
    request_body = Object,
    security(("token" = [])),
    responses((status = 201, body = Ingested), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)))]
async fn ingest_lineage(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Ingested>)> {
    let who = caller.principal()?;
    let Json(event) = body?;
    let update = state.catalog.ingest_lineage(&who, &event).await?;
    Ok((
        StatusCode::CREATED,
        Json(Ingested {
            origin: update.origin,
            edges: update.edges.len(),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LineageQuery {
    /// `dataset:NS:NAME`, `job:NS:NAME` or `datasetField:NS:NAME:FIELD`.
    #[serde(rename = "nodeId")]
    node_id: String,
    /// Edges to follow, both ways (default 20, at most 100).
    depth: Option<usize>,
}

/// The lineage graph around a node, in Marquez's shape, so Marquez clients work.
#[utoipa::path(get, path = "/api/v1/lineage", tag = "lineage",
    params(LineageQuery),
    security(("token" = [])),
    responses((status = 200, body = Graph), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_lineage(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<LineageQuery>, QueryRejection>,
) -> ApiResult<Json<Graph>> {
    let who = caller.principal()?;
    let Query(q) = query?;
    let depth = q.depth.unwrap_or(20);
    if depth > 100 {
        return Err(ApiError::bad_request("depth must be at most 100"));
    }
    Ok(Json(
        state
            .catalog
            .lineage(&who, &q.node_id, depth, LineageDirection::Both)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProductLineageQuery {
    /// `upstream`, `downstream` or `both` (default).
    direction: Option<String>,
    /// Products to go up or down (default 5, at most 50); for a column, edges.
    depth: Option<usize>,
    /// Start from this column of the product's output ports.
    column: Option<String>,
}

/// The lineage of a product (or one of its columns): who it reads from, who reads it.
#[utoipa::path(get, path = "/api/v1/products/{product}/lineage", tag = "lineage",
    params(("product" = String, Path, description = "`domain.product`"), ProductLineageQuery),
    security(("token" = [])),
    responses((status = 200, body = Graph), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn product_lineage(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ProductLineageQuery>, QueryRejection>,
) -> ApiResult<Json<Graph>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    let Query(q) = query?;
    let direction = match q.direction.as_deref().unwrap_or("both") {
        "upstream" => LineageDirection::Upstream,
        "downstream" => LineageDirection::Downstream,
        "both" => LineageDirection::Both,
        other => {
            return Err(ApiError::bad_request(format!(
                "direction `{other}` is not upstream, downstream or both"
            )));
        }
    };
    let depth = q.depth.unwrap_or(5);
    if depth > 50 {
        return Err(ApiError::bad_request("depth must be at most 50"));
    }
    Ok(Json(
        state
            .catalog
            .product_lineage(&who, &product, depth, direction, q.column.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImpactQuery {
    /// Comma-separated columns of the port; absent = the whole port.
    columns: Option<String>,
}

/// Impact analysis: which downstream products, columns and outside jobs a change to this output
/// port (or some of its columns) reaches, transitively.
#[utoipa::path(get, path = "/api/v1/products/{product}/ports/{port}/impact", tag = "lineage",
    params(("product" = String, Path), ("port" = String, Path), ImpactQuery),
    security(("token" = [])),
    responses((status = 200, body = ImpactReport), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn impact(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ImpactQuery>, QueryRejection>,
) -> ApiResult<Json<ImpactReport>> {
    let who = caller.principal()?;
    let Path((product, port)) = path?;
    let Query(q) = query?;
    let columns: Vec<String> = q
        .columns
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Json(
        state
            .catalog
            .impact(&who, &product, &port, &columns)
            .await?,
    ))
}

/// Products to look at next: those this product's consumers also read, then those of the same
/// domain or with shared tags and columns, each with its reasons.
#[utoipa::path(get, path = "/api/v1/products/{product}/recommendations", tag = "products",
    params(("product" = String, Path, description = "`domain.product`")),
    security(("token" = [])),
    responses((status = 200, body = Vec<Recommendation>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn recommendations(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<Recommendation>>> {
    let who = caller.principal()?;
    let Path(product) = path?;
    Ok(Json(
        state.catalog.recommendations(&who, &product, 10).await?,
    ))
}

/// The domains, by name.
#[utoipa::path(get, path = "/api/v1/domains", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = Vec<Domain>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_domains(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Domain>>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.domains(&who).await?))
}

/// A domain's description, set (admins only; created when absent; audited).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DomainBody {
    description: Option<String>,
}

/// Creates a domain or sets its description (admins only; audited): 200 with the domain, or
/// 204 when it was so already.
#[utoipa::path(put, path = "/api/v1/domains/{domain}", tag = "catalog",
    params(("domain" = String, Path, description = "The domain's name")),
    request_body = DomainBody,
    security(("token" = [])),
    responses((status = 200, body = Domain), (status = 204, description = "Unchanged"),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
async fn put_domain(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<DomainBody>, JsonRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let who = caller.principal()?;
    let Path(name) = path?;
    let Json(body) = body?;
    Ok(
        match state
            .catalog
            .put_domain(&who, &name, body.description.as_deref())
            .await?
        {
            Some(domain) => Json(domain).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

/// Who the caller is: the principal and its roles.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = mesh_catalog::platform::WhoAmI),
        (status = 401, body = Problem)))]
async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<mesh_catalog::platform::WhoAmI>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.whoami(&who)))
}

/// Every role binding (admins only).
#[utoipa::path(get, path = "/api/v1/bindings", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = [mesh_catalog::platform::Binding]),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_bindings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<mesh_catalog::platform::Binding>>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.role_bindings(&who).await?))
}

/// Whether a role change changed anything.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Changed {
    changed: bool,
}

/// Gives a principal a role (admins only; audited).
#[utoipa::path(post, path = "/api/v1/bindings", tag = "catalog",
    request_body = mesh_catalog::platform::Binding,
    security(("token" = [])),
    responses((status = 200, body = Changed),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
async fn add_binding(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<mesh_catalog::platform::Binding>, JsonRejection>,
) -> ApiResult<Json<Changed>> {
    let who = caller.principal()?;
    let Json(binding) = body?;
    let changed = state.catalog.bind(&who, &binding).await?;
    Ok(Json(Changed { changed }))
}

/// Takes a role back (admins only; audited); never the last global admin's.
#[utoipa::path(post, path = "/api/v1/bindings/remove", tag = "catalog",
    request_body = mesh_catalog::platform::Binding,
    security(("token" = [])),
    responses((status = 200, body = Changed),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn remove_binding(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<mesh_catalog::platform::Binding>, JsonRejection>,
) -> ApiResult<Json<Changed>> {
    let who = caller.principal()?;
    let Json(binding) = body?;
    let changed = state.catalog.unbind(&who, &binding).await?;
    Ok(Json(Changed { changed }))
}

/// The owning teams, by name.
#[utoipa::path(get, path = "/api/v1/teams", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = Vec<Team>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_teams(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Team>>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.teams(&who).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Events after this sequence number (default 0).
    after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// Only events about this subject (a product id).
    subject: Option<String>,
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    items: Vec<Event>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<i64>,
}

/// The event log: publishes, deprecations, consumer notices, retirements, tokens.
#[utoipa::path(get, path = "/api/v1/events", tag = "catalog",
    params(EventQuery),
    security(("token" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> ApiResult<Json<EventPage>> {
    let who = caller.principal()?;
    let Query(q) = query?;
    let limit = page_size(q.limit)?;
    let items = state
        .catalog
        .events(&who, q.after.unwrap_or(0), limit, q.subject.as_deref())
        .await?;
    let next = next_cursor(&items, limit, |e| e.seq);
    Ok(Json(EventPage { items, next }))
}

/// A role to grant with a token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleGrant {
    /// `admin`, `owner`, `member` or `consumer`.
    role: String,
    /// The domain an owner or member works in; absent for admin and for a consumer of every
    /// domain.
    domain: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// Who the token is for (a person or a service identity).
    principal: String,
    roles: Vec<RoleGrant>,
    /// RFC 3339; absent = no expiry.
    expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    principal: String,
    /// The token's public id, to revoke it by.
    id: String,
    /// Shown once; only its hash is stored.
    token: String,
}

/// Issues an API token with roles (admins only).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "catalog",
    request_body = TokenRequest,
    security(("token" = [])),
    responses((status = 201, body = TokenResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)))]
async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let who = caller.principal()?;
    let Json(body) = body?;
    let roles = body
        .roles
        .iter()
        .map(|g| {
            Role::parse(&g.role)
                .map(|r| (r, g.domain.clone()))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "role `{}` is not one of admin, owner, member, consumer",
                        g.role
                    ))
                })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| ApiError::bad_request(format!("expires_at `{t}`: {e}")))
        })
        .transpose()?;
    let token = state
        .catalog
        .issue_token(&who, &body.principal, &roles, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            principal: body.principal,
            id: mesh_catalog::auth::token_id(&token),
            token,
        }),
    ))
}

/// Revokes a principal and what it held: every token, role and grant, and its pending
/// requests (admins only). A token issued under the name later starts with nothing.
#[utoipa::path(post, path = "/api/v1/principals/{principal}/revoke", tag = "catalog",
    params(("principal" = String, Path, description = "The principal's name")),
    security(("token" = [])),
    responses((status = 200, body = mesh_catalog::tokens::PrincipalRevocation),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_principal(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<mesh_catalog::tokens::PrincipalRevocation>> {
    let who = caller.principal()?;
    let Path(principal) = path?;
    Ok(Json(
        state.catalog.revoke_principal(&who, &principal).await?,
    ))
}

/// The deployment's masking key as admins see it: its fingerprint, when and by whom it was made
/// (never the key).
#[utoipa::path(get, path = "/api/v1/masking-key", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = mesh_catalog::tokens::MaskingKeyInfo),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn masking_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<mesh_catalog::tokens::MaskingKeyInfo>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.masking_key_info(&who).await?))
}

/// Replaces the masking key with a new random one (admins only): every `hash`-masked value
/// readers see changes, and no longer joins with hashes taken before.
#[utoipa::path(post, path = "/api/v1/masking-key/rotate", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = mesh_catalog::tokens::MaskingKeyInfo),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn rotate_masking_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<mesh_catalog::tokens::MaskingKeyInfo>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.rotate_masking_key(&who).await?))
}

/// The external locations the caller may see: every one for admins, their domains' for the
/// people of a domain.
#[utoipa::path(get, path = "/api/v1/locations", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = [mesh_catalog::locations::LocationView]),
        (status = 401, body = Problem)))]
async fn list_locations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<mesh_catalog::locations::LocationView>>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.locations(&who).await?))
}

/// Registers an external location for a domain's sources (admins only): judged by the
/// policies `on: location`; managed storage is refused; audited.
#[utoipa::path(post, path = "/api/v1/locations", tag = "catalog",
    request_body = mesh_catalog::locations::NewLocation,
    security(("token" = [])),
    responses((status = 201, body = mesh_catalog::locations::LocationView),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "A blocking policy refuses it", body = Problem)))]
async fn add_location(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<mesh_catalog::locations::NewLocation>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<mesh_catalog::locations::LocationView>)> {
    let who = caller.principal()?;
    let Json(new) = body?;
    Ok((
        StatusCode::CREATED,
        Json(state.catalog.add_location(&who, &new).await?),
    ))
}

/// Removes an external location (admins only; audited): sources under it are no longer read.
#[utoipa::path(delete, path = "/api/v1/locations/{name}", tag = "catalog",
    params(("name" = String, Path, description = "The location's name")),
    security(("token" = [])),
    responses((status = 200, body = mesh_catalog::locations::LocationView),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
async fn remove_location(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<mesh_catalog::locations::LocationView>> {
    let who = caller.principal()?;
    let Path(name) = path?;
    Ok(Json(state.catalog.remove_location(&who, &name).await?))
}

/// The subscriptions the caller may see (their targets can be secrets): admins all, others
/// those of their domains, teams and products.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "catalog",
    security(("token" = [])),
    responses((status = 200, body = [mesh_catalog::subscriptions::Subscription]),
        (status = 401, body = Problem)))]
async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<mesh_catalog::subscriptions::Subscription>>> {
    let who = caller.principal()?;
    Ok(Json(state.catalog.subscriptions(&who).await?))
}

/// Subscribes a webhook, a Slack-compatible webhook or an e-mail address to a domain's, a
/// team's or a product's notifications (the people of its domain; audited).
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "catalog",
    request_body = mesh_catalog::subscriptions::NewSubscription,
    security(("token" = [])),
    responses((status = 201, body = mesh_catalog::subscriptions::Subscription),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<mesh_catalog::subscriptions::NewSubscription>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<mesh_catalog::subscriptions::Subscription>)> {
    let who = caller.principal()?;
    let Json(new) = body?;
    Ok((
        StatusCode::CREATED,
        Json(state.catalog.subscribe(&who, &new).await?),
    ))
}

/// Removes a subscription (the people of its domain; audited).
#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}", tag = "catalog",
    params(("id" = String, Path, description = "The subscription's id")),
    security(("token" = [])),
    responses((status = 200, description = "The subscription removed",
            body = mesh_catalog::subscriptions::Subscription),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<mesh_catalog::subscriptions::Subscription>> {
    let who = caller.principal()?;
    let Path(id) = path?;
    Ok(Json(state.catalog.unsubscribe(&who, &id).await?))
}

/// Revokes a token by its id (admins only); it stops working at once.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/revoke", tag = "catalog",
    params(("id" = String, Path, description = "The token's public id")),
    security(("token" = [])),
    responses((status = 204, description = "Revoked"), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let who = caller.principal()?;
    let Path(id) = path?;
    state.catalog.revoke_token(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The ODCS contract of one output port in one version, as published (JSON).
#[utoipa::path(get, path = "/api/v1/products/{product}/versions/{version}/ports/{port}/contract", tag = "contracts",
    params(
        ("product" = String, Path, description = "`domain.product`"),
        ("version" = String, Path, description = "`1.2.0`, a major version (`1`, `v1`) or `latest`"),
        ("port" = String, Path, description = "The output port's name"),
    ),
    security(("token" = [])),
    responses((status = 200, description = "The ODCS contract", body = Object), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_contract(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = caller.principal()?;
    let Path((product, version, port)) = path?;
    let view = state.catalog.version(&who, &product, &version).await?;
    view.ports
        .into_iter()
        .find(|p| p.port == port)
        .map(|p| Json(p.contract))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "output port `{port}` in {product}@{}",
                view.version
            ))
        })
}
