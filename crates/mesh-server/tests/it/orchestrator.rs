//! The orchestrator with a clock the test moves: cron slots fire once each, an unchanged
//! product is skipped, upstream triggers follow lineage, failures retry and then report, two
//! servers on one PostgreSQL run every slot exactly once, and a schedule cannot be used to read
//! what the product may not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mesh_catalog::schedule::{Slot, SlotState};
use mesh_catalog::store::SqliteStore;
use mesh_catalog::{Bundle, Catalog, FixedClock, Principal, Source};
use mesh_service::Service;
use mesh_service::orchestrator::{
    Failed, Job, Orchestrator, OrchestratorOptions, PipelineRunner, Ran, Runner,
};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A product to publish: its id, schedule (YAML under `value:`), sources, input ports and SQL.
struct Product<'a> {
    id: &'a str,
    schedule: &'a str,
    /// `name: path` of CSV files in the product folder.
    sources: &'a [(&'a str, &'a str)],
    /// `(input port name, upstream contract id)`.
    inputs: &'a [(&'a str, &'a str)],
    transform: &'a str,
}

impl Product<'_> {
    fn bundle(&self) -> Bundle {
        let (domain, name) = self.id.split_once('.').unwrap();
        let mut custom = String::from(
            "customProperties:\n  - property: productType\n    value: source\n  - property: dataClassification\n    value: internal\n",
        );
        if !self.sources.is_empty() {
            custom.push_str("  - property: sources\n    value:\n");
            for (source, path) in self.sources {
                custom.push_str(&format!(
                    "      - name: {source}\n        path: {path}\n        format: csv\n"
                ));
            }
        }
        custom.push_str(&format!(
            "  - property: schedule\n    value:\n{}",
            indent(self.schedule)
        ));
        let mut inputs = String::new();
        if !self.inputs.is_empty() {
            inputs.push_str("inputPorts:\n");
            for (port, contract) in self.inputs {
                inputs.push_str(&format!(
                    "  - name: {port}\n    version: 1.0.0\n    contractId: {contract}\n"
                ));
            }
        }
        let descriptor = format!(
            "apiVersion: v1.0.0\nkind: DataProduct\nid: {id}\nname: {name}\ndomain: {domain}\nstatus: active\nversion: 1.0.0\n\
description:\n  purpose: A scheduled test product.\n{custom}\
team:\n  name: {domain}-team\n  members:\n    - username: o@example.com\n      role: owner\n\
support:\n  - channel: \"#{domain}\"\n    url: https://chat.example.com/{domain}\n{inputs}\
outputPorts:\n  - name: {name}\n    description: The table.\n    type: tables\n    version: 1.0.0\n    contractId: {id}.{name}\n",
            id = self.id
        );
        let contract = [
            "apiVersion: v3.1.0".to_owned(),
            "kind: DataContract".to_owned(),
            format!("id: {}.{name}", self.id),
            format!("name: {name}"),
            "version: 1.0.0".to_owned(),
            "status: active".to_owned(),
            format!("domain: {domain}"),
            "description:".to_owned(),
            "  purpose: The table.".to_owned(),
            "schema:".to_owned(),
            format!("  - name: {name}"),
            "    physicalType: table".to_owned(),
            "    properties:".to_owned(),
            "      - name: id".to_owned(),
            "        logicalType: string".to_owned(),
            "        required: true".to_owned(),
            "        primaryKey: true".to_owned(),
            "      - name: label".to_owned(),
            "        logicalType: string".to_owned(),
        ]
        .join("\n")
            + "\n";
        Bundle {
            descriptor: Source {
                path: format!("{domain}/{name}/product.odps.yaml"),
                text: descriptor,
            },
            contracts: vec![Source {
                path: format!("{domain}/{name}/contracts/{name}.odcs.yaml"),
                text: contract,
            }],
            transform: Some(Source {
                path: format!("{domain}/{name}/transform.sql"),
                text: self.transform.to_owned(),
            }),
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}

/// A catalog on SQLite with a fixed clock, its workspace (product folders) and storage.
struct World {
    catalog: Catalog,
    clock: Arc<FixedClock>,
    workspace: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(start: DateTime<Utc>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("catalog.db").to_str().unwrap())
            .await
            .unwrap();
        let clock = Arc::new(FixedClock::new(start));
        let storage = format!("file://{}", dir.path().join("data").display());
        let catalog = Catalog::with_clock(Arc::new(store), clock.clone()).with_storage(&storage);
        let workspace = dir.path().join("repo");
        std::fs::create_dir_all(&workspace).unwrap();
        World {
            catalog,
            clock,
            workspace,
            _dir: dir,
        }
    }

    /// Writes the product's folder (its descriptor and files) and publishes it.
    async fn publish(&self, product: &Product<'_>, files: &[(&str, &str)]) {
        let bundle = product.bundle();
        let folder = self.folder(product.id);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("product.odps.yaml"), &bundle.descriptor.text).unwrap();
        for (path, text) in files {
            let file = folder.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        self.catalog
            .publish(&Principal::system("test"), &bundle, false)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", product.id));
    }

    fn folder(&self, id: &str) -> std::path::PathBuf {
        let (domain, name) = id.split_once('.').unwrap();
        self.workspace.join(domain).join(name)
    }

    fn orchestrator(&self, server: &str, backoff: Duration) -> Orchestrator {
        let service = Service::new(self.catalog.clone());
        let runner = PipelineRunner {
            service: service.clone(),
            workspace: Some(self.workspace.clone()),
        };
        Orchestrator::new(
            service.catalog().clone(),
            Arc::new(runner),
            OrchestratorOptions {
                server: server.to_owned(),
                max_runs: 2,
                tick: Duration::from_secs(1),
                backoff,
                catch_up: chrono::Duration::hours(1),
            },
        )
    }

    /// Moves the clock to `now`, ticks, and waits for what the tick started.
    async fn tick(&self, o: &Orchestrator, now: DateTime<Utc>) -> Vec<Job> {
        self.clock.set(now);
        let jobs = o.tick(now).await.unwrap();
        o.idle().await;
        jobs
    }

    async fn slots(&self, product: &str) -> Vec<Slot> {
        let mut slots = self.catalog.slots(product, 1000).await.unwrap();
        slots.reverse();
        slots
    }
}

const ROWS: &str = "id,label\na1,first\na2,second\n";

fn orders() -> Product<'static> {
    Product {
        id: "sales.orders",
        schedule: "cron: \"*/15 * * * *\"\ntimezone: Europe/Berlin\nretries: 1",
        sources: &[("raw", "data/rows.csv")],
        inputs: &[],
        transform: "SELECT id, label FROM raw",
    }
}

#[tokio::test]
async fn cron_slots_fire_once_each_and_an_unchanged_product_is_skipped() {
    let start = at("2026-12-05T10:07:00Z");
    let w = World::new(start).await;
    w.publish(&orders(), &[("data/rows.csv", ROWS)]).await;
    let o = w.orchestrator("server-1", Duration::from_millis(5));
    // Two simulated hours, a tick a minute; the source changes once, at 11:20.
    let mut now = start;
    while now <= at("2026-12-05T12:00:00Z") {
        if now == at("2026-12-05T11:20:00Z") {
            let csv = w.folder("sales.orders").join("data/rows.csv");
            std::fs::write(&csv, format!("{ROWS}a3,third\n")).unwrap();
        }
        w.tick(&o, now).await;
        // A second tick at the same instant finds nothing new.
        assert_eq!(o.tick(now).await.unwrap(), Vec::new(), "{now}");
        now += chrono::Duration::minutes(1);
    }
    let slots = w.slots("sales.orders").await;
    let seen: Vec<(String, SlotState)> =
        slots.iter().map(|s| (s.slot_at.clone(), s.state)).collect();
    let expected: Vec<(String, SlotState)> = [
        ("10:15", SlotState::Succeeded),
        ("10:30", SlotState::Skipped),
        ("10:45", SlotState::Skipped),
        ("11:00", SlotState::Skipped),
        ("11:15", SlotState::Skipped),
        ("11:30", SlotState::Succeeded),
        ("11:45", SlotState::Skipped),
        ("12:00", SlotState::Skipped),
    ]
    .iter()
    .map(|(t, s)| (format!("2026-12-05T{t}:00.000Z"), *s))
    .collect();
    assert_eq!(seen, expected);
    assert!(slots.iter().all(|s| s.claimed_by == "server-1"
        && s.cause.as_deref() == Some("cron")
        && s.attempts == 1));
    // Skipped slots started no run and wrote no Delta version.
    let who = Principal::system("test");
    let runs = w
        .catalog
        .runs(&who, "sales.orders", None, 100)
        .await
        .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r.state == "succeeded"), "{runs:?}");
    let snapshots = w.catalog.snapshots(&who, "sales.orders").await.unwrap();
    let versions: Vec<Option<i64>> = runs.iter().map(|r| r.delta_version).collect();
    let newest = versions.iter().flatten().max().copied();
    assert_eq!(Some(snapshots[0].delta_version), newest, "{versions:?}");
    assert_ne!(versions[0], versions[1], "two commits");
    assert_eq!(
        o.counters
            .scheduled
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );

    // A server that starts (or restarts) later catches up on the latest slot only, and finds it
    // already run: the ledger says so, nothing runs twice.
    let again = w.orchestrator("server-2", Duration::from_millis(5));
    w.clock.set(at("2026-12-05T12:05:00Z"));
    let jobs = w.tick(&again, at("2026-12-05T12:05:00Z")).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].slot, at("2026-12-05T12:00:00Z"));
    assert_eq!(w.slots("sales.orders").await.len(), 8);
    assert_eq!(
        again
            .counters
            .scheduled
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn an_upstream_refresh_runs_the_downstream_chain_in_lineage_order() {
    let start = at("2026-12-05T10:30:00Z");
    let w = World::new(start).await;
    let source = Product {
        schedule: "cron: \"0 * * * *\"",
        ..orders()
    };
    w.publish(&source, &[("data/rows.csv", ROWS)]).await;
    let middle = Product {
        id: "sales.enriched",
        schedule: "on: upstream",
        sources: &[],
        inputs: &[("orders", "sales.orders.orders")],
        transform: "SELECT id, upper(label) AS label FROM orders",
    };
    let last = Product {
        id: "sales.summary",
        schedule: "on: upstream",
        sources: &[],
        inputs: &[("enriched", "sales.enriched.enriched")],
        transform: "SELECT id, label FROM enriched WHERE id <> 'zz'",
    };
    // Due at the same cron slot as its upstream: it waits for the upstream's run.
    let sibling = Product {
        id: "sales.daily",
        schedule: "cron: \"0 * * * *\"",
        sources: &[],
        inputs: &[("orders", "sales.orders.orders")],
        transform: "SELECT id, label FROM orders",
    };
    for p in [&middle, &last, &sibling] {
        w.publish(p, &[]).await;
    }
    let o = w.orchestrator("server-1", Duration::from_millis(5));
    // Nothing has a snapshot yet: nothing is due before 11:00.
    assert_eq!(w.tick(&o, at("2026-12-05T10:59:00Z")).await, Vec::new());
    let wave: Vec<Vec<String>> = {
        let mut wave = Vec::new();
        for s in 0..4 {
            let jobs = w
                .tick(
                    &o,
                    at("2026-12-05T11:00:00Z") + chrono::Duration::seconds(s),
                )
                .await;
            wave.push(jobs.into_iter().map(|j| j.product).collect());
        }
        wave
    };
    assert_eq!(
        wave,
        vec![
            vec!["sales.daily".to_owned(), "sales.orders".to_owned()],
            vec!["sales.enriched".to_owned()],
            vec!["sales.summary".to_owned()],
            vec![],
        ],
        "one wave, in lineage order"
    );
    let who = Principal::system("test");
    // Each read its upstream's new snapshot.
    for (product, upstream) in [
        ("sales.daily", "sales.orders"),
        ("sales.enriched", "sales.orders"),
        ("sales.summary", "sales.enriched"),
    ] {
        let runs = w.catalog.runs(&who, product, None, 10).await.unwrap();
        assert_eq!(runs.len(), 1, "{product}: {runs:?}");
        assert_eq!(runs[0].state, "succeeded", "{product}: {runs:?}");
        let read = &runs[0].inputs[0];
        assert_eq!(read.product.as_deref(), Some(upstream), "{product}");
        let snapshot = &w.catalog.snapshots(&who, upstream).await.unwrap()[0];
        assert_eq!(
            read.delta_version,
            Some(snapshot.delta_version),
            "{product}: {read:?}"
        );
    }
    let slots = w.slots("sales.summary").await;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].cause.as_deref(), Some("upstream"));
    // An hour later the source's files are unchanged: it is skipped, its snapshot stays, and
    // nothing downstream runs.
    for s in 0..3 {
        w.tick(
            &o,
            at("2026-12-05T12:00:00Z") + chrono::Duration::seconds(s),
        )
        .await;
    }
    assert_eq!(
        w.slots("sales.orders")
            .await
            .iter()
            .map(|s| s.state)
            .collect::<Vec<_>>(),
        [SlotState::Succeeded, SlotState::Skipped]
    );
    assert_eq!(w.slots("sales.enriched").await.len(), 1);
    assert_eq!(w.slots("sales.summary").await.len(), 1);
}

#[tokio::test]
async fn a_failing_run_retries_with_backoff_then_reports_why() {
    let start = at("2026-12-05T10:07:00Z");
    let w = World::new(start).await;
    let broken = Product {
        id: "sales.broken",
        schedule: "cron: \"*/15 * * * *\"\nretries: 2",
        sources: &[("raw", "data/rows.csv")],
        inputs: &[],
        transform: "SELECT id, label FROM no_such_table",
    };
    w.publish(&broken, &[("data/rows.csv", ROWS)]).await;
    let o = w.orchestrator("server-1", Duration::from_millis(20));
    w.tick(&o, at("2026-12-05T10:15:00Z")).await;
    let slots = w.slots("sales.broken").await;
    assert_eq!(slots.len(), 1);
    let slot = &slots[0];
    assert_eq!(
        (slot.state, slot.attempts),
        (SlotState::Failed, 3),
        "{slot:?}"
    );
    let error = slot.error.as_deref().unwrap_or_default();
    assert!(error.contains("no_such_table"), "{error}");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(o.counters.retried.load(Relaxed), 2);
    assert_eq!(o.counters.failed.load(Relaxed), 1);
    // Every attempt is a failed run in the catalog; readers have no snapshot.
    let who = Principal::system("test");
    let runs = w
        .catalog
        .runs(&who, "sales.broken", None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r.state == "failed"), "{runs:?}");
    assert!(
        w.catalog
            .snapshots(&who, "sales.broken")
            .await
            .unwrap()
            .is_empty()
    );
    // The next slot tries again (a failure is not a fingerprint to skip on).
    w.tick(&o, at("2026-12-05T10:30:00Z")).await;
    assert_eq!(w.slots("sales.broken").await.len(), 2);
}

/// A scheduled run acts as its own domain, never as the server: another domain's port is read
/// only through a grant, and the refusal is recorded.
#[tokio::test]
async fn a_schedule_reads_no_more_than_the_products_domain_may() {
    let start = at("2026-12-05T10:07:00Z");
    let w = World::new(start).await;
    let people = Product {
        id: "hr.people",
        schedule: "cron: \"*/15 * * * *\"",
        sources: &[("raw", "data/rows.csv")],
        inputs: &[],
        transform: "SELECT id, label FROM raw",
    };
    w.publish(&people, &[("data/rows.csv", ROWS)]).await;
    let spy = Product {
        id: "sales.spy",
        schedule: "on: upstream",
        sources: &[],
        inputs: &[("people", "hr.people.people")],
        transform: "SELECT id, label FROM people",
    };
    w.publish(&spy, &[]).await;
    // A source that is a link out of the product's folder into another domain's (a `..` path
    // is refused at publish; a link is found where the run reads).
    let climber = Product {
        id: "sales.climber",
        schedule: "cron: \"*/15 * * * *\"",
        sources: &[("raw", "data/rows.csv")],
        inputs: &[],
        transform: "SELECT id, label FROM raw",
    };
    w.publish(&climber, &[]).await;
    let link = w.folder("sales.climber").join("data/rows.csv");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(w.folder("hr.people").join("data/rows.csv"), &link).unwrap();
    let o = w.orchestrator("server-1", Duration::from_millis(5));
    w.tick(&o, at("2026-12-05T10:15:00Z")).await;
    w.tick(&o, at("2026-12-05T10:15:01Z")).await;
    let slots = w.slots("sales.spy").await;
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(slots[0].state, SlotState::Failed);
    let error = slots[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("no active grant"), "{error}");
    let who = Principal::system("test");
    assert!(
        w.catalog
            .runs(&who, "sales.spy", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let slots = w.slots("sales.climber").await;
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(slots[0].state, SlotState::Failed, "{slots:?}");
    let error = slots[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("outside the product folder"), "{error}");
    assert!(
        w.catalog
            .snapshots(&who, "sales.climber")
            .await
            .unwrap()
            .is_empty(),
        "the other domain's file was not read"
    );
}

/// A schedule on a product the orchestrator could not run is refused at publish, with why.
#[tokio::test]
async fn a_schedule_without_a_pipeline_is_refused_at_publish() {
    let h = crate::harness::Harness::new().await;
    let mut bundle = orders().bundle();
    bundle.transform = None;
    let body = serde_json::json!({
        "descriptor": { "path": bundle.descriptor.path, "content": bundle.descriptor.text },
        "contracts": [{ "path": bundle.contracts[0].path, "content": bundle.contracts[0].text }],
    });
    let reply = h
        .send(
            "POST",
            "/api/v1/products",
            h.token("sales_owner"),
            Some(&body),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.json);
    let detail = reply.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("no runnable pipeline"), "{detail}");
    assert!(detail.contains("transform.sql"), "{detail}");
    // With its SQL it is accepted, and the SQL is part of the published version.
    let mut body = body;
    body["transform"] =
        serde_json::json!({ "path": "transform.sql", "content": "SELECT id, label FROM raw" });
    let reply = h
        .send(
            "POST",
            "/api/v1/products",
            h.token("sales_owner"),
            Some(&body),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    let reply = h
        .send(
            "GET",
            "/api/v1/products/sales.orders/versions/1.0.0",
            h.token("sales_owner"),
            None,
        )
        .await;
    assert_eq!(
        reply.json["transform"], "SELECT id, label FROM raw",
        "{}",
        reply.json
    );
    // A transform that is not text is a 400, not a panic.
    body["transform"] = serde_json::json!({ "content": { "sql": 1 } });
    let reply = h
        .send(
            "POST",
            "/api/v1/products",
            h.token("sales_owner"),
            Some(&body),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.json);
}

/// A runner that only counts (product, slot): the orchestration alone, at volume.
#[derive(Debug, Default)]
struct Counting(Mutex<Vec<(String, DateTime<Utc>)>>);

#[async_trait::async_trait]
impl Runner for Counting {
    async fn run(&self, job: &Job, _last: Option<&str>) -> Result<Ran, Failed> {
        self.0.lock().unwrap().push((job.product.clone(), job.slot));
        tokio::task::yield_now().await;
        Ok(Ran {
            run: None,
            skipped: false,
            fingerprint: None,
        })
    }
}

/// Two servers on one PostgreSQL, ticking at the same instants: 40 products x 12 slots, each
/// run exactly once. Skipped without MESH_TEST_POSTGRES_URL (required under CI).
#[tokio::test]
async fn two_servers_on_one_postgres_run_each_slot_exactly_once() {
    use mesh_catalog::store::PostgresStore;
    let url = match std::env::var("MESH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                !mesh_testkit::ci(),
                "CI=true but MESH_TEST_POSTGRES_URL is not set"
            );
            mesh_testkit::skip(
                "two servers on one PostgreSQL",
                "set MESH_TEST_POSTGRES_URL",
            );
            return;
        }
    };
    let name = format!(
        "mesh_orch_{}_{}",
        std::process::id(),
        crate::api::rand_suffix()
    );
    let db = PostgresStore::create_database(&url, &name, false)
        .await
        .unwrap();
    let start = at("2026-12-05T10:00:30Z");
    let clock = Arc::new(FixedClock::new(start));
    let catalog = |store: PostgresStore| Catalog::with_clock(Arc::new(store), clock.clone());
    let one = catalog(PostgresStore::open(&db).await.unwrap());
    let two = catalog(PostgresStore::open(&db).await.unwrap());
    let who = Principal::system("test");
    for i in 0..40 {
        let id = format!("ops.p{i:02}");
        let product = Product {
            id: &id,
            schedule: "cron: \"*/5 * * * *\"",
            ..orders()
        };
        one.publish(&who, &product.bundle(), false).await.unwrap();
    }
    let counting = Arc::new(Counting::default());
    let server = |catalog: &Catalog, name: &str| {
        Orchestrator::new(
            catalog.clone(),
            Arc::clone(&counting) as Arc<dyn Runner>,
            OrchestratorOptions {
                server: name.to_owned(),
                max_runs: 4,
                ..OrchestratorOptions::default()
            },
        )
    };
    let (a, b) = (server(&one, "server-a"), server(&two, "server-b"));
    let mut now = start;
    let end = at("2026-12-05T11:00:00Z");
    while now < end {
        now += chrono::Duration::seconds(30);
        clock.set(now);
        let (x, y) = tokio::join!(a.tick(now), b.tick(now));
        x.unwrap();
        y.unwrap();
        tokio::join!(a.idle(), b.idle());
    }
    let runs = counting.0.lock().unwrap().clone();
    let unique: std::collections::HashSet<_> = runs.iter().cloned().collect();
    assert_eq!(unique.len(), runs.len(), "a slot ran twice");
    assert_eq!(runs.len(), 40 * 12, "every slot from 10:05 to 11:00 ran");
    let mut in_ledger = 0;
    for i in 0..40 {
        let slots = one.slots(&format!("ops.p{i:02}"), 100).await.unwrap();
        assert!(
            slots.iter().all(|s| s.state == SlotState::Succeeded),
            "{slots:?}"
        );
        in_ledger += slots.len();
    }
    assert_eq!(in_ledger, 40 * 12);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        a.counters.scheduled.load(Relaxed) + b.counters.scheduled.load(Relaxed),
        480
    );
}

/// A local HTTP receiver: answers 503 to the first `failures` requests, then 200; keeps every
/// body it was sent.
fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen += 1;
            let status = if seen <= failures {
                "503 Service Unavailable"
            } else {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, bodies)
}

/// Python's aiosmtpd (PyPI) as the SMTP relay, keeping what it receives in a Maildir.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    fn start(dir: &std::path::Path) -> Option<Smtp> {
        let python = mesh_testkit::python("aiosmtpd", "aiosmtpd", "notifications by e-mail")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = dir.join("maildir");
        let mut child = std::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Smtp {
                    child,
                    port,
                    maildir,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not listen on {port}");
    }

    /// The messages received, as text.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

/// A scheduled run fails, then recovers: the product's webhook (down for its first two
/// attempts), its domain's Slack channel and its team's e-mail hear of each, exactly once
/// across two dispatchers; a deprecation reaches the products that read the port.
#[tokio::test]
async fn notifications_reach_webhooks_slack_and_email_with_retries() {
    use mesh_catalog::subscriptions::NewSubscription;
    use mesh_service::dispatch::Dispatcher;
    let start = at("2026-12-05T10:07:00Z");
    let w = World::new(start).await;
    let Some(smtp) = Smtp::start(w._dir.path()) else {
        return;
    };
    let broken = Product {
        id: "sales.orders",
        schedule: "cron: \"*/15 * * * *\"\nretries: 0",
        sources: &[("raw", "data/rows.csv")],
        inputs: &[],
        transform: "SELECT id, label FROM no_such_table",
    };
    w.publish(&broken, &[("data/rows.csv", ROWS)]).await;
    let reader = Product {
        id: "sales.reader",
        schedule: "on: upstream",
        sources: &[],
        inputs: &[("orders", "sales.orders.orders")],
        transform: "SELECT id, label FROM orders",
    };
    w.publish(&reader, &[]).await;
    let (hook, hooked) = receiver(2);
    let (slack, slacked) = receiver(0);
    let owner = Principal::system("test");
    let subscribe = |scope: &str, subject: &str, channel: &str, target: &str| NewSubscription {
        scope: scope.into(),
        subject: subject.into(),
        channel: channel.into(),
        target: target.into(),
        events: Vec::new(),
    };
    for new in [
        subscribe("product", "sales.orders", "webhook", &hook),
        subscribe("domain", "sales", "slack", &slack),
        subscribe("team", "sales-team", "email", "oncall@example.com"),
        NewSubscription {
            events: vec!["product.deprecated".into()],
            ..subscribe("product", "sales.reader", "webhook", &slack)
        },
    ] {
        w.catalog.subscribe(&owner, &new).await.unwrap();
    }
    // Another domain may not subscribe to sales' notifications, nor anyone send to a header
    // injection or an unknown kind.
    let hr = mesh_orchestrator_of("hr");
    let refused = w
        .catalog
        .subscribe(&hr, &subscribe("product", "sales.orders", "webhook", &hook))
        .await;
    assert!(
        matches!(
            refused,
            Err(mesh_catalog::subscriptions::SubscriptionError::Denied(_))
        ),
        "{refused:?}"
    );
    for bad in [
        subscribe(
            "product",
            "sales.orders",
            "email",
            "a@example.com\r\nBcc: all@example.com",
        ),
        NewSubscription {
            events: vec!["everything".into()],
            ..subscribe("product", "sales.orders", "webhook", &hook)
        },
        subscribe("product", "sales.nothing", "webhook", &hook),
    ] {
        assert!(w.catalog.subscribe(&owner, &bad).await.is_err(), "{bad:?}");
    }

    let mailer = mesh_server::notify::SmtpMailer::new(
        &format!("smtp://127.0.0.1:{}", smtp.port),
        "mesh <mesh@example.com>",
    )
    .unwrap();
    let dispatcher = |server: &str| {
        Arc::new(Dispatcher::new(
            w.catalog.clone(),
            Arc::new(mesh_server::notify::HttpSender::new()),
            Some(Arc::new(mailer.clone())),
            server.to_owned(),
        ))
    };
    let (one, two) = (dispatcher("server-1"), dispatcher("server-2"));
    let cursor = w.catalog.last_event_seq().await.unwrap();

    let o = w.orchestrator("server-1", Duration::from_millis(5));
    w.tick(&o, at("2026-12-05T10:15:00Z")).await;
    let (next, deliveries) = Arc::clone(&one).pass(cursor, false).await;
    let (_, again) = Arc::clone(&two).pass(cursor, false).await;
    assert!(
        again.is_empty(),
        "each event is sent by one server: {again:?}"
    );
    let states: Vec<(String, String, i64)> = deliveries
        .iter()
        .map(|d| (d.url.clone(), d.state.clone(), d.attempts))
        .collect();
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
    assert!(
        states.contains(&(hook.clone(), "delivered".into(), 3)),
        "{states:?}"
    );
    assert!(
        states.contains(&(slack.clone(), "delivered".into(), 1)),
        "{states:?}"
    );
    assert!(
        states.contains(&("mailto:oncall@example.com".into(), "delivered".into(), 1)),
        "{states:?}"
    );
    let got = hooked.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "run.failed");
    assert_eq!(got[0]["subject"], "sales.orders");
    assert!(
        got[0]["text"].as_str().unwrap().contains("no_such_table"),
        "{}",
        got[0]
    );
    let text = slacked.lock().unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("*run.failed* the scheduled run of sales.orders"),
        "{text}"
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: [mesh] run.failed: sales.orders"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: oncall@example.com"), "{}", mails[0]);

    // The pipeline is fixed: the next slot succeeds, and everyone hears it recovered.
    let fixed = Product {
        transform: "SELECT id, label FROM raw",
        ..broken
    };
    let mut bundle = fixed.bundle();
    bundle.descriptor.text = bundle
        .descriptor
        .text
        .replace("version: 1.0.0", "version: 1.0.1");
    bundle.contracts[0].text = bundle.contracts[0]
        .text
        .replace("version: 1.0.0", "version: 1.0.1");
    w.catalog.publish(&owner, &bundle, false).await.unwrap();
    w.tick(&o, at("2026-12-05T10:30:00Z")).await;
    let (next, deliveries) = Arc::clone(&one).pass(next, false).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == "delivered" && d.event == "run.recovered"),
        "{deliveries:?}"
    );
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert_eq!(smtp.messages().len(), 2);

    // A deprecation reaches the product that reads the port, which subscribed to deprecations.
    w.catalog
        .deprecate(
            &owner,
            "sales.orders",
            "1.0.1",
            chrono::NaiveDate::from_ymd_opt(2027, 6, 1).unwrap(),
            "Read sales.orders_v2 instead.",
        )
        .await
        .unwrap();
    let (_, deliveries) = Arc::clone(&one).pass(next, false).await;
    // (The domain's Slack and the team's e-mail hear of both products too; the reader's own
    // subscription is the webhook one.)
    let to_reader: Vec<&DeliveryRow> = deliveries
        .iter()
        .filter(|d| d.subject == "sales.reader" && d.payload.contains("\"delivery\""))
        .collect();
    assert_eq!(to_reader.len(), 1, "{deliveries:?}");
    assert_eq!(
        deliveries.len(),
        6,
        "3 subscriptions x 2 products: {deliveries:?}"
    );
    assert_eq!(to_reader[0].event, "product.deprecated");
    assert!(
        to_reader[0]
            .payload
            .contains("Read sales.orders_v2 instead.")
    );
}

use mesh_catalog::store::DeliveryRow;

fn mesh_orchestrator_of(domain: &str) -> Principal {
    mesh_service::orchestrator::runner_of(domain)
}

/// The SLA pass and the policy audit every server schedules run on one of them per interval.
#[tokio::test]
async fn operations_are_claimed_by_one_server_per_interval() {
    use mesh_service::orchestrator::claim_operation;
    let w = World::new(at("2026-12-05T10:00:10Z")).await;
    let every = Duration::from_secs(60);
    let claim = |server: &'static str, now: &str| {
        let catalog = w.catalog.clone();
        let now = at(now);
        async move { claim_operation(&catalog, "sla", every, now, server).await }
    };
    assert!(claim("server-1", "2026-12-05T10:00:10Z").await);
    // The other server, later in the same minute: the pass is done.
    assert!(!claim("server-2", "2026-12-05T10:00:59Z").await);
    assert!(!claim("server-1", "2026-12-05T10:00:30Z").await);
    // The next minute is a new pass, for whoever asks first.
    assert!(claim("server-2", "2026-12-05T10:01:00Z").await);
    assert!(!claim("server-1", "2026-12-05T10:01:02Z").await);
    // Another operation is claimed on its own.
    assert!(
        claim_operation(
            &w.catalog,
            "policy-audit",
            every,
            at("2026-12-05T10:01:02Z"),
            "server-1"
        )
        .await
    );
}

/// A descriptor in another domain's folder of the server's checkout that claims a product's id
/// does not become that product's folder: the scheduled run reads the real product's files, not
/// the impostor's.
#[tokio::test]
async fn an_impostor_folder_in_the_checkout_is_not_the_products() {
    let start = at("2026-12-05T10:07:00Z");
    let w = World::new(start).await;
    // hr writes a folder that sorts first and claims sales.orders, with rows of its choosing.
    let impostor = w.workspace.join("aaa-hr/orders");
    std::fs::create_dir_all(impostor.join("data")).unwrap();
    std::fs::write(
        impostor.join("product.odps.yaml"),
        orders()
            .bundle()
            .descriptor
            .text
            .replace("domain: sales", "domain: hr"),
    )
    .unwrap();
    std::fs::write(impostor.join("data/rows.csv"), "id,label\nx1,injected\n").unwrap();
    w.publish(&orders(), &[("data/rows.csv", ROWS)]).await;
    let o = w.orchestrator("server-1", Duration::from_millis(5));
    w.tick(&o, at("2026-12-05T10:15:00Z")).await;
    let slots = w.slots("sales.orders").await;
    assert_eq!(slots[0].state, SlotState::Succeeded, "{slots:?}");
    let who = Principal::system("test");
    let runs = w
        .catalog
        .runs(&who, "sales.orders", None, 10)
        .await
        .unwrap();
    assert_eq!(
        runs[0].rows_out,
        Some(2),
        "the product's own two rows: {runs:?}"
    );
}
