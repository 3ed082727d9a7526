//! Service levels as the platform observes them, per output port.
//!
//! Nothing here is typed in by a team: freshness comes from the run ledger (when the port's
//! snapshot last moved, and the newest value of the contract's freshness element that the run's
//! checks measured), completeness and retention from the last contract checks, availability,
//! error rate and query latency from what every governed read and monitor probe recorded
//! ([`Catalog::record_read`], [`Catalog::record_probes`]), volume from the rows of the last runs.
//!
//! [`Catalog::sla`] evaluates the contracts' `slaProperties` against those measures over a
//! rolling window and reports; [`Catalog::sla_check`] does the same and keeps the history: a
//! breach opens one violation (with when it started), a later pass that finds the objective met
//! again closes it, and each is an event (`sla.violated`, `sla.recovered`). The store allows one
//! open violation per objective, so two monitors racing never raise it twice.
//!
//! A pass reads the catalog a page of products at a time, so memory stays flat however many
//! products there are.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Action;
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::store::{
    DeliveryRow, NewEvent, ObservationRow, ObservationStats, PortRow, ProductRow, RunRow,
    SnapshotRow, StoreError, VersionRow, ViolationRow,
};

/// Products evaluated per page of a pass.
const PAGE: i64 = 500;

/// How long observations are kept, and so the longest window a pass may look back over: a pass
/// with a short window never deletes what a longer one still needs.
pub const KEEP_DAYS: i64 = 90;

/// The runs a volume drop is judged against, and the share of their median below which it is one.
const VOLUME_RUNS: usize = 5;
const VOLUME_DROP: f64 = 0.5;

/// Why service levels could not be reported.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for SlaError {
    fn code(&self) -> ErrorCode {
        match self {
            SlaError::Denied(_) => ErrorCode::Forbidden,
            SlaError::NotFound(_) => ErrorCode::NotFound,
            SlaError::Store(e) => e.code(),
        }
    }
}

/// A breach of one service-level objective of one output port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    pub id: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    /// The SLA property (`latency`, `availability`, ...), `completeness` or `volume`.
    pub property: String,
    /// What the contract promises, e.g. `<= 1 d`.
    pub objective: String,
    /// What was measured when the breach was detected.
    pub observed: String,
    /// When the objective stopped being met (as far as the monitor can tell).
    pub started_at: String,
    pub detected_at: String,
    /// When it was met again; absent while the violation lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl From<ViolationRow> for Violation {
    fn from(r: ViolationRow) -> Violation {
        Violation {
            id: r.id,
            product: r.product,
            port: r.port,
            major: r.major,
            property: r.property,
            objective: r.objective,
            observed: r.observed,
            started_at: r.started_at,
            detected_at: r.detected_at,
            ended_at: r.ended_at,
        }
    }
}

/// One webhook delivery and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub id: String,
    pub url: String,
    /// The event sent, e.g. `sla.violated`.
    pub event: String,
    /// The product (or request) it is about.
    pub subject: String,
    /// The JSON body sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// The receiver's last HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Delivery {
        Delivery {
            id: r.id,
            url: r.url,
            event: r.event,
            subject: r.subject,
            payload: r.payload,
            state: r.state,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// What a pass looks at.
#[derive(Debug, Clone)]
pub struct SlaOptions {
    /// The rolling window of availability, error rate, latency and volume.
    pub window: Duration,
    /// One product (`domain.name`), or all.
    pub product: Option<String>,
}

impl Default for SlaOptions {
    fn default() -> Self {
        SlaOptions {
            window: Duration::days(28),
            product: None,
        }
    }
}

/// What the platform measured of one output port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortMetrics {
    /// When the port's snapshot last moved (its last successful run or rollback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_published_at: Option<String>,
    /// Seconds since then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness_seconds: Option<f64>,
    /// Seconds since the newest value of the contract's freshness element, in the data readers get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_age_seconds: Option<f64>,
    /// Share of the values the completeness rules expect that are there, from the last checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<f64>,
    /// Share of reads, and of probes, in the window that succeeded: the lower of the two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    pub reads: i64,
    pub read_errors: i64,
    pub probes: i64,
    pub probe_errors: i64,
    /// Share of reads in the window that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Latency of the window's reads that did not fail at the port, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    /// Rows of the snapshot readers get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// The median rows of the successful runs before the last (up to five in the window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_median_before: Option<f64>,
    /// The last run wrote less than half that median.
    pub volume_drop: bool,
}

/// One service-level objective of a port and how it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Objective {
    /// The SLA property (`latency`, `availability`, `errorRate`, `frequency`, `retention`,
    /// `timeOfAvailability`), or `completeness` (the contract's completeness rules), or `volume`.
    pub property: String,
    /// What is promised, e.g. `<= 1 d`.
    pub objective: String,
    /// What was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// `met`, `violated`, or `unknown` (nothing to measure yet, or a value mesh cannot read).
    pub status: String,
    /// Availability and error rate: the share of the window's error budget left (below zero:
    /// overspent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<f64>,
    /// The open violation, while violated and recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    /// Since when it has been violated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// The service levels of one output port (of the product's latest version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortSla {
    pub product: String,
    pub domain: String,
    pub version: String,
    pub port: String,
    pub major: i64,
    /// `violated` if any objective is, else `met` if any is measured, else `unknown`.
    pub status: String,
    pub metrics: PortMetrics,
    pub objectives: Vec<Objective>,
}

/// One pass over the mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaReport {
    pub at: String,
    pub window_seconds: i64,
    pub ports: Vec<PortSla>,
    /// Ports with a violated objective.
    pub violated: usize,
    /// Violations this pass opened (only when it records: `mesh sla check`, the monitor).
    pub opened: Vec<Violation>,
    /// Violations this pass closed.
    pub recovered: Vec<Violation>,
}

impl Catalog {
    /// The service levels of every output port (or one product's), measured now. Records nothing.
    pub async fn sla(
        &self,
        who: &crate::Principal,
        options: &SlaOptions,
    ) -> Result<SlaReport, SlaError> {
        Self::allow(who, Action::Read)?;
        self.sla_pass(who, options, false).await
    }

    /// [`Catalog::sla`], and the history: opens a violation for each objective newly breached,
    /// closes those met again, appends `sla.violated` / `sla.recovered` events, and prunes
    /// observations that have left the window. For admins (the monitor runs as one).
    pub async fn sla_check(
        &self,
        who: &crate::Principal,
        options: &SlaOptions,
    ) -> Result<SlaReport, SlaError> {
        Self::allow(who, Action::Administer)?;
        self.sla_pass(who, options, true).await
    }

    /// Violations, open and closed, the most recently started first.
    pub async fn sla_violations(
        &self,
        who: &crate::Principal,
        product: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Violation>, SlaError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let rows = tx.violations(product, limit.clamp(1, 1000)).await?;
        Ok(rows.into_iter().map(Violation::from).collect())
    }

    /// Records monitor probes of output ports. For admins.
    pub async fn record_probes(
        &self,
        who: &crate::Principal,
        probes: &[ObservationRow],
    ) -> Result<(), SlaError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.write().await?;
        tx.insert_observations(probes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every snapshot readers get, to probe. For admins.
    pub async fn served_snapshots(
        &self,
        who: &crate::Principal,
    ) -> Result<Vec<crate::runs::Snapshot>, SlaError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.read().await?;
        let rows = tx.all_snapshots().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// How many runs ended in each state (`running`, `committing`, `succeeded`, `failed`).
    pub async fn run_counts(&self, who: &crate::Principal) -> Result<Vec<(String, i64)>, SlaError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        Ok(tx.run_counts().await?)
    }

    /// Records a webhook delivery (`first`: a new one; else its next attempt).
    pub async fn log_delivery(&self, row: &DeliveryRow, first: bool) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        if first {
            tx.insert_delivery(row).await?;
        } else {
            tx.update_delivery(row).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Webhook deliveries, the most recent first. For admins.
    pub async fn deliveries(
        &self,
        who: &crate::Principal,
        limit: i64,
    ) -> Result<Vec<Delivery>, SlaError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.read().await?;
        let rows = tx.deliveries(limit.clamp(1, 1000)).await?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    async fn sla_pass(
        &self,
        who: &crate::Principal,
        options: &SlaOptions,
        record: bool,
    ) -> Result<SlaReport, SlaError> {
        let now = self.clock.now();
        let keep = Duration::days(KEEP_DAYS);
        let window = options.window.clamp(Duration::seconds(1), keep);
        let since = stamp(now.checked_sub_signed(window).unwrap_or(now));
        let mut report = SlaReport {
            at: stamp(now),
            window_seconds: window.num_seconds(),
            ports: Vec::new(),
            violated: 0,
            opened: Vec::new(),
            recovered: Vec::new(),
        };
        let mut after: Option<String> = None;
        loop {
            let page = self.sla_page(options, after.as_deref(), &since).await?;
            let Some(page) = page else { break };
            after = Some(page.upto.clone());
            let mut ports = page.evaluate(now, &since);
            if record {
                self.record_page(who, now, &page, &mut ports, &mut report)
                    .await?;
            }
            // What is open after this page (an objective that cannot be measured now keeps its
            // violation open, and shows it).
            for port in &mut ports {
                for o in &mut port.objectives {
                    let k = key(&port.product, &port.port, port.major, &o.property);
                    let closed = report.recovered.iter().any(|v| {
                        (&v.product, &v.port, v.major, &v.property) == (&k.0, &k.1, k.2, &k.3)
                    });
                    if let Some(v) = page.open.get(&k).filter(|_| !closed) {
                        o.violation = Some(v.id.clone());
                        o.since = Some(v.started_at.clone());
                    }
                }
            }
            report.ports.extend(ports);
            if options.product.is_some() {
                break;
            }
        }
        report.violated = report
            .ports
            .iter()
            .filter(|p| p.status == "violated")
            .count();
        if record && options.product.is_none() {
            let mut tx = self.store.write().await?;
            tx.prune_observations(&stamp(now.checked_sub_signed(keep).unwrap_or(now)))
                .await?;
            tx.commit().await?;
        }
        Ok(report)
    }

    /// The next page of products after `after` and everything their evaluation needs.
    async fn sla_page(
        &self,
        options: &SlaOptions,
        after: Option<&str>,
        since: &str,
    ) -> Result<Option<Page>, SlaError> {
        let mut tx = self.store.read().await?;
        let products: Vec<(ProductRow, VersionRow)> = match &options.product {
            Some(id) => {
                if after.is_some() {
                    return Ok(None);
                }
                let product = tx.product(id).await?.ok_or_else(|| Missing::Product {
                    product: id.clone(),
                })?;
                let Some(latest) = product.latest.clone() else {
                    return Ok(Some(Page::empty(id)));
                };
                let version = tx
                    .version(id, &latest)
                    .await?
                    .ok_or_else(|| Missing::Version {
                        product: id.clone(),
                        version: latest.clone(),
                    })?;
                vec![(product, version)]
            }
            None => tx.latest_versions(after, PAGE).await?,
        };
        let (Some(first), Some(last)) = (products.first(), products.last()) else {
            return Ok(None);
        };
        let (from, upto) = (first.0.id.clone(), last.0.id.clone());
        let ports = match after {
            // `latest_ports` takes (after, upto]; a single product is its own page.
            _ if options.product.is_some() => {
                let (p, v) = &products[0];
                tx.ports(&p.id, &v.version).await?
            }
            _ => tx.latest_ports(after, &upto).await?,
        };
        let snapshots = tx.snapshots_between(&from, &upto).await?;
        let runs = tx.runs_between(&from, &upto, since).await?;
        let observations = tx.observation_stats_between(&from, &upto, since).await?;
        let open = tx.open_violations_between(&from, &upto).await?;
        Ok(Some(Page {
            upto,
            products,
            ports,
            snapshots,
            runs,
            observations,
            open: open
                .into_iter()
                .map(|v| {
                    (
                        (
                            v.product.clone(),
                            v.port.clone(),
                            v.major,
                            v.property.clone(),
                        ),
                        v,
                    )
                })
                .collect(),
        }))
    }

    /// Opens and closes violations for one evaluated page, in one transaction.
    async fn record_page(
        &self,
        who: &crate::Principal,
        now: DateTime<Utc>,
        page: &Page,
        ports: &mut [PortSla],
        report: &mut SlaReport,
    ) -> Result<(), SlaError> {
        let at = stamp(now);
        let mut tx = self.store.write().await?;
        let mut seen = std::collections::HashSet::new();
        for port in ports.iter_mut() {
            for o in &mut port.objectives {
                let k = key(&port.product, &port.port, port.major, &o.property);
                seen.insert(k.clone());
                let open = page.open.get(&k);
                match (o.status.as_str(), open) {
                    ("violated", None) => {
                        let row = ViolationRow {
                            id: uuid::Uuid::new_v4().to_string(),
                            product: k.0.clone(),
                            port: k.1.clone(),
                            major: k.2,
                            property: o.property.clone(),
                            objective: o.objective.clone(),
                            observed: o.observed.clone().unwrap_or_default(),
                            started_at: o.since.clone().unwrap_or_else(|| at.clone()),
                            detected_at: at.clone(),
                            ended_at: None,
                        };
                        if !tx.insert_violation(&row).await? {
                            // Another monitor opened it first: it is theirs to announce.
                            continue;
                        }
                        tx.append_event(&violation_event("sla.violated", &row, &at, who))
                            .await?;
                        o.violation = Some(row.id.clone());
                        o.since = Some(row.started_at.clone());
                        report.opened.push(row.into());
                    }
                    ("met", Some(v)) => {
                        report
                            .recovered
                            .extend(close(&mut *tx, v, &at, who).await?.map(Violation::from));
                    }
                    _ => {}
                }
            }
        }
        // An objective that is no longer promised (the contract dropped it, the port went away,
        // the product was retired) is not breached any more either.
        for (k, v) in &page.open {
            if !seen.contains(k) {
                report
                    .recovered
                    .extend(close(&mut *tx, v, &at, who).await?.map(Violation::from));
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

type Key = (String, String, i64, String);

fn key(product: &str, port: &str, major: i64, property: &str) -> Key {
    (
        product.to_owned(),
        port.to_owned(),
        major,
        property.to_owned(),
    )
}

/// Closes an open violation and says so in the event log; `None` if another monitor closed it.
async fn close(
    tx: &mut dyn crate::store::Tx,
    v: &ViolationRow,
    at: &str,
    who: &crate::Principal,
) -> Result<Option<ViolationRow>, StoreError> {
    if !tx.end_violation(&v.id, at).await? {
        return Ok(None);
    }
    let mut ended = v.clone();
    ended.ended_at = Some(at.to_owned());
    tx.append_event(&violation_event("sla.recovered", &ended, at, who))
        .await?;
    Ok(Some(ended))
}

fn violation_event(kind: &str, v: &ViolationRow, at: &str, who: &crate::Principal) -> NewEvent {
    NewEvent {
        at: at.to_owned(),
        kind: kind.to_owned(),
        subject: v.product.clone(),
        actor: who.name.clone(),
        payload: serde_json::to_value(Violation::from(v.clone())).unwrap_or_default(),
    }
}

/// A page of products and what their evaluation reads.
struct Page {
    /// The last product id of the page.
    upto: String,
    products: Vec<(ProductRow, VersionRow)>,
    ports: Vec<PortRow>,
    snapshots: Vec<SnapshotRow>,
    runs: Vec<RunRow>,
    observations: Vec<ObservationStats>,
    open: HashMap<Key, ViolationRow>,
}

impl Page {
    fn empty(id: &str) -> Page {
        Page {
            upto: id.to_owned(),
            products: Vec::new(),
            ports: Vec::new(),
            snapshots: Vec::new(),
            runs: Vec::new(),
            observations: Vec::new(),
            open: HashMap::new(),
        }
    }

    fn evaluate(&self, now: DateTime<Utc>, since: &str) -> Vec<PortSla> {
        let mut runs: HashMap<(&str, &str), Vec<&RunRow>> = HashMap::new();
        for r in &self.runs {
            runs.entry((&r.product, &r.port)).or_default().push(r);
        }
        let observed: HashMap<(&str, &str, i64), &ObservationStats> = self
            .observations
            .iter()
            .map(|o| ((o.product.as_str(), o.port.as_str(), o.major), o))
            .collect();
        let snapshots: HashMap<(&str, &str, i64), &SnapshotRow> = self
            .snapshots
            .iter()
            .map(|s| ((s.product.as_str(), s.port.as_str(), s.major), s))
            .collect();
        let versions: HashMap<&str, (&ProductRow, &VersionRow)> = self
            .products
            .iter()
            .filter(|(p, _)| p.status != "retired")
            .map(|(p, v)| (p.id.as_str(), (p, v)))
            .collect();
        let mut out = Vec::new();
        for port in &self.ports {
            let Some((product, version)) = versions.get(port.product.as_str()) else {
                continue;
            };
            if port.version != version.version {
                continue;
            }
            let snapshot = snapshots
                .get(&(port.product.as_str(), port.port.as_str(), port.major))
                .copied();
            let port_runs: Vec<&RunRow> = runs
                .get(&(port.product.as_str(), port.port.as_str()))
                .map(|rs| {
                    rs.iter()
                        .copied()
                        .filter(|r| r.major == port.major)
                        .collect()
                })
                .unwrap_or_default();
            let observed = observed
                .get(&(port.product.as_str(), port.port.as_str(), port.major))
                .copied();
            let contract: Value = serde_json::from_str(&port.contract).unwrap_or_default();
            let input = PortInput {
                now,
                since,
                published_at: &version.published_at,
                contract: &contract,
                snapshot,
                runs: &port_runs,
                observed,
            };
            let (metrics, objectives) = input.evaluate();
            // An objective mesh cannot measure yet does not hold the others' verdict back.
            let status = if objectives.iter().any(|o| o.status == "violated") {
                "violated"
            } else if objectives.iter().any(|o| o.status == "met") {
                "met"
            } else {
                "unknown"
            };
            out.push(PortSla {
                product: product.id.clone(),
                domain: product.domain.clone(),
                version: version.version.clone(),
                port: port.port.clone(),
                major: port.major,
                status: status.to_owned(),
                metrics,
                objectives,
            });
        }
        out
    }
}

/// Everything one port's evaluation reads.
struct PortInput<'a> {
    now: DateTime<Utc>,
    since: &'a str,
    /// When the version was published (freshness counts from it while no run has succeeded).
    published_at: &'a str,
    contract: &'a Value,
    snapshot: Option<&'a SnapshotRow>,
    /// By start time.
    runs: &'a [&'a RunRow],
    observed: Option<&'a ObservationStats>,
}

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn seconds(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The checks of a run (datacontract-cli's run shape).
fn checks(run: &RunRow) -> Vec<Value> {
    run.checks
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| c["checks"].as_array().cloned())
        .unwrap_or_default()
}

/// A duration for people: `45 s`, `12 min`, `5.5 h`, `3.2 d`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 120.0 {
        format!("{} s", s.round())
    } else if s < 7200.0 {
        format!("{} min", (s / 60.0).round())
    } else if s < 2.0 * 86_400.0 {
        format!("{} h", (s / 360.0).round() / 10.0)
    } else {
        format!("{} d", (s / 8640.0).round() / 10.0)
    }
}

fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}%", p.round())
    } else {
        format!("{}%", (p * 1000.0).round() / 1000.0)
    }
}

/// An availability or error-rate value as a ratio: `99.5` with unit `percent` (or any value
/// above 1) is a percentage.
pub fn ratio(value: &Value, unit: Option<&str>) -> Result<f64, String> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
    .ok_or_else(|| format!("`{value}` is not a percentage"))?;
    let is_percent = matches!(
        unit.map(str::to_ascii_lowercase).as_deref(),
        Some("percent" | "%")
    ) || value.as_str().is_some_and(|s| s.trim().ends_with('%'))
        || n > 1.0;
    let r = if is_percent { n / 100.0 } else { n };
    if r > 1.0 {
        return Err(format!("`{value}` is more than 100%"));
    }
    Ok(r)
}

impl PortInput<'_> {
    fn evaluate(&self) -> (PortMetrics, Vec<Objective>) {
        let mut m = PortMetrics::default();
        let published = self.snapshot.and_then(|s| time(&s.updated_at));
        m.last_published_at = self.snapshot.map(|s| s.updated_at.clone());
        m.freshness_seconds = published.map(|p| seconds(self.now - p));
        let snapshot_run = self
            .snapshot
            .and_then(|s| self.runs.iter().find(|r| r.id == s.run));
        m.rows = snapshot_run.and_then(|r| r.rows_out);

        // The last checks, whatever the run's outcome: what the contract found in the data.
        let last_checked = self.runs.iter().rev().find(|r| r.checks.is_some());
        let last_checks = last_checked.map(|r| checks(r)).unwrap_or_default();

        // The newest value of the freshness element, as the snapshot's checks measured it
        // (usually the same run's checks, parsed once).
        let newest = snapshot_run.and_then(|run| {
            let parsed;
            let run_checks = if last_checked.is_some_and(|l| l.id == run.id) {
                &last_checks
            } else {
                parsed = checks(run);
                &parsed
            };
            run_checks
                .iter()
                .find(|c| c["type"] == "servicelevel_freshness")
                .and_then(|c| {
                    let d = &c["diagnostics"];
                    d["newest"].as_str().and_then(time).or_else(|| {
                        let age = d["value"].as_f64()?;
                        let at = time(run.finished_at.as_deref()?)?;
                        at.checked_sub_signed(ms(age)?)
                    })
                })
        });
        m.data_age_seconds = newest.map(|n| seconds(self.now - n));

        let completeness: Vec<&Value> = last_checks
            .iter()
            .filter(|c| {
                c["category"] == "quality"
                    && (matches!(
                        c["type"].as_str(),
                        Some("field_missing_values" | "field_null_values")
                    ) || c["dimension"]
                        .as_str()
                        .is_some_and(|d| d.eq_ignore_ascii_case("completeness")))
            })
            .collect();
        if !completeness.is_empty() {
            let missing: f64 = completeness
                .iter()
                .map(|c| {
                    let d = &c["diagnostics"];
                    d["failed_fraction"].as_f64().unwrap_or_else(|| {
                        match (d["value"].as_f64(), d["row_count"].as_f64()) {
                            (Some(v), Some(n)) if n > 0.0 => v / n,
                            _ => 0.0,
                        }
                    })
                })
                .sum();
            m.completeness = Some((1.0 - missing / completeness.len() as f64).clamp(0.0, 1.0));
        }

        // Reads and probes in the window.
        if let Some(o) = self.observed {
            (m.reads, m.read_errors, m.probes, m.probe_errors) =
                (o.reads, o.read_errors, o.probes, o.probe_errors);
            (m.latency_p50_ms, m.latency_p95_ms, m.latency_p99_ms) = (o.p50_ms, o.p95_ms, o.p99_ms);
        }
        // Reads and probes are judged apart, the worse counts: a minute's probes must not drown
        // the reads that failed in between.
        let share = |n: i64, failed: i64| (n > 0).then(|| 1.0 - failed as f64 / n as f64);
        m.availability = match (
            share(m.reads, m.read_errors),
            share(m.probes, m.probe_errors),
        ) {
            (Some(r), Some(p)) => Some(r.min(p)),
            (r, p) => r.or(p),
        };
        if m.reads > 0 {
            m.error_rate = Some(m.read_errors as f64 / m.reads as f64);
        }

        // Volume: the last successful run in the window against the ones before it.
        let rows: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.state == "succeeded" && r.started_at.as_str() >= self.since)
            .filter_map(|r| r.rows_out.map(|n| n as f64))
            .collect();
        if let Some((last, before)) = rows.split_last() {
            let mut before: Vec<f64> = before.iter().rev().take(VOLUME_RUNS).copied().collect();
            if before.len() >= 3 {
                before.sort_by(f64::total_cmp);
                let median = before[before.len() / 2];
                m.rows_median_before = Some(median);
                m.volume_drop = *last < VOLUME_DROP * median;
            }
        }

        let mut objectives: Vec<Objective> = Vec::new();
        for sla in self.contract["slaProperties"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(o) = self.objective(sla, &m, &last_checks) else {
                continue;
            };
            // One objective per property: a second entry would fight the first over one
            // violation record.
            if objectives
                .iter()
                .any(|e| e.property.eq_ignore_ascii_case(&o.property))
            {
                continue;
            }
            objectives.push(o);
        }
        if !completeness.is_empty() {
            let failing: Vec<String> = completeness
                .iter()
                .filter(|c| c["result"] != "passed")
                .map(|c| {
                    c["name"]
                        .as_str()
                        .unwrap_or("a completeness rule")
                        .to_owned()
                })
                .collect();
            objectives.push(Objective {
                property: "completeness".into(),
                objective: format!(
                    "{} completeness rule{} pass",
                    completeness.len(),
                    if completeness.len() == 1 { "" } else { "s" }
                ),
                observed: Some(match (m.completeness, failing.is_empty()) {
                    (Some(c), true) => format!("{} complete", percent(c)),
                    (Some(c), false) => {
                        format!("{} complete; failing: {}", percent(c), failing.join("; "))
                    }
                    (None, _) => "not measured".into(),
                }),
                status: if failing.is_empty() {
                    "met"
                } else {
                    "violated"
                }
                .into(),
                budget_remaining: None,
                violation: None,
                since: last_checked
                    .map(|r| r.started_at.clone())
                    .filter(|_| !failing.is_empty()),
            });
        }
        if let Some(median) = m.rows_median_before {
            objectives.push(Objective {
                property: "volume".into(),
                objective: format!(
                    ">= {}% of the median rows of the previous runs",
                    VOLUME_DROP * 100.0
                ),
                observed: Some(format!(
                    "{} rows against a median of {median}",
                    rows.last().copied().unwrap_or_default()
                )),
                status: if m.volume_drop { "violated" } else { "met" }.into(),
                budget_remaining: None,
                violation: None,
                since: None,
            });
        }
        (m, objectives)
    }

    /// One `slaProperties` entry judged; `None` for properties mesh does not monitor.
    fn objective(&self, sla: &Value, m: &PortMetrics, last_checks: &[Value]) -> Option<Objective> {
        let property = sla["property"].as_str()?.to_owned();
        let unit = sla["unit"].as_str();
        let value = &sla["value"];
        let shown = format!(
            "{}{}",
            value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string()),
            unit.map(|u| format!(" {u}")).unwrap_or_default()
        );
        let unknown = |objective: String, why: String| Objective {
            property: property.clone(),
            objective,
            observed: Some(why),
            status: "unknown".into(),
            budget_remaining: None,
            violation: None,
            since: None,
        };
        let judged =
            |objective: String, observed: String, met: bool, since: Option<String>| Objective {
                property: property.clone(),
                objective,
                observed: Some(observed),
                status: if met { "met" } else { "violated" }.into(),
                budget_remaining: None,
                violation: None,
                since: since.filter(|_| !met),
            };
        // Where freshness counts from: the data's newest value, else the last publish, else the
        // version's publication (a port that never got data is as stale as that).
        let published = m
            .last_published_at
            .as_deref()
            .or(Some(self.published_at))
            .and_then(time);
        Some(match property.to_ascii_lowercase().as_str() {
            "latency" | "freshness" | "frequency" => {
                let objective = format!("<= {shown}");
                let limit = match mesh_model::odcs::sla::span(value, unit) {
                    Ok(s) => s.seconds,
                    Err(e) => return Some(unknown(objective, e)),
                };
                let element =
                    !property.eq_ignore_ascii_case("frequency") && sla["element"].is_string();
                let (base, what) = match m.data_age_seconds {
                    Some(age) if element => (
                        ms(age).and_then(|a| self.now.checked_sub_signed(a)),
                        "newest value",
                    ),
                    _ if m.last_published_at.is_some() => (published, "last publish"),
                    _ => (published, "publication, never run"),
                };
                let Some(base) = base else {
                    return Some(unknown(objective, "no time to measure from".into()));
                };
                let age = seconds(self.now - base);
                judged(
                    objective,
                    format!("{} since the {what}", human(age)),
                    age <= limit,
                    ms(limit)
                        .and_then(|l| base.checked_add_signed(l))
                        .map(stamp),
                )
            }
            "timeofavailability" => {
                let objective = format!("published by {shown} UTC every day");
                let at = match mesh_model::odcs::sla::time_of_day(value) {
                    Ok(t) => t,
                    Err(e) => return Some(unknown(objective, e)),
                };
                let midnight = self.now.date_naive().and_hms_opt(0, 0, 0)?.and_utc();
                let deadline = midnight + Duration::seconds(i64::from(at));
                // Before today's deadline, yesterday's publish is what is owed.
                let (due_since, due) = if self.now >= deadline {
                    (midnight, deadline)
                } else {
                    (midnight - Duration::days(1), deadline - Duration::days(1))
                };
                let last = m.last_published_at.as_deref().and_then(time);
                let met = last.is_some_and(|l| l >= due_since);
                let observed = match last {
                    Some(l) => format!("last published {}", stamp(l)),
                    None => "never published".into(),
                };
                judged(objective, observed, met, Some(stamp(due)))
            }
            "availability" => {
                let objective = format!(">= {shown}");
                let target = match ratio(value, unit) {
                    Ok(r) => r,
                    Err(e) => return Some(unknown(objective, e)),
                };
                let Some(a) = m.availability else {
                    return Some(unknown(
                        objective,
                        "no reads or probes in the window".into(),
                    ));
                };
                let mut seen = Vec::new();
                let mut left = f64::INFINITY;
                for (what, n, failed) in [
                    ("reads", m.reads, m.read_errors),
                    ("probes", m.probes, m.probe_errors),
                ] {
                    if n > 0 {
                        let ok = 1.0 - failed as f64 / n as f64;
                        seen.push(format!("{} of {n} {what}", percent(ok)));
                        left = left.min(budget((1.0 - target) * n as f64, failed as f64));
                    }
                }
                let mut o = judged(
                    objective,
                    seen.join(", "),
                    a >= target,
                    Some(stamp(self.now)),
                );
                o.budget_remaining = Some(left);
                o
            }
            "errorrate" => {
                let objective = format!("<= {shown}");
                let limit = match ratio(value, unit) {
                    Ok(r) => r,
                    Err(e) => return Some(unknown(objective, e)),
                };
                let Some(rate) = m.error_rate else {
                    return Some(unknown(objective, "no reads in the window".into()));
                };
                let mut o = judged(
                    objective,
                    format!("{} of {} reads failed", percent(rate), m.reads),
                    rate <= limit,
                    Some(stamp(self.now)),
                );
                o.budget_remaining = Some(budget(limit * m.reads as f64, m.read_errors as f64));
                o
            }
            "retention" => {
                let objective = format!("data older than {shown} is gone");
                let limit = match mesh_model::odcs::sla::span(value, unit) {
                    Ok(s) => s.seconds,
                    Err(e) => return Some(unknown(objective, e)),
                };
                let Some(check) = last_checks
                    .iter()
                    .find(|c| c["type"] == "servicelevel_retention")
                else {
                    return Some(unknown(
                        objective,
                        "no retention check in the last run (it needs an `element`)".into(),
                    ));
                };
                // The oldest value ages between runs: judged now, not when it was checked.
                let d = &check["diagnostics"];
                let oldest = d["oldest"].as_str().and_then(time);
                match oldest {
                    Some(oldest) => {
                        let age = seconds(self.now - oldest);
                        judged(
                            objective,
                            format!("oldest value {} old", human(age)),
                            age <= limit,
                            ms(limit)
                                .and_then(|l| oldest.checked_add_signed(l))
                                .map(stamp),
                        )
                    }
                    None => judged(
                        objective,
                        match d["value"].as_f64() {
                            Some(a) => format!("oldest value {} old when checked", human(a)),
                            None => "not measured".into(),
                        },
                        check["result"] == "passed",
                        Some(stamp(self.now)),
                    ),
                }
            }
            _ => return None,
        })
    }
}

/// A span of `seconds`, if it is one chrono can add to a time.
fn ms(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() {
        return None;
    }
    Duration::try_milliseconds((seconds * 1000.0) as i64)
}

/// The share of an error budget of `allowed` failures left after `failures`.
fn budget(allowed: f64, failures: f64) -> f64 {
    if allowed > 0.0 {
        1.0 - failures / allowed
    } else if failures == 0.0 {
        1.0
    } else {
        -failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    /// A succeeded run that finished at hour `h` with `rows` rows and `checks`.
    fn run(id: &str, h: i64, rows: i64, checks: serde_json::Value) -> RunRow {
        RunRow {
            id: id.into(),
            product: "d.p".into(),
            version: "1.0.0".into(),
            port: "p".into(),
            major: 1,
            location: "memory://".into(),
            state: "succeeded".into(),
            started_at: stamp(at(h)),
            heartbeat_at: stamp(at(h)),
            finished_at: Some(stamp(at(h))),
            owner: "h:1".into(),
            delta_version: Some(1),
            rows_in: Some(rows),
            rows_out: Some(rows),
            bytes_out: Some(1),
            inputs: "[]".into(),
            checks: Some(serde_json::json!({ "checks": checks }).to_string()),
            error: None,
            actor: "t".into(),
            note: None,
        }
    }

    fn snapshot(run: &str, h: i64) -> SnapshotRow {
        SnapshotRow {
            product: "d.p".into(),
            port: "p".into(),
            major: 1,
            version: "1.0.0".into(),
            run: run.into(),
            location: "memory://".into(),
            delta_version: 1,
            updated_at: stamp(at(h)),
        }
    }

    /// The objectives of a port whose contract promises `sla`, judged at hour `now`.
    fn judge(
        sla: serde_json::Value,
        now: i64,
        runs: &[RunRow],
        snap: Option<&SnapshotRow>,
        observed: Option<&ObservationStats>,
    ) -> (PortMetrics, Vec<Objective>) {
        let contract = serde_json::json!({ "slaProperties": sla });
        let runs: Vec<&RunRow> = runs.iter().collect();
        PortInput {
            now: at(now),
            since: &stamp(at(now) - Duration::days(28)),
            published_at: &stamp(at(0)),
            contract: &contract,
            snapshot: snap,
            runs: &runs,
            observed,
        }
        .evaluate()
    }

    fn status(objectives: &[Objective], property: &str) -> String {
        objectives
            .iter()
            .find(|o| o.property == property)
            .map(|o| o.status.clone())
            .unwrap_or_else(|| format!("no {property}"))
    }

    #[test]
    fn frequency_and_time_of_availability() {
        let runs = [run("r1", 1, 10, serde_json::json!([]))];
        let snap = snapshot("r1", 1);
        let sla = serde_json::json!([
            {"property": "frequency", "value": 6, "unit": "h"},
            {"property": "timeOfAvailability", "value": "09:00"},
        ]);
        // At 05:00 the run of 01:00 is fresh; today's 09:00 deadline has not come.
        let (_, o) = judge(sla.clone(), 5, &runs, Some(&snap), None);
        assert_eq!(status(&o, "frequency"), "met");
        assert_eq!(status(&o, "timeOfAvailability"), "met");
        // At 08:00 the run is 7 h old; next day at 10:00 nothing was published that day.
        let (_, o) = judge(sla.clone(), 8, &runs, Some(&snap), None);
        assert_eq!(status(&o, "frequency"), "violated");
        let (_, o) = judge(sla, 34, &runs, Some(&snap), None);
        let toa = o
            .iter()
            .find(|o| o.property == "timeOfAvailability")
            .unwrap();
        assert_eq!(toa.status, "violated");
        assert_eq!(toa.since.as_deref(), Some("2026-11-27T09:00:00.000Z"));
    }

    #[test]
    fn error_rate_with_its_budget() {
        let observed = ObservationStats {
            reads: 200,
            read_errors: 1,
            ..ObservationStats::default()
        };
        let sla = serde_json::json!([{"property": "errorRate", "value": 1, "unit": "percent"}]);
        let (m, o) = judge(sla, 1, &[], None, Some(&observed));
        assert_eq!(m.error_rate, Some(0.005));
        assert_eq!(o[0].status, "met");
        // 1% of 200 reads allows 2 failures; 1 spent leaves half.
        assert_eq!(o[0].budget_remaining, Some(0.5));
    }

    #[test]
    fn retention_ages_between_runs() {
        let check = serde_json::json!([{
            "category": "servicelevel", "type": "servicelevel_retention", "result": "passed",
            "diagnostics": {"value": 0, "oldest": stamp(at(0))},
        }]);
        let runs = [run("r1", 0, 10, check)];
        let sla = serde_json::json!([{"property": "retention", "value": 1, "unit": "d",
                                      "element": "p.at"}]);
        let (_, o) = judge(sla.clone(), 20, &runs, None, None);
        assert_eq!(status(&o, "retention"), "met");
        let (_, o) = judge(sla, 30, &runs, None, None);
        assert_eq!(status(&o, "retention"), "violated");
        assert_eq!(o[0].since.as_deref(), Some("2026-11-27T00:00:00.000Z"));
    }

    #[test]
    fn a_sudden_drop_in_volume_is_flagged() {
        let none = serde_json::json!([]);
        let mut runs: Vec<RunRow> = (1..=4)
            .map(|h| run(&format!("r{h}"), h, 1000 + h, none.clone()))
            .collect();
        let (m, o) = judge(none.clone(), 5, &runs, None, None);
        assert_eq!(
            (m.volume_drop, status(&o, "volume").as_str()),
            (false, "met")
        );
        runs.push(run("r5", 5, 300, none.clone()));
        let (m, o) = judge(none, 6, &runs, None, None);
        assert!(m.volume_drop);
        assert_eq!(m.rows_median_before, Some(1003.0));
        assert_eq!(status(&o, "volume"), "violated");
    }

    #[test]
    fn a_property_is_judged_once_and_absurd_values_do_not_panic() {
        let sla = serde_json::json!([
            {"property": "latency", "value": 1, "unit": "d"},
            {"property": "Latency", "value": 2, "unit": "d"},
            {"property": "frequency", "value": 99_999_999_999u64, "unit": "y"},
            {"property": "availability", "value": "high"},
        ]);
        let (_, o) = judge(sla, 1, &[], None, None);
        assert_eq!(
            o.iter()
                .filter(|o| o.property.eq_ignore_ascii_case("latency"))
                .count(),
            1
        );
        assert_eq!(o[0].objective, "<= 1 d");
        assert_eq!(status(&o, "frequency"), "met");
        assert_eq!(status(&o, "availability"), "unknown");
    }

    #[test]
    fn ratios_read_percentages_and_fractions() {
        assert_eq!(ratio(&serde_json::json!(99.5), Some("percent")), Ok(0.995));
        assert_eq!(ratio(&serde_json::json!(99.5), None), Ok(0.995));
        assert_eq!(ratio(&serde_json::json!("0.1%"), None), Ok(0.001));
        assert_eq!(ratio(&serde_json::json!(0.02), None), Ok(0.02));
        assert!(ratio(&serde_json::json!(150), Some("percent")).is_err());
        assert!(ratio(&serde_json::json!("high"), None).is_err());
    }

    #[test]
    fn budgets() {
        assert_eq!(budget(10.0, 0.0), 1.0);
        assert_eq!(budget(10.0, 5.0), 0.5);
        assert_eq!(budget(10.0, 20.0), -1.0);
        assert_eq!(budget(0.0, 0.0), 1.0);
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human(30.0), "30 s");
        assert_eq!(human(600.0), "10 min");
        assert_eq!(human(25.0 * 3600.0), "25 h");
        assert_eq!(human(3.0 * 86_400.0), "3 d");
    }
}
