//! What the benchmarks share: running `mesh`, writing an orders product, medians.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_engine::query::arrow::array::{ArrayRef, Float64Array, StringArray};
use mesh_engine::query::arrow::datatypes::{DataType, Field, Schema};
use mesh_engine::query::{Encoder, RecordBatch, ResultFormat};

pub(crate) fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn mesh(ws: &Path, args: &[&str]) -> String {
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
pub(crate) fn write_orders(path: &Path, rows: usize) {
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

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A served mesh with a product of `rows` orders, and ana (analytics) granted every column but
/// `updated_at`.
pub(crate) struct Served {
    pub(crate) tmp: tempfile::TempDir,
    server: std::process::Child,
    /// The server's first line: where it listens, each way in.
    pub(crate) banner: String,
    pub(crate) url: String,
    pub(crate) analyst: String,
    pub(crate) location: String,
    pub(crate) version: i64,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Served {
    pub(crate) fn orders(rows: usize, serve_args: &[&str]) -> Served {
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
            serde_json::from_str(&mesh(ws, &["runs", "ecommerce.orders", "--output", "json"]))
                .unwrap();
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
            .args(serve_args)
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
        Served {
            tmp,
            server,
            banner: line,
            url,
            analyst,
            location,
            version,
        }
    }
}
