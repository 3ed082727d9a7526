//! Catalog benchmark over real HTTP: publish N generated products through `POST /api/v1/products`
//! with C concurrent clients, then time `GET /api/v1/products/{id}` and `.../versions`.
//!
//! ```sh
//! cargo run --release -p mesh-server --example catalog_bench -- sqlite
//! MESH_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5433/postgres \
//!   cargo run --release -p mesh-server --example catalog_bench -- postgres
//! ```
//! Options (environment): PRODUCTS (10000), CONCURRENCY (8), READS (20000).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_catalog::store::{CatalogStore, PostgresStore, SqliteStore};
use mesh_catalog::{Catalog, Role};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn product(i: usize) -> serde_json::Value {
    let domain = format!("domain{:02}", i % 20);
    let name = format!("product_{i:05}");
    let id = format!("{domain}.{name}");
    let mut props = String::new();
    for c in 0..(5 + i % 6) {
        props.push_str(&format!(
            "      - name: col_{c}\n        logicalType: string\n        required: {}\n",
            c == 0
        ));
        if c == 0 {
            props.push_str("        primaryKey: true\n        quality:\n          - metric: duplicateValues\n            mustBe: 0\n");
        }
    }
    let descriptor = format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: {id}\nname: {name}\ndomain: {domain}\nstatus: active\nversion: 1.0.0\n\
description:\n  purpose: Generated product {i} for the catalog benchmark.\ncustomProperties:\n  - property: productType\n    value: source\n  - property: dataClassification\n    value: internal\n  - property: retentionDays\n    value: 365\n\
team:\n  name: {domain}-team\n  members:\n    - username: owner@example.com\n      role: owner\n\
support:\n  - channel: \"#{domain}\"\n    url: https://chat.example.com/{domain}\n\
outputPorts:\n  - name: {name}\n    description: The table.\n    type: tables\n    version: 1.0.0\n    contractId: {id}.{name}\n"
    );
    let contract = format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: {id}.{name}\nname: {name}\nversion: 1.0.0\nstatus: active\ndomain: {domain}\n\
description:\n  purpose: The table.\nschema:\n  - name: {name}\n    physicalType: table\n    properties:\n{props}\
slaProperties:\n  - property: latency\n    value: 1\n    unit: d\n  - property: availability\n    value: 99.5\n    unit: percent\n"
    );
    serde_json::json!({
        "descriptor": {"path": "product.odps.yaml", "content": descriptor},
        "contracts": [{"path": "contracts/port.odcs.yaml", "content": contract}],
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite".to_owned());
    let products = env("PRODUCTS", 10_000);
    let concurrency = env("CONCURRENCY", 8);
    let reads = env("READS", 20_000);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn CatalogStore> = match backend.as_str() {
        "sqlite" => Arc::new(
            SqliteStore::open(dir.path().join("bench.db").to_str().unwrap_or("bench.db")).await?,
        ),
        "postgres" => {
            let url = std::env::var("MESH_BENCH_POSTGRES_URL")
                .map_err(|_| "set MESH_BENCH_POSTGRES_URL=postgres://user@host:port/db")?;
            let name = format!("mesh_bench_{}", std::process::id());
            let db = PostgresStore::create_database(&url, &name, true).await?;
            Arc::new(PostgresStore::open(&db).await?)
        }
        other => return Err(format!("backend `{other}`: use sqlite or postgres").into()),
    };
    let catalog = Catalog::new(store);
    let token = catalog
        .bootstrap_token("bench", &[(Role::Admin, None)], None)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(mesh_server::serve(
        listener,
        catalog,
        mesh_server::Options::default(),
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    // Publish.
    let bodies: Arc<Vec<String>> =
        Arc::new((0..products).map(|i| product(i).to_string()).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, token, bodies, next) = (
            client.clone(),
            base.clone(),
            token.clone(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let response = client
                    .post(format!("{base}/api/v1/products"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert_eq!(status.as_u16(), 201, "{text}");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut publish_latency = Vec::new();
    for task in tasks {
        publish_latency.extend(task.await?);
    }
    let publish_wall = started.elapsed();
    publish_latency.sort();

    // Reads.
    let mut results = Vec::new();
    for (label, suffix) in [("GET product", ""), ("GET product versions", "/versions")] {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, base, token, next) =
                (client.clone(), base.clone(), token.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= reads {
                        break;
                    }
                    // A spread of products, not the same one again and again.
                    let p = (i * 7919) % products;
                    let id = format!("domain{:02}.product_{p:05}", p % 20);
                    let t = Instant::now();
                    let response = client
                        .get(format!("{base}/api/v1/products/{id}{suffix}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("request");
                    assert!(response.status().is_success());
                    let _ = response.bytes().await;
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut latency = Vec::new();
        for task in tasks {
            latency.extend(task.await?);
        }
        let wall = started.elapsed();
        latency.sort();
        results.push((label, latency, wall));
    }

    println!(
        "catalog bench: backend {backend}, {products} products, {concurrency} concurrent clients, {reads} reads per endpoint"
    );
    println!(
        "| operation | requests | wall (s) | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let row = |label: &str, latency: &[Duration], wall: Duration| {
        println!(
            "| {label} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
            latency.len(),
            wall.as_secs_f64(),
            latency.len() as f64 / wall.as_secs_f64(),
            percentile(latency, 0.50),
            percentile(latency, 0.95),
            percentile(latency, 0.99)
        );
    };
    row("POST product (publish)", &publish_latency, publish_wall);
    for (label, latency, wall) in &results {
        row(label, latency, *wall);
    }
    Ok(())
}
