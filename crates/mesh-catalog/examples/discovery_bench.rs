//! Discovery benchmark: 100,000 generated products whose input ports and column sources make
//! about 1,000,000 lineage edges, published through the catalog; then, in a fresh catalog
//! instance on the same database (as a newly started `mesh serve`): the time and memory to build
//! the search index and the lineage graph, search latency, and the latency of the full transitive
//! downstream of a hub product (impact analysis).
//!
//! ```sh
//! cargo run --release -p mesh-catalog --example discovery_bench -- sqlite
//! MESH_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5433/postgres \
//!   cargo run --release -p mesh-catalog --example discovery_bench -- postgres
//! ```
//! PRODUCTS (100000) and QUERIES (2000) change the size; AUDIT=1 also times `mesh policy audit`
//! (the standard pack over every product). CATALOG=path/to/bench.db measures a SQLite catalog a
//! previous run published (PRODUCTS of them) instead of publishing again: publishing 1,000,000
//! products takes most of an hour on two cores.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_catalog::search::SearchQuery;
use mesh_catalog::store::{CatalogStore, PostgresStore, SqliteStore};
use mesh_catalog::{Bundle, Catalog, Principal, Source};

const GROUP: usize = 1000;
const LAYER: usize = 100;
const WORDS: [&str; 24] = [
    "orders",
    "customers",
    "payments",
    "invoices",
    "shipments",
    "returns",
    "reviews",
    "campaigns",
    "sessions",
    "tickets",
    "inventory",
    "prices",
    "refunds",
    "subscriptions",
    "accounts",
    "ledger",
    "forecast",
    "churn",
    "retention",
    "clicks",
    "leads",
    "contracts",
    "suppliers",
    "warehouses",
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator (no dependency, the same data every run).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn id(i: usize) -> String {
    format!("g{:03}.p{:04}", i / GROUP, i % GROUP)
}

/// Product `i`: in group i/1000, layer (i%1000)/100. From layer 1 on it reads three products of
/// the layer before in its group, and each of its five columns comes from columns of two of them.
fn product(i: usize, rng: &mut Rng) -> Bundle {
    let pid = id(i);
    let (domain, name) = pid.split_once('.').unwrap_or_default();
    let layer = (i % GROUP) / LAYER;
    let words = [
        WORDS[i % WORDS.len()],
        WORDS[(i / 7) % WORDS.len()],
        WORDS[(i / 49) % WORDS.len()],
    ];
    let mut inputs = String::new();
    let mut sources = Vec::new();
    if layer > 0 {
        inputs.push_str("inputPorts:\n");
        for k in 0..3 {
            let up = i - (i % LAYER) - LAYER + rng.below(LAYER);
            inputs.push_str(&format!(
                "  - name: in_{k}\n    version: 1.0.0\n    contractId: {}.out\n",
                id(up)
            ));
            sources.push(format!("in_{k}"));
        }
    }
    let mut props = String::new();
    for c in 0..5 {
        props.push_str(&format!(
            "      - name: {}_{c}\n        logicalType: string\n        required: {}\n",
            words[c % 3],
            c == 0
        ));
        if c == 0 {
            props.push_str("        primaryKey: true\n        quality:\n          - metric: duplicateValues\n            mustBe: 0\n");
        }
        if sources.len() >= 2 {
            let w = words[c % 3];
            props.push_str(&format!(
                "        transformSourceObjects: [{}.{w}_{c}, {}.{w}_{c}]\n",
                sources[0], sources[1]
            ));
        }
    }
    let descriptor = format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: {pid}\nname: {} {}\ndomain: {domain}\nstatus: active\nversion: 1.0.0\n\
description:\n  purpose: {} of {} by {}.\ncustomProperties:\n  - property: productType\n    value: {}\n  - property: dataClassification\n    value: internal\n  - property: retentionDays\n    value: 365\n\
team:\n  name: {domain}-team\n  members:\n    - username: owner@example.com\n      role: owner\n\
support:\n  - channel: \"#{domain}\"\n    url: https://chat.example.com/{domain}\n\
tags: [{}]\n{inputs}outputPorts:\n  - name: out\n    description: The table.\n    type: tables\n    version: 1.0.0\n    contractId: {pid}.out\n",
        words[0],
        words[1],
        words[0],
        words[1],
        words[2],
        if layer == 0 { "source" } else { "derived" },
        words[2],
    );
    let contract = format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: {pid}.out\nname: {name}\nversion: 1.0.0\nstatus: active\ndomain: {domain}\n\
description:\n  purpose: The table.\nschema:\n  - name: {name}\n    physicalType: table\n    properties:\n{props}\
slaProperties:\n  - property: latency\n    value: 1\n    unit: d\n  - property: availability\n    value: 99.5\n    unit: percent\n"
    );
    Bundle {
        descriptor: Source {
            path: "product.odps.yaml".into(),
            text: descriptor,
        },
        contracts: vec![Source {
            path: "contracts/out.odcs.yaml".into(),
            text: contract,
        }],
        transform: None,
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

async fn open(
    backend: &str,
    dir: &std::path::Path,
) -> Result<(Arc<dyn CatalogStore>, String), Box<dyn std::error::Error>> {
    Ok(match backend {
        "sqlite" => {
            let path = dir.join("bench.db");
            let path = path.to_str().ok_or("utf-8 path")?.to_owned();
            (
                Arc::new(SqliteStore::open(&path).await?),
                format!("sqlite://{path}"),
            )
        }
        "postgres" => {
            let url = std::env::var("MESH_BENCH_POSTGRES_URL")
                .map_err(|_| "set MESH_BENCH_POSTGRES_URL=postgres://user@host:port/db")?;
            let name = format!("mesh_discovery_{}", std::process::id());
            let url = PostgresStore::create_database(&url, &name, false).await?;
            (Arc::new(PostgresStore::open(&url).await?), url)
        }
        other => return Err(format!("backend `{other}`: use sqlite or postgres").into()),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite".to_owned());
    let products = env("PRODUCTS", 100_000);
    let queries = env("QUERIES", 2_000);
    let dir = tempfile::tempdir()?;
    let who = Principal::local();
    let reused = std::env::var("CATALOG")
        .ok()
        .filter(|_| backend == "sqlite");
    let (store, url) = match &reused {
        Some(path) => (
            mesh_catalog::store::open(path).await?,
            format!("sqlite://{path}"),
        ),
        None => open(&backend, dir.path()).await?,
    };

    // Publish, 4 writers (none when measuring a catalog published before).
    let writer = Catalog::new(store);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let reuse = reused.is_some();
    for t in 0..4u64 {
        let (catalog, who, next) = (writer.clone(), who.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= products || reuse {
                    break;
                }
                if let Err(e) = catalog.publish(&who, &product(i, &mut rng), false).await {
                    panic!("publish {}: {e:?}", id(i));
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let publish = started.elapsed();
    if reuse {
        eprintln!("measuring {url} (published before)");
    } else {
        eprintln!(
            "published {products} products in {:.1} s",
            publish.as_secs_f64()
        );
    }

    // A fresh instance: build the index and the graph from the database.
    let reader = Catalog::new(mesh_catalog::store::open(&url).await?);
    let rss_before = rss_mib();
    let t = Instant::now();
    let indexed = reader.indexed_products().await?;
    let search_build = t.elapsed();
    let rss_search = rss_mib();
    let t = Instant::now();
    let edges = reader.lineage_edges().await?;
    let graph_build = t.elapsed();
    let rss_graph = rss_mib();

    // Search: one to three words, a third of them misspelt.
    let mut rng = Rng(42);
    let mut search = Vec::with_capacity(queries);
    let mut hits = 0usize;
    for _ in 0..queries {
        let n = 1 + rng.below(3);
        let mut words: Vec<String> = (0..n)
            .map(|_| WORDS[rng.below(WORDS.len())].to_owned())
            .collect();
        if rng.below(3) == 0 {
            let w = &mut words[0];
            let k = 1 + rng.below(w.len() - 2);
            w.remove(k);
        }
        let q = SearchQuery {
            q: words.join(" "),
            limit: Some(10),
            ..SearchQuery::default()
        };
        let t = Instant::now();
        let found = reader.search(&who, &q).await?;
        search.push(t.elapsed());
        hits += found.total;
    }
    search.sort();

    // Impact of a hub: the full transitive downstream of a layer-0 product.
    let mut impact = Vec::new();
    let mut reached = 0usize;
    for k in 0..(products / GROUP).clamp(1, 200) {
        let hub = id(k * GROUP + rng.below(LAYER));
        let t = Instant::now();
        let report = reader.impact(&who, &hub, "out", &[]).await?;
        impact.push(t.elapsed());
        reached += report.products.len();
    }
    impact.sort();

    println!(
        "discovery bench: backend {backend}, {products} products published in {:.1} s ({:.0}/s), {edges} lineage edges",
        publish.as_secs_f64(),
        products as f64 / publish.as_secs_f64()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| search index build ({indexed} products) | {:.2} s, +{:.0} MiB RSS |",
        search_build.as_secs_f64(),
        rss_search - rss_before
    );
    println!(
        "| lineage graph build ({edges} edges) | {:.2} s, +{:.0} MiB RSS |",
        graph_build.as_secs_f64(),
        rss_graph - rss_search
    );
    println!(
        "| search, {} queries (avg {} matches) | p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms |",
        search.len(),
        hits / search.len().max(1),
        pct(&search, 0.5),
        pct(&search, 0.95),
        pct(&search, 0.99)
    );
    println!(
        "| full transitive downstream of a hub, {} hubs (avg {} products reached) | p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms |",
        impact.len(),
        reached / impact.len().max(1),
        pct(&impact, 0.5),
        pct(&impact, 0.95),
        pct(&impact, 0.99)
    );
    if std::env::var_os("AUDIT").is_some() {
        let auditor = reader
            .clone()
            .with_policies(mesh_policy::standard())
            .map_err(|e| format!("{e:?}"))?;
        let t = Instant::now();
        let report = auditor.audit(&who).await?;
        println!(
            "| mesh policy audit ({} products, standard pack) | {:.2} s, {} compliant, {} violations |",
            report.products,
            t.elapsed().as_secs_f64(),
            report.compliant,
            report.violations.len()
        );
    }
    println!("| process RSS at the end | {:.0} MiB |", rss_mib());
    Ok(())
}
