//! `mesh run`: write-audit-publish on Delta Lake, end to end — a source product and a derived
//! one reading it, then bad upstream data that must not replace the published snapshot.

use std::fs;
use std::path::Path;

use crate::{code, mesh, stderr, stdout};

#[cfg(feature = "ballista")]
mod cluster;

/// The Delta versions in a table's log.
fn versions(table: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

fn parquet_files(table: &Path) -> usize {
    fs::read_dir(table)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .count()
}

#[test]
fn source_and_derived_products_run_and_bad_data_never_lands() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, Some(("customer_orders", "derived")), &[]);
    ok(&["lint", "--strict", "."]);
    ok(&["publish", "ecommerce/orders", "analytics/customer_orders"]);

    // The derived product cannot run before its input has a snapshot.
    let out = mesh(ws, &["run", "analytics/customer_orders"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no published snapshot of ecommerce.orders.orders (major 0)"),
        "{}",
        stderr(&out)
    );

    let run = |dir: &str| -> serde_json::Value {
        let out = mesh(ws, &["run", dir, "--output", "json"]);
        crate::findings_json(&out)
    };
    let source = run("ecommerce/orders");
    assert_eq!(source["published"], true, "{source}");
    assert_eq!(
        (source["deltaVersion"].as_i64(), source["rows"].as_i64()),
        (Some(1), Some(10))
    );
    // Another domain's port is read only through a grant to the product's service identity.
    let out = mesh(ws, &["run", "analytics/customer_orders"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("analytics.customer_orders has no active grant to read ecommerce.orders.orders (major 0)")
            && stderr(&out).contains("mesh access request ecommerce.orders.orders@0 --for analytics.customer_orders"),
        "{}",
        stderr(&out)
    );
    crate::grant_input(
        ws,
        "analytics.customer_orders",
        "ecommerce.orders.orders",
        &[],
        None,
    );
    let derived = run("analytics/customer_orders");
    assert_eq!(derived["published"], true, "{derived}");
    assert_eq!(derived["rows"], 10);
    assert_eq!(
        (source["rowsIn"].as_i64(), derived["rowsIn"].as_i64()),
        (Some(10), Some(10)),
        "rows read from the CSV source and from the upstream snapshot"
    );
    let history = mesh(
        ws,
        &["runs", "analytics.customer_orders", "--output", "json"],
    );
    let history: serde_json::Value = serde_json::from_str(&stdout(&history)).unwrap();
    let last = &history["runs"][0];
    assert_eq!(
        (last["rows_in"].as_i64(), last["rows_out"].as_i64()),
        (Some(10), Some(10))
    );
    assert_eq!(last["inputs"][0]["product"], "ecommerce.orders");
    assert_eq!(last["inputs"][0]["delta_version"], 1);
    assert!(
        last["checks"]["checks"].as_array().unwrap().len() > 5,
        "{last}"
    );

    // Lineage: the product edge (from publish) and the column edges (from the run's plan).
    let out = mesh(ws, &["lineage", "analytics.customer_orders", "--upstream"]);
    assert!(
        stdout(&out).contains("ecommerce.orders"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = mesh(
        ws,
        &["lineage", "analytics.customer_orders", "--column", "amount"],
    );
    assert!(
        stdout(&out).contains(
            "mesh:ecommerce.orders.orders:amount → mesh:analytics.customer_orders.customer_orders:amount"
        ),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The derived output, read through the catalog's snapshot with `mesh query`...
    let out = mesh(
        ws,
        &[
            "query",
            "SELECT COUNT(*) AS n, COUNT(DISTINCT orders_id) AS keys FROM analytics.customer_orders",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let counted: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(counted["rows"][0], serde_json::json!({"n": 10, "keys": 10}));

    // ... and by any engine that reads Delta; `mesh test` does, against the contract.
    let orders = ws.join(".mesh/data/ecommerce/orders/orders/v0");
    let customer = ws.join(".mesh/data/analytics/customer_orders/customer_orders/v0");
    let out = mesh(
        ws,
        &[
            "test",
            "analytics/customer_orders/contracts/customer_orders.odcs.yaml",
            "--data",
            customer.to_str().unwrap(),
            "--format",
            "delta",
            "--checks",
            "schema,quality",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(versions(&orders).len(), 2, "version 0 (created) and 1");

    // Bad upstream data: a duplicated key. The run fails its contract; nothing is committed,
    // no file is left behind, and readers keep the previous snapshot.
    let data = ws.join("ecommerce/orders/data/orders.csv");
    let text = fs::read_to_string(&data).unwrap();
    let first_row = text.lines().nth(1).unwrap().to_owned();
    fs::write(&data, format!("{text}{first_row}\n")).unwrap();
    let files_before = parquet_files(&orders);
    let failed = run("ecommerce/orders");
    assert_eq!(failed["published"], false, "{failed}");
    assert!(
        failed["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "orders__orders_id__field_duplicate_values"),
        "{failed}"
    );
    assert_eq!(versions(&orders).len(), 2, "no new Delta version");
    assert_eq!(
        parquet_files(&orders),
        files_before,
        "the rejected files are gone"
    );
    let again = run("analytics/customer_orders");
    assert_eq!(again["published"], true, "{again}");
    assert_eq!(
        again["rows"], 10,
        "the derived product still reads the 10-row snapshot"
    );

    // Fixed (and changed) data publishes again, as the next version.
    fs::write(&data, text.replace("north", "NORTH")).unwrap();
    let fixed = run("ecommerce/orders");
    assert_eq!(
        (fixed["published"].as_bool(), fixed["deltaVersion"].as_i64()),
        (Some(true), Some(2))
    );

    // Roll back to the first run: a Delta RESTORE of version 1, committed as version 3, with
    // the catalog's snapshot moved to it.
    let first = source["run"].as_str().unwrap();
    let out = mesh(
        ws,
        &[
            "rollback",
            "ecommerce.orders",
            "--to",
            first,
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let rolled: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (rolled["restored"].as_i64(), rolled["deltaVersion"].as_i64()),
        (Some(1), Some(3))
    );
    let adds = |v: usize| -> Vec<String> {
        let name = format!("{v:020}.json");
        let mut paths: Vec<String> = fs::read_to_string(orders.join("_delta_log").join(name))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).ok()?;
                j["add"]["path"].as_str().map(str::to_owned)
            })
            .collect();
        paths.sort();
        paths
    };
    assert_eq!(adds(3), adds(1), "version 3 holds version 1's files again");
    let out = mesh(ws, &["runs", "ecommerce.orders", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(runs["snapshots"][0]["delta_version"], 3);
    // Only a published run can be rolled back to.
    let rejected = failed["run"].as_str().unwrap();
    let out = mesh(ws, &["rollback", "ecommerce.orders", "--to", rejected]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("only a published snapshot"),
        "{}",
        stderr(&out)
    );
}

/// The official OpenLineage schemas, by their `$id`, for `$ref`s between them.
struct Schemas(std::collections::HashMap<String, serde_json::Value>);

impl jsonschema::Retrieve for Schemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let key = uri.as_str().split('#').next().unwrap_or_default();
        self.0
            .get(key)
            .cloned()
            .ok_or_else(|| format!("no schema {key}").into())
    }
}

/// Accepts HTTP POSTs on a local port and keeps their bodies.
fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let r = crate::receiver("/api/v1/lineage", 0);
    (r.url, r.bodies)
}

#[test]
fn runs_emit_valid_openlineage_with_column_lineage() {
    let Some(vectors) = crate::vectors::dir() else {
        return;
    };
    let spec = vectors.join("openlineage/spec");
    let mut schemas = std::collections::HashMap::new();
    let mut load = |path: &Path| {
        let doc: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let id = doc["$id"].as_str().unwrap().to_owned();
        schemas.insert(id, doc);
    };
    load(&spec.join("OpenLineage.json"));
    for entry in fs::read_dir(spec.join("facets")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            load(&path);
        }
    }
    let schemas = Schemas(schemas);
    let validator = |reference: &str| {
        jsonschema::options()
            .should_validate_formats(true)
            .with_retriever(Schemas(schemas.0.clone()))
            .build(&serde_json::json!({ "$ref": reference }))
            .unwrap_or_else(|e| panic!("{reference}: {e}"))
    };
    let run_event = validator("https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent");

    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
    };
    crate::two_domains(ws, Some(("orders_per_label", "aggregate")), &[]);
    ok(&["publish", "ecommerce/orders", "analytics/orders_per_label"]);
    crate::grant_input(
        ws,
        "analytics.orders_per_label",
        "ecommerce.orders.orders",
        &[],
        None,
    );
    let (url, bodies) = receiver();
    ok(&["run", "ecommerce/orders", "--openlineage-url", &url]);
    ok(&[
        "run",
        "analytics/orders_per_label",
        "--openlineage-url",
        &url,
    ]);
    // A failing run: a duplicated key.
    let data = ws.join("ecommerce/orders/data/orders.csv");
    let text = fs::read_to_string(&data).unwrap();
    let first_row = text.lines().nth(1).unwrap().to_owned();
    fs::write(&data, format!("{text}{first_row}\n")).unwrap();
    let out = mesh(ws, &["run", "ecommerce/orders", "--openlineage-url", &url]);
    assert_eq!(code(&out), 1);

    let events: Vec<serde_json::Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["START", "COMPLETE", "START", "COMPLETE", "START", "FAIL"]
    );
    for event in &events {
        let errors: Vec<String> = run_event
            .iter_errors(event)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{event:#}");
        // Every facet is valid against its own schema.
        let facets = event["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| {
                o["facets"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .chain(o["outputFacets"].as_object().into_iter().flatten())
            })
            .chain(event["job"]["facets"].as_object().into_iter().flatten())
            .chain(event["run"]["facets"].as_object().into_iter().flatten());
        for (name, facet) in facets {
            let reference = facet["_schemaURL"].as_str().unwrap();
            let errors: Vec<String> = validator(reference)
                .iter_errors(facet)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "facet {name}: {errors:?}\n{facet:#}");
        }
    }
    // The aggregate's COMPLETE carries the column lineage from its plan and the quality results.
    let complete = &events[3];
    assert_eq!(complete["job"]["name"], "analytics.orders_per_label");
    let output = &complete["outputs"][0];
    assert_eq!(
        output["name"],
        "analytics.orders_per_label.orders_per_label"
    );
    assert_eq!(
        output["facets"]["columnLineage"]["fields"]["label"]["inputFields"][0],
        serde_json::json!({"namespace": "mesh", "name": "ecommerce.orders.orders", "field": "label"})
    );
    assert!(
        output["facets"]["columnLineage"]["fields"]
            .get("row_count")
            .is_none()
    );
    assert!(
        output["facets"]["dataQualityAssertions"]["assertions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["success"] == true)
    );
    assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], 5);
    assert_eq!(
        output["facets"]["ownership"]["owners"][0]["name"],
        "team:analytics-team"
    );
    let fail = &events[5];
    assert!(
        fail["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("blocking check")
    );

    // The same events reached the catalog: the column edge is in its lineage graph.
    let out = mesh(
        ws,
        &["lineage", "analytics.orders_per_label", "--column", "label"],
    );
    assert!(
        stdout(&out).contains("mesh:ecommerce.orders.orders:label → mesh:analytics.orders_per_label.orders_per_label:label"),
        "{}",
        stdout(&out)
    );
}

/// The commit-info run id of every version of a Delta table, by version.
fn commits(table: &Path) -> Vec<(i64, Option<String>)> {
    let mut out = Vec::new();
    for name in versions(table) {
        let version: i64 = name.trim_end_matches(".json").parse().unwrap();
        let text = fs::read_to_string(table.join("_delta_log").join(&name)).unwrap();
        let run = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["commitInfo"]["mesh.run"].as_str().map(str::to_owned)
        });
        out.push((version, run));
    }
    out
}

/// What the catalog says: the port's snapshot (Delta version, run) and every run's state.
fn ledger(ws: &Path) -> (i64, String, Vec<(String, String)>) {
    let out = mesh(
        ws,
        &[
            "runs",
            "ecommerce.orders",
            "--output",
            "json",
            "--limit",
            "100",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let snapshot = &doc["snapshots"][0];
    let runs = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        snapshot["delta_version"].as_i64().unwrap(),
        snapshot["run"].as_str().unwrap().to_owned(),
        runs,
    )
}

/// The invariant: the catalog's snapshot is a Delta version committed by the run it names, and
/// that run succeeded.
fn consistent(ws: &Path, table: &Path) -> (i64, String) {
    let (version, run, runs) = ledger(ws);
    let tagged = commits(table)
        .into_iter()
        .find(|(v, _)| *v == version)
        .and_then(|(_, r)| r);
    assert_eq!(
        tagged.as_deref(),
        Some(run.as_str()),
        "snapshot {version} is run {run}'s commit"
    );
    assert!(
        runs.iter()
            .any(|(id, state)| *id == run && state == "succeeded"),
        "{runs:?}"
    );
    (version, run)
}

#[test]
fn killed_runs_leave_the_catalog_consistent_and_the_next_run_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, None, &[]);
    ok(&["publish", "ecommerce/orders"]);
    ok(&["run", "ecommerce/orders"]);
    let table = ws.join(".mesh/data/ecommerce/orders/orders/v0");
    consistent(ws, &table);

    // A kill at every step of write-audit-publish.
    for point in [
        "after-begin",
        "after-stage",
        "after-check",
        "after-committing",
        "after-commit",
    ] {
        let before = commits(&table).len();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
            .args(["run", "ecommerce/orders"])
            .current_dir(ws)
            .env("MESH_FAILPOINT", point)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the run was killed");
        let (version, _) = consistent(ws, &table);
        let killed = ledger(ws).2[0].clone();
        assert!(
            matches!(killed.1.as_str(), "running" | "committing"),
            "{point}: {killed:?}"
        );
        let committed = commits(&table).len() > before;
        assert_eq!(committed, point == "after-commit", "{point}");
        if committed {
            // The table has a version the catalog has not accepted yet: readers do not see it.
            assert!(version < commits(&table).last().unwrap().0, "{point}");
        }

        // The next run settles the killed one from the Delta log, then publishes.
        let out = mesh(ws, &["run", "ecommerce/orders"]);
        assert_eq!(code(&out), 0, "{point}: {}{}", stdout(&out), stderr(&out));
        assert!(
            stderr(&out).contains("settled 1 run(s)"),
            "{point}: {}",
            stderr(&out)
        );
        let (after, _) = consistent(ws, &table);
        assert_eq!(
            after,
            commits(&table).last().unwrap().0,
            "{point}: the latest version"
        );
        let runs = ledger(ws).2;
        let settled = runs.iter().find(|(id, _)| *id == killed.0).unwrap();
        let expected = if committed { "succeeded" } else { "failed" };
        assert_eq!(settled.1, expected, "{point}");
    }

    // And at random moments, with SIGKILL.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..8 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = std::time::Duration::from_millis(20 + rng % 400);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
            .args(["run", "ecommerce/orders"])
            .current_dir(ws)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        let _ = child.kill();
        let _ = child.wait();
        consistent(ws, &table);
        let out = mesh(ws, &["run", "ecommerce/orders"]);
        assert_eq!(
            code(&out),
            0,
            "round {round} (killed after {wait:?}): {}{}",
            stdout(&out),
            stderr(&out)
        );
        consistent(ws, &table);
    }
}

#[test]
fn team_mode_runs_on_postgres_and_s3_through_a_server() {
    let Some(endpoint) = crate::s3::endpoint() else {
        return;
    };
    let Ok(postgres) = std::env::var("MESH_TEST_POSTGRES_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "CI=true but MESH_TEST_POSTGRES_URL is not set");
        crate::notice("notice: MESH_TEST_POSTGRES_URL not set; skipping the team-mode run test");
        return;
    };
    let database = format!("mesh_cli_team_{}", std::process::id());
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(mesh_catalog::store::PostgresStore::create_database(
            &postgres, &database, true,
        ))
        .expect("a fresh database");
    let bucket = format!("mesh-team-{}", std::process::id());
    crate::s3::create_bucket(&endpoint, &bucket);
    let env = crate::s3::env(&endpoint);

    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let run_env = |args: &[&str]| crate::mesh_with_env(ws, args, &env);
    let ok = |args: &[&str]| {
        let out = run_env(args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, Some(("customer_orders", "derived")), &env);
    fs::write(
        ws.join("mesh.toml"),
        format!("[catalog]\nurl = \"{url}\"\n\n[storage]\nurl = \"s3://{bucket}/data\"\n"),
    )
    .unwrap();
    let token = ok(&["token", "create", "ci", "--role", "admin"])
        .trim()
        .to_owned();
    let server = crate::serve(ws, &env);
    let server_url = server.url.clone();
    let remote = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", server_url.as_str(), "--token", token.as_str()]);
        run_env(&all)
    };

    for dir in ["ecommerce/orders", "analytics/customer_orders"] {
        let out = remote(&["publish", dir]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    }
    let run = |dir: &str| -> serde_json::Value {
        let out = remote(&["run", dir, "--output", "json"]);
        crate::findings_json(&out)
    };
    let source = run("ecommerce/orders");
    assert_eq!(source["published"], true, "{source}");
    assert_eq!(
        source["location"],
        format!("s3://{bucket}/data/ecommerce/orders/orders/v0")
    );
    let approver = ok(&[
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
    crate::grant_input(
        ws,
        "analytics.customer_orders",
        "ecommerce.orders.orders",
        &env,
        Some((&server_url, &token, &approver)),
    );
    let derived = run("analytics/customer_orders");
    assert_eq!(
        (derived["published"].as_bool(), derived["rows"].as_i64()),
        (Some(true), Some(10))
    );

    // Bad upstream data never replaces the snapshot, on S3 as locally.
    let data = ws.join("ecommerce/orders/data/orders.csv");
    let text = fs::read_to_string(&data).unwrap();
    let first_row = text.lines().nth(1).unwrap().to_owned();
    fs::write(&data, format!("{text}{first_row}\n")).unwrap();
    let failed = run("ecommerce/orders");
    assert_eq!(failed["published"], false, "{failed}");
    let out = remote(&["runs", "ecommerce.orders", "--output", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let runs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(runs["snapshots"][0]["delta_version"], 1);
    assert_eq!(runs["snapshots"][0]["run"], source["run"]);
    let states: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "succeeded"]);
    let again = run("analytics/customer_orders");
    assert_eq!(
        (again["published"].as_bool(), again["rows"].as_i64()),
        (Some(true), Some(10))
    );
}

/// The same pipeline on Ballista standalone (a scheduler and an executor in the process):
/// `cargo test -p mesh-cli --features ballista`.
#[cfg(feature = "ballista")]
#[test]
fn runs_execute_on_ballista_standalone() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, Some(("orders_per_label", "aggregate")), &[]);
    ok(&["publish", "ecommerce/orders", "analytics/orders_per_label"]);
    crate::grant_input(
        ws,
        "analytics.orders_per_label",
        "ecommerce.orders.orders",
        &[],
        None,
    );
    for dir in ["ecommerce/orders", "analytics/orders_per_label"] {
        let out = ok(&["run", dir, "--executor", "ballista", "--output", "json"]);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["published"], true, "{dir}: {report}");
    }
    let out = ok(&["runs", "analytics.orders_per_label", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        runs["runs"][0]["rows_out"], 5,
        "five labels, counted on Ballista"
    );
    // The scans ran in Ballista's executor, which keeps their row counts.
    assert!(runs["runs"][0].get("rows_in").is_none(), "{runs}");
}

/// An output too big to hold (past a share of mesh.toml's `[engine] memory_limit`) streams to
/// its files, and the checks read those files back: the rows are all there, in several files,
/// and bad rows in a big output are caught as in a small one — nothing is committed and the
/// files written for it are gone. A limit that is not a size is refused with where it is.
#[test]
fn big_outputs_stream_to_files_within_the_memory_limit_and_are_still_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    crate::two_domains(ws, None, &[]);
    let settings = ws.join("mesh.toml");
    let base = fs::read_to_string(&settings).unwrap();
    fs::write(
        &settings,
        format!("{base}\n[engine]\nmemory_limit = \"64MiB\"\nspill_dir = \".mesh/spill\"\n"),
    )
    .unwrap();
    const TIMES: usize = 60_000;
    let transform = |id: &str| {
        format!(
            "SELECT {id} AS orders_id, CAST(label AS VARCHAR) AS label,\n\
             CAST(amount AS DOUBLE) AS amount, CAST(updated_at AS TIMESTAMP) AS updated_at\n\
             FROM raw_orders CROSS JOIN (SELECT unnest(range(0, {TIMES})) AS n) AS g\n\
             WHERE orders_id IS NOT NULL\n"
        )
    };
    let sql = ws.join("ecommerce/orders/transform.sql");
    fs::write(
        &sql,
        transform("CONCAT(CAST(orders_id AS VARCHAR), '-', CAST(n AS VARCHAR))"),
    )
    .unwrap();
    let rows_in_csv = fs::read_to_string(ws.join("ecommerce/orders/data/orders.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    let run = || -> serde_json::Value {
        let out = mesh(ws, &["run", "ecommerce/orders", "--output", "json"]);
        crate::findings_json(&out)
    };
    let out = mesh(ws, &["publish", "ecommerce/orders"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = run();
    assert_eq!(report["published"], true, "{report}");
    assert_eq!(report["streamed"], true, "{report}");
    assert_eq!(report["rows"], rows_in_csv * TIMES, "{report}");
    let table = ws.join(".mesh/data/ecommerce/orders/orders/v0");
    let files = parquet_files(&table);
    assert!(files >= 2, "one file for {} rows", rows_in_csv * TIMES);
    let count = mesh(
        ws,
        &[
            "query",
            "SELECT COUNT(DISTINCT orders_id) AS n FROM ecommerce.orders",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        stdout(&count),
        format!("n\n{}\n", rows_in_csv * TIMES),
        "{}",
        stderr(&count)
    );

    // The same output with every id repeated: the uniqueness check, run on the files, blocks.
    fs::write(&sql, transform("CAST(orders_id AS VARCHAR)")).unwrap();
    let before = versions(&table);
    let report = run();
    assert_eq!(report["published"], false, "{report}");
    assert_eq!(report["streamed"], true, "{report}");
    let blocking = report["blocking"].to_string();
    assert!(blocking.contains("orders_id"), "{report}");
    assert_eq!(versions(&table), before, "a version was committed");
    assert_eq!(
        parquet_files(&table),
        files,
        "the refused run's files stayed"
    );

    // A limit that is not one.
    fs::write(
        &settings,
        format!("{base}\n[engine]\nmemory_limit = \"2 parsecs\"\n"),
    )
    .unwrap();
    let out = mesh(ws, &["run", "ecommerce/orders"]);
    assert_eq!(code(&out), 2);
    let line = base.lines().count() + 3;
    assert!(
        stderr(&out).contains(&format!("mesh.toml:{line}:16: memory_limit:")),
        "{}",
        stderr(&out)
    );
}
