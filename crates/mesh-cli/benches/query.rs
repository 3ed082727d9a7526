//! The query port's cost: the same queries on a granted port of a 10M-row product, through
//! `mesh serve` (token, grant lookup, masked plan, streamed encoding, HTTP, audit record) and in
//! bare DataFusion over the same Delta snapshot; then 32 consumers querying at once.
//!
//! `cargo bench -p mesh-cli --bench query` (env: ROWS=10000000 RUNS=7 CLIENTS=32 PER_CLIENT=4).
//! Prints figures; asserts nothing about time.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_engine::query::arrow::array::{ArrayRef, Float64Array, StringArray};
use mesh_engine::query::arrow::datatypes::{DataType, Field, Schema};
use mesh_engine::query::{Encoder, RecordBatch, ResultFormat};

// The server is the `mesh` binary, on mimalloc; bare DataFusion gets the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mesh(ws: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .current_dir(ws)
        .env("NO_COLOR", "1")
        .output()
        .expect("mesh runs");
    assert!(
        out.status.success(),
        "mesh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `rows` orders as Parquet: ids, 5 labels, amounts 0.00..99.99 (1% below 1.00), timestamps.
fn write_orders(path: &Path, rows: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("orders_id", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("updated_at", DataType::Utf8, false),
    ]));
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = Encoder::new(ResultFormat::Parquet, Arc::clone(&schema)).unwrap();
    let labels = ["north", "south", "east", "west", "online"];
    let chunk = 1_000_000;
    for start in (0..rows).step_by(chunk) {
        let end = (start + chunk).min(rows);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                (start..end).map(|i| format!("orders-{i:09}")),
            )),
            Arc::new(StringArray::from_iter_values(
                (start..end).map(|i| labels[i % labels.len()]),
            )),
            Arc::new(Float64Array::from_iter_values(
                (start..end).map(|i| (i % 10_000) as f64 / 100.0),
            )),
            Arc::new(StringArray::from_iter_values((start..end).map(|i| {
                format!("2026-11-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24)
            }))),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        file.write_all(&encoder.push(&batch).unwrap()).unwrap();
    }
    file.write_all(&encoder.finish().unwrap()).unwrap();
    file.flush().unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rows = env("ROWS", 10_000_000);
    let runs = env("RUNS", 7);
    let clients = env("CLIENTS", 32);
    let per_client = env("PER_CLIENT", 4);
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();

    // A source product of `rows` orders, published and run: its port is a Delta table.
    mesh(ws, &["init"]);
    mesh(
        ws,
        &[
            "new",
            "product",
            "orders",
            "--domain",
            "ecommerce",
            "--owner",
            "ecommerce-orders",
        ],
    );
    let started = Instant::now();
    write_orders(&ws.join("ecommerce/orders/data/orders.parquet"), rows);
    let descriptor = ws.join("ecommerce/orders/product.odps.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap().replace(
        "path: data/orders.csv\n        format: csv",
        "path: data/orders.parquet\n        format: parquet",
    );
    assert!(text.contains("orders.parquet"));
    std::fs::write(&descriptor, text).unwrap();
    println!(
        "data: {rows} rows written as Parquet in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    mesh(ws, &["publish", "ecommerce/orders"]);
    let started = Instant::now();
    mesh(ws, &["run", "ecommerce/orders"]);
    println!(
        "mesh run (write, check, commit): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let runs_doc: serde_json::Value =
        serde_json::from_str(&mesh(ws, &["runs", "ecommerce.orders", "--output", "json"])).unwrap();
    let snapshot = &runs_doc["snapshots"][0];
    let location = snapshot["location"].as_str().unwrap().to_owned();
    let version = snapshot["delta_version"].as_i64().unwrap();

    // A consumer in analytics with a grant on every column but `updated_at` (masked).
    let analyst = mesh(
        ws,
        &[
            "token",
            "create",
            "ana",
            "--role",
            "member",
            "--domain",
            "analytics",
        ],
    );
    let owner = mesh(
        ws,
        &[
            "token",
            "create",
            "olga",
            "--role",
            "owner",
            "--domain",
            "ecommerce",
        ],
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--queries-per-minute",
            "1000000",
            "--query-burst",
            "100000",
        ])
        .current_dir(ws)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stderr.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let remote = |token: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--server",
            url.as_str(),
            "--token",
            token,
            "--output",
            "json",
        ]);
        mesh(ws, &all)
    };
    let request: serde_json::Value = serde_json::from_str(&remote(
        &analyst,
        &[
            "access",
            "request",
            "ecommerce.orders.orders",
            "--purpose",
            "Benchmark of the query port.",
        ],
    ))
    .unwrap();
    remote(
        &owner,
        &[
            "access",
            "approve",
            request["id"].as_str().unwrap(),
            "--columns",
            "orders_id,label,amount",
        ],
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
            mesh_engine::pipeline::Executor::InProcess,
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
    let _ = server.kill();
    let _ = server.wait();
}
