//! The SLA monitor: it runs inside `mesh serve` on a schedule (and once per `mesh sla check`). A
//! pass probes every served snapshot (opens the Delta table at the snapshot's version and reads a
//! row, as a reader would), evaluates every product's service levels
//! ([`Catalog::sla_check`]), and sends each violation and recovery to the SLA webhook (logged
//! deliveries, retried with backoff). The last pass is kept for `/metrics` and the portal.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use mesh_catalog::sla::{SlaError, SlaOptions, SlaReport};
use mesh_catalog::store::{DeliveryRow, ObservationRow};
use mesh_catalog::{Action, Catalog, Denied, Principal};

use crate::logging::log;
use crate::notify::{Sender, Webhook};

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

/// The monitor: its options, its webhook, and its last pass.
#[derive(Debug)]
pub struct Monitor {
    pub options: MonitorOptions,
    webhook: Option<Arc<Webhook>>,
    last: RwLock<Option<Pass>>,
}

/// One pass: its report and how long it took.
#[derive(Debug, Clone)]
pub struct Pass {
    pub report: Arc<SlaReport>,
    pub seconds: f64,
}

/// How long one probe may take before it counts as failed (an object store that hangs is down).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

impl Monitor {
    /// A monitor; its webhook (if the options name one) is sent through `sender`.
    pub fn new(options: MonitorOptions, sender: Arc<dyn Sender>) -> Monitor {
        let webhook = options
            .webhook
            .clone()
            .map(|url| Arc::new(Webhook::new(url, sender)));
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
    ) -> Result<(SlaReport, Vec<DeliveryRow>), SlaError> {
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
    /// at the next tick. Of the servers of one catalog, one (`server` claims it in the catalog's
    /// ledger) runs each pass — probes, violations recorded, webhooks sent; the others evaluate
    /// without recording, for their own `/metrics`.
    pub async fn run(self: Arc<Self>, catalog: Catalog, server: String) {
        let Some(interval) = self.options.interval else {
            return;
        };
        let who = Principal::system("mesh-monitor");
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = catalog.instant();
            if !crate::orchestrator::claim_operation(&catalog, "sla", interval, now, &server).await
            {
                let started = Instant::now();
                let options = SlaOptions {
                    window: self.options.window,
                    product: None,
                };
                match Box::pin(catalog.sla(&who, &options)).await {
                    Ok(report) => {
                        *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some(Pass {
                            report: Arc::new(report),
                            seconds: started.elapsed().as_secs_f64(),
                        });
                    }
                    Err(e) => log(&format!("the SLA evaluation failed: {e}")),
                }
                continue;
            }
            // Deliveries in the background: a receiver that is down never holds up a pass.
            if let Err(e) = Box::pin(self.check(&catalog, &who, true)).await {
                log(&format!("the SLA pass failed: {e}"));
            }
        }
    }

    /// The service levels as the monitor last saw them while it runs; without a monitor loop, a
    /// pass now (a pass someone asked for once would otherwise be served forever). For those who
    /// may read the catalog.
    pub async fn current(&self, catalog: &Catalog, who: &Principal) -> Result<Pass, SlaError> {
        if !who.may(Action::Read) {
            return Err(Denied {
                principal: who.name.clone(),
                action: Action::Read.to_string(),
            }
            .into());
        }
        let last = self
            .options
            .interval
            .and_then(|_| self.last.read().unwrap_or_else(|e| e.into_inner()).clone());
        if let Some(pass) = last {
            return Ok(pass);
        }
        let started = Instant::now();
        let options = SlaOptions {
            window: self.options.window,
            product: None,
        };
        let report = Box::pin(catalog.sla(who, &options)).await?;
        Ok(Pass {
            report: Arc::new(report),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Probes each served snapshot, a few at a time, and records the outcomes.
async fn probe_all(catalog: &Catalog, who: &Principal) -> Result<(), SlaError> {
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
    use mesh_engine::query;
    let readable = query::Readable {
        domain: "probe".into(),
        table: "port".into(),
        location: location.to_owned(),
        delta_version: version,
        columns: None,
        masks: Vec::new(),
        mask: query::Mask::default(),
        keys: query::MaskKeys::default(),
    };
    let ctx = query::session_with(&[&readable])
        .await
        .map_err(|e| e.to_string())?;
    let (_, stream) = query::stream(&ctx, "SELECT * FROM probe.port LIMIT 1")
        .await
        .map_err(|e| e.to_string())?;
    let batches: Vec<_> = stream.try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows() as i64).sum())
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

#[cfg(test)]
mod tests {
    use super::*;

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
