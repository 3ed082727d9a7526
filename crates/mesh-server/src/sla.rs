//! Service levels over HTTP, the monitor that keeps them, and `/metrics`.
//!
//! The monitor runs inside `mesh serve` on a schedule (and once per `mesh sla check`): it probes
//! every served snapshot (opens the Delta table at the snapshot's version and reads a row, as a
//! reader would), evaluates every product's service levels ([`Catalog::sla_check`]), and sends
//! each violation and recovery to the SLA webhook (logged deliveries, retried with backoff).
//! `/metrics` shows the last pass in Prometheus' text format, with the run counters and a
//! histogram of governed reads' latency per port.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use futures::{StreamExt, TryStreamExt};
use mesh_catalog::sla::{SlaOptions, SlaReport};
use mesh_catalog::store::{DeliveryRow, ObservationRow, ViolationRow};
use mesh_catalog::{Catalog, CatalogError, Principal};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::notify::Webhook;
use crate::{AppState, Caller};

/// How the monitor runs.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Time between passes; `None`: no monitor loop (`/metrics` then evaluates on each scrape).
    pub interval: Option<Duration>,
    /// The rolling window of availability, error rate, latency and volume.
    pub window: chrono::Duration,
    /// Where violations and recoveries are POSTed.
    pub webhook: Option<String>,
    /// Probe every served snapshot before each pass.
    pub probes: bool,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            interval: None,
            window: SlaOptions::default().window,
            webhook: None,
            probes: true,
        }
    }
}

/// The monitor: its options, its webhook, and its last pass (for `/metrics`).
#[derive(Debug)]
pub struct Monitor {
    pub options: MonitorOptions,
    webhook: Option<Arc<Webhook>>,
    last: RwLock<Option<Pass>>,
}

#[derive(Debug, Clone)]
struct Pass {
    report: Arc<SlaReport>,
    seconds: f64,
}

impl Monitor {
    pub fn new(options: MonitorOptions) -> Monitor {
        let webhook = options
            .webhook
            .clone()
            .map(|url| Arc::new(Webhook::new(url)));
        Monitor {
            options,
            webhook,
            last: RwLock::new(None),
        }
    }

    /// One pass: probes (if enabled), evaluation with history, and the webhook told of every
    /// violation opened and closed (awaited, or in the `background`).
    pub async fn check(
        &self,
        catalog: &Catalog,
        who: &Principal,
        background: bool,
    ) -> Result<(SlaReport, Vec<DeliveryRow>), CatalogError> {
        let started = Instant::now();
        if self.options.probes {
            probe_all(catalog, who).await?;
        }
        let options = SlaOptions {
            window: self.options.window,
            product: None,
        };
        let report = catalog.sla_check(who, &options).await?;
        *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some(Pass {
            report: Arc::new(report.clone()),
            seconds: started.elapsed().as_secs_f64(),
        });
        let mut deliveries = Vec::new();
        if let Some(hook) = &self.webhook {
            let events = report
                .opened
                .iter()
                .map(|v| ("sla.violated", v))
                .chain(report.recovered.iter().map(|v| ("sla.recovered", v)));
            for (event, v) in events {
                if background {
                    hook.spawn(catalog, event, &v.product, v);
                } else {
                    deliveries.push(hook.deliver(catalog, event, &v.product, v).await);
                }
            }
        }
        Ok((report, deliveries))
    }

    /// Passes every `interval` until the task is dropped; a failed pass is logged and retried
    /// at the next tick.
    pub async fn run(self: Arc<Self>, catalog: Catalog) {
        let Some(interval) = self.options.interval else {
            return;
        };
        let who = Principal::system("mesh-monitor");
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Deliveries in the background: a receiver that is down never holds up a pass.
            if let Err(e) = Box::pin(self.check(&catalog, &who, true)).await {
                log(&format!("the SLA pass failed: {e}"));
            }
        }
    }
}

/// How long one probe may take before it counts as failed (an object store that hangs is down).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Probes each served snapshot, a few at a time, and records the outcomes.
async fn probe_all(catalog: &Catalog, who: &Principal) -> Result<(), CatalogError> {
    let snapshots = catalog.served_snapshots(who).await?;
    let probes: Vec<ObservationRow> =
        futures::stream::iter(snapshots)
            .map(|s| async move {
                let started = Instant::now();
                let outcome =
                    match tokio::time::timeout(PROBE_TIMEOUT, probe(&s.location, s.delta_version))
                        .await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
                    };
                ObservationRow {
                    product: s.product,
                    port: s.port,
                    major: s.major,
                    at: catalog.now(),
                    kind: "probe".into(),
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                    rows_read: outcome.as_ref().ok().copied(),
                    error: outcome.err(),
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
    catalog.record_probes(who, &probes).await
}

/// Reads one row of a Delta table at `version`, as a reader would: the log, then a data file.
async fn probe(location: &str, version: i64) -> Result<i64, String> {
    let readable = mesh_engine::query::Readable {
        domain: "probe".into(),
        table: "port".into(),
        location: location.to_owned(),
        delta_version: version,
        columns: None,
        masks: Vec::new(),
        mask: mesh_engine::query::Mask::default(),
    };
    let ctx = mesh_engine::query::session_with(&[&readable])
        .await
        .map_err(|e| e.to_string())?;
    let (_, stream) = mesh_engine::query::stream(&ctx, "SELECT * FROM probe.port LIMIT 1")
        .await
        .map_err(|e| e.to_string())?;
    let batches: Vec<_> = stream.try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows() as i64).sum())
}

#[allow(clippy::print_stderr)]
fn log(message: &str) {
    eprintln!("mesh serve: {message}");
}

/// A duration such as `28d`, `12h` or `90m`: at least a second, at most the 90 days
/// observations are kept.
pub fn parse_window(text: &str) -> Result<chrono::Duration, String> {
    let span = mesh_model::odcs::sla::span(&serde_json::Value::String(text.to_owned()), None)?;
    if span.seconds < 1.0 {
        return Err(format!("the window `{text}` is shorter than a second"));
    }
    let keep = mesh_catalog::sla::KEEP_DAYS;
    if span.seconds > (keep * 86_400) as f64 {
        return Err(format!(
            "the window `{text}` is longer than the {keep} days observations are kept"
        ));
    }
    Ok(chrono::Duration::milliseconds(
        (span.seconds * 1000.0) as i64,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SlaParams {
    /// Only this product (`domain.product`).
    product: Option<String>,
    /// The rolling window, e.g. `28d` (the default) or `12h`.
    window: Option<String>,
}

impl SlaParams {
    fn options(&self, default: chrono::Duration) -> Result<SlaOptions, ApiError> {
        Ok(SlaOptions {
            window: match &self.window {
                Some(w) => parse_window(w).map_err(ApiError::bad_request)?,
                None => default,
            },
            product: self.product.clone(),
        })
    }
}

/// The service levels of every product's output ports (or one product's), measured now:
/// freshness, completeness, availability, error rate, latency and volume against the contracts'
/// `slaProperties`, with open violations.
#[utoipa::path(get, path = "/api/v1/sla", tag = "sla",
    params(SlaParams),
    security(("token" = [])),
    responses((status = 200, body = SlaReport), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<SlaParams>, QueryRejection>,
) -> Result<Json<SlaReport>, ApiError> {
    let who = caller.principal()?;
    let Query(params) = params?;
    let options = params.options(state.monitor.options.window)?;
    Ok(Json(Box::pin(state.catalog.sla(&who, &options)).await?))
}

/// One monitor pass now: probes, evaluation, violations opened and closed, webhooks. Admins.
#[utoipa::path(post, path = "/api/v1/sla/check", tag = "sla",
    security(("token" = [])),
    responses((status = 200, body = SlaReport), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub(crate) async fn check(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SlaReport>, ApiError> {
    let who = caller.principal()?;
    let (report, _) = Box::pin(state.monitor.check(&state.catalog, &who, true)).await?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ViolationParams {
    /// Only this product's.
    product: Option<String>,
    /// At most this many (default 100).
    limit: Option<i64>,
}

/// Violations, open and closed, the most recently started first.
#[utoipa::path(get, path = "/api/v1/sla/violations", tag = "sla",
    params(ViolationParams),
    security(("token" = [])),
    responses((status = 200, body = [ViolationRow]), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
pub(crate) async fn violations(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ViolationParams>, QueryRejection>,
) -> Result<Json<Vec<ViolationRow>>, ApiError> {
    let who = caller.principal()?;
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        state
            .catalog
            .sla_violations(&who, params.product.as_deref(), limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryParams {
    /// At most this many (default 100).
    limit: Option<i64>,
}

/// Webhook deliveries (access and SLA events), the most recent first: attempts, last answer.
/// Admins.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "sla",
    params(DeliveryParams),
    security(("token" = [])),
    responses((status = 200, body = [DeliveryRow]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<DeliveryParams>, QueryRejection>,
) -> Result<Json<Vec<DeliveryRow>>, ApiError> {
    let who = caller.principal()?;
    let Query(params) = params?;
    Ok(Json(
        state
            .catalog
            .deliveries(&who, params.limit.unwrap_or(100))
            .await?,
    ))
}

/// Prometheus text format (0.0.4): per-port SLA gauges from the monitor's last pass (or a pass
/// now, without a monitor), run counters, and a histogram of governed reads' latency per port.
#[utoipa::path(get, path = "/metrics", tag = "sla",
    security(("token" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = Problem)))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let who = caller.principal()?;
    let pass = pass(&state, &who).await?;
    let runs = state.catalog.run_counts(&who).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&pass.report, pass.seconds, &runs),
    ))
}

/// The monitor's last pass while it runs; without it, a pass now (a pass someone asked for once
/// would otherwise be served forever).
async fn pass(state: &AppState, who: &Principal) -> Result<Pass, CatalogError> {
    let last = state.monitor.options.interval.and_then(|_| {
        state
            .monitor
            .last
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    });
    if let Some(pass) = last {
        return Ok(pass);
    }
    let started = Instant::now();
    let options = SlaOptions {
        window: state.monitor.options.window,
        product: None,
    };
    let report = Box::pin(state.catalog.sla(who, &options)).await?;
    Ok(Pass {
        report: Arc::new(report),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The service levels as the monitor last saw them (or as they are now, without a monitor),
/// checked against `who`'s right to read the catalog.
pub(crate) async fn current(
    state: &AppState,
    who: &Principal,
) -> Result<Arc<SlaReport>, CatalogError> {
    if !who.may(mesh_catalog::Action::Read) {
        return Err(CatalogError::Forbidden(format!(
            "{} may not read the catalog",
            who.name
        )));
    }
    Ok(pass(state, who).await?.report)
}

/// Upper bounds (seconds) of the read-latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    errors: u64,
}

/// Governed reads since the process started, per `(product, port)`.
static READS: LazyLock<Mutex<BTreeMap<(String, String), Histogram>>> =
    LazyLock::new(Default::default);

/// Counts one governed read of a port in the latency histogram.
pub(crate) fn observe_read(product: &str, port: &str, seconds: f64, failed: bool) {
    let mut reads = READS.lock().unwrap_or_else(|e| e.into_inner());
    let h = reads
        .entry((product.to_owned(), port.to_owned()))
        .or_default();
    if failed {
        h.errors += 1;
        return;
    }
    h.count += 1;
    h.sum += seconds;
    for (i, le) in BUCKETS.iter().enumerate() {
        if seconds <= *le {
            h.buckets[i] += 1;
        }
    }
}

/// A label value, escaped as the text format says.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{x}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition of one pass, the run counters and the read histograms.
fn render(report: &SlaReport, seconds: f64, runs: &[(String, i64)]) -> String {
    let mut out = String::new();
    let port_labels = |p: &mesh_catalog::sla::PortSla| {
        format!(
            "product=\"{}\",domain=\"{}\",port=\"{}\",major=\"{}\"",
            label(&p.product),
            label(&p.domain),
            label(&p.port),
            p.major
        )
    };
    type Gauge = fn(&mesh_catalog::sla::PortMetrics) -> Option<f64>;
    let gauges: [(&str, &str, Gauge); 7] = [
        (
            "mesh_port_freshness_seconds",
            "Seconds since the port's snapshot last moved.",
            |m| m.freshness_seconds,
        ),
        (
            "mesh_port_data_age_seconds",
            "Seconds since the newest value of the contract's freshness element.",
            |m| m.data_age_seconds,
        ),
        (
            "mesh_port_completeness_ratio",
            "Share of expected values present, from the last contract checks.",
            |m| m.completeness,
        ),
        (
            "mesh_port_availability_ratio",
            "Share of reads and probes in the window that succeeded.",
            |m| m.availability,
        ),
        (
            "mesh_port_error_ratio",
            "Share of reads in the window that failed.",
            |m| m.error_rate,
        ),
        ("mesh_port_rows", "Rows of the snapshot readers get.", |m| {
            m.rows.map(|r| r as f64)
        }),
        (
            "mesh_port_volume_drop",
            "1 if the last run wrote less than half the median of the runs before it.",
            |m| Some(f64::from(u8::from(m.volume_drop))),
        ),
    ];
    for (name, help, get) in gauges {
        family(&mut out, name, "gauge", help);
        for p in &report.ports {
            if let Some(v) = get(&p.metrics) {
                let _ = writeln!(out, "{name}{{{}}} {}", port_labels(p), number(v));
            }
        }
    }
    family(
        &mut out,
        "mesh_port_read_latency_seconds",
        "gauge",
        "Latency of the window's successful reads, by quantile.",
    );
    for p in &report.ports {
        let m = &p.metrics;
        for (q, v) in [
            ("0.5", m.latency_p50_ms),
            ("0.95", m.latency_p95_ms),
            ("0.99", m.latency_p99_ms),
        ] {
            if let Some(v) = v {
                let _ = writeln!(
                    out,
                    "mesh_port_read_latency_seconds{{{},quantile=\"{q}\"}} {}",
                    port_labels(p),
                    number(v / 1000.0)
                );
            }
        }
    }
    family(
        &mut out,
        "mesh_sla_objective_met",
        "gauge",
        "1 if the service-level objective is met, 0 if violated (unmeasured ones are absent).",
    );
    for p in &report.ports {
        for o in &p.objectives {
            let v = match o.status.as_str() {
                "met" => 1,
                "violated" => 0,
                _ => continue,
            };
            let _ = writeln!(
                out,
                "mesh_sla_objective_met{{{},property=\"{}\"}} {v}",
                port_labels(p),
                label(&o.property)
            );
        }
    }
    family(
        &mut out,
        "mesh_sla_error_budget_remaining_ratio",
        "gauge",
        "Share of the window's error budget left (availability, errorRate); negative: overspent.",
    );
    for p in &report.ports {
        for o in &p.objectives {
            if let Some(b) = o.budget_remaining {
                let _ = writeln!(
                    out,
                    "mesh_sla_error_budget_remaining_ratio{{{},property=\"{}\"}} {}",
                    port_labels(p),
                    label(&o.property),
                    number(b)
                );
            }
        }
    }
    family(
        &mut out,
        "mesh_sla_ports",
        "gauge",
        "Output ports by SLA status.",
    );
    for status in ["met", "violated", "unknown"] {
        let n = report.ports.iter().filter(|p| p.status == status).count();
        let _ = writeln!(out, "mesh_sla_ports{{status=\"{status}\"}} {n}");
    }
    family(
        &mut out,
        "mesh_sla_evaluation_seconds",
        "gauge",
        "How long the last SLA pass took.",
    );
    let _ = writeln!(out, "mesh_sla_evaluation_seconds {}", number(seconds));
    family(
        &mut out,
        "mesh_sla_evaluation_timestamp_seconds",
        "gauge",
        "When the last SLA pass ran (Unix time).",
    );
    let at = chrono::DateTime::parse_from_rfc3339(&report.at)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .unwrap_or_default();
    let _ = writeln!(out, "mesh_sla_evaluation_timestamp_seconds {}", number(at));

    family(
        &mut out,
        "mesh_runs_total",
        "counter",
        "Pipeline runs that ended, by outcome.",
    );
    for outcome in ["succeeded", "failed"] {
        let n = runs
            .iter()
            .find(|(s, _)| s == outcome)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "mesh_runs_total{{outcome=\"{outcome}\"}} {n}");
    }
    family(
        &mut out,
        "mesh_runs_open",
        "gauge",
        "Pipeline runs running or committing.",
    );
    let open: i64 = runs
        .iter()
        .filter(|(s, _)| s == "running" || s == "committing")
        .map(|(_, n)| n)
        .sum();
    let _ = writeln!(out, "mesh_runs_open {open}");

    let reads = READS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    family(
        &mut out,
        "mesh_query_duration_seconds",
        "histogram",
        "Governed reads of each port that did not fail at the port (the reader's own query may have), since the server started.",
    );
    for ((product, port), h) in &reads {
        let labels = format!("product=\"{}\",port=\"{}\"", label(product), label(port));
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mesh_query_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                h.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "mesh_query_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "mesh_query_duration_seconds_sum{{{labels}}} {}",
            number(h.sum)
        );
        let _ = writeln!(
            out,
            "mesh_query_duration_seconds_count{{{labels}}} {}",
            h.count
        );
    }
    family(
        &mut out,
        "mesh_query_errors_total",
        "counter",
        "Governed reads of each port that failed, since the server started.",
    );
    for ((product, port), h) in &reads {
        let _ = writeln!(
            out,
            "mesh_query_errors_total{{product=\"{}\",port=\"{}\"}} {}",
            label(product),
            label(port),
            h.errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    fn port(product: &str, met: bool) -> mesh_catalog::sla::PortSla {
        mesh_catalog::sla::PortSla {
            product: product.into(),
            domain: "d".into(),
            version: "1.0.0".into(),
            port: "p".into(),
            major: 1,
            status: if met { "met" } else { "violated" }.into(),
            metrics: mesh_catalog::sla::PortMetrics {
                availability: Some(0.5),
                latency_p50_ms: Some(12.0),
                latency_p95_ms: Some(40.0),
                latency_p99_ms: Some(90.0),
                ..Default::default()
            },
            objectives: vec![mesh_catalog::sla::Objective {
                property: "availability".into(),
                objective: ">= 99 percent".into(),
                observed: None,
                status: if met { "met" } else { "violated" }.into(),
                budget_remaining: Some(-1.5),
                violation: None,
                since: None,
            }],
        }
    }

    #[test]
    fn the_exposition_is_well_formed() {
        for seconds in [0.003, 0.02, 0.02, 0.7, 12.0, 45.0] {
            observe_read("render.test", "p\"q", seconds, false);
        }
        observe_read("render.test", "p\"q", 1.0, true);
        let report = SlaReport {
            at: "2026-11-26T08:00:00.000Z".into(),
            window_seconds: 86_400,
            ports: vec![port("a.b", true), port("a.c", false)],
            violated: 1,
            opened: vec![],
            recovered: vec![],
        };
        let text = render(
            &report,
            0.25,
            &[("succeeded".into(), 3), ("running".into(), 1)],
        );
        let mut families = std::collections::HashSet::new();
        let mut series = std::collections::HashSet::new();
        let mut buckets: Vec<(f64, u64)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(
                    families.insert(rest.split(' ').next().unwrap().to_owned()),
                    "{line}"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').unwrap();
            assert!(series.insert(key.to_owned()), "duplicate series {key}");
            let name = key.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| families.contains(*f))
                .unwrap_or(name);
            assert!(families.contains(family), "no TYPE before {line}");
            if key.starts_with("mesh_query_duration_seconds_bucket") && key.contains("render.test")
            {
                let le = key.split("le=\"").nth(1).unwrap().trim_end_matches("\"}");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                buckets.push((le, value.parse().unwrap()));
            }
        }
        // Cumulative, ending with +Inf = the count of successful reads; the failure is apart.
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{buckets:?}"
        );
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 6)));
        assert_eq!(buckets[0], (0.005, 1));
        assert!(text.contains(
            "mesh_query_duration_seconds_count{product=\"render.test\",port=\"p\\\"q\"} 6"
        ));
        assert!(
            text.contains("mesh_query_errors_total{product=\"render.test\",port=\"p\\\"q\"} 1")
        );
        assert!(text.contains("mesh_sla_objective_met{product=\"a.c\",domain=\"d\",port=\"p\",major=\"1\",property=\"availability\"} 0"));
        assert!(text.contains("mesh_runs_total{outcome=\"succeeded\"} 3"));
        assert!(text.contains("mesh_runs_open 1"));
        assert!(text.contains("quantile=\"0.95\"} 0.04"));
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("28d"), Ok(chrono::Duration::days(28)));
        assert_eq!(parse_window("90m"), Ok(chrono::Duration::minutes(90)));
        assert!(parse_window("soon").is_err());
        assert!(parse_window("0s").is_err());
        assert!(parse_window("91d").is_err());
        assert!(parse_window("300000y").is_err());
    }
}
