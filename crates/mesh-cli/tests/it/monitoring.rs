//! Monitoring as code (issue 26): the alerting rules and dashboard `mesh new` writes from a
//! product's contract. Prometheus' own `promtool` checks the rules and runs them against the
//! series a real `mesh serve` exposes at /metrics (the alerts that must fire do, with their
//! labels and texts; the "not measured" alert fires when the series are gone); the dashboard is
//! loaded by the Grafana Foundation SDK (every key kept) and its queries parsed by promtool. A
//! contract change makes `mesh plan` show the files out of step and `mesh apply` rewrite them.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{code, mesh, stderr, stdout, two_domains};

fn promtool() -> Option<&'static str> {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        mesh_testkit::skip("promtool", "apt-get install prometheus");
        return None;
    }
    Some("promtool")
}

fn yaml(path: &Path) -> Value {
    let parsed = mesh_model::yaml::parse(&fs::read_to_string(path).unwrap());
    parsed.root.expect("YAML").to_json()
}

/// One sample of the text format: (name, labels in order, value).
type Sample = (String, Vec<(String, String)>, String);

fn samples(text: &str, names: &[&str]) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if !names.contains(&name) {
            continue;
        }
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once("=\"").unwrap();
                (k.to_owned(), v.trim_end_matches('"').to_owned())
            })
            .collect();
        out.push((name.to_owned(), labels, value.to_owned()));
    }
    out
}

fn series(name: &str, labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

#[test]
fn the_generated_rules_fire_on_what_mesh_serve_exposes() {
    let Some(promtool) = promtool() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let rules = ws.join("ecommerce/orders/monitoring/alerts.yaml");
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // A published product with a run on sample data weeks old: its latency objective is violated.
    for args in [
        &["publish", "ecommerce/orders"][..],
        &["run", "ecommerce/orders"],
    ] {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    let token = stdout(&mesh(
        ws,
        &["token", "create", "scraper", "--role", "admin"],
    ))
    .trim()
    .to_owned();
    let server = crate::serve(ws, &[]);
    let (status, metrics) = crate::sla::get(&server.url, "/metrics", Some(&token));
    assert_eq!(status, 200, "{metrics}");
    drop(server);
    let found = samples(
        &metrics,
        &[
            "mesh_sla_objective_met",
            "mesh_sla_error_budget_remaining_ratio",
            "mesh_port_volume_drop",
        ],
    );
    let violated: Vec<&Sample> = found
        .iter()
        .filter(|(n, _, v)| n == "mesh_sla_objective_met" && v == "0")
        .collect();
    assert!(
        violated
            .iter()
            .any(|(_, l, _)| l.contains(&("property".into(), "latency".into()))),
        "the sample data's latency objective is violated: {metrics}"
    );

    // promtool's unit test: those series for 20 minutes; the expected alerts are the rules'
    // (read from the file: labels and texts) for every violated objective, and no others.
    let file = yaml(&rules);
    let all_rules = file["groups"][0]["rules"].as_array().unwrap().clone();
    let rule_of = |alert: &str, property: Option<&str>| -> &Value {
        all_rules
            .iter()
            .find(|r| {
                r["alert"] == alert
                    && property.is_none_or(|p| r["labels"]["property"].as_str() == Some(p))
            })
            .unwrap_or_else(|| panic!("no {alert} rule for {property:?}"))
    };
    let mut test = String::new();
    writeln!(
        test,
        "rule_files: [{:?}]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:",
        rules.display().to_string()
    )
    .unwrap();
    for (name, labels, value) in &found {
        writeln!(
            test,
            "      - series: {:?}\n        values: '{value}x20'",
            series(name, labels)
        )
        .unwrap();
    }
    writeln!(test, "    alert_rule_test:\n      - eval_time: 10m\n        alertname: MeshSlaObjectiveViolated\n        exp_alerts:").unwrap();
    for (_, labels, _) in &violated {
        let property = &labels.iter().find(|(k, _)| k == "property").unwrap().1;
        let rule = rule_of("MeshSlaObjectiveViolated", Some(property));
        writeln!(test, "          - exp_labels:").unwrap();
        let mut all: Vec<(String, String)> = labels.clone();
        for (k, v) in rule["labels"].as_object().unwrap() {
            all.retain(|(x, _)| x != k);
            all.push((k.clone(), v.as_str().unwrap().to_owned()));
        }
        for (k, v) in all {
            writeln!(test, "              {k}: {v:?}").unwrap();
        }
        writeln!(test, "            exp_annotations:").unwrap();
        for (k, v) in rule["annotations"].as_object().unwrap() {
            writeln!(test, "              {k}: {:?}", v.as_str().unwrap()).unwrap();
        }
    }
    writeln!(
        test,
        "      - eval_time: 10m\n        alertname: MeshSlaNotMeasured\n        exp_alerts: []"
    )
    .unwrap();
    // No series at all for over an hour: "not measured" fires, with the selector's labels.
    let absent = rule_of("MeshSlaNotMeasured", None);
    writeln!(
        test,
        "  - interval: 1m\n    input_series: []\n    alert_rule_test:\n      - eval_time: 70m\n        alertname: MeshSlaNotMeasured\n        exp_alerts:\n          - exp_labels:"
    )
    .unwrap();
    for (k, v) in absent["labels"].as_object().unwrap() {
        writeln!(test, "              {k}: {:?}", v.as_str().unwrap()).unwrap();
    }
    writeln!(test, "            exp_annotations:").unwrap();
    for (k, v) in absent["annotations"].as_object().unwrap() {
        writeln!(test, "              {k}: {:?}", v.as_str().unwrap()).unwrap();
    }
    let test_file = ws.join("alerts_test.yaml");
    fs::write(&test_file, &test).unwrap();
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{test}\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    // And the test can fail: a rule that fires on a met objective is caught.
    let wrong = fs::read_to_string(&rules)
        .unwrap()
        .replace("} == 0\"", "} == 1\"");
    fs::write(&rules, wrong).unwrap();
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
}

#[test]
fn the_dashboard_loads_and_its_queries_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let file = ws.join("ecommerce/orders/monitoring/dashboard.json");
    let dashboard: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert!(dashboard["uid"].as_str().unwrap().len() <= 40);
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6, "{dashboard:#}");
    let mut ids = std::collections::BTreeSet::new();
    let mut exprs = Vec::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        assert!(matches!(p["type"].as_str(), Some("stat" | "timeseries")));
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "{g}"
        );
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    // The freshness panel's threshold is the contract's latency: one day.
    assert!(
        panels
            .iter()
            .any(|p| p["title"].as_str().unwrap().contains("86400")),
        "{dashboard:#}"
    );

    // Every query parses as PromQL (promtool reads them as recording rules).
    if let Some(promtool) = promtool() {
        let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
        for (i, e) in exprs.iter().enumerate() {
            writeln!(
                text,
                "      - record: dashboard:query_{i}\n        expr: {e:?}"
            )
            .unwrap();
        }
        let path = ws.join("queries.yaml");
        fs::write(&path, text).unwrap();
        let out = Command::new(promtool)
            .args(["check", "rules"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }

    // The Grafana Foundation SDK loads it and keeps every key (a misspelled one is lost, and
    // reported); a broken copy shows the check can fail.
    let python = std::env::var("MESH_GRAFANA_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import grafana_foundation_sdk"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        mesh_testkit::skip(
            "the Grafana Foundation SDK (MESH_GRAFANA_PYTHON)",
            "pip install grafana-foundation-sdk, or set MESH_GRAFANA_PYTHON to a python that has it",
        );
        return;
    }
    let script = ws.join("grafana_check.py");
    fs::write(&script, GRAFANA_CHECK).unwrap();
    let check = |path: &Path| {
        Command::new(&python)
            .arg(&script)
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&file);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut broken = dashboard.clone();
    let panel = broken["panels"][0].as_object_mut().unwrap();
    let grid = panel.remove("gridPos").unwrap();
    panel.insert("gridpos".into(), grid);
    let bad = ws.join("broken.json");
    fs::write(&bad, broken.to_string()).unwrap();
    let out = check(&bad);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("panels[0].gridpos"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_contract_change_brings_the_monitoring_files_into_the_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let run = |args: &[&str]| {
        let out = mesh(ws, args);
        assert!(
            matches!(code(&out), 0 | 2),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        out
    };
    run(&["apply", "--yes"]);
    assert_eq!(code(&run(&["plan"])), 0, "as generated, in step");

    // The promise changes: a 6-hour latency, in a new version.
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap();
    let changed = text
        .replacen(
            "  - property: latency\n    value: 1\n    unit: d",
            "  - property: latency\n    value: 6\n    unit: h",
            1,
        )
        .replacen("version: 0.1.0", "version: 0.2.0", 1);
    assert_ne!(changed, text);
    fs::write(&contract, changed).unwrap();
    let product = ws.join("ecommerce/orders/product.odps.yaml");
    let text = fs::read_to_string(&product).unwrap();
    fs::write(&product, text.replace("version: 0.1.0", "version: 0.2.0")).unwrap();
    let plan: Value = serde_json::from_str(&stdout(&run(&["plan", "--output", "json"]))).unwrap();
    let ops: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["op"].as_str().unwrap(),
                s["file"].as_str().or(s["product"].as_str()).unwrap()
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            "publishProduct ecommerce.orders",
            "writeMonitoring ecommerce/orders/monitoring/alerts.yaml",
            "writeMonitoring ecommerce/orders/monitoring/dashboard.json",
        ],
        "{plan:#}"
    );
    run(&["apply", "--yes"]);
    let rules = fs::read_to_string(ws.join("ecommerce/orders/monitoring/alerts.yaml")).unwrap();
    assert!(rules.contains("latency objective (6 h)"), "{rules}");
    assert_eq!(code(&run(&["plan"])), 0);

    // A hand edit of a generated file is drift too; `mesh ci monitoring` puts it back without
    // touching the catalog.
    let dash = ws.join("ecommerce/orders/monitoring/dashboard.json");
    let good = fs::read_to_string(&dash).unwrap();
    fs::write(&dash, "{}").unwrap();
    assert_eq!(code(&run(&["plan"])), 2);
    run(&["ci", "monitoring", "ecommerce/orders"]);
    assert_eq!(fs::read_to_string(&dash).unwrap(), good);
    assert_eq!(code(&run(&["plan"])), 0);
}

/// Loads a dashboard with the Grafana Foundation SDK and prints every key it did not keep.
const GRAFANA_CHECK: &str = r#"import json, sys
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

given = json.load(open(sys.argv[1]))
loaded = json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(given)))

def lost(a, b, at="$"):
    out = []
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return [at]
        for k, v in a.items():
            out += [f"{at}.{k}"] if k not in b else lost(v, b[k], f"{at}.{k}")
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return [at]
        for i, (x, y) in enumerate(zip(a, b)):
            out += lost(x, y, f"{at}[{i}]")
    elif a != b:
        out.append(f"{at}: {a!r} became {b!r}")
    return out

problems = lost(given, loaded)
print(json.dumps(problems, indent=1))
sys.exit(1 if problems else 0)
"#;
