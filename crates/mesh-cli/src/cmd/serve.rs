//! `mesh serve`: the catalog's HTTP API, the portal and Arrow Flight SQL on one port. Many
//! instances can serve one PostgreSQL catalog; API and Flight requests are stateless, portal
//! sessions live in the instance that signed the browser in (route a browser to one instance).

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;

use crate::Outcome;
use crate::workspace::{CatalogArgs, redact};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,

    /// Queries (`POST /api/v1/query`) each consumer may run per minute, on average.
    #[arg(long, default_value_t = 120, env = "MESH_QUERIES_PER_MINUTE")]
    queries_per_minute: u32,

    /// How many queries a consumer may run at once before the per-minute rate applies.
    #[arg(long, default_value_t = 20, env = "MESH_QUERY_BURST")]
    query_burst: u32,

    /// Also POST every access request, decision and revocation as JSON to this URL (the
    /// owning domain's chat or ticket system), retried with backoff.
    #[arg(long, value_name = "URL", env = "MESH_ACCESS_WEBHOOK")]
    access_webhook: Option<String>,
    /// Seconds one query may run before it is stopped.
    #[arg(
        long,
        default_value_t = 60.0,
        value_name = "SECONDS",
        env = "MESH_QUERY_TIMEOUT"
    )]
    query_timeout: f64,

    /// Seconds between SLA monitor passes (probe every served snapshot, evaluate every
    /// product, record violations and recoveries); 0 turns the monitor off.
    #[arg(
        long,
        default_value_t = 60.0,
        value_name = "SECONDS",
        env = "MESH_SLA_INTERVAL"
    )]
    sla_interval: f64,
    /// The rolling window of availability, error rate, latency and volume.
    #[arg(long, default_value = "28d")]
    sla_window: String,
    /// POST every SLA violation and recovery as JSON to this URL, retried with backoff.
    #[arg(long, value_name = "URL", env = "MESH_SLA_WEBHOOK")]
    sla_webhook: Option<String>,
    /// Do not probe the served snapshots (availability then comes from reads alone).
    #[arg(long)]
    no_probes: bool,

    /// Let anyone who reaches the server read the catalog in the portal without signing in
    /// (asking for and deciding on access still needs a sign-in with a token).
    #[arg(long, env = "MESH_OPEN_PORTAL")]
    open_portal: bool,

    /// Where people reach the server when it is behind a proxy (`https://mesh.example.com`):
    /// portal forms are accepted only from this origin, and an https URL makes the session
    /// cookie Secure.
    #[arg(long, value_name = "URL", env = "MESH_PUBLIC_URL")]
    public_url: Option<String>,

    /// Connections served at once; one more gets a 503 and is closed.
    #[arg(long, default_value_t = 4096, env = "MESH_MAX_CONNECTIONS")]
    max_connections: usize,

    /// Seconds a client has to send a request's headers (and an idle keep-alive connection
    /// stays open) before it is disconnected.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        env = "MESH_HEADER_TIMEOUT"
    )]
    header_timeout: f64,

    /// MiB of memory one query may hold in joins, sorts and aggregates (sorts spill to disk
    /// past it; what cannot spill is refused).
    #[arg(
        long,
        default_value_t = 1024,
        value_name = "MIB",
        env = "MESH_QUERY_MEMORY"
    )]
    query_memory: usize,

    /// MiB of memory all queries together may hold.
    #[arg(
        long,
        default_value_t = 4096,
        value_name = "MIB",
        env = "MESH_SERVER_MEMORY"
    )]
    server_memory: usize,

    /// MiB one query's result may have (as Arrow data); a bigger result is cut with an error.
    #[arg(
        long,
        default_value_t = 1024,
        value_name = "MIB",
        env = "MESH_RESULT_MEMORY"
    )]
    result_memory: usize,

    /// Flight SQL calls (metadata, statements, prepared statements) each caller may make per
    /// minute, on average; queries also count against `--queries-per-minute`.
    #[arg(long, default_value_t = 600, env = "MESH_CALLS_PER_MINUTE")]
    calls_per_minute: u32,

    /// Do not run the scheduled products' pipelines here (another server of the catalog does,
    /// or cron does).
    #[arg(long, env = "MESH_NO_SCHEDULES")]
    no_schedules: bool,

    /// Scheduled runs at once on this server; more wait for a free one.
    #[arg(long, default_value_t = 2, value_name = "N", env = "MESH_MAX_RUNS",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    max_runs: u16,

    /// Seconds before a failed scheduled run's first retry (each next one waits twice as long;
    /// the product's schedule says how many).
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECONDS",
        env = "MESH_RETRY_BACKOFF"
    )]
    retry_backoff: f64,

    /// A checkout of the repository holding the product folders: scheduled runs read sources
    /// that are files of a product's folder from there.
    #[arg(long, value_name = "DIR", env = "MESH_WORKSPACE")]
    workspace: Option<std::path::PathBuf>,

    /// Seconds between catalog-wide policy audits (kept as `policy.audit` events; one server of
    /// the catalog runs each); 0 turns them off.
    #[arg(
        long,
        default_value_t = 3600.0,
        value_name = "SECONDS",
        env = "MESH_AUDIT_INTERVAL"
    )]
    audit_interval: f64,

    /// Do not send notifications to the subscriptions from this server (another server of the
    /// catalog does; each event is sent once).
    #[arg(long, env = "MESH_NO_NOTIFICATIONS")]
    no_notifications: bool,

    /// The SMTP relay e-mail subscriptions go through: smtp://[user:password@]host[:port]
    /// (STARTTLS when offered) or smtps://... (TLS).
    #[arg(
        long,
        value_name = "URL",
        env = "MESH_SMTP_URL",
        hide_env_values = true
    )]
    smtp_url: Option<String>,

    /// The sender of notification e-mails.
    #[arg(
        long,
        value_name = "ADDRESS",
        default_value = "mesh <mesh@localhost>",
        env = "MESH_SMTP_FROM"
    )]
    smtp_from: String,

    /// Accept tokens of this OpenID Connect issuer (its JWTs, verified against its published
    /// keys) beside mesh's own; the `[identity]` table of mesh.toml maps its groups to roles.
    #[arg(long, value_name = "URL", env = "MESH_OIDC_ISSUER")]
    oidc_issuer: Option<String>,

    /// The client id mesh is registered with at the issuer: tokens must be for it (`aud`).
    #[arg(long, value_name = "ID", env = "MESH_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,

    /// The client secret for the portal's sign-in, read from this file (or
    /// `MESH_OIDC_CLIENT_SECRET`); without one, mesh signs in as a public client with PKCE alone.
    #[arg(long, value_name = "FILE")]
    oidc_client_secret_file: Option<std::path::PathBuf>,

    /// Another accepted audience (repeat for several).
    #[arg(long = "oidc-audience", value_name = "AUD")]
    oidc_audiences: Vec<String>,

    /// Clock skew allowed on IdP tokens' `exp` and `nbf`, in seconds (at most 600).
    #[arg(long, value_name = "SECONDS")]
    oidc_leeway: Option<u64>,

    /// Serve the PostgreSQL wire protocol on this address too (psql, BI tools, drivers): user =
    /// principal, password = token, database `mesh`, the same governance as HTTP and Flight SQL.
    #[arg(long, value_name = "ADDR", env = "MESH_PG_LISTEN")]
    pg_listen: Option<std::net::SocketAddr>,

    /// The PostgreSQL port's TLS certificate chain (PEM); with --pg-tls-key, only TLS
    /// connections are served (clients use sslmode=require).
    #[arg(
        long,
        value_name = "FILE",
        requires = "pg_tls_key",
        env = "MESH_PG_TLS_CERT"
    )]
    pg_tls_cert: Option<std::path::PathBuf>,

    /// The private key of --pg-tls-cert (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "pg_tls_cert",
        env = "MESH_PG_TLS_KEY"
    )]
    pg_tls_key: Option<std::path::PathBuf>,

    /// PostgreSQL connections served at once (one more gets SQLSTATE 53300).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        env = "MESH_PG_MAX_CONNECTIONS"
    )]
    pg_max_connections: usize,

    #[command(flatten)]
    catalog: CatalogArgs,
}

/// The identity provider to trust: mesh.toml's `[identity]`, with the flags on top.
fn identity(args: &Args) -> anyhow::Result<Option<mesh_server::idp::IdpConfig>> {
    let mut config = crate::workspace::identity_config()?;
    if let Some(issuer) = &args.oidc_issuer {
        let c = config.get_or_insert_with(|| mesh_server::idp::IdpConfig {
            issuer: issuer.clone(),
            ..Default::default()
        });
        c.issuer.clone_from(issuer);
    }
    if let Some(c) = &mut config {
        if let Some(id) = &args.oidc_client_id {
            c.client_id = Some(id.clone());
        }
        // The client id is an audience of the ID tokens people sign in with.
        c.audience.extend(c.client_id.iter().cloned());
        c.audience.sort();
        c.audience.dedup();
        c.client_secret = match &args.oidc_client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the OIDC client secret {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("MESH_OIDC_CLIENT_SECRET")
                .ok()
                .map(|s| s.trim().to_owned()),
        }
        .filter(|s| !s.is_empty());
        c.audience.extend(args.oidc_audiences.iter().cloned());
        if args.oidc_leeway.is_some() {
            c.leeway_seconds = args.oidc_leeway;
        }
        if !(c.issuer.starts_with("https://") || c.issuer.starts_with("http://")) {
            anyhow::bail!("the OIDC issuer must be an http(s) URL, not `{}`", c.issuer);
        }
        if c.audience.is_empty() {
            anyhow::bail!(
                "an OIDC issuer needs the audience its tokens are for: --oidc-client-id (or `audience` in [identity])"
            );
        }
    } else if args.oidc_client_id.is_some()
        || !args.oidc_audiences.is_empty()
        || args.oidc_client_secret_file.is_some()
    {
        anyhow::bail!(
            "--oidc-client-id, --oidc-client-secret-file and --oidc-audience need --oidc-issuer"
        );
    }
    Ok(config)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    // A panic in a request fails that request (a 500 with an error id); the log gets one line.
    std::panic::set_hook(Box::new(|info| {
        mesh_service::logging::log(&format!("panic: {info}"));
    }));
    crate::runtime()?.block_on(async {
        let identity = identity(args)?;
        let catalog = args.catalog.open().await?;
        if let Some(dir) = &args.workspace
            && !dir.is_dir()
        {
            anyhow::bail!("--workspace {}: not a folder", dir.display());
        }
        let mailer = match &args.smtp_url {
            Some(url) => Some(std::sync::Arc::new(
                mesh_server::notify::SmtpMailer::new(url, &args.smtp_from)
                    .map_err(|e| anyhow::anyhow!(e))?,
            ) as std::sync::Arc<dyn mesh_service::dispatch::Mailer>),
            None => None,
        };
        if !(args.retry_backoff.is_finite() && args.retry_backoff >= 0.0) {
            anyhow::bail!("--retry-backoff must be a number of seconds, not {}", args.retry_backoff);
        }
        // Checked before listening: a typo in a flag is not a server that half starts.
        let window = mesh_service::monitor::parse_window(&args.sla_window)
            .map_err(|e| anyhow::anyhow!("--sla-window: {e}"))?;
        if let Some(public) = &args.public_url {
            let url = reqwest::Url::parse(public)
                .map_err(|e| anyhow::anyhow!("--public-url {public:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                anyhow::bail!("--public-url {public:?}: expected http(s)://host[:port]");
            }
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let pg = match args.pg_listen {
            Some(at) => {
                // (clap's `requires` makes the certificate and the key come together.)
                let tls = args.pg_tls_cert.clone().zip(args.pg_tls_key.clone());
                Some(
                    mesh_server::pg::PgPort::bind(at, tls, args.pg_max_connections)
                        .map_err(|e| anyhow::anyhow!("--pg-listen: {e}"))?,
                )
            }
            None if args.pg_tls_cert.is_some() => {
                anyhow::bail!("--pg-tls-cert needs --pg-listen")
            }
            None => None,
        };
        let pg_note = pg
            .as_ref()
            .map(|p| {
                format!(
                    "PostgreSQL wire at postgres://{}/{}{}; ",
                    p.address(),
                    mesh_server::pg::DATABASE,
                    if p.tls() { "?sslmode=require" } else { "" }
                )
            })
            .unwrap_or_default();
        let mut err = anstream::stderr();
        writeln!(
            err,
            "mesh serve: listening on http://{address} (catalog {}); portal at http://{address}/; API document at http://{address}/openapi.json; Arrow Flight SQL at grpc://{address}; {pg_note}metrics at http://{address}/metrics; {}",
            redact(&args.catalog.url()?),
            if args.sla_interval > 0.0 {
                format!("SLA monitor every {} s", args.sla_interval)
            } else {
                "SLA monitor off".to_owned()
            }
        )?;
        if !args.no_schedules {
            writeln!(
                err,
                "mesh serve: running scheduled products ({} at once{})",
                args.max_runs,
                args.workspace
                    .as_ref()
                    .map(|w| format!(", product folders under {}", w.display()))
                    .unwrap_or_default()
            )?;
        }
        // Ctrl-C or SIGTERM (a supervisor stopping it): stop accepting, finish what is in flight.
        let shutdown = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        };
        let limits = mesh_server::QueryLimits {
            per_minute: args.queries_per_minute,
            burst: args.query_burst,
            timeout: std::time::Duration::from_secs_f64(args.query_timeout.max(0.001)),
            query_memory: args.query_memory.max(1) << 20,
            server_memory: args.server_memory.max(1) << 20,
            result_memory: args.result_memory.max(1) << 20,
            calls_per_minute: args.calls_per_minute,
        };
        let monitor = mesh_service::monitor::MonitorOptions {
            interval: (args.sla_interval > 0.0)
                .then(|| std::time::Duration::from_secs_f64(args.sla_interval)),
            window,
            webhook: args.sla_webhook.clone(),
            probes: !args.no_probes,
        };
        let options = mesh_server::Options {
            limits,
            access_webhook: args.access_webhook.clone(),
            monitor,
            open_portal: args.open_portal,
            public_url: args.public_url.clone(),
            connections: mesh_server::ConnectionLimits {
                max_connections: args.max_connections,
                header_timeout: std::time::Duration::from_secs_f64(args.header_timeout.max(0.1)),
                ..mesh_server::ConnectionLimits::default()
            },
            schedules: (!args.no_schedules).then(|| mesh_server::Schedules {
                options: mesh_service::orchestrator::OrchestratorOptions {
                    max_runs: usize::from(args.max_runs),
                    backoff: std::time::Duration::from_secs_f64(args.retry_backoff.min(86_400.0)),
                    ..Default::default()
                },
                workspace: args.workspace.clone(),
            }),
            notifications: !args.no_notifications,
            mailer,
            audit_interval: (args.audit_interval > 0.0 && args.audit_interval.is_finite())
                .then(|| std::time::Duration::from_secs_f64(args.audit_interval.max(1.0))),
            identity,
            pg,
        };
        mesh_server::serve(listener, catalog, options, shutdown)
            .await
            .context("the server stopped")?;
        Ok(Outcome::Ok)
    })
}
