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
pub mod idp;
pub mod notify;
mod oidc;
pub mod pg;
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
    /// Sign-ins through the identity provider in flight.
    flows: Arc<oidc::Flows>,
    /// Where people reach the server, when it is behind a proxy (`--public-url`).
    public_url: Option<Arc<str>>,
    /// The portal's policy-compliance counts and when they were computed (an audit of every
    /// product is too slow to run per page on a large mesh).
    compliance: Arc<std::sync::Mutex<Option<(std::time::Instant, serde_json::Value)>>>,
    /// This server's orchestrator, when it runs one (its counters go to `/metrics`).
    orchestrator: Option<Arc<mesh_service::orchestrator::Orchestrator>>,
    /// Who sent a token: mesh's tokens and, with `--oidc-issuer`, the IdP's.
    pub auth: idp::Authenticator,
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
    /// The connection cap and timeouts.
    pub connections: ConnectionLimits,
    /// Run the scheduled products' pipelines (the orchestrator); `None`: this server only serves.
    pub schedules: Option<Schedules>,
    /// Send notifications to the subscriptions (the dispatcher follows the event log).
    pub notifications: bool,
    /// The SMTP relay e-mail subscriptions are sent through.
    pub mailer: Option<Arc<dyn mesh_service::dispatch::Mailer>>,
    /// Seconds between catalog-wide policy audits (recorded as `policy.audit` events, one server
    /// of the catalog running each); `None`: only on request.
    pub audit_interval: Option<std::time::Duration>,
    /// The company's identity provider, whose tokens are accepted beside mesh's own.
    pub identity: Option<idp::IdpConfig>,
    /// The PostgreSQL wire port, served with the same gate as HTTP and Flight SQL.
    pub pg: Option<pg::PgPort>,
}

/// The orchestrator's settings.
#[derive(Debug, Clone, Default)]
pub struct Schedules {
    pub options: mesh_service::orchestrator::OrchestratorOptions,
    /// A checkout of the repository holding the product folders, for sources that are files of
    /// a product's folder.
    pub workspace: Option<std::path::PathBuf>,
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
    app_with_monitor(catalog, options, monitor, None)
}

/// [`app`] with these options, whose `/metrics` shows `orchestrator`'s counters (the
/// orchestrator runs elsewhere: [`serve`] starts one).
pub fn app_with_orchestrator(
    catalog: Catalog,
    options: Options,
    orchestrator: Arc<mesh_service::orchestrator::Orchestrator>,
) -> Router {
    let monitor = Arc::new(monitor(&options));
    app_with_monitor(catalog, options, monitor, Some(orchestrator))
}

/// The SLA monitor of a server with these options, sending its webhooks over HTTP.
fn monitor(options: &Options) -> Monitor {
    Monitor::new(options.monitor.clone(), Arc::new(notify::HttpSender::new()))
}

fn app_with_monitor(
    catalog: Catalog,
    options: Options,
    monitor: Arc<Monitor>,
    orchestrator: Option<Arc<mesh_service::orchestrator::Orchestrator>>,
) -> Router {
    let limits = options.limits;
    let (router, doc) = api_router().split_for_parts();
    let openapi = Arc::new(doc.to_pretty_json().unwrap_or_default());
    let limits = Arc::new(Limits::new(limits).shared(catalog.clone()));
    // One catalog for every handler: the service's (which checks what runs committed).
    let service = Service::new(catalog).with_limits(&limits.limits);
    let catalog = service.catalog().clone();
    let auth =
        idp::Authenticator::new(catalog.clone(), options.identity.clone().map(idp::Idp::new));
    let flight = arrow_flight::flight_service_server::FlightServiceServer::new(flight::FlightSql {
        auth: auth.clone(),
        service: service.clone(),
        limits: Arc::clone(&limits),
    });
    if let Some(port) = &options.pg {
        port.start(auth.clone(), service.clone(), Arc::clone(&limits));
    }
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
        flows: Arc::default(),
        public_url: options.public_url.as_deref().map(Arc::from),
        compliance: Arc::default(),
        orchestrator,
        auth,
    };
    router
        .route("/openapi.json", axum::routing::get(openapi_json))
        .merge(portal::routes())
        .merge(oidc::routes())
        // Arrow Flight SQL: gRPC on the same port (HTTP/2 without TLS, as `grpc://host:port`).
        .route_service("/arrow.flight.protocol.FlightService/{*method}", flight)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(unwound))
        .with_state(state)
}

/// A handler that panicked, as the platform's failure.
#[derive(Debug, thiserror::Error)]
#[error("a request handler panicked: {0}")]
struct Panicked(String);

impl mesh_catalog::ToProblem for Panicked {
    fn code(&self) -> mesh_catalog::ErrorCode {
        mesh_catalog::ErrorCode::Internal
    }
}

/// Runs a request; a panic in its handler is a 500 problem with an `error_id` (the cause
/// logged under it) for that request alone, never a dropped connection or a dead process.
async fn unwound(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use futures::FutureExt as _;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = mesh_service::logging::panic_message(panic.as_ref());
            ApiError::of(&Panicked(what)).into_response()
        }
    }
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
        Ok(Caller(Some(state.auth.authenticate(token).await?)))
    }
}

/// How `mesh serve` treats connections: how many at once, and how long a client may take to
/// send a request's headers (also how long an idle keep-alive connection stays open).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: std::time::Duration,
    /// How long a graceful shutdown waits for requests in flight.
    pub drain: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_timeout: std::time::Duration::from_secs(10),
            drain: std::time::Duration::from_secs(30),
        }
    }
}

/// What a client past the connection cap gets before its connection is closed.
fn over_capacity(max: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "type": "https://mesh.dev/problems/busy",
        "title": "busy",
        "status": 503,
        "detail": format!("the server holds its limit of {max} connections (MESH_MAX_CONNECTIONS); try again shortly"),
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` completes, with the SLA monitor running on its
/// schedule beside it. At most `limits.max_connections` connections are served at once (one
/// more gets a 503 and is closed); a client that does not finish its request headers within
/// `limits.header_timeout` is disconnected, as is a keep-alive connection idle that long.
pub async fn serve(
    listener: tokio::net::TcpListener,
    catalog: Catalog,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tokio::io::AsyncWriteExt as _;
    let limits = options.connections;
    let monitor = Arc::new(monitor(&options));
    let server = options
        .schedules
        .as_ref()
        .map(|s| s.options.server.clone())
        .unwrap_or_else(mesh_service::pipeline::owner);
    let monitoring = tokio::spawn(Arc::clone(&monitor).run(catalog.clone(), server.clone()));
    let auditing = options.audit_interval.map(|every| {
        tokio::spawn(mesh_service::orchestrator::audit_loop(
            catalog.clone(),
            every,
            server.clone(),
        ))
    });
    let orchestrator = options.schedules.clone().map(|s| {
        let service = Service::new(catalog.clone()).with_limits(&options.limits);
        let runner = mesh_service::orchestrator::PipelineRunner {
            service: service.clone(),
            workspace: s.workspace,
        };
        Arc::new(mesh_service::orchestrator::Orchestrator::new(
            service.catalog().clone(),
            Arc::new(runner),
            s.options,
        ))
    });
    let orchestrating = orchestrator
        .as_ref()
        .map(|o| tokio::spawn(Arc::clone(o).run()));
    let dispatching = options.notifications.then(|| {
        let dispatcher = Arc::new(mesh_service::dispatch::Dispatcher::new(
            catalog.clone(),
            Arc::new(notify::HttpSender::new()),
            options.mailer.clone(),
            server.clone(),
        ));
        tokio::spawn(dispatcher.run(std::time::Duration::from_secs(1)))
    });
    let app = app_with_monitor(catalog, options, monitor, orchestrator);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout)
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: the
                    // server goes on (briefly backing off so an error does not spin a core).
                    mesh_service::logging::log(&format!("accepting a connection failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            let refusal = over_capacity(limits.max_connections);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                    stream.write_all(&refusal).await?;
                    stream.shutdown().await
                })
                .await;
            });
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = Arc::clone(&builder);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    monitoring.abort();
    // Scheduled runs in flight stop with the process; a run left open is settled by the next
    // one of its port (from the Delta log), and its slot stays claimed, not run twice.
    for task in [auditing, orchestrating, dispatching].into_iter().flatten() {
        task.abort();
    }
    let _ = tokio::time::timeout(limits.drain, graceful.shutdown()).await;
    Ok(())
}
