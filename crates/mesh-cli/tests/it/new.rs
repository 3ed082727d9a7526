//! `mesh new product`: what it writes lints clean (schemas, semantics, the policies), its tests
//! pass, it publishes, and it never overwrites without `--force`.

use std::fs;

use crate::{code, mesh, stderr, stdout};

#[test]
fn new_products_lint_test_and_publish_as_generated() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    assert_eq!(code(&mesh(ws, &["init"])), 0);
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let created = ok(&[
        "new",
        "product",
        "orders",
        "--domain",
        "ecommerce",
        "--owner",
        "ecommerce-orders",
    ]);
    assert!(created.contains("Created source product ecommerce.orders in ecommerce/orders"));
    ok(&[
        "new",
        "product",
        "customer_orders",
        "--domain",
        "analytics",
        "--type",
        "derived",
        "--owner",
        "analytics-team",
        "--input",
        "ecommerce.orders",
    ]);
    ok(&[
        "new",
        "product",
        "orders_per_label",
        "--domain",
        "analytics",
        "--type",
        "aggregate",
        "--owner",
        "analytics-team",
        "--input",
        "ecommerce.orders.orders",
    ]);
    for file in [
        "ecommerce/orders/product.odps.yaml",
        "ecommerce/orders/contracts/orders.odcs.yaml",
        "ecommerce/orders/transform.sql",
        "ecommerce/orders/data/orders.csv",
        "ecommerce/orders/policies/domain_rules.rego",
        "ecommerce/orders/policies/domain_rules_test.rego",
        ".github/workflows/mesh.yml",
        "ecommerce/orders/README.md",
        "analytics/customer_orders/transform.sql",
    ] {
        assert!(ws.join(file).is_file(), "{file}");
    }
    // The derived product's output starts from its input's columns.
    let sql = fs::read_to_string(ws.join("analytics/customer_orders/transform.sql")).unwrap();
    assert!(sql.contains("FROM orders"), "{sql}");
    assert!(sql.contains("orders_id"), "{sql}");
    let agg = fs::read_to_string(ws.join("analytics/orders_per_label/transform.sql")).unwrap();
    assert!(agg.contains("GROUP BY label"), "{agg}");

    // Lint (with the policies, strict as publish is), the Rego tests, the contract on the sample.
    assert!(ok(&["lint", "--strict", "."]).contains("checked 6 files: no problems"));
    // Each runs hourly (the contract promises data at most a day old); a product that reads
    // another also runs when its input moves.
    let schedules: serde_json::Value = serde_json::from_str(&ok(&[
        "schedule",
        "--at",
        "2026-12-05T10:20:00Z",
        "--next",
        "1",
        "--output",
        "json",
    ]))
    .expect("json");
    for p in schedules["products"].as_array().unwrap() {
        let product = p["product"].as_str().unwrap();
        assert_eq!(p["schedule"]["cron"], "0 * * * *", "{product}");
        assert_eq!(
            p["schedule"]["upstream"],
            product.starts_with("analytics."),
            "{product}"
        );
        assert_eq!(p["next"][0]["at"], "2026-12-05T11:00:00Z", "{product}");
    }
    assert_eq!(schedules["products"].as_array().map(Vec::len), Some(3));
    assert!(ok(&["policy", "test", "ecommerce/orders/policies"]).contains("0 failed"));
    let out = mesh(
        &ws.join("ecommerce/orders"),
        &[
            "test",
            "contracts/orders.odcs.yaml",
            "--data",
            "data/orders.csv",
            "--format",
            "csv",
            "--checks",
            "schema,quality",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    ok(&[
        "policy",
        "check",
        "ecommerce/orders",
        "analytics/customer_orders",
    ]);
    ok(&[
        "publish",
        "ecommerce/orders",
        "analytics/customer_orders",
        "analytics/orders_per_label",
    ]);

    // Never overwrites: nothing written, exit 2; --force does.
    let readme = ws.join("ecommerce/orders/README.md");
    fs::write(&readme, "edited\n").unwrap();
    let out = mesh(
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
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("9 files exist already; nothing was written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&readme).unwrap(), "edited\n");
    ok(&[
        "new",
        "product",
        "orders",
        "--domain",
        "ecommerce",
        "--owner",
        "ecommerce-orders",
        "--force",
    ]);
    assert_ne!(fs::read_to_string(&readme).unwrap(), "edited\n");
}

#[test]
fn new_refuses_what_cannot_work() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    assert_eq!(code(&mesh(ws, &["init"])), 0);
    for (args, why) in [
        (
            vec![
                "new", "product", "Orders", "--domain", "sales", "--owner", "t",
            ],
            "name `Orders` is not snake_case",
        ),
        (
            vec![
                "new", "product", "o", "--domain", "sales", "--owner", "t", "--input", "a.b",
            ],
            "a source product reads external data",
        ),
        (
            vec![
                "new", "product", "o", "--domain", "sales", "--owner", "t", "--type", "derived",
            ],
            "name at least one with --input",
        ),
        (
            vec![
                "new",
                "product",
                "o",
                "--domain",
                "sales",
                "--owner",
                "t",
                "--type",
                "derived",
                "--input",
                "nowhere.nothing",
            ],
            "cannot find the contract of input nowhere.nothing.nothing",
        ),
        (
            vec![
                "new", "product", "o", "--domain", "sales", "--owner", "t", "--type", "derived",
                "--input", "a.b.c.d",
            ],
            "is not DOMAIN.PRODUCT or DOMAIN.PRODUCT.PORT",
        ),
    ] {
        let out = mesh(ws, &args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    assert!(!ws.join("sales").exists(), "nothing written");
}
