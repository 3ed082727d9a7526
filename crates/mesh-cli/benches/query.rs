//! The query port's cost: the same queries on a granted port of a 10M-row product, through
//! `mesh serve` (token, grant lookup, masked plan, streamed encoding, HTTP, audit record) and in
//! bare DataFusion over the same Delta snapshot; then 32 consumers querying at once.
//!
//! `cargo bench -p mesh-cli --bench query` (env: ROWS=10000000 RUNS=7 CLIENTS=32 PER_CLIENT=4).
//! Prints figures; asserts nothing about time.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

// The server is the `mesh` binary, on mimalloc; bare DataFusion gets the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::{env, median, ms, percentile};

fn main() {
    let rows = env("ROWS", 10_000_000);
    let runs = env("RUNS", 7);
    let clients = env("CLIENTS", 32);
    let per_client = env("PER_CLIENT", 4);
    let served = common::Served::orders(rows, &[]);
    let (url, analyst, location, version) = (
        served.url.clone(),
        served.analyst.clone(),
        served.location.clone(),
        served.version,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let query = |sql: String, format: &'static str| {
        let http = http.clone();
        let url = url.clone();
        let token = analyst.clone();
        async move {
            let started = Instant::now();
            let response = http
                .post(format!("{url}/api/v1/query?format={format}"))
                .bearer_auth(token)
                .json(&serde_json::json!({ "sql": sql }))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let bytes = response.bytes().await.unwrap();
            (started.elapsed(), bytes.len())
        }
    };
    // Bare DataFusion: the same Delta snapshot registered in a plain session.
    let bare = runtime.block_on(async {
        let ctx = mesh_engine::query::SessionContext::new();
        let input = mesh_engine::pipeline::Input {
            name: "orders".into(),
            product: None,
            contract: None,
            location: mesh_engine::source::Location::from_path(&location, Some("delta")).unwrap(),
            delta_version: Some(version),
            columns: None,
            masks: Vec::new(),
            mask: mesh_engine::mask::Mask::Null,
            keys: Default::default(),
            database: None,
        };
        mesh_engine::pipeline::register_input(
            &ctx,
            &input,
            &mesh_engine::pipeline::Executor::InProcess,
        )
        .await
        .unwrap();
        ctx
    });
    let queries = [
        (
            "aggregate (5 groups), JSON",
            "SELECT label, COUNT(*) AS n, SUM(amount) AS total FROM {t} GROUP BY label ORDER BY label",
            "json",
        ),
        (
            "filter (1% = 100k rows), Arrow IPC",
            "SELECT orders_id, label, amount FROM {t} WHERE amount < 1.0",
            "arrow",
        ),
    ];
    println!(
        "\nquery port vs bare DataFusion on {rows} rows ({runs} runs each, interleaved, median):"
    );
    for (name, sql, format) in queries {
        let port_sql = sql.replace("{t}", "ecommerce.orders");
        let bare_sql = sql.replace("{t}", "orders");
        let (mut port_times, mut bare_times) = (Vec::new(), Vec::new());
        let mut size = 0;
        for i in 0..=runs {
            let started = Instant::now();
            let batches = runtime
                .block_on(async { bare.sql(&bare_sql).await.unwrap().collect().await.unwrap() });
            let bare_time = started.elapsed();
            let bare_rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let (port_time, bytes) = runtime.block_on(query(port_sql.clone(), format));
            size = bytes;
            if i > 0 {
                // The first of each is a warm-up.
                bare_times.push(bare_time);
                port_times.push(port_time);
            }
            assert!(bare_rows > 0);
        }
        let (p, b) = (median(port_times), median(bare_times));
        println!(
            "  {name}: port {} vs bare {} = {:.2}x ({} bytes sent)",
            ms(p),
            ms(b),
            p.as_secs_f64() / b.as_secs_f64(),
            size
        );
    }

    // Many consumers at once: each sends its queries one after another.
    let sql = queries[0].1.replace("{t}", "ecommerce.orders").to_string();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let query = &query;
            let sql = sql.clone();
            tasks.push(async move {
                let mut times = Vec::new();
                for _ in 0..per_client {
                    times.push(query(sql.clone(), "json").await.0);
                }
                times
            });
        }
        futures::future::join_all(tasks)
            .await
            .into_iter()
            .flatten()
            .collect()
    });
    let wall = started.elapsed();
    latencies.sort();
    println!(
        "\n{clients} concurrent consumers x {per_client} aggregate queries: {:.1} queries/s; latency p50 {}, p95 {}, p99 {}, max {}",
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    drop(served);
}
