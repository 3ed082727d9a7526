//! One SLA monitor pass over a large mesh: how long it takes and how much memory it needs.
//!
//! `cargo bench -p mesh-catalog --bench sla` builds a catalog of PRODUCTS products (default
//! 10,000; env PRODUCTS) on SQLite — and on PostgreSQL too when MESH_TEST_POSTGRES_URL is set —
//! each with one output port whose contract promises freshness, availability and a completeness
//! rule, a snapshot, RUNS runs (default 5) with their contract checks, OBSERVATIONS reads (default
//! 20) in the window, and the monitor's probes over PROBE_HOURS hours (default 672: a probe a
//! minute for 28 days, which the catalog keeps as one row per port and hour). A tenth of the products are stale and a twentieth have
//! failing reads, so the first pass opens violations and later passes carry them. It then times
//! PASSES recording passes (`Catalog::sla_check`, default 5) and prints the median, and the
//! process's peak resident memory during the passes (reset before them through
//! /proc/self/clear_refs).

// A benchmark prints its figures.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use mesh_catalog::sla::SlaOptions;
use mesh_catalog::store::{
    CatalogStore, DomainRow, ObservationRow, PortRow, ProductRow, RunRow, SnapshotRow, VersionRow,
};
use mesh_catalog::{Catalog, FixedClock, Principal};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CONTRACT: &str = r#"{"apiVersion":"v3.1.0","kind":"DataContract","id":"ID","version":"1.0.0",
"status":"active","schema":[{"name":"t","properties":[{"name":"id","logicalType":"string"},
{"name":"amount","logicalType":"number","quality":[{"metric":"nullValues","mustBe":0,
"severity":"warning","dimension":"completeness"}]},{"name":"updated_at","logicalType":"timestamp"}]}],
"slaProperties":[{"property":"latency","value":1,"unit":"d","element":"t.updated_at"},
{"property":"availability","value":99.5,"unit":"percent"},{"property":"errorRate","value":1,"unit":"percent"},
{"property":"frequency","value":1,"unit":"d"}]}"#;

fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Fills `store` with `products` products as of `now`.
async fn populate(store: &Arc<dyn CatalogStore>, products: usize, now: chrono::DateTime<Utc>) {
    let (runs, observations) = (env("RUNS", 5), env("OBSERVATIONS", 20));
    let probe_hours = env("PROBE_HOURS", 672);
    let started = Instant::now();
    for chunk in (0..products).collect::<Vec<_>>().chunks(500) {
        let mut tx = store.write().await.expect("write");
        for &i in chunk {
            let domain = format!("domain{:03}", i % 100);
            if i < 100 {
                tx.insert_domain(&DomainRow {
                    name: domain.clone(),
                    description: None,
                    created_at: stamp(now),
                })
                .await
                .expect("domain");
            }
            let id = format!("{domain}.product{i:05}");
            let published = stamp(now - Duration::days(20));
            tx.insert_product(&ProductRow {
                id: id.clone(),
                domain: domain.clone(),
                team: Some(format!("{domain}-team")),
                name: Some(format!("product{i:05}")),
                latest: Some("1.0.0".into()),
                status: "active".into(),
                revision: 1,
                created_at: published.clone(),
                updated_at: published.clone(),
            })
            .await
            .expect("product");
            tx.insert_version(&VersionRow {
                product: id.clone(),
                version: "1.0.0".into(),
                major: 1,
                status: "active".into(),
                digest: format!("{i:064}"),
                descriptor: "{}".into(),
                published_by: "bench".into(),
                published_at: published.clone(),
                sunset: None,
                migration_guide: None,
                deprecated_at: None,
                revision: 1,
                transform: None,
                schedule: None,
            })
            .await
            .expect("version");
            tx.insert_port(&PortRow {
                product: id.clone(),
                version: "1.0.0".into(),
                port: "t".into(),
                major: 1,
                contract_id: format!("{id}.t"),
                compatibility: "BACKWARD".into(),
                digest: format!("{i:064}"),
                contract: CONTRACT
                    .replace("\n", "")
                    .replace("\"ID\"", &format!("\"{id}.t\"")),
            })
            .await
            .expect("port");
            // A tenth are stale (last run two days ago); the others ran every hour.
            let stale = i % 10 == 0;
            let mut last = String::new();
            for r in 0..runs {
                let at = now
                    - Duration::hours(if stale { 48 } else { 1 })
                    - Duration::hours((runs - 1 - r) as i64);
                let missing = if i % 7 == 0 { 3 } else { 0 };
                let checks = serde_json::json!({"result": "passed", "checks": [
                    {"category": "quality", "type": "field_null_values", "field": "amount",
                     "name": "amount not null", "result": if missing > 0 { "warning" } else { "passed" },
                     "diagnostics": {"metric": "missing_count", "value": missing, "row_count": 1000,
                                     "failed_fraction": f64::from(missing) / 1000.0}},
                    {"category": "servicelevel", "type": "servicelevel_freshness", "field": "updated_at",
                     "name": "freshness", "result": "passed",
                     "diagnostics": {"metric": "freshness_seconds", "value": 60,
                                     "newest": stamp(at - Duration::minutes(1))}},
                ]});
                let run = format!("{id}-run{r}");
                tx.insert_run(&RunRow {
                    id: run.clone(),
                    product: id.clone(),
                    version: "1.0.0".into(),
                    port: "t".into(),
                    major: 1,
                    location: format!("s3://bench/{id}/t/v1"),
                    state: "succeeded".into(),
                    started_at: stamp(at - Duration::seconds(30)),
                    heartbeat_at: stamp(at),
                    finished_at: Some(stamp(at)),
                    owner: "bench:1".into(),
                    delta_version: Some(r as i64 + 1),
                    rows_in: Some(1000),
                    rows_out: Some(1000),
                    bytes_out: Some(65_536),
                    inputs: "[]".into(),
                    checks: Some(checks.to_string()),
                    error: None,
                    actor: "bench".into(),
                    note: None,
                })
                .await
                .expect("run");
                last = run;
            }
            let at = now - Duration::hours(if stale { 48 } else { 1 });
            tx.put_snapshot(&SnapshotRow {
                product: id.clone(),
                port: "t".into(),
                major: 1,
                version: "1.0.0".into(),
                run: last,
                location: format!("s3://bench/{id}/t/v1"),
                delta_version: runs as i64,
                updated_at: stamp(at),
            })
            .await
            .expect("snapshot");
            // A twentieth have a tenth of their reads failing.
            let rows: Vec<ObservationRow> = (0..observations)
                .map(|o| ObservationRow {
                    product: id.clone(),
                    port: "t".into(),
                    major: 1,
                    at: stamp(now - Duration::minutes(o as i64 * 30)),
                    kind: "read".into(),
                    latency_ms: 5.0 + (o * 7 % 40) as f64,
                    rows_read: Some(100),
                    error: (i % 20 == 0 && o % 10 == 1).then(|| "object not found".into()),
                })
                .collect();
            tx.insert_observations(&rows).await.expect("observations");
            // One probe per hour stands for that hour's sixty: the catalog adds them up per
            // hour either way, so the rows a pass reads are the same.
            let probes: Vec<ObservationRow> = (0..probe_hours)
                .map(|h| ObservationRow {
                    product: id.clone(),
                    port: "t".into(),
                    major: 1,
                    at: stamp(now - Duration::hours(h as i64)),
                    kind: "probe".into(),
                    latency_ms: 3.0,
                    rows_read: Some(1),
                    error: (i % 50 == 0 && h % 24 == 3).then(|| "timed out".into()),
                })
                .collect();
            tx.insert_observations(&probes).await.expect("probes");
        }
        tx.commit().await.expect("commit");
    }
    println!(
        "  populated {products} products, {} runs, {} reads and {} hourly probe counts in {:.1} s",
        products * runs,
        products * observations,
        products * probe_hours,
        started.elapsed().as_secs_f64()
    );
}

/// Peak resident memory since the last reset, in MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn measure(name: &str, store: Arc<dyn CatalogStore>, products: usize) {
    println!("{name}:");
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    populate(&store, products, now).await;
    let catalog = Catalog::with_clock(store, Arc::new(FixedClock::new(now)));
    let who = Principal::system("bench");
    let options = SlaOptions::default();
    let before = rss_mib();
    // Resets the peak (VmHWM) to the current resident size.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut times = Vec::new();
    let mut first = None;
    for _ in 0..env("PASSES", 5) {
        let started = Instant::now();
        let report = catalog.sla_check(&who, &options).await.expect("pass");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if first.is_none() {
            first = Some((report.ports.len(), report.violated, report.opened.len()));
        }
    }
    let peak = peak_mib();
    times.sort_by(f64::total_cmp);
    // The same evaluation without recording anything (what `mesh sla` and /metrics run).
    let mut reads = Vec::new();
    for _ in 0..env("PASSES", 5) {
        let started = Instant::now();
        catalog.sla(&who, &options).await.expect("pass");
        reads.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    reads.sort_by(f64::total_cmp);
    let (ports, violated, opened) = first.unwrap_or_default();
    println!(
        "  pass over {ports} ports ({violated} violated, {opened} violations opened by the first pass)"
    );
    println!(
        "  sla_check: median {:.0} ms, min {:.0} ms, max {:.0} ms over {} passes",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
    println!(
        "  sla (read only): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        reads[reads.len() / 2],
        reads[0],
        reads[reads.len() - 1]
    );
    if let (Some(before), Some(peak)) = (before, peak) {
        println!(
            "  memory: resident {before:.0} MiB before the passes, peak {peak:.0} MiB during them (+{:.0} MiB)",
            peak - before
        );
    }
}

fn main() {
    let products = env("PRODUCTS", 10_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("catalog.db");
        let store = mesh_catalog::store::open(path.to_str().expect("utf-8"))
            .await
            .expect("SQLite catalog");
        measure("SQLite", store, products).await;
        if let Ok(url) = std::env::var("MESH_TEST_POSTGRES_URL") {
            let db = format!("mesh_sla_bench_{}", std::process::id());
            let url = mesh_catalog::store::PostgresStore::create_database(&url, &db, false)
                .await
                .expect("create a database through MESH_TEST_POSTGRES_URL");
            let store: Arc<dyn CatalogStore> = Arc::new(
                mesh_catalog::store::PostgresStore::open(&url)
                    .await
                    .expect("PostgreSQL catalog"),
            );
            measure("PostgreSQL", store, products).await;
        }
    });
}
