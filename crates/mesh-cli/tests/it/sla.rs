//! `mesh sla`: service levels measured from what the platform sees, end to end — completeness
//! from a run with missing values, freshness from the data's own timestamps (one violation, one
//! recovery), availability from reads that really failed (a data file gone), a webhook that fails
//! first, the monitor inside `mesh serve`, and `/metrics` read by Prometheus' own parser.

use std::fs;
use std::path::Path;

use crate::{code, mesh, mesh_with_env, stderr, stdout};

/// The orders extract: ten rows updated `age_hours` ago, `missing` of them without an amount.
fn extract(ws: &Path, age_hours: i64, missing: usize) {
    let at = (chrono::Utc::now() - chrono::Duration::hours(age_hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut csv = String::from("orders_id,label,amount,updated_at\n");
    for i in 1..=10 {
        let amount = if i <= missing {
            String::new()
        } else {
            format!("{i}.5")
        };
        csv.push_str(&format!("orders-{i:04},south,{amount},{at}\n"));
    }
    fs::write(ws.join("ecommerce/orders/data/orders.csv"), csv).unwrap();
}

fn json(out: &std::process::Output, expected: i32) -> serde_json::Value {
    assert_eq!(code(out), expected, "{}{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn properties(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["property"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn service_levels_come_from_runs_reads_and_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, None, &[]);
    // A completeness rule the team wants to hear about without stopping the pipeline.
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap().replace(
        "        logicalTypeOptions:\n          minimum: 0\n",
        "        logicalTypeOptions:\n          minimum: 0\n        quality:\n          - name: amounts are there\n            metric: nullValues\n            mustBe: 0\n            severity: warning\n            dimension: completeness\n",
    );
    assert!(text.contains("amounts are there"), "{text}");
    fs::write(&contract, text).unwrap();
    ok(&["publish", "ecommerce/orders"]);

    // Fresh data, two of ten amounts missing: the run lands, completeness is 80%.
    extract(ws, 1, 2);
    ok(&["run", "ecommerce/orders"]);
    let hook = crate::receiver("/hooks/sla", 1);
    let check = |expected: i32| {
        let out = mesh(
            ws,
            &["sla", "check", "--webhook", &hook.url, "--output", "json"],
        );
        json(&out, expected)
    };
    let first = check(1);
    let port = &first["report"]["ports"][0];
    assert_eq!(port["metrics"]["completeness"], 0.8, "{port:#}");
    assert_eq!(properties(&first["report"]["opened"]), ["completeness"]);
    // Freshness is the age of the newest `updated_at`: an hour.
    let age = port["metrics"]["data_age_seconds"].as_f64().unwrap();
    assert!((3600.0..3900.0).contains(&age), "{age}");
    // The receiver failed the first attempt; the second was delivered, and the log says so.
    let delivery = &first["deliveries"][0];
    assert_eq!(
        (
            &delivery["state"],
            &delivery["attempts"],
            &delivery["event"]
        ),
        (
            &serde_json::json!("delivered"),
            &serde_json::json!(2),
            &serde_json::json!("sla.violated")
        ),
        "{delivery:#}"
    );
    assert_eq!(hook.attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let sent: serde_json::Value = serde_json::from_str(&hook.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(sent["event"], "sla.violated");
    assert_eq!(sent["subject"], "ecommerce.orders");
    assert_eq!(sent["data"]["property"], "completeness");
    assert_eq!(sent["delivery"], delivery["id"]);
    let logged = json(&mesh(ws, &["sla", "deliveries", "--output", "json"]), 0);
    assert_eq!(logged[0]["id"], delivery["id"]);

    // Three-day-old data, complete: freshness breaks, completeness recovers — once each.
    extract(ws, 72, 0);
    ok(&["run", "ecommerce/orders"]);
    let second = check(1);
    assert_eq!(properties(&second["report"]["opened"]), ["latency"]);
    assert_eq!(properties(&second["report"]["recovered"]), ["completeness"]);
    let again = check(1);
    assert!(
        properties(&again["report"]["opened"]).is_empty(),
        "{again:#}"
    );
    let text = stdout(&mesh(ws, &["sla", "ecommerce.orders"]));
    assert!(text.contains("VIOLATED"), "{text}");
    assert!(text.contains("since the newest value"), "{text}");

    // Fresh data again: it recovers.
    extract(ws, 0, 0);
    ok(&["run", "ecommerce/orders"]);
    let third = check(0);
    assert_eq!(properties(&third["report"]["recovered"]), ["latency"]);
    assert!(properties(&third["report"]["opened"]).is_empty());
    let events = json(
        &mesh(
            ws,
            &[
                "audit",
                "ecommerce.orders",
                "--kind",
                "sla.",
                "--output",
                "json",
            ],
        ),
        0,
    );
    let kinds: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["payload"]["property"]
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "sla.violated \"completeness\"",
            "sla.violated \"latency\"",
            "sla.recovered \"completeness\"",
            "sla.recovered \"latency\"",
        ],
        "{kinds:?}"
    );
    let history = json(&mesh(ws, &["sla", "violations", "--output", "json"]), 0);
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["ended_at"].is_string())
    );

    // Through a server whose monitor probes every 300 ms: reads succeed, then a data file
    // disappears, and reads and probes fail.
    let owner = ok(&[
        "token",
        "create",
        "olga",
        "--role",
        "owner",
        "--domain",
        "ecommerce",
    ])
    .trim()
    .to_owned();
    let alerts = crate::receiver("/hooks/on-call", 0);
    let server = crate::serve(
        ws,
        &[
            ("MESH_SLA_INTERVAL", "0.3"),
            ("MESH_SLA_WEBHOOK", alerts.url.as_str()),
        ],
    );
    let query = || {
        mesh(
            ws,
            &[
                "query",
                "SELECT count(*) AS n, sum(amount) AS total FROM ecommerce.orders",
                "--server",
                &server.url,
                "--token",
                &owner,
                "--output",
                "json",
            ],
        )
    };
    for _ in 0..3 {
        let out = query();
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    }
    // A query that fails on its own (a division by zero) is the reader's fault, not the port's.
    let out = mesh(
        ws,
        &[
            "query",
            "SELECT count(*) / (count(*) - count(*)) AS boom FROM ecommerce.orders",
            "--server",
            &server.url,
            "--token",
            &owner,
        ],
    );
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    let data = ws.join(".mesh/data/ecommerce/orders/orders");
    let mut parquet: Vec<_> = walk(&data)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parquet.sort();
    assert!(!parquet.is_empty(), "no Parquet under {}", data.display());
    for p in &parquet {
        fs::remove_file(p).unwrap();
    }
    let out = query();
    assert_ne!(code(&out), 0, "a read without its data files succeeded");
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--server",
            &server.url,
            "--token",
            &owner,
            "--output",
            "json",
        ]);
        mesh_with_env(ws, &all, &[])
    };
    // The monitor's next passes see the failed read and failing probes (the division by zero
    // counts as a read, not as a failure).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let report = loop {
        let out = remote(&["sla", "ecommerce.orders"]);
        let report = crate::findings_json(&out);
        let m = &report["ports"][0]["metrics"];
        if m["probe_errors"].as_i64() > Some(0) && !alerts.bodies.lock().unwrap().is_empty() {
            break report;
        }
        assert!(std::time::Instant::now() < deadline, "{report:#}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let port = &report["ports"][0];
    let m = &port["metrics"];
    assert_eq!(
        (m["reads"].as_i64(), m["read_errors"].as_i64()),
        (Some(5), Some(1)),
        "{m:#}"
    );
    assert!(m["availability"].as_f64().unwrap() < 0.995, "{m:#}");
    let availability = port["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["property"] == "availability")
        .unwrap();
    assert_eq!(availability["status"], "violated", "{availability:#}");
    assert!(availability["budget_remaining"].as_f64().unwrap() < 0.0);
    let alert: serde_json::Value = serde_json::from_str(&alerts.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(alert["event"], "sla.violated");
    assert_eq!(alert["data"]["property"], "availability");

    // /metrics, read by Prometheus' own Python parser.
    let (status, text) = get(&server.url, "/metrics", Some(&owner));
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("mesh_sla_objective_met{product=\"ecommerce.orders\""),
        "{text}"
    );
    assert_eq!(get(&server.url, "/metrics", None).0, 401);
    let Some(python) = crate::python_prometheus() else {
        return;
    };
    let script = ws.join("parse_metrics.py");
    fs::write(&script, PARSE).unwrap();
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}{}\n{text}", stdout(&out), stderr(&out));
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let sample = |family: &str, name: &str, labels: &[(&str, &str)]| -> f64 {
        parsed[family]["samples"]
            .as_array()
            .unwrap_or_else(|| panic!("no family {family} in {parsed:#}"))
            .iter()
            .find(|s| {
                s["name"] == name
                    && labels
                        .iter()
                        .all(|(k, v)| s["labels"][*k].as_str() == Some(*v))
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {parsed:#}"))["value"]
            .as_f64()
            .unwrap()
    };
    let this = [("product", "ecommerce.orders"), ("port", "orders")];
    assert_eq!(parsed["mesh_query_duration_seconds"]["type"], "histogram");
    // Three good reads and the division by zero: the port served all four.
    assert_eq!(
        sample(
            "mesh_query_duration_seconds",
            "mesh_query_duration_seconds_count",
            &this
        ),
        4.0
    );
    assert_eq!(
        sample("mesh_query_errors", "mesh_query_errors_total", &this),
        1.0
    );
    assert_eq!(
        sample(
            "mesh_sla_objective_met",
            "mesh_sla_objective_met",
            &[
                ("product", "ecommerce.orders"),
                ("property", "availability")
            ]
        ),
        0.0
    );
    assert!(
        sample(
            "mesh_port_availability_ratio",
            "mesh_port_availability_ratio",
            &this
        ) < 0.995
    );
    assert_eq!(
        sample("mesh_runs", "mesh_runs_total", &[("outcome", "succeeded")]),
        3.0
    );
}

/// `GET path` on `base` (`http://host:port`), with a bearer token: the status and the body.
pub(crate) fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Parses the exposition on stdin with `prometheus_client`'s parser and prints the families as
/// JSON; any line it cannot parse fails it.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    families[f.name] = {
        "type": f.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
    }
print(json.dumps(families))
"#;
