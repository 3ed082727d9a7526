//! Service levels over HTTP, and `/metrics`: the monitor's last pass (or a pass now) in
//! Prometheus' text format, with the run counters and a histogram of governed reads' latency per
//! port. The monitor itself — probes, passes, webhooks — is `mesh_service::monitor`.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use mesh_catalog::sla::{Delivery, SlaOptions, SlaReport, Violation};
use mesh_service::metrics::BUCKETS;
use mesh_service::monitor::parse_window;
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::{AppState, Caller};

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
    responses((status = 200, body = [Violation]), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
pub(crate) async fn violations(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ViolationParams>, QueryRejection>,
) -> Result<Json<Vec<Violation>>, ApiError> {
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
    responses((status = 200, body = [Delivery]), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<DeliveryParams>, QueryRejection>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
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
    let pass = state.monitor.current(&state.catalog, &who).await?;
    let runs = state.catalog.run_counts(&who).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = render(&pass.report, pass.seconds, &runs);
            if let Some(o) = &state.orchestrator {
                render_schedule(&mut text, &o.counters);
            }
            if let Some(idp) = state.auth.idp() {
                family(
                    &mut text,
                    "mesh_idp_jwks_fetches_total",
                    "counter",
                    "Fetches of the identity provider's keys (JWKS) since this server started.",
                );
                let _ = writeln!(
                    text,
                    "mesh_idp_jwks_fetches_total {}",
                    idp.fetches.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
            text
        },
    ))
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

    let reads = mesh_service::metrics::reads();
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

/// The orchestrator's counters since this server started.
fn render_schedule(out: &mut String, c: &mesh_service::orchestrator::Counters) {
    use mesh_service::orchestrator::{Counters, DELAY_BUCKETS};
    family(
        out,
        "mesh_schedule_runs_total",
        "counter",
        "Scheduled slots this server claimed, and how they ended (retried counts attempts after a failure; collapsed, cron slots overtaken by a later one before they ran).",
    );
    for (outcome, n) in [
        ("scheduled", &c.scheduled),
        ("succeeded", &c.succeeded),
        ("skipped", &c.skipped),
        ("retried", &c.retried),
        ("failed", &c.failed),
        ("collapsed", &c.collapsed),
    ] {
        let _ = writeln!(
            out,
            "mesh_schedule_runs_total{{outcome=\"{outcome}\"}} {}",
            Counters::get(n)
        );
    }
    family(
        out,
        "mesh_schedule_queue_delay_seconds",
        "histogram",
        "From a slot's instant to its run's start, for the slots this server claimed.",
    );
    for (le, n) in DELAY_BUCKETS.iter().zip(&c.delay_buckets) {
        let _ = writeln!(
            out,
            "mesh_schedule_queue_delay_seconds_bucket{{le=\"{le}\"}} {}",
            Counters::get(n)
        );
    }
    let count = Counters::get(&c.delay_count);
    let _ = writeln!(
        out,
        "mesh_schedule_queue_delay_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        out,
        "mesh_schedule_queue_delay_seconds_sum {}",
        number(Counters::get(&c.delay_sum_ms) as f64 / 1000.0)
    );
    let _ = writeln!(out, "mesh_schedule_queue_delay_seconds_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_service::metrics::observe_read;

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
}
