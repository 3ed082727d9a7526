//! `mesh serve`: the catalog over HTTP and Arrow Flight SQL, and the portal. Every endpoint
//! authenticates (bearer tokens, stored hashed); every decision is the catalog's or the
//! service's (`mesh-service`), never a handler's own — handlers only translate requests in and
//! answers out; every error is one JSON problem document; the OpenAPI 3.1 document is generated
//! from the handlers (`/openapi.json`), its paths those `mesh_service::routes` lists.

mod access;
mod api;
mod chart;
mod error;
mod flight;
mod graph;
pub mod notify;
mod policies;
mod portal;
mod query;
mod runs;
pub mod sla;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use mesh_catalog::{Catalog, Principal};
use mesh_service::Service;
use mesh_service::limits::Limits;
pub use mesh_service::limits::QueryLimits;
use mesh_service::monitor::Monitor;
use mesh_service::notify::Webhook;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, Problem};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub service: Service,
    openapi: Arc<String>,
    limits: Arc<Limits>,
    webhook: Option<Arc<Webhook>>,
    monitor: Arc<Monitor>,
    /// Anyone may read the catalog in the portal (as a reader), without signing in.
    open_portal: bool,
    /// The portal's signed-in sessions.
    sessions: Arc<portal::Sessions>,
    /// Where people reach the server, when it is behind a proxy (`--public-url`).
    public_url: Option<Arc<str>>,
    /// The portal's policy-compliance counts and when they were computed (an audit of every
    /// product is too slow to run per page on a large mesh).
    compliance: Arc<std::sync::Mutex<Option<(std::time::Instant, serde_json::Value)>>>,
}

/// How a server runs: its query limits, where access events are also sent, and its SLA monitor.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub limits: QueryLimits,
    /// A URL that gets every access request, decision and revocation as a JSON POST (the
    /// owning domain's chat or ticket system), retried with backoff.
    pub access_webhook: Option<String>,
    pub monitor: mesh_service::monitor::MonitorOptions,
    /// Let anyone who reaches the server read the catalog in the portal without signing in
    /// (asking for and deciding on access still needs a sign-in).
    pub open_portal: bool,
    /// Where people reach the server (`https://mesh.example.com`), when it is behind a proxy.
    pub public_url: Option<String>,
}

/// The largest request body accepted (a product with its contracts is a few hundred kilobytes).
const BODY_LIMIT: usize = 16 << 20;

/// The application: the API router and its OpenAPI document.
pub fn app(catalog: Catalog) -> Router {
    app_with(catalog, QueryLimits::default())
}

/// [`app`] with these query limits.
pub fn app_with(catalog: Catalog, limits: QueryLimits) -> Router {
    app_with_options(
        catalog,
        Options {
            limits,
            ..Options::default()
        },
    )
}

/// [`app`] with these options.
pub fn app_with_options(catalog: Catalog, options: Options) -> Router {
    let monitor = Arc::new(monitor(&options));
    app_with_monitor(catalog, options, monitor)
}

/// The SLA monitor of a server with these options, sending its webhooks over HTTP.
fn monitor(options: &Options) -> Monitor {
    Monitor::new(options.monitor.clone(), Arc::new(notify::HttpSender::new()))
}

fn app_with_monitor(catalog: Catalog, options: Options, monitor: Arc<Monitor>) -> Router {
    let limits = options.limits;
    let (router, doc) = api_router().split_for_parts();
    let openapi = Arc::new(doc.to_pretty_json().unwrap_or_default());
    let limits = Arc::new(Limits::new(limits));
    // One catalog for every handler: the service's (which checks what runs committed).
    let service = Service::new(catalog);
    let catalog = service.catalog().clone();
    let flight = arrow_flight::flight_service_server::FlightServiceServer::new(flight::FlightSql {
        catalog: catalog.clone(),
        service: service.clone(),
        limits: Arc::clone(&limits),
    });
    let state = AppState {
        catalog,
        service,
        openapi,
        limits,
        webhook: options
            .access_webhook
            .map(|url| Arc::new(Webhook::new(url, Arc::new(notify::HttpSender::new())))),
        monitor,
        open_portal: options.open_portal,
        sessions: Arc::default(),
        public_url: options.public_url.as_deref().map(Arc::from),
        compliance: Arc::default(),
    };
    router
        .route("/openapi.json", axum::routing::get(openapi_json))
        .merge(portal::routes())
        // Arrow Flight SQL: gRPC on the same port (HTTP/2 without TLS, as `grpc://host:port`).
        .route_service("/arrow.flight.protocol.FlightService/{*method}", flight)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi_document() -> String {
    let (_, doc) = api_router().split_for_parts();
    doc.to_pretty_json().unwrap_or_default()
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(api::ApiDoc::openapi()).merge(api::routes())
}

async fn openapi_json(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        mesh_catalog::ErrorCode::MethodNotAllowed,
        "this endpoint does not take that method; see /openapi.json",
    )
}

/// The caller, from `Authorization: Bearer <token>`; `None` when no token was sent.
#[derive(Debug, Clone)]
pub struct Caller(Option<Principal>);

impl Caller {
    /// The authenticated principal, or 401.
    pub fn principal(self) -> Result<Principal, ApiError> {
        self.0.ok_or_else(|| {
            ApiError::unauthenticated("this endpoint needs a token: Authorization: Bearer <token>")
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Caller(None));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })?;
        Ok(Caller(Some(state.catalog.authenticate(token).await?)))
    }
}

/// Serves `app` on `listener` until `shutdown` completes, with the SLA monitor running on its
/// schedule beside it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    catalog: Catalog,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let monitor = Arc::new(monitor(&options));
    let monitoring = tokio::spawn(Arc::clone(&monitor).run(catalog.clone()));
    let served = axum::serve(listener, app_with_monitor(catalog, options, monitor))
        .with_graceful_shutdown(shutdown)
        .await;
    monitoring.abort();
    served
}
