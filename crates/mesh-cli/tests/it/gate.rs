//! One gate for every way in: a reader of analytics without a grant asks for e-commerce's orders
//! over HTTP, over Arrow Flight SQL, through the CLI on the catalog database, and through a
//! product's pipeline (`mesh run`). Each way is refused by the same decision, and each refusal
//! is the same event in e-commerce's audit log. Then, granted every column, the pipeline still
//! does not see what the port masks — as a query would not.

use std::fs;
use std::path::Path;

use crate::{code, mesh, mesh_with_env, stderr, stdout};

/// `analytics.customer_orders`, reading `ecommerce.orders.orders` and counting its e-mails
/// (`COUNT(email)` per label), published.
fn counting_emails(ws: &Path) {
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
    };
    ok(&[
        "new",
        "product",
        "customer_orders",
        "--domain",
        "analytics",
        "--type",
        "aggregate",
        "--owner",
        "analytics-team",
        "--input",
        "ecommerce.orders",
    ]);
    let dir = ws.join("analytics/customer_orders");
    let sql = dir.join("transform.sql");
    let text = fs::read_to_string(&sql).unwrap().replace(
        "COUNT(*) AS row_count",
        "COUNT(*) AS row_count, COUNT(email) AS emails",
    );
    assert!(text.contains("AS emails"), "{text}");
    fs::write(&sql, text).unwrap();
    let contract = dir.join("contracts/customer_orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap().replace(
        "    quality:\n      - metric: rowCount",
        "      - name: emails\n        description: How many of those rows have an e-mail address.\n        logicalType: integer\n        required: true\n    quality:\n      - metric: rowCount",
    );
    assert!(text.contains("name: emails"), "{text}");
    fs::write(&contract, text).unwrap();
    ok(&["publish", "analytics/customer_orders"]);
}

/// The `access.read_denied` events of `ecommerce.orders`: (actor, table).
fn denials(ws: &Path) -> Vec<(String, String)> {
    let out = mesh(
        ws,
        &[
            "audit",
            "ecommerce.orders",
            "--kind",
            "access.read_denied",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let events: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["kind"], "access.read_denied", "{e}");
            assert_eq!(e["subject"], "ecommerce.orders", "{e}");
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["payload"]["table"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn one_denial_at_every_way_in() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let (analyst, _owner) = crate::access::orders_with_email(ws);
    counting_emails(ws);
    // Only the reads this test makes: no scheduled run (whose own refused read of an ungranted
    // input would be recorded too, at a time of the orchestrator's choosing); `serve` starts none.
    let server = crate::serve(ws, &[]);
    let sql = "SELECT * FROM ecommerce.orders";
    let ana = ("ana".to_owned(), "ecommerce.orders".to_owned());

    // HTTP.
    let out = mesh(
        ws,
        &["query", sql, "--server", &server.url, "--token", &analyst],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("not found") && stderr(&out).contains("(404)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(denials(ws), std::slice::from_ref(&ana));

    // Arrow Flight SQL, from Python's ADBC driver, as a notebook would.
    if let Some(python) = crate::python_adbc() {
        let flight = server.url.replace("http://", "grpc://");
        let read = crate::access::adbc(python, &flight, &analyst, sql, "basic");
        let error = read["error"].as_str().unwrap_or_default();
        assert!(error.contains("not found"), "{read}");
        let after = denials(ws);
        assert!(after.len() > 1, "{after:?}");
        assert!(after.iter().all(|d| *d == ana), "{after:?}");
    }
    let before = denials(ws).len();

    // The CLI on the catalog database, as the analyst's token.
    let out = mesh(ws, &["query", sql, "--token", &analyst]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let after = denials(ws);
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last(), Some(&ana));

    // A pipeline: the product's service identity has no grant either.
    let out = mesh_with_env(
        ws,
        &["run", "analytics/customer_orders"],
        &[("USER", "ana")],
    );
    assert_ne!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains(
            "analytics.customer_orders has no active grant to read ecommerce.orders.orders"
        ),
        "{}",
        stderr(&out)
    );
    let after = denials(ws);
    assert_eq!(after.len(), before + 2);
    assert_eq!(
        after.last(),
        Some(&(
            "analytics.customer_orders".to_owned(),
            "ecommerce.orders".to_owned()
        ))
    );
    // Nothing of e-commerce reached analytics.
    assert!(!ws.join(".mesh/data/analytics").exists());
}

/// A hostile domain's pipeline with a grant of every column: what the port masks for readers
/// outside e-commerce stays masked in the pipeline too, so it cannot be copied into a product.
#[test]
fn a_pipeline_sees_what_a_query_would_and_no_more() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    crate::access::orders_with_email(ws);
    counting_emails(ws);
    crate::grant_input(
        ws,
        "analytics.customer_orders",
        "ecommerce.orders.orders",
        &[],
        None,
    );
    let out = mesh(ws, &["run", "analytics/customer_orders"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let out = mesh(
        ws,
        &[
            "query",
            "SELECT SUM(row_count) AS rows, SUM(emails) AS emails FROM analytics.customer_orders",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["rows"][0]["rows"], 10, "{result}");
    assert_eq!(
        result["rows"][0]["emails"], 0,
        "the masked column came through: {result}"
    );
}
