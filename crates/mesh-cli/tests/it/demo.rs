//! `mesh demo`: the seed mesh, built end to end in a fresh folder, as the README's first command
//! does (without serving).

use std::fs;

use crate::{code, mesh, stderr, stdout};

#[test]
fn the_demo_mesh_is_built_run_and_healthy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = mesh(tmp.path(), &["demo", "demo", "--no-serve"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let told = stderr(&out);
    for step in [
        "publish the platform's global policies",
        "publish the five data products",
        "olga (e-commerce) approves it",
        "run analytics/customer_lifetime_value",
        "the mesh is ready",
    ] {
        assert!(told.contains(step), "{step}: {told}");
    }
    let json = |args: &[&str]| -> serde_json::Value {
        let out = mesh(&dir, args);
        crate::findings_json(&out)
    };

    // Every file the demo wrote lints clean, policies included.
    let out = mesh(
        &dir,
        &["lint", "--strict", ".", "--policies", "platform/policies"],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    // Five products, every port served, every service level met with fresh data.
    let sla = json(&["sla", "--output", "json"]);
    let ports = sla["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 5, "{sla:#}");
    for port in ports {
        assert_eq!(port["status"], "met", "{port:#}");
        assert!(port["metrics"]["rows"].as_i64().unwrap() > 0, "{port:#}");
    }

    // The lifetime-value product joins orders with customers, through the grants.
    let granted = json(&["audit", "--kind", "access.granted", "--output", "json"]);
    let subjects: Vec<&str> = granted
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["ecommerce.orders", "ecommerce.customers"],
        "{granted:#}"
    );
    let lineage = json(&[
        "lineage",
        "analytics.customer_lifetime_value",
        "--upstream",
        "--output",
        "json",
    ]);
    let text = lineage.to_string();
    assert!(
        text.contains("ecommerce.orders") && text.contains("ecommerce.customers"),
        "{text}"
    );
    let top = json(&[
        "query",
        "SELECT segment, count(*) AS customers, sum(revenue) AS revenue FROM analytics.customer_lifetime_value GROUP BY segment ORDER BY revenue DESC",
        "--output",
        "json",
    ]);
    let rows = top["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{top:#}");
    assert_eq!(rows[0]["segment"], "consumer", "{top:#}");

    // Run again on the same folder: the earlier demo is rebuilt, not refused; a folder that is
    // not a demo is refused.
    let again = mesh(tmp.path(), &["demo", "demo", "--no-serve"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(stderr(&again).contains("removed the earlier demo"));
    let other = tmp.path().join("mine");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("notes.txt"), "keep me").unwrap();
    let refused = mesh(tmp.path(), &["demo", "mine", "--no-serve"]);
    assert_ne!(code(&refused), 0);
    assert!(
        stderr(&refused).contains("not an earlier demo"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        fs::read_to_string(other.join("notes.txt")).unwrap(),
        "keep me"
    );
}
