//! The PostgreSQL wire port (`mesh serve --pg-listen ADDR`): psql, DBeaver, Metabase, BI tools and
//! Python's drivers read data products with exactly the governance of HTTP and Flight SQL.
//!
//! The protocol is pgwire's (simple and extended query, cancel requests, TLS negotiation); result
//! encoding and the `pg_catalog` tools browse are datafusion-postgres's (arrow-pg,
//! datafusion-pg-catalog). What is mesh's own is the gate:
//!
//! - **Sign-in**: the user name is the principal, the password a mesh token, an IdP token or a
//!   credential, verified by the one [`crate::idp::Authenticator`]; the database is `mesh`. With
//!   a certificate configured, a connection that did not negotiate TLS is refused. The token is
//!   checked again at every statement, so a revocation ends the connection's reads at once.
//! - **Reads** go through [`mesh_service::Service::read_with`]: only readable ports, masking in
//!   the plan, every read and refused read audited and counted in the SLA, the per-consumer rate
//!   limits and the query timeout. Parameters are bound to the plan, never spliced into SQL.
//! - **Browsing** (`\dt`, `\d`, a tool's schema tree): statements that name only `pg_catalog` or
//!   `information_schema` tables run on a session holding exactly the ports the principal may
//!   read, so the catalog lists nothing else. No data is read there.
//! - **Everything else** (DDL, DML, `COPY`, ...) is refused with SQLSTATE 25006.
//! - **Bad input**: a protocol violation or an oversized message gets an error (08P01, 54000)
//!   and the connection is closed; past the connection cap a client gets 53300; a client that
//!   does not finish its startup in time is dropped. Nothing a client sends takes the server down.

mod ordered;
mod rows;

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt};
use mesh_catalog::access::ReadablePort;
use mesh_catalog::{ErrorCode, Principal, ToProblem};
use mesh_engine::query::arrow::datatypes::{DataType, SchemaRef};
use mesh_engine::query::{RecordBatch, SessionContext};
use mesh_service::Service;
use mesh_service::limits::Limits;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::PgWireMessageServerCodec;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

use crate::ApiError;
use crate::query::{Cut, until};

/// The only database: every port is a table of it.
pub const DATABASE: &str = "mesh";

/// What `version()` says: the PostgreSQL version whose protocol and catalog tools may expect.
const VERSION: &str = "PostgreSQL 16.6 (mesh, on Apache DataFusion) on x86_64-pc-linux-gnu, 64-bit";

/// The PostgreSQL wire port of a server, bound before the server starts (so that a bad address
/// or certificate stops `mesh serve` at once).
#[derive(Clone)]
pub struct PgPort {
    listener: Arc<std::sync::Mutex<Option<std::net::TcpListener>>>,
    address: std::net::SocketAddr,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    max_connections: usize,
}

impl Debug for PgPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPort")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PgPort {
    /// Listens on `address`; with `tls` (the operator's certificate chain and key, PEM), only TLS
    /// connections are served. At most `max_connections` at once.
    pub fn bind(
        address: std::net::SocketAddr,
        tls: Option<(PathBuf, PathBuf)>,
        max_connections: usize,
    ) -> Result<PgPort, String> {
        let tls = match &tls {
            Some((cert, key)) => Some(acceptor(cert, key)?),
            None => None,
        };
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{address}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        Ok(PgPort {
            listener: Arc::new(std::sync::Mutex::new(Some(listener))),
            address,
            tls,
            max_connections: max_connections.max(1),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Whether it takes only TLS connections.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves the port (once; a second call does nothing) with the server's gate.
    pub(crate) fn start(
        &self,
        auth: crate::idp::Authenticator,
        service: Service,
        limits: Arc<Limits>,
    ) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(listener) = listener else {
            return;
        };
        let Ok(listener) = TcpListener::from_std(listener) else {
            mesh_service::logging::log("PostgreSQL wire: the listener could not be served");
            return;
        };
        let max = self.max_connections;
        // Kept for the life of the process (dropping a runtime is not allowed where this runs).
        let queries = match tokio::runtime::Builder::new_multi_thread()
            .thread_name("mesh-pg-query")
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                let handle = runtime.handle().clone();
                std::mem::forget(runtime);
                handle
            }
            Err(e) => {
                mesh_service::logging::log(&format!(
                    "PostgreSQL wire: no runtime of its own for reads ({e}); reads share the server's"
                ));
                tokio::runtime::Handle::current()
            }
        };
        let wire = Arc::new(PgWire {
            queries,
            auth,
            service,
            limits,
            tls: self.tls.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
            max_connections: max,
            cancels: std::sync::Mutex::new(HashMap::new()),
            pids: pgwire::api::RandomPidSecretKeyGenerator::default(),
            parser: Arc::new(PostgresCompatibilityParser::new()),
        });
        tokio::spawn(wire.serve(listener));
    }
}

/// What a cancel request names: a connection's pid and secret.
type CancelKey = (i32, Vec<u8>);

/// What every connection shares.
pub struct PgWire {
    auth: crate::idp::Authenticator,
    service: Service,
    limits: Arc<Limits>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    slots: Arc<tokio::sync::Semaphore>,
    max_connections: usize,
    /// Connections by the (pid, secret) their cancel requests name.
    cancels: std::sync::Mutex<HashMap<CancelKey, std::sync::Weak<Inner>>>,
    /// Where reads' plans run: a runtime of their own, so that CPU-bound plans never keep the
    /// server from accepting connections and cancel requests.
    queries: tokio::runtime::Handle,
    pids: pgwire::api::RandomPidSecretKeyGenerator,
    parser: Arc<PostgresCompatibilityParser>,
}

impl Debug for PgWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWire")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The operator's certificate and key as a TLS acceptor (ring, as pgwire is built with).
fn acceptor(cert: &PathBuf, key: &PathBuf) -> Result<pgwire::tokio::TlsAcceptor, String> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("the certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("the private key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

impl PgWire {
    /// Serves connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    mesh_service::logging::log(&format!(
                        "PostgreSQL wire: accepting a connection failed: {e}"
                    ));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                let max = self.max_connections;
                tokio::spawn(async move { too_many(stream, max).await });
                continue;
            };
            let wire = Arc::clone(&self);
            tokio::spawn(async move {
                let connection = Arc::new(Connection::new(Arc::clone(&wire)));
                if let Err(e) = process(stream, wire.tls.clone(), connection).await {
                    mesh_service::logging::log(&format!(
                        "PostgreSQL wire: the connection from {peer} ended: {e}"
                    ));
                }
                drop(slot);
            });
        }
    }
}

/// A connection past the cap: SQLSTATE 53300, as PostgreSQL answers it, and closed.
async fn too_many(mut stream: tokio::net::TcpStream, max: usize) {
    use tokio::io::AsyncWriteExt as _;
    let message = error_response(
        "FATAL",
        "53300",
        &format!(
            "sorry, too many clients already: this server serves {max} PostgreSQL connections at once; try again shortly"
        ),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&message).await?;
        stream.shutdown().await
    })
    .await;
}

/// An ErrorResponse message, encoded by hand for the moments before a connection has a codec.
fn error_response(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// How long a client has to finish TLS, startup and sign-in.
const STARTUP: Duration = Duration::from_secs(30);

/// The bytes of rows a connection buffers before it writes them.
const WRITE_BUFFER: usize = 128 << 10;

/// One connection's message loop: pgwire's, except that a message that does not decode is
/// answered with an error (08P01, or 54000 for an oversized one) before the connection closes.
async fn process(
    stream: tokio::net::TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: Arc<Connection>,
) -> std::io::Result<()> {
    use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
    let negotiated = tokio::time::timeout(STARTUP, negotiate_tls(stream, tls)).await;
    let Ok(negotiated) = negotiated else {
        return Ok(()); // too slow to say hello
    };
    let Some(mut socket) = negotiated? else {
        return Ok(());
    };
    // Rows are written to the socket when this much is buffered, not every 8 KiB (tokio's
    // default): a large result is sent in a few large writes.
    socket.set_backpressure_boundary(WRITE_BUFFER);
    let handler = Arc::clone(&handlers.handler);
    let copy = handlers.copy_handler();
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if starting {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let e = fatal("08P01", "the startup took too long: connect again");
                    let _ = process_error(&mut socket, e, false).await;
                    return Ok(());
                }
            }
        } else {
            socket.next().await
        };
        match next {
            None => return Ok(()),
            Some(Err(e)) => {
                let (code, what) = match &e {
                    PgWireError::MessageTooLarge(max, got) => (
                        "54000",
                        format!(
                            "a message of {got} bytes is larger than the {max} this server takes"
                        ),
                    ),
                    other => ("08P01", format!("protocol violation: {other}")),
                };
                let _ = process_error(&mut socket, fatal(code, &what), false).await;
                return Ok(());
            }
            Some(Ok(message)) => {
                if matches!(message, PgWireFrontendMessage::Terminate(_)) {
                    return Ok(());
                }
                let extended_message = message.is_extended_query();
                if let PgWireFrontendMessage::Execute(execute) = &message
                    && let Some(portal) = Handler::whole_read(&socket, execute).await
                {
                    if let Err(e) = handler.execute_read(&mut socket, &portal).await {
                        process_error(&mut socket, e, true).await?;
                    }
                    continue;
                }
                if let Err(e) = process_message(
                    message,
                    &mut socket,
                    Arc::clone(&handler),
                    Arc::clone(&handler),
                    Arc::clone(&handler),
                    Arc::clone(&copy),
                    Arc::clone(&handler),
                )
                .await
                {
                    process_error(&mut socket, e, extended_message).await?;
                }
            }
        }
    }
}

fn user_error(severity: &str, code: &str, message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_owned(),
        code.to_owned(),
        message.to_owned(),
    )))
}

fn fatal(code: &str, message: &str) -> PgWireError {
    user_error("FATAL", code, message)
}

fn error(code: &str, message: &str) -> PgWireError {
    user_error("ERROR", code, message)
}

/// The SQLSTATE of a problem code.
fn sqlstate(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unauthenticated => "28000",
        ErrorCode::Forbidden => "42501",
        ErrorCode::NotFound => "42P01",
        ErrorCode::RateLimited => "53400",
        ErrorCode::Timeout => "57014",
        ErrorCode::PayloadTooLarge => "54000",
        ErrorCode::Busy => "53000",
        ErrorCode::Unavailable => "58030",
        ErrorCode::Internal => "XX000",
        ErrorCode::MethodNotAllowed | ErrorCode::UnsupportedMediaType => "0A000",
        _ => "42000",
    }
}

/// A mesh failure as a PostgreSQL error: its SQLSTATE, and the same detail as HTTP's problem.
fn failure(e: &(impl ToProblem + ?Sized)) -> PgWireError {
    api_failure(ApiError::of(e))
}

/// A read's failure: a refused name is a permission error (42501), the same whether the port
/// exists or not, as HTTP's and Flight SQL's refusal is the same `not_found` for both.
fn read_failure(e: &mesh_service::ReadError) -> PgWireError {
    match e {
        mesh_service::ReadError::Denied { .. } => {
            user_error("ERROR", "42501", ApiError::of(e).detail())
        }
        other => failure(other),
    }
}

fn api_failure(api: ApiError) -> PgWireError {
    let code = api.problem.error_code().unwrap_or(ErrorCode::Internal);
    // A revoked or expired token ends the connection, as a failed sign-in would.
    let severity = if code == ErrorCode::Unauthenticated {
        "FATAL"
    } else {
        "ERROR"
    };
    user_error(severity, sqlstate(code), api.detail())
}

/// One client connection: its handlers share [`Inner`].
pub(crate) struct Connection {
    handler: Arc<Handler>,
}

impl Connection {
    fn new(wire: Arc<PgWire>) -> Connection {
        let inner = Arc::new(Inner {
            wire,
            token: std::sync::Mutex::new(None),
            catalog: tokio::sync::Mutex::new(None),
            cancelled: tokio::sync::watch::channel(0).0,
            key: std::sync::Mutex::new(None),
        });
        Connection {
            handler: Arc::new(Handler {
                parser: Arc::new(Parser(Arc::clone(&inner))),
                inner,
            }),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.handler)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.handler)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.handler)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.handler)
    }
}

/// A connection's state.
pub(crate) struct Inner {
    wire: Arc<PgWire>,
    /// The token signed in with, checked again at every statement.
    token: std::sync::Mutex<Option<String>>,
    /// The session catalog queries run on, for the readable ports it was built for.
    catalog: tokio::sync::Mutex<Option<(u64, Arc<SessionContext>)>>,
    /// Bumped by a cancel request: the statement running stops with 57014.
    cancelled: tokio::sync::watch::Sender<u64>,
    /// The (pid, secret) cancel requests name, once signed in.
    key: std::sync::Mutex<Option<CancelKey>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let key = self.key.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(key) = key {
            self.wire
                .cancels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

pub(crate) struct Handler {
    inner: Arc<Inner>,
    parser: Arc<Parser>,
}

pub(crate) struct Parser(Arc<Inner>);

/// Where a statement goes.
#[derive(Debug, Clone)]
enum Route {
    /// A read of data products: the governed read.
    Read,
    /// A query of the catalog tables (or of no table): the connection's catalog session.
    Catalog,
    /// A session command answered here.
    Command(Command),
}

#[derive(Debug, Clone)]
enum Command {
    Begin,
    Commit,
    Rollback,
    /// `SET name = value` (kept for `SHOW`).
    Set(String, String),
    /// `SHOW name`.
    Show(String),
    /// `DISCARD`, `DEALLOCATE`, `RESET`, `CLOSE`, `UNLISTEN`, savepoints: nothing to do on a
    /// read-only session.
    Nothing(String),
}

/// A statement parsed (and, for the extended protocol, described).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The SQL as run: the client's, rewritten where PostgreSQL spells a thing differently.
    sql: String,
    route: Route,
    schema: SchemaRef,
    params: Vec<Option<DataType>>,
}

/// Whether a table name (as a query names it) is one of the catalog tables tools browse.
fn catalog_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('.').collect();
    match parts.as_slice() {
        [.., schema, _] => matches!(*schema, "pg_catalog" | "information_schema"),
        [table] => table.starts_with("pg_"),
        [] => false,
    }
}

/// Where `statement` goes, with its SQL as run.
fn route(statement: &Statement) -> PgWireResult<(String, Route)> {
    let sql = statement.to_string();
    let upper = sql.trim_start().to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let route = match statement {
        Statement::Query(_) => {
            let names = mesh_engine::query::named(&sql);
            let catalog = names.iter().filter(|n| catalog_table(n)).count();
            if catalog == names.len() {
                Route::Catalog
            } else if catalog == 0 {
                Route::Read
            } else {
                return Err(error(
                    "0A000",
                    "a statement reads either data products or the catalog tables (pg_catalog, information_schema), not both",
                ));
            }
        }
        Statement::StartTransaction { .. } => Route::Command(Command::Begin),
        Statement::Commit { .. } => Route::Command(Command::Commit),
        // A savepoint of a read-only transaction has nothing to undo.
        Statement::Rollback { .. } if words.get(1) == Some(&"TO") => {
            Route::Command(Command::Nothing("ROLLBACK".to_owned()))
        }
        Statement::Rollback { .. } => Route::Command(Command::Rollback),
        _ => match words.as_slice() {
            ["SHOW", rest @ ..] if !rest.is_empty() => {
                Route::Command(Command::Show(rest.join(" ").to_ascii_lowercase()))
            }
            ["SET", ..] => {
                let body = sql.trim_start()[3..].trim();
                let body = body
                    .strip_prefix("SESSION ")
                    .or_else(|| body.strip_prefix("session "))
                    .unwrap_or(body);
                let (name, value) = body
                    .split_once('=')
                    .or_else(|| body.split_once(" TO "))
                    .or_else(|| body.split_once(" to "))
                    .unwrap_or((body, ""));
                let value = value.trim().trim_matches('\'').to_owned();
                Route::Command(Command::Set(name.trim().to_ascii_lowercase(), value))
            }
            [first, ..]
                if matches!(
                    *first,
                    "DISCARD"
                        | "DEALLOCATE"
                        | "RESET"
                        | "CLOSE"
                        | "UNLISTEN"
                        | "SAVEPOINT"
                        | "RELEASE"
                ) =>
            {
                Route::Command(Command::Nothing((*first).to_owned()))
            }
            _ => {
                let what: Vec<&str> = words.iter().take(2).copied().collect();
                return Err(error(
                    "25006",
                    &format!(
                        "`{}` is refused: mesh serves data products read-only (SELECT, WITH, VALUES, SHOW, SET)",
                        what.join(" ")
                    ),
                ));
            }
        },
    };
    Ok((sql, route))
}

/// psql's `\d+` asks for a table's storage options, its TOAST table's included, as
/// `array_to_string(c.reloptions || array(SELECT 'toast.' || x FROM unnest(tc.reloptions) x), ', ')`,
/// which DataFusion cannot plan (no `array(subquery)`, and this pg_class has no `reloptions`).
/// A port has no storage options, so the expression is what PostgreSQL would answer for it: ''.
fn without_storage_options(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions_mut};
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Function(f) = expr
            && f.name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|name| name.value.eq_ignore_ascii_case("array_to_string"))
            && f.args.to_string().contains("reloptions")
        {
            *expr = Expr::value(Value::SingleQuotedString(String::new()));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// What `SHOW` says for settings nobody `SET`.
fn setting(name: &str) -> Option<&'static str> {
    Some(match name.replace(' ', "_").as_str() {
        "server_version" => "16.6 (mesh)",
        "server_version_num" => "160006",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" => "on",
        "transaction_isolation"
        | "transaction_isolation_level"
        | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "search_path" => "\"$user\", public",
        "max_identifier_length" => "63",
        "integer_datetimes" => "on",
        "is_superuser" => "off",
        "lc_collate" | "lc_ctype" => "C",
        "extra_float_digits" => "1",
        "statement_timeout" => "0",
        "application_name" => "",
        _ => return None,
    })
}

/// A fingerprint of the ports a principal may read: the catalog session is rebuilt when it
/// changes (a grant, a revocation, a new snapshot).
fn fingerprint(ports: &[ReadablePort]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in ports {
        (
            &p.product,
            &p.port,
            p.major,
            p.delta_version,
            &p.table,
            &p.columns,
        )
            .hash(&mut h);
        for (k, v) in &p.masks {
            (k, v).hash(&mut h);
        }
    }
    h.finish()
}

/// One value as a one-row, one-column text result (what `SHOW` returns).
fn one_text(name: &str, value: &str) -> PgWireResult<Response> {
    use mesh_engine::query::arrow::array::StringArray;
    use mesh_engine::query::arrow::datatypes::{Field, Schema};
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(StringArray::from(vec![value.to_owned()]))],
    )
    .map_err(|e| error("XX000", &e.to_string()))?;
    let fields = Arc::new(arrow_schema_to_pg_fields(
        &schema,
        &Format::UnifiedText,
        None,
    )?);
    let rows = rows::encode(&batch, &fields)?;
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::iter(rows.into_iter().map(Ok)),
    )))
}

impl Inner {
    /// The principal of the connection's token, checked now (a revoked token ends the
    /// connection), its statement counted against its call budget.
    async fn who(&self) -> PgWireResult<Principal> {
        let token = self
            .token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| fatal("28000", "not signed in"))?;
        let who = self
            .wire
            .auth
            .authenticate(&token)
            .await
            .map_err(api_failure)?;
        self.wire
            .limits
            .call(&who.name)
            .await
            .map_err(|e| failure(&e))?;
        Ok(who)
    }

    /// The session catalog queries of `who` run on: exactly the ports it may read now.
    async fn catalog(&self, who: &Principal) -> PgWireResult<Arc<SessionContext>> {
        let ports = self
            .wire
            .service
            .readable(who)
            .await
            .map_err(|e| failure(&e))?;
        let print = fingerprint(&ports);
        let mut cached = self.catalog.lock().await;
        if let Some((at, ctx)) = &*cached
            && *at == print
        {
            return Ok(Arc::clone(ctx));
        }
        let mut ctx = self
            .wire
            .service
            .session_over(&ports)
            .await
            .map_err(|e| failure(&e))?;
        // The catalog session lists the ports and their (masked) columns and holds no data: each
        // port becomes an empty base table of its schema, which tools list as a table (`\dt`).
        // Listed in name order, so that a port's oid is the same on every connection.
        let listed = Arc::new(ordered::Catalog::default());
        if let Some(catalog) = ctx.catalog(DATABASE) {
            use datafusion::catalog::{CatalogProvider as _, SchemaProvider as _};
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let tables = Arc::new(ordered::Schema::default());
                for table in schema.table_names() {
                    let Ok(Some(provider)) = schema.table(&table).await else {
                        continue;
                    };
                    let empty = datafusion::datasource::empty::EmptyTable::new(provider.schema());
                    tables
                        .register_table(table.clone(), Arc::new(empty))
                        .map_err(|e| error("XX000", &format!("the catalog tables: {e}")))?;
                }
                listed
                    .register_schema(&schema_name, tables)
                    .map_err(|e| error("XX000", &format!("the catalog tables: {e}")))?;
            }
        }
        ctx.register_catalog(DATABASE, listed);
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .information_schema = true;
        setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| error("XX000", &format!("the catalog tables: {e}")))?;
        datafusion_postgres::datafusion_pg_functions::register_all(&mut ctx);
        // Drivers read the server's version from `version()` (SQLAlchemy parses it).
        ctx.register_udf(datafusion::logical_expr::create_udf(
            "version",
            Vec::new(),
            DataType::Utf8,
            datafusion::logical_expr::Volatility::Immutable,
            Arc::new(|_| {
                Ok(datafusion::logical_expr::ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::Utf8(Some(VERSION.to_owned())),
                ))
            }),
        ));
        ctx.register_udf(to_regtype());
        // The contract's descriptions, where psql's \d+ and the tools look for comments.
        let descriptions = self
            .wire
            .service
            .catalog()
            .port_descriptions(&ports)
            .await
            .map_err(|e| failure(&e))?;
        let comments = Arc::new(comments_by_oid(&ctx, &descriptions).await?);
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            Description::new("col_description", Arc::clone(&comments)),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            Description::new("obj_description", comments),
        ));
        let ctx = Arc::new(ctx);
        *cached = Some((print, Arc::clone(&ctx)));
        Ok(ctx)
    }

    /// The parsed statements of `sql`, rewritten where PostgreSQL spells things differently.
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        mesh_engine::query::within_limits(sql)
            .map_err(|e| failure(&mesh_service::ReadError::from(e)))?;
        let mut statements = self
            .wire
            .parser
            .parse(sql)
            .map_err(|e| error("42601", &format!("syntax error: {e}")))?;
        statements.iter_mut().for_each(without_storage_options);
        Ok(statements)
    }

    /// The result schema and parameter types of a statement, without running it.
    async fn describe(
        &self,
        sql: &str,
        route: &Route,
    ) -> PgWireResult<(SchemaRef, Vec<Option<DataType>>)> {
        match route {
            Route::Read => {
                let who = self.who().await?;
                self.wire
                    .service
                    .describe(&who, sql)
                    .await
                    .map_err(|e| read_failure(&e))
            }
            Route::Catalog => {
                let who = self.who().await?;
                let ctx = self.catalog(&who).await?;
                mesh_engine::query::describe(&ctx, sql)
                    .await
                    .map_err(|e| failure(&mesh_service::ReadError::from(e)))
            }
            Route::Command(Command::Show(name)) => {
                use mesh_engine::query::arrow::datatypes::{Field, Schema};
                Ok((
                    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)])),
                    Vec::new(),
                ))
            }
            Route::Command(_) => Ok((
                Arc::new(mesh_engine::query::arrow::datatypes::Schema::empty()),
                Vec::new(),
            )),
        }
    }

    /// Runs one statement for the connection's principal.
    async fn run<C>(
        &self,
        client: &mut C,
        sql: &str,
        route: &Route,
        params: Option<mesh_engine::query::ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Send + Sync,
    {
        match route {
            Route::Command(Command::Begin) => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Route::Command(Command::Commit) => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Route::Command(Command::Rollback) => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Route::Command(Command::Nothing(tag)) => Ok(Response::Execution(Tag::new(tag))),
            Route::Command(Command::Set(name, value)) => {
                // Kept for SHOW; the connection's identity is not a setting.
                if !matches!(
                    name.as_str(),
                    "user" | "database" | "session_authorization" | "role"
                ) && client.metadata().len() < 256
                    && name.len() <= 64
                    && value.len() <= 1_024
                {
                    client
                        .metadata_mut()
                        .insert(format!("set:{name}"), value.clone());
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Route::Command(Command::Show(name)) => {
                let key = name.replace(' ', "_");
                let value = client
                    .metadata()
                    .get(&format!("set:{key}"))
                    .cloned()
                    .or_else(|| setting(&key).map(str::to_owned))
                    .ok_or_else(|| {
                        error(
                            "42704",
                            &format!("unrecognized configuration parameter \"{name}\""),
                        )
                    })?;
                one_text(&key, &value)
            }
            Route::Read => self.read(sql, params, format).await,
            Route::Catalog => self.browse(sql, params, format).await,
        }
    }

    /// A governed read, streamed as rows: rate limit, timeout, and a cancel request stop it.
    async fn read(
        &self,
        sql: &str,
        params: Option<mesh_engine::query::ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response> {
        let (fields, batches) = self.read_batches(sql, params, format).await?;
        Ok(Response::Query(QueryResponse::new(
            Arc::clone(&fields),
            rows_of(batches, fields),
        )))
    }

    /// A governed read: its result fields, and its batches as they come (a rate limit, the
    /// timeout and a cancel request end them with an error).
    async fn read_batches(
        &self,
        sql: &str,
        params: Option<mesh_engine::query::ParamValues>,
        format: &Format,
    ) -> PgWireResult<(Arc<Vec<FieldInfo>>, Batches)> {
        let who = self.who().await?;
        let limits = &self.wire.limits;
        limits.take(&who.name).await.map_err(|e| failure(&e))?;
        let deadline = tokio::time::Instant::now() + limits.limits.timeout;
        let mut cancelled = self.cancelled.subscribe();
        cancelled.borrow_and_update();
        // Planned on the query runtime too: planning a large statement is CPU work that would
        // otherwise keep this task from seeing a cancel request.
        let planning = {
            let service = self.wire.service.clone();
            let sql = sql.to_owned();
            self.wire
                .queries
                .spawn(async move { service.read_with(&who, &sql, params).await })
        };
        let abort = planning.abort_handle();
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, planning) => match read {
                Err(_) => {
                    abort.abort();
                    return Err(failure(&limits.timed_out()));
                }
                Ok(Err(e)) => return Err(error("XX000", &format!("the read failed: {e}"))),
                Ok(Ok(read)) => read.map_err(|e| read_failure(&e))?,
            },
            _ = cancelled.changed() => {
                abort.abort();
                return Err(canceled());
            }
        };
        let fields = Arc::new(arrow_schema_to_pg_fields(&read.schema, format, None)?);
        let timed_out = limits.timed_out();
        let batches = until(read.batches, deadline)
            .map(move |item| match item {
                Ok(batch) => Ok(batch),
                Err(Cut::Failed(e)) => Err(read_failure(&e)),
                Err(Cut::TimedOut) => Err(failure(&timed_out)),
            })
            .boxed();
        Ok((fields, guarded(&self.wire.queries, batches, cancelled)))
    }

    /// A query of the catalog tables, on the session of the ports `who` may read.
    async fn browse(
        &self,
        sql: &str,
        params: Option<mesh_engine::query::ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response> {
        let who = self.who().await?;
        let ctx = self.catalog(&who).await?;
        let deadline = tokio::time::Instant::now() + self.wire.limits.limits.timeout;
        let timed_out = self.wire.limits.timed_out();
        let (schema, stream) =
            tokio::time::timeout_at(deadline, mesh_engine::query::stream_with(&ctx, sql, params))
                .await
                .map_err(|_| failure(&timed_out))?
                .map_err(|e| failure(&mesh_service::ReadError::from(e)))?;
        let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, None)?);
        let mut cancelled = self.cancelled.subscribe();
        cancelled.borrow_and_update();
        let batches = futures::stream::unfold(Some(stream), move |state| {
            let timed_out = timed_out.clone();
            async move {
                let mut stream = state?;
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Err(_) => Some((Err(failure(&timed_out)), None)),
                    Ok(Some(Ok(batch))) => Some((Ok(batch), Some(stream))),
                    Ok(Some(Err(e))) => Some((Err(error("XX000", &e.to_string())), None)),
                    Ok(None) => None,
                }
            }
        })
        .boxed();
        Ok(Response::Query(QueryResponse::new(
            Arc::clone(&fields),
            rows_of(guarded(&self.wire.queries, batches, cancelled), fields),
        )))
    }
}

/// Record batches as a read produces them.
type Batches = futures::stream::BoxStream<'static, PgWireResult<RecordBatch>>;

/// `batches`, stopped with 57014 when a cancel request arrives (or the connection is gone):
/// the client gets an error, never a shorter result that looks whole. The plan runs on the
/// port's query runtime, so that CPU-bound plans cannot starve the runtime that accepts
/// connections and cancel requests; its task is aborted when the client cancels or goes away.
fn guarded(
    runtime: &tokio::runtime::Handle,
    mut batches: futures::stream::BoxStream<'static, PgWireResult<RecordBatch>>,
    cancelled: tokio::sync::watch::Receiver<u64>,
) -> futures::stream::BoxStream<'static, PgWireResult<RecordBatch>> {
    /// Aborts the plan's task when the stream reading it is dropped.
    struct Pump(tokio::task::JoinHandle<()>);
    impl Drop for Pump {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<PgWireResult<RecordBatch>>(2);
    let pump = Pump(runtime.spawn(async move {
        while let Some(item) = batches.next().await {
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                break;
            }
        }
    }));
    futures::stream::unfold(Some((rx, cancelled, pump)), |state| async move {
        let (mut rx, mut cancelled, pump) = state?;
        tokio::select! {
            biased;
            _ = cancelled.changed() => Some((Err(canceled()), None)),
            next = rx.recv() => match next {
                Some(Ok(batch)) => Some((Ok(batch), Some((rx, cancelled, pump)))),
                Some(Err(e)) => Some((Err(e), None)),
                None => None,
            },
        }
    })
    .boxed()
}

/// The rows of `batches`, encoded for `fields`.
fn rows_of(
    batches: futures::stream::BoxStream<'static, PgWireResult<RecordBatch>>,
    fields: Arc<Vec<FieldInfo>>,
) -> impl futures::Stream<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + 'static {
    batches
        .map(move |item| {
            let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> =
                match item.and_then(|batch| rows::encode(&batch, &fields)) {
                    Ok(rows) => Box::new(rows.into_iter().map(Ok)),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                };
            futures::stream::iter(rows)
        })
        .flatten()
}

/// The comments of the catalog session's tables by their `pg_class` oid: the table's, and its
/// columns' by `attnum` (1-based, in column order).
type Comments = HashMap<i64, (Option<String>, Vec<Option<String>>)>;

async fn comments_by_oid(
    ctx: &SessionContext,
    descriptions: &[mesh_catalog::access::PortDescription],
) -> PgWireResult<Comments> {
    use datafusion::common::cast::{as_int32_array, as_string_array};
    use mesh_engine::query::arrow::compute::cast;
    let internal = |e: &dyn std::fmt::Display| error("XX000", &format!("the catalog tables: {e}"));
    let mut out = Comments::new();
    if descriptions.is_empty() {
        return Ok(out);
    }
    let batches = ctx
        .sql(
            "SELECT CAST(c.oid AS INT) AS oid, CAST(n.nspname AS VARCHAR) AS nspname, \
             CAST(c.relname AS VARCHAR) AS relname \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
        )
        .await
        .map_err(|e| internal(&e))?
        .collect()
        .await
        .map_err(|e| internal(&e))?;
    for batch in batches {
        let oids = cast(batch.column(0), &DataType::Int32).map_err(|e| internal(&e))?;
        let oids = as_int32_array(&oids).map_err(|e| internal(&e))?;
        let schemas = cast(batch.column(1), &DataType::Utf8).map_err(|e| internal(&e))?;
        let schemas = as_string_array(&schemas).map_err(|e| internal(&e))?;
        let tables = cast(batch.column(2), &DataType::Utf8).map_err(|e| internal(&e))?;
        let tables = as_string_array(&tables).map_err(|e| internal(&e))?;
        for i in 0..batch.num_rows() {
            let Some(d) = descriptions
                .iter()
                .find(|d| d.domain == schemas.value(i) && d.table == tables.value(i))
            else {
                continue;
            };
            let Ok(provider) = ctx
                .table_provider(format!("{DATABASE}.{}.{}", d.domain, d.table))
                .await
            else {
                continue;
            };
            let columns = provider
                .schema()
                .fields()
                .iter()
                .map(|f| d.columns.get(f.name()).cloned())
                .collect();
            out.insert(i64::from(oids.value(i)), (d.description.clone(), columns));
        }
    }
    Ok(out)
}

/// `col_description(table oid, attnum)` and `obj_description(oid[, catalog])`: the contract's
/// descriptions of the ports and their columns, NULL for anything else.
#[derive(Debug)]
struct Description {
    name: &'static str,
    signature: datafusion::logical_expr::Signature,
    comments: Arc<Comments>,
}

impl PartialEq for Description {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.comments, &other.comments)
    }
}

impl Eq for Description {}

impl std::hash::Hash for Description {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Description {
    fn new(name: &'static str, comments: Arc<Comments>) -> Description {
        use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
        Description {
            name,
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Stable,
            ),
            comments,
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for Description {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::common::cast::as_int64_array;
        use mesh_engine::query::arrow::array::{Array, StringArray};
        use mesh_engine::query::arrow::compute::cast;
        let rows = args.number_rows;
        let arrays = datafusion::logical_expr::ColumnarValue::values_to_arrays(&args.args)?;
        let number = |i: usize| -> datafusion::error::Result<
            Option<mesh_engine::query::arrow::array::ArrayRef>,
        > {
            match arrays.get(i) {
                Some(a) if a.data_type().is_integer() || a.data_type().is_null() => {
                    Ok(Some(cast(a, &DataType::Int64)?))
                }
                _ => Ok(None),
            }
        };
        let oids = number(0)?;
        let attnums = if self.name == "col_description" {
            number(1)?
        } else {
            None
        };
        let out: StringArray = (0..rows)
            .map(|r| {
                let oids = oids.as_ref()?;
                let oids = as_int64_array(oids).ok()?;
                if oids.is_null(r) {
                    return None;
                }
                let (table, columns) = self.comments.get(&oids.value(r))?;
                match &attnums {
                    None => table.clone(),
                    Some(attnums) => {
                        let attnums = as_int64_array(attnums).ok()?;
                        let n = usize::try_from(attnums.value(r)).ok()?;
                        columns.get(n.checked_sub(1)?).cloned().flatten()
                    }
                }
            })
            .collect();
        Ok(datafusion::logical_expr::ColumnarValue::Array(Arc::new(
            out,
        )))
    }
}

/// `to_regtype(name)`: the oid of a built-in type by name, NULL for any other (drivers ask for
/// extension types such as `hstore` this way, and get "not installed").
fn to_regtype() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::common::cast::as_string_array;
    use mesh_engine::query::arrow::array::{Array, Int32Array};
    let oid = |name: &str| -> Option<i32> {
        let name = name
            .trim()
            .trim_start_matches("pg_catalog.")
            .to_ascii_lowercase();
        Some(match name.as_str() {
            "bool" | "boolean" => 16,
            "bytea" => 17,
            "int8" | "bigint" => 20,
            "int2" | "smallint" => 21,
            "int4" | "integer" | "int" => 23,
            "text" => 25,
            "oid" => 26,
            "json" => 114,
            "float4" | "real" => 700,
            "float8" | "double precision" => 701,
            "varchar" | "character varying" => 1043,
            "date" => 1082,
            "time" => 1083,
            "timestamp" => 1114,
            "timestamptz" => 1184,
            "interval" => 1186,
            "numeric" | "decimal" => 1700,
            "uuid" => 2950,
            "jsonb" => 3802,
            _ => return None,
        })
    };
    datafusion::logical_expr::create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        datafusion::logical_expr::Volatility::Immutable,
        Arc::new(move |args| {
            let arrays = datafusion::logical_expr::ColumnarValue::values_to_arrays(args)?;
            let names = as_string_array(&arrays[0])?;
            let oids: Int32Array = (0..names.len())
                .map(|i| (!names.is_null(i)).then(|| oid(names.value(i))).flatten())
                .collect();
            Ok(datafusion::logical_expr::ColumnarValue::Array(Arc::new(
                oids,
            )))
        }),
    )
}

fn canceled() -> PgWireError {
    error("57014", "canceling statement due to user request")
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::messages::startup::Authentication;
        let wire = &self.inner.wire;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if wire.tls.is_some() && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "this server takes only TLS connections: connect with sslmode=require",
                    ));
                }
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                if user.trim().is_empty() {
                    return Err(fatal(
                        "28000",
                        "no user name: connect as the principal your token is for",
                    ));
                }
                let database = client
                    .metadata()
                    .get("database")
                    .cloned()
                    .unwrap_or_else(|| user.clone());
                if database != DATABASE {
                    return Err(fatal(
                        "3D000",
                        &format!(
                            "database \"{database}\" does not exist: every data product is in database \"{DATABASE}\""
                        ),
                    ));
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let token = password.password.trim().to_owned();
                let refused = |why: &str| {
                    fatal(
                        "28P01",
                        &format!("password authentication failed for user \"{user}\": {why}"),
                    )
                };
                let who = wire
                    .auth
                    .authenticate(&token)
                    .await
                    .map_err(|e| refused(e.detail()))?;
                if !who.name.eq_ignore_ascii_case(user.trim()) {
                    return Err(refused(&format!(
                        "the password is a token of {}: connect as that user",
                        who.name
                    )));
                }
                *self.inner.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
                let (pid, secret) = wire.pids.generate(&*client);
                client.set_pid_and_secret_key(pid, secret.clone());
                let key = (pid, secret.to_bytes().to_vec());
                wire.cancels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), Arc::downgrade(&self.inner));
                *self.inner.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = "16.6 (mesh)".to_owned();
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl pgwire::api::cancel::CancelHandler for Handler {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let target = self
            .inner
            .wire
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(std::sync::Weak::upgrade);
        if let Some(target) = target {
            target.cancelled.send_modify(|n| *n += 1);
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.inner.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in &statements {
            let (sql, route) = route(statement)?;
            responses.push(
                self.inner
                    .run(client, &sql, &route, None, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.0.parse(sql)?;
        if statements.len() > 1 {
            return Err(error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let (sql, route) = route(&statement)?;
        let (schema, params) = self.0.describe(&sql, &route).await?;
        Ok(Some(Prepared {
            sql,
            route,
            schema,
            params,
        }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(statement
            .params
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|t| into_pg_type(t).ok())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect())
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        arrow_schema_to_pg_fields(
            &statement.schema,
            format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement;
        let params = self.params_of(portal)?;
        self.inner
            .run(
                client,
                &statement.sql,
                &statement.route,
                params,
                &portal.result_column_format,
            )
            .await
    }
}

impl Handler {
    /// A portal's parameters, decoded for the types the statement takes.
    fn params_of(
        &self,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<Option<mesh_engine::query::ParamValues>> {
        let statement = &portal.statement.statement;
        Ok(
            if statement.params.is_empty() && portal.parameters.is_empty() {
                None
            } else {
                let wire_types = self.parser.get_parameter_types(statement)?;
                // The client's declared types, where it declared them.
                let wire_types: Vec<Type> = wire_types
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| {
                        portal
                            .statement
                            .parameter_types
                            .get(i)
                            .cloned()
                            .flatten()
                            .unwrap_or(t)
                    })
                    .collect();
                let inferred: Vec<Option<&DataType>> =
                    statement.params.iter().map(Option::as_ref).collect();
                let wire: Vec<Option<&Type>> = wire_types.iter().map(Some).collect();
                Some(deserialize_parameters_with_server_types(
                    portal, &inferred, &wire,
                )?)
            },
        )
    }

    /// The read of `portal` executed whole: its rows are encoded a batch at a time straight into
    /// the connection's write buffer, which is written out whenever it holds `WRITE_BUFFER`
    /// bytes, instead of going through pgwire's sink one row at a time.
    async fn execute_read<S>(
        &self,
        socket: &mut Framed<S, PgWireMessageServerCodec<Prepared>>,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
    {
        socket.set_state(PgWireConnectionState::QueryInProgress);
        let params = self.params_of(portal)?;
        let (fields, mut batches) = self
            .inner
            .read_batches(
                &portal.statement.statement.sql,
                params,
                &portal.result_column_format,
            )
            .await?;
        let mut rows = 0usize;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows::encode_messages(&batch, &fields, socket.write_buffer_mut())?;
            rows += batch.num_rows();
            if socket.write_buffer().len() >= WRITE_BUFFER {
                SinkExt::<PgWireBackendMessage>::flush(socket).await?;
            }
        }
        *portal.state().lock().await = PortalExecutionState::Finished;
        let done = Tag::new("SELECT").with_rows(rows);
        socket
            .feed(PgWireBackendMessage::CommandComplete(done.into()))
            .await?;
        socket.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }

    /// The portal an `Execute` runs, when it is a read to run whole that has not started.
    async fn whole_read<S: 'static>(
        socket: &Framed<S, PgWireMessageServerCodec<Prepared>>,
        execute: &pgwire::messages::extendedquery::Execute,
    ) -> Option<Arc<Portal<Prepared>>> {
        if execute.max_rows != 0 || !matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
        {
            return None;
        }
        let name = execute.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        let Some(pgwire::api::store::Entry::Value(portal)) = socket.portal_store().get_portal(name)
        else {
            return None;
        };
        if !matches!(portal.statement.statement.route, Route::Read)
            || !matches!(*portal.state().lock().await, PortalExecutionState::Initial)
        {
            return None;
        }
        Some(portal)
    }
}
