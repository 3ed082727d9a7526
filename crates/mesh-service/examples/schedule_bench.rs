//! The orchestrator at volume: 1,000 scheduled products on two servers over one PostgreSQL for
//! 60 simulated minutes (a clock 60x faster than the wall's, so an hour takes a minute).
//!
//! Each server is an [`Orchestrator`] over its own connection pool, ticking every 100 ms of wall
//! time (6 simulated seconds), claiming slots in the catalog's ledger as `mesh serve` does. The
//! runner does no pipeline work: it records which slot it ran and when, and sleeps WORK_MS, so the
//! figures are the orchestration's own — claims, the ledger, the queue. Prints, per the issue:
//! runs per slot (each must equal the products due), duplicates (0), missed (0), and the queue
//! delay (slot instant to run start) in simulated seconds.
//!
//!   MESH_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release -p mesh-service --example schedule_bench
//!   PRODUCTS=200 MINUTES=30 WORK_MS=50 MAX_RUNS=4 ... (the defaults: 1000, 60, 20, 4)

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mesh_catalog::store::PostgresStore;
use mesh_catalog::{Bundle, Catalog, Clock, Principal, Source};
use mesh_model::schedule::Schedule;
use mesh_service::orchestrator::{Failed, Job, Orchestrator, OrchestratorOptions, Ran, Runner};

/// Simulated time: `start` until [`Scaled::go`], then `speed` times the wall clock's pace.
#[derive(Debug)]
struct Scaled {
    start: DateTime<Utc>,
    speed: f64,
    origin: Mutex<Option<Instant>>,
}

impl Scaled {
    fn go(&self) {
        *self.origin.lock().unwrap() = Some(Instant::now());
    }
}

impl Clock for Scaled {
    fn now(&self) -> DateTime<Utc> {
        match *self.origin.lock().unwrap() {
            None => self.start,
            Some(origin) => {
                let ms = origin.elapsed().as_secs_f64() * 1000.0 * self.speed;
                self.start + chrono::Duration::milliseconds(ms as i64)
            }
        }
    }
}

/// One run: product, slot, simulated start.
type Record = (String, DateTime<Utc>, DateTime<Utc>);

/// Records every run.
#[derive(Debug)]
struct Recording {
    clock: Arc<Scaled>,
    work: Duration,
    runs: Mutex<Vec<Record>>,
}

#[async_trait::async_trait]
impl Runner for Recording {
    async fn run(&self, job: &Job, _last: Option<&str>) -> Result<Ran, Failed> {
        let started = self.clock.now();
        self.runs
            .lock()
            .unwrap()
            .push((job.product.clone(), job.slot, started));
        tokio::time::sleep(self.work).await;
        Ok(Ran {
            run: None,
            skipped: false,
            fingerprint: None,
        })
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The schedule of product `i`: every 5 minutes (half), every 15 (three tenths), hourly at :07,
/// and hourly at :30 in Asia/Kolkata (UTC+5:30, so on the hour in UTC).
fn schedule(i: usize) -> &'static str {
    match i % 10 {
        0..=4 => "cron: \"*/5 * * * *\"",
        5..=7 => "cron: \"*/15 * * * *\"",
        8 => "cron: \"7 * * * *\"",
        _ => "cron: \"30 * * * *\"\n      timezone: Asia/Kolkata",
    }
}

fn bundle(i: usize) -> Bundle {
    let name = format!("p{i:04}");
    let id = format!("bench.{name}");
    let descriptor = format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: {id}\nname: {name}\ndomain: bench\nstatus: active\nversion: 1.0.0\n\
description:\n  purpose: A scheduled bench product.\n\
customProperties:\n  - property: productType\n    value: source\n  - property: dataClassification\n    value: internal\n  - property: schedule\n    value:\n      {}\n\
team:\n  name: bench-team\n  members:\n    - username: o@example.com\n      role: owner\n\
outputPorts:\n  - name: {name}\n    description: The table.\n    type: tables\n    version: 1.0.0\n    contractId: {id}.{name}\n",
        schedule(i)
    );
    let contract = [
        "apiVersion: v3.1.0".to_owned(),
        "kind: DataContract".to_owned(),
        format!("id: {id}.{name}"),
        format!("name: {name}"),
        "version: 1.0.0".to_owned(),
        "status: active".to_owned(),
        "domain: bench".to_owned(),
        "schema:".to_owned(),
        format!("  - name: {name}"),
        "    properties:".to_owned(),
        "      - name: id".to_owned(),
        "        logicalType: string".to_owned(),
    ]
    .join("\n")
        + "\n";
    Bundle {
        descriptor: Source {
            path: format!("bench/{name}/product.odps.yaml"),
            text: descriptor,
        },
        contracts: vec![Source {
            path: format!("bench/{name}/contracts/{name}.odcs.yaml"),
            text: contract,
        }],
        transform: Some(Source {
            path: format!("bench/{name}/transform.sql"),
            text: "SELECT 'a' AS id".to_owned(),
        }),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("MESH_TEST_POSTGRES_URL")
        .expect("set MESH_TEST_POSTGRES_URL to a PostgreSQL the bench may create a database in");
    let products: usize = env("PRODUCTS", 1000);
    let minutes: i64 = env("MINUTES", 60);
    let work = Duration::from_millis(env("WORK_MS", 20));
    let max_runs: usize = env("MAX_RUNS", 4);
    let speed = 60.0;
    let name = format!("mesh_schedule_bench_{}", std::process::id());
    let db = PostgresStore::create_database(&url, &name, true)
        .await
        .expect("a fresh database");
    let start = DateTime::parse_from_rfc3339("2026-12-07T09:58:30Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(Scaled {
        start,
        speed,
        origin: Mutex::new(None),
    });
    let catalog = |store: PostgresStore| Catalog::with_clock(Arc::new(store), clock.clone());
    let one = catalog(PostgresStore::open(&db).await.unwrap());
    let two = catalog(PostgresStore::open(&db).await.unwrap());

    let published = Instant::now();
    let who = Principal::system("bench");
    let bundles: Vec<Bundle> = (0..products).map(bundle).collect();
    for chunk in bundles.chunks(8) {
        let publishes = chunk.iter().map(|b| one.publish(&who, b, false));
        for r in futures::future::join_all(publishes).await {
            r.expect("publish");
        }
    }
    eprintln!(
        "published {products} scheduled products in {:.1} s",
        published.elapsed().as_secs_f64()
    );

    let runner = Arc::new(Recording {
        clock: clock.clone(),
        work,
        runs: Mutex::new(Vec::new()),
    });
    let server = |catalog: &Catalog, name: &str| {
        Orchestrator::new(
            catalog.clone(),
            Arc::clone(&runner) as Arc<dyn Runner>,
            OrchestratorOptions {
                server: name.to_owned(),
                max_runs,
                ..OrchestratorOptions::default()
            },
        )
    };
    let (a, b) = (server(&one, "server-a"), server(&two, "server-b"));
    let end = start + chrono::Duration::minutes(minutes);
    let wall = Instant::now();
    clock.go();
    let mut ticks = 0u64;
    let mut tick_ms = Vec::new();
    let last = loop {
        let now = clock.now();
        let began = Instant::now();
        let (x, y) = tokio::join!(a.tick(now), b.tick(now));
        x.expect("tick a");
        y.expect("tick b");
        tick_ms.push(began.elapsed().as_secs_f64() * 1000.0);
        ticks += 1;
        if now >= end {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::join!(a.idle(), b.idle());
    let real = wall.elapsed().as_secs_f64();

    // What should have run: every cron slot after the publish, up to the last tick.
    let mut due: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    let mut expected: HashSet<(String, DateTime<Utc>)> = HashSet::new();
    for i in 0..products {
        let node = mesh_model::yaml::parse(&schedule(i).replace("\n      ", "\n"))
            .root
            .expect("a schedule mapping");
        let s = Schedule::read(&node).expect("schedule");
        let mut from = start;
        while let Some(slot) = s.next_after(from).filter(|t| *t <= last) {
            *due.entry(slot).or_default() += 1;
            expected.insert((format!("bench.p{i:04}"), slot));
            from = slot;
        }
    }
    let runs = runner.runs.lock().unwrap().clone();
    let mut per: HashMap<(String, DateTime<Utc>), usize> = HashMap::new();
    let mut ran_per_slot: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    let mut delays = Vec::new();
    for (product, slot, started) in &runs {
        *per.entry((product.clone(), *slot)).or_default() += 1;
        *ran_per_slot.entry(*slot).or_default() += 1;
        delays.push((*started - *slot).num_milliseconds() as f64 / 1000.0);
    }
    let duplicates: usize = per.values().map(|n| n.saturating_sub(1)).sum();
    let missed = expected.iter().filter(|k| !per.contains_key(*k)).count();
    let unexpected = per.keys().filter(|k| !expected.contains(*k)).count();
    delays.sort_by(f64::total_cmp);
    tick_ms.sort_by(f64::total_cmp);
    use std::sync::atomic::Ordering::Relaxed;
    let (ca, cb) = (
        a.counters.scheduled.load(Relaxed),
        b.counters.scheduled.load(Relaxed),
    );

    println!(
        "scheduled products: {products} on 2 servers (max {max_runs} runs each), one PostgreSQL"
    );
    println!(
        "simulated: {minutes} min in {real:.1} s of wall time ({speed}x), {ticks} ticks per server"
    );
    println!(
        "slots due: {} across {} instants",
        expected.len(),
        due.len()
    );
    println!("runs: {} (server-a {ca}, server-b {cb})", runs.len());
    let mut mismatched = 0;
    for (slot, n) in &due {
        let ran = ran_per_slot.get(slot).copied().unwrap_or(0);
        if ran != *n {
            mismatched += 1;
        }
        println!("  slot {}  due {n:>4}  ran {ran:>4}", slot.format("%H:%M"));
    }
    println!("slots whose runs differ from the products due: {mismatched}");
    println!("duplicates: {duplicates}");
    println!("missed: {missed}");
    println!("runs of no due slot: {unexpected}");
    println!(
        "queue delay (slot to run start, simulated s): p50 {:.1}  p95 {:.1}  max {:.1}  (wall ms = simulated s x {:.1})",
        percentile(&delays, 50.0),
        percentile(&delays, 95.0),
        delays.last().copied().unwrap_or(f64::NAN),
        1000.0 / speed
    );
    println!(
        "tick (both servers, wall ms): p50 {:.1}  p95 {:.1}  max {:.1}",
        percentile(&tick_ms, 50.0),
        percentile(&tick_ms, 95.0),
        tick_ms.last().copied().unwrap_or(f64::NAN)
    );
    if duplicates > 0 || missed > 0 || mismatched > 0 || unexpected > 0 {
        eprintln!("FAILED: every due slot must run exactly once");
        std::process::exit(1);
    }
}
