//! `mesh schedule`: a product's schedule and next slots, from its descriptor, on a clock the test
//! sets (`--at`); a broken schedule is an error at file:line:col, in `mesh lint` too.

use crate::{code, mesh, stdout};

fn descriptor(id: &str, schedule: &str) -> String {
    format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: {id}\nname: p\nversion: 1.0.0\nstatus: active\n\
         domain: sales\ncustomProperties:\n  - property: schedule\n    value:\n{schedule}"
    )
}

#[test]
fn next_slots_follow_the_zone_and_mistakes_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("orders")).unwrap();
    std::fs::create_dir_all(root.join("stock")).unwrap();
    std::fs::write(
        root.join("orders/orders.odps.yaml"),
        descriptor(
            "sales.orders",
            "      cron: \"30 2 * * *\"\n      timezone: Europe/Berlin\n      on: upstream\n",
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("stock/stock.odps.yaml"),
        descriptor("sales.stock", "      on: upstream\n      retries: 0\n"),
    )
    .unwrap();
    // Across the night Berlin's clocks go forward: 02:30 does not exist on 29 March 2026.
    let out = mesh(
        root,
        &[
            "schedule",
            "--at",
            "2026-03-27T12:00:00Z",
            "--next",
            "3",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let products = doc["products"].as_array().unwrap();
    let orders = products
        .iter()
        .find(|p| p["product"] == "sales.orders")
        .unwrap();
    let next: Vec<&str> = orders["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["at"].as_str().unwrap())
        .collect();
    assert_eq!(
        next,
        [
            "2026-03-28T01:30:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    assert_eq!(orders["schedule"]["upstream"], true);
    let stock = products
        .iter()
        .find(|p| p["product"] == "sales.stock")
        .unwrap();
    assert_eq!(stock["schedule"]["retries"], 0);
    assert_eq!(
        stock["next"].as_array().map(Vec::len),
        Some(0),
        "upstream only"
    );

    // A mistake: exit 1, located, with a hint; `mesh lint` says the same.
    std::fs::write(
        root.join("stock/stock.odps.yaml"),
        descriptor("sales.stock", "      cron: \"0 25 * * *\"\n"),
    )
    .unwrap();
    let out = mesh(root, &["schedule", "--at", "2026-03-27T12:00:00Z"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(
        text.contains(
            "stock/stock.odps.yaml:11:13: error: cron `0 25 * * *`: hour `25`: 25 is outside 0-23"
        ),
        "{text}"
    );
    let out = mesh(root, &["lint", "stock"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("stock/stock.odps.yaml:11:13"), "{text}");

    // A careless clock: not an instant, or asking for a million slots.
    let out = mesh(root, &["schedule", "--at", "yesterday"]);
    assert_eq!(code(&out), 2);
    let out = mesh(root, &["schedule", "--next", "1000000"]);
    assert_eq!(code(&out), 2);
}
