//! The orchestrator inside `mesh serve`: it runs the pipelines of the products that declare a
//! schedule, on their cron slots and when an input port's snapshot moves.
//!
//! Each tick (every second by default) reads the scheduled products from the catalog and finds
//! what is due: the latest cron slot at or before now (missed slots collapse into it), and for
//! `on: upstream` products, an upstream snapshot newer than their own (the slot is the upstream
//! snapshot's instant, so every server computes the same one). Every server of a catalog does the
//! same, and the slot's row in the catalog's ledger lets exactly one of them claim it. The claimer
//! runs the pipeline (at most `max_runs` at once per server), retrying a failure with exponential
//! backoff as many times as the schedule's `retries` says, and records how the slot ended:
//! `succeeded`, `skipped` (the version, its inputs' snapshots and its files are what the last
//! success ran: nothing is written) or `failed`.
//!
//! Within one server, a run waits for the runs of its upstream products that are in flight, so
//! a chain due at the same slot refreshes in lineage order, and the downstream products of a
//! refreshed one are triggered at the next tick.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use mesh_catalog::schedule::{Scheduled, SlotEnd, SlotState};
use mesh_catalog::store::{RoleBinding, StoreError};
use mesh_catalog::{Catalog, Principal, Role};
use mesh_model::schedule::Schedule;

use crate::Service;
use crate::logging::log;
use crate::pipeline;

/// How the orchestrator runs.
#[derive(Debug, Clone)]
pub struct OrchestratorOptions {
    /// This server's name in the ledger (who claimed a slot).
    pub server: String,
    /// Runs at once on this server; more wait for a free one.
    pub max_runs: usize,
    /// Time between ticks.
    pub tick: Duration,
    /// The wait before the first retry; each next one waits twice as long.
    pub backoff: Duration,
    /// How far back a server that starts looks for a cron slot it has not run (only the latest
    /// one runs).
    pub catch_up: chrono::Duration,
}

impl Default for OrchestratorOptions {
    fn default() -> Self {
        OrchestratorOptions {
            server: pipeline::owner(),
            max_runs: 2,
            tick: Duration::from_secs(1),
            backoff: Duration::from_secs(30),
            catch_up: chrono::Duration::hours(1),
        }
    }
}

/// Why a tick could not read the catalog.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshots(#[from] mesh_catalog::sla::SlaError),
}

/// Why a product's slot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Cron,
    Upstream,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Cron => "cron",
            Cause::Upstream => "upstream",
        }
    }
}

/// One due slot of one product.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub product: String,
    pub domain: String,
    /// The product version the tick saw (a newer one published since runs instead).
    pub version: String,
    pub digest: String,
    pub slot: DateTime<Utc>,
    pub cause: Cause,
    /// Attempts after a failure, from the product's schedule.
    pub retries: u32,
}

/// A run that ended without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The catalog's run, when one was started.
    pub run: Option<String>,
    /// Nothing was written: nothing it reads or runs changed.
    pub skipped: bool,
    /// What it read and ran, hashed; the next slot compares with it.
    pub fingerprint: Option<String>,
}

/// A run that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub run: Option<String>,
    pub reason: String,
}

/// Runs one slot's pipeline: the server's is [`PipelineRunner`]; a benchmark can measure the
/// orchestration alone with its own.
#[async_trait::async_trait]
pub trait Runner: Send + Sync + std::fmt::Debug {
    /// Runs `job`; `last` is the fingerprint of the product's last successful slot.
    async fn run(&self, job: &Job, last: Option<&str>) -> Result<Ran, Failed>;
}

/// What the orchestrator of this server has done since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Slots this server claimed.
    pub scheduled: AtomicU64,
    pub succeeded: AtomicU64,
    pub skipped: AtomicU64,
    /// Attempts after a failure.
    pub retried: AtomicU64,
    /// Slots that failed after their retries.
    pub failed: AtomicU64,
    /// Cron slots that were not run because a later one was due by the time it was seen.
    pub collapsed: AtomicU64,
    /// Seconds from each claimed slot's instant to its run's start: a histogram.
    pub delay_buckets: [AtomicU64; DELAY_BUCKETS.len()],
    pub delay_count: AtomicU64,
    /// In milliseconds.
    pub delay_sum_ms: AtomicU64,
}

/// Upper bounds (seconds) of the queue-delay histogram's buckets.
pub const DELAY_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

impl Counters {
    fn delay(&self, seconds: f64) {
        for (i, le) in DELAY_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.delay_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.delay_count.fetch_add(1, Ordering::Relaxed);
        self.delay_sum_ms
            .fetch_add((seconds.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What the orchestrator knows of one scheduled product between ticks.
#[derive(Debug)]
struct Tracked {
    digest: String,
    schedule: Option<Schedule>,
    /// Cron slots up to this instant have been considered.
    handled: DateTime<Utc>,
    /// The first cron slot after `handled` (computed once per slot).
    next: Option<DateTime<Utc>>,
    /// The upstream instant last turned into a slot.
    upstream_seen: Option<DateTime<Utc>>,
}

type Done = Shared<BoxFuture<'static, ()>>;

/// The orchestrator of one server.
#[derive(Debug)]
pub struct Orchestrator {
    catalog: Catalog,
    runner: Arc<dyn Runner>,
    pub options: OrchestratorOptions,
    pub counters: Arc<Counters>,
    tracked: Mutex<HashMap<String, Tracked>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Each product's latest task on this server, which its next one and its downstream ones
    /// wait for.
    running: Arc<Mutex<HashMap<String, DoneDebug>>>,
}

/// A finished-or-not task (Debug for the struct above).
#[derive(Clone)]
struct DoneDebug(Done);

impl std::fmt::Debug for DoneDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("task")
    }
}

/// The principal a product's scheduled runs act as: a member of its domain only, so a
/// scheduled run reads and writes exactly what the domain's own `mesh run` may.
pub fn runner_of(domain: &str) -> Principal {
    let name = format!("mesh-orchestrator@{domain}");
    Principal {
        bindings: vec![RoleBinding {
            principal: name.clone(),
            role: Role::Member.as_str().to_owned(),
            domain: domain.to_owned(),
        }],
        name,
        grant: None,
    }
}

impl Orchestrator {
    pub fn new(catalog: Catalog, runner: Arc<dyn Runner>, options: OrchestratorOptions) -> Self {
        Orchestrator {
            permits: Arc::new(tokio::sync::Semaphore::new(options.max_runs.max(1))),
            catalog,
            runner,
            options,
            counters: Arc::new(Counters::default()),
            tracked: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Ticks every `tick` until the task is dropped; a failed tick is logged and retried.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.tick(self.catalog.instant()).await {
                log(&format!("the orchestrator's tick failed: {e}"));
            }
        }
    }

    /// Finds what is due at `now` and starts it (in the background); the jobs started.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Job>, TickError> {
        let products = self.catalog.scheduled().await?;
        let wants_upstream = products
            .iter()
            .any(|p| p.schedule.get("on").and_then(|v| v.as_str()) == Some("upstream"));
        let newest = if wants_upstream {
            self.newest_snapshots().await?
        } else {
            HashMap::new()
        };
        let jobs = self.due(now, &products, &newest);
        let upstream: HashMap<&str, &[String]> = products
            .iter()
            .map(|p| (p.product.as_str(), p.upstream.as_slice()))
            .collect();
        let depth = depths(&upstream);
        let mut ordered = jobs.clone();
        ordered.sort_by_key(|j| depth.get(j.product.as_str()).copied().unwrap_or(0));
        for job in ordered {
            let ups = upstream.get(job.product.as_str()).copied().unwrap_or(&[]);
            self.spawn(job, ups);
        }
        Ok(jobs)
    }

    /// Waits until every run this server started has ended.
    pub async fn idle(&self) {
        loop {
            let pending: Vec<Done> = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|d| d.0.clone())
                .filter(|d| d.peek().is_none())
                .collect();
            if pending.is_empty() {
                return;
            }
            futures::future::join_all(pending).await;
        }
    }

    /// The newest snapshot instant of each product.
    async fn newest_snapshots(&self) -> Result<HashMap<String, DateTime<Utc>>, TickError> {
        let who = Principal::system("mesh-orchestrator");
        let snapshots = self.catalog.served_snapshots(&who).await?;
        let mut newest: HashMap<String, DateTime<Utc>> = HashMap::new();
        for s in snapshots {
            let Ok(at) = DateTime::parse_from_rfc3339(&s.updated_at) else {
                continue;
            };
            let at = at.with_timezone(&Utc);
            let entry = newest.entry(s.product).or_insert(at);
            if at > *entry {
                *entry = at;
            }
        }
        Ok(newest)
    }

    /// The slots due at `now`, and the tracked state moved past them.
    fn due(
        &self,
        now: DateTime<Utc>,
        products: &[Scheduled],
        newest: &HashMap<String, DateTime<Utc>>,
    ) -> Vec<Job> {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let listed: HashSet<&str> = products.iter().map(|p| p.product.as_str()).collect();
        tracked.retain(|id, _| listed.contains(id.as_str()));
        let mut jobs = Vec::new();
        for p in products {
            if p.status == "retired" {
                tracked.remove(&p.product);
                continue;
            }
            let state = tracked.entry(p.product.clone()).or_insert_with(|| Tracked {
                digest: String::new(),
                schedule: None,
                handled: now - self.options.catch_up,
                next: None,
                upstream_seen: None,
            });
            if state.digest != p.digest {
                state.digest = p.digest.clone();
                state.schedule = read_schedule(&p.product, &p.schedule);
                state.next = None;
                // A version's schedule starts when it is published.
                state.handled = state.handled.max(p.published_at);
            }
            let Some(schedule) = &state.schedule else {
                continue;
            };
            let job = |slot, cause| Job {
                product: p.product.clone(),
                domain: p.domain.clone(),
                version: p.version.clone(),
                digest: p.digest.clone(),
                slot,
                cause,
                retries: schedule.retries,
            };
            if schedule.cron.is_some() {
                if state.next.is_none() {
                    state.next = schedule.next_after(state.handled);
                }
                let mut due = None;
                while let Some(slot) = state.next.filter(|s| *s <= now) {
                    if due.is_some() {
                        self.counters.collapsed.fetch_add(1, Ordering::Relaxed);
                    }
                    due = Some(slot);
                    state.handled = slot;
                    state.next = schedule.next_after(slot);
                }
                if let Some(slot) = due {
                    jobs.push(job(slot, Cause::Cron));
                }
            }
            if schedule.upstream {
                // Newer than the product's own newest snapshot (or it has none), and not yet
                // turned into a slot by this server.
                let upstream = p
                    .upstream
                    .iter()
                    .filter_map(|u| newest.get(u))
                    .max()
                    .copied();
                let own = newest.get(&p.product).copied();
                if let Some(at) = upstream
                    && own.is_none_or(|own| at > own)
                    && state.upstream_seen.is_none_or(|seen| at > seen)
                    && at <= now
                {
                    state.upstream_seen = Some(at);
                    if !jobs.iter().any(|j| j.product == p.product && j.slot == at) {
                        jobs.push(job(at, Cause::Upstream));
                    }
                }
            }
        }
        jobs
    }

    /// Starts `job` once this server's runs of it and of its `upstream` products have ended.
    fn spawn(&self, job: Job, upstream: &[String]) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let waits: Vec<Done> = std::iter::once(&job.product)
            .chain(upstream)
            .filter_map(|p| running.get(p).map(|d| d.0.clone()))
            .collect();
        let ctx = Slot {
            catalog: self.catalog.clone(),
            runner: Arc::clone(&self.runner),
            counters: Arc::clone(&self.counters),
            permits: Arc::clone(&self.permits),
            server: self.options.server.clone(),
            backoff: self.options.backoff,
            retries: job.retries,
        };
        let product = job.product.clone();
        let handle = tokio::spawn(async move {
            futures::future::join_all(waits).await;
            ctx.run(job).await;
        });
        let done: Done = async move {
            if let Err(e) = handle.await {
                log(&format!("a scheduled run's task stopped: {e}"));
            }
        }
        .boxed()
        .shared();
        running.insert(product, DoneDebug(done));
    }
}

/// What one slot's task needs.
struct Slot {
    catalog: Catalog,
    runner: Arc<dyn Runner>,
    counters: Arc<Counters>,
    permits: Arc<tokio::sync::Semaphore>,
    server: String,
    backoff: Duration,
    retries: u32,
}

impl Slot {
    /// Claims the slot (when a run is free), runs it with its retries and records how it ended.
    async fn run(self, job: Job) {
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        let claimed = self
            .catalog
            .claim_slot(&job.product, job.slot, &self.server, job.cause.as_str())
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log(&format!(
                    "could not claim {}'s slot {}: {e}",
                    job.product, job.slot
                ));
                return;
            }
        }
        let c = &self.counters;
        c.scheduled.fetch_add(1, Ordering::Relaxed);
        let delay = (self.catalog.instant() - job.slot).num_milliseconds() as f64 / 1000.0;
        c.delay(delay);
        let last = self
            .catalog
            .last_fingerprint(&job.product)
            .await
            .ok()
            .flatten();
        let mut attempts = 0u32;
        let mut wait = self.backoff;
        let outcome = loop {
            attempts += 1;
            match self.runner.run(&job, last.as_deref()).await {
                Ok(ran) => break Ok(ran),
                Err(failed) if attempts <= self.retries => {
                    c.retried.fetch_add(1, Ordering::Relaxed);
                    log(&format!(
                        "{} (slot {}, attempt {attempts}) failed, retrying in {:?}: {}",
                        job.product, job.slot, wait, failed.reason
                    ));
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(failed) => break Err(failed),
            }
        };
        let end = match &outcome {
            Ok(ran) => {
                let state = if ran.skipped {
                    c.skipped.fetch_add(1, Ordering::Relaxed);
                    SlotState::Skipped
                } else {
                    c.succeeded.fetch_add(1, Ordering::Relaxed);
                    SlotState::Succeeded
                };
                SlotEnd {
                    state,
                    attempts,
                    run_id: ran.run.as_deref(),
                    fingerprint: ran.fingerprint.as_deref(),
                    error: None,
                }
            }
            Err(failed) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                log(&format!(
                    "{} (slot {}) failed after {attempts} attempt(s): {}",
                    job.product, job.slot, failed.reason
                ));
                SlotEnd {
                    state: SlotState::Failed,
                    attempts,
                    run_id: failed.run.as_deref(),
                    fingerprint: None,
                    error: Some(&failed.reason),
                }
            }
        };
        if let Err(e) = self
            .catalog
            .finish_slot(&job.product, job.slot, &self.server, &end)
            .await
        {
            log(&format!(
                "could not record how {}'s slot {} ended: {e}",
                job.product, job.slot
            ));
        }
    }
}

/// A published schedule, read again (it was linted at publish; a schedule this binary cannot
/// read is logged and not run).
fn read_schedule(product: &str, value: &serde_json::Value) -> Option<Schedule> {
    match Schedule::from_json(value) {
        Ok(s) => Some(s),
        Err(problems) => {
            log(&format!(
                "{product}: its schedule cannot be read, so it does not run: {}",
                problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            None
        }
    }
}

/// Each scheduled product's depth in the lineage among scheduled products (0: no scheduled
/// upstream), so a tick starts upstream runs before the runs that wait for them.
fn depths<'a>(upstream: &HashMap<&'a str, &'a [String]>) -> HashMap<&'a str, usize> {
    let mut depth: HashMap<&str, usize> = HashMap::new();
    fn visit<'a>(
        id: &'a str,
        upstream: &HashMap<&'a str, &'a [String]>,
        depth: &mut HashMap<&'a str, usize>,
        path: &mut Vec<&'a str>,
    ) -> usize {
        if let Some(d) = depth.get(id) {
            return *d;
        }
        // A cycle (which publish does not stop) counts as a root.
        if path.contains(&id) || path.len() > 256 {
            return 0;
        }
        path.push(id);
        let d = upstream
            .get(id)
            .copied()
            .unwrap_or(&[])
            .iter()
            .filter(|u| upstream.contains_key(u.as_str()))
            .map(|u| visit(u.as_str(), upstream, depth, path) + 1)
            .max()
            .unwrap_or(0);
        path.pop();
        depth.insert(id, d);
        d
    }
    for id in upstream.keys() {
        visit(id, upstream, &mut depth, &mut Vec::new());
    }
    depth
}

/// The server's runner: the product's latest published version, its sources (files of the
/// product's folder under the server's workspace, registered locations, databases) and input
/// ports (through the one read decision), run as `mesh run` runs it, by a principal of the
/// product's domain.
#[derive(Debug, Clone)]
pub struct PipelineRunner {
    pub service: Service,
    /// A checkout of the repository holding the product folders, for sources that are files
    /// of the product's folder.
    pub workspace: Option<PathBuf>,
}

#[async_trait::async_trait]
impl Runner for PipelineRunner {
    async fn run(&self, job: &Job, last: Option<&str>) -> Result<Ran, Failed> {
        let failed = |reason: String| Failed { run: None, reason };
        let who = runner_of(&job.domain);
        let catalog = self.service.catalog();
        let version = catalog
            .version(&who, &job.product, "latest")
            .await
            .map_err(|e| failed(e.to_string()))?;
        let transform = version
            .transform
            .clone()
            .ok_or_else(|| failed("the published version has no transform.sql".into()))?;
        let descriptor = version.descriptor.clone().unwrap_or_default();
        let outputs = descriptor["outputPorts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let [output] = outputs.as_slice() else {
            return Err(failed(format!(
                "a pipeline writes one output port; the published version has {}",
                outputs.len()
            )));
        };
        let port = output["name"].as_str().unwrap_or_default().to_owned();
        let contract_id = output["contractId"].as_str().unwrap_or_default().to_owned();
        let contract = version
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.contract.to_string())
            .and_then(|text| {
                match mesh_model::parse_document(&format!("{contract_id}.odcs.json"), &text) {
                    mesh_model::document::AnyParsed::Contract(parsed) => parsed.model,
                    _ => None,
                }
            })
            .ok_or_else(|| failed(format!("the contract of port `{port}` cannot be read")))?;
        // Without a folder, a source that is a file of the product's folder is refused when it
        // is resolved (and says why); two folders claiming the product are an error now.
        let dir = match self
            .workspace
            .as_deref()
            .map(|w| product_folder(w, &job.product))
        {
            Some(Ok(dir)) => Some(dir),
            Some(Err(e)) if e.contains("folders under") => return Err(failed(e)),
            Some(Err(e)) => {
                log(&format!("{}: {e}", job.product));
                None
            }
            None => None,
        };
        let allowed = self
            .service
            .pipeline_sources(&who, &job.product)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut inputs =
            pipeline::sources(allowed, dir.as_deref()).map_err(|e| failed(e.to_string()))?;
        let resolved = self
            .service
            .pipeline_inputs(&who, &job.product)
            .await
            .map_err(|e| failed(e.to_string()))?;
        inputs.extend(pipeline::input_ports(resolved).map_err(|e| failed(e.to_string()))?);
        let fingerprint = pipeline::fingerprint(&version.digest, &inputs);
        if fingerprint.is_some() && fingerprint.as_deref() == last {
            return Ok(Ran {
                run: None,
                skipped: true,
                fingerprint,
            });
        }
        let ledger = pipeline::CatalogLedger {
            catalog: catalog.clone(),
            who,
        };
        mesh_engine::pipeline::settle(&ledger, &job.product, &port, pipeline::dead)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let plan = mesh_engine::pipeline::RunPlan {
            executor: mesh_engine::pipeline::Executor::InProcess,
            product: job.product.clone(),
            port: port.clone(),
            contract: contract_id,
            team: descriptor["team"]["name"].as_str().map(str::to_owned),
            location: String::new(),
            inputs,
            owner: pipeline::owner(),
            full_refresh: false,
        };
        let started = std::time::SystemTime::now();
        let partition_by = pipeline::partitions(&contract);
        let report = mesh_engine::pipeline::run_port(
            &ledger,
            &plan,
            &transform,
            &contract,
            &partition_by,
            &|_| {},
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        if let Some(version) = report.delta_version {
            if let Some(days) = pipeline::retention_days(&descriptor)
                && let Err(e) = mesh_engine::pipeline::vacuum(&report.location, days, version).await
            {
                log(&format!("{}: vacuum: {e}", job.product));
            }
            if let Err(e) = mesh_engine::pipeline::sweep_orphans(&report.location, started).await {
                log(&format!("{}: sweeping uncommitted files: {e}", job.product));
            }
        }
        match (report.delta_version, &report.skipped) {
            (Some(_), _) => Ok(Ran {
                run: Some(report.run),
                skipped: false,
                fingerprint,
            }),
            (None, Some(_)) => Ok(Ran {
                run: Some(report.run),
                skipped: true,
                fingerprint,
            }),
            (None, None) => Err(Failed {
                reason: format!(
                    "{} blocking check(s) failed on the new data ({}); nothing was committed",
                    report.blocking.len(),
                    report
                        .blocking
                        .iter()
                        .map(|r| r.check.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                run: Some(report.run),
            }),
        }
    }
}

/// The folder of `product` in the checkout `workspace`: the one folder under
/// `<workspace>/<domain>/` (the domain's own folder, which the domain owns in the repository;
/// at most three levels down, hidden folders and `target` skipped) whose descriptor declares the
/// product's id. A descriptor elsewhere that claims the id is not the product's; two that claim
/// it in the domain's folder are an error, as is a checkout without the domain's folder.
pub fn product_folder(workspace: &Path, product: &str) -> Result<PathBuf, String> {
    let domain = product.split_once('.').map_or(product, |(d, _)| d);
    let root = workspace.join(domain);
    if domain.is_empty()
        || domain.contains(['/', '\\'])
        || domain.starts_with('.')
        || !root.is_dir()
    {
        return Err(format!(
            "the checkout {} has no folder `{domain}`: a product's folder is found under the folder of its domain",
            workspace.display()
        ));
    }
    let mut found = Vec::new();
    let mut folders = vec![(root, 0usize)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Links are not followed: a link out of the domain's folder is not the domain's.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth < 3 && !name.starts_with('.') && name != "target" {
                    folders.push((path, depth + 1));
                }
                continue;
            }
            if !kind.is_file() || !name.ends_with(".odps.yaml") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let mesh_model::document::AnyParsed::Product(parsed) =
                mesh_model::parse_document(&name, &text)
                && parsed.model.and_then(|m| m.id).as_deref() == Some(product)
            {
                found.push(folder.clone());
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no descriptor of {product} under {}",
            workspace.join(domain).display()
        )),
        _ => Err(format!(
            "{} folders under {} declare {product}: {}",
            found.len(),
            workspace.join(domain).display(),
            found
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Claims the catalog-wide operation `name`'s slot at `now` (`now` rounded down to a multiple
/// of `every` since the Unix epoch): true on exactly one server of the catalog, so a pass that
/// every server schedules runs once. A ledger that cannot be reached claims nothing.
pub async fn claim_operation(
    catalog: &Catalog,
    name: &str,
    every: Duration,
    now: DateTime<Utc>,
    server: &str,
) -> bool {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let slot_ms = now.timestamp_millis().div_euclid(every_ms) * every_ms;
    let Some(slot) = DateTime::from_timestamp_millis(slot_ms) else {
        return false;
    };
    match catalog
        .claim_slot(&format!("mesh:{name}"), slot, server, "schedule")
        .await
    {
        Ok(claimed) => claimed,
        Err(e) => {
            log(&format!("could not claim the {name} pass at {slot}: {e}"));
            false
        }
    }
}

/// The catalog-wide policy audit every `every`, on one server of the catalog at a time; each
/// audit is kept in the event log (`policy.audit`), where `mesh policy audit --history` and the
/// portal read it.
pub async fn audit_loop(catalog: Catalog, every: Duration, server: String) {
    let who = Principal::system("mesh-audit");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !claim_operation(&catalog, "policy-audit", every, catalog.instant(), &server).await {
            continue;
        }
        match Box::pin(catalog.audit(&who)).await {
            Ok(report) => log(&format!(
                "policy audit: {} of {} product(s) compliant, {} violation(s)",
                report.compliant,
                report.products,
                report.violations.len()
            )),
            Err(e) => log(&format!("the scheduled policy audit failed: {e}")),
        }
    }
}
