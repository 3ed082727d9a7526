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

/// Two `mesh serve` processes on one PostgreSQL, on the wall clock: eight products scheduled
/// every minute, three minutes of slots; each slot is claimed by one server and run once (the
/// first succeeds, the unchanged ones after it are skipped), no minute is missed, and the runs
/// in the catalog are exactly the succeeded slots. Skipped without MESH_TEST_POSTGRES_URL
/// (required under CI).
#[test]
fn two_servers_on_postgres_run_each_minute_once() {
    let Ok(postgres) = std::env::var("MESH_TEST_POSTGRES_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "CI=true but MESH_TEST_POSTGRES_URL is not set");
        crate::notice("notice: MESH_TEST_POSTGRES_URL not set; skipping two servers' schedules");
        return;
    };
    let database = format!("mesh_cli_schedule_{}", std::process::id());
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(mesh_catalog::store::PostgresStore::create_database(
            &postgres, &database, true,
        ))
        .expect("a fresh database");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    assert_eq!(code(&mesh(ws, &["init"])), 0);
    let toml = std::fs::read_to_string(ws.join("mesh.toml")).unwrap();
    std::fs::write(
        ws.join("mesh.toml"),
        format!(
            "[catalog]\nurl = \"{url}\"\n\n{}",
            toml.split_once("[storage]")
                .map(|(_, s)| format!("[storage]{s}"))
                .unwrap_or_default()
        ),
    )
    .unwrap();
    let products: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    for p in &products {
        let out = mesh(
            ws,
            &[
                "new",
                "product",
                p,
                "--domain",
                "ops",
                "--owner",
                "ops-team",
                "--email",
                "o@example.com",
            ],
        );
        assert_eq!(code(&out), 0, "{}", crate::stderr(&out));
        let descriptor = ws.join(format!("ops/{p}/product.odps.yaml"));
        let text = std::fs::read_to_string(&descriptor).unwrap();
        assert!(text.contains("cron: \"0 * * * *\""), "{text}");
        std::fs::write(
            &descriptor,
            text.replace("cron: \"0 * * * *\"", "cron: \"* * * * *\""),
        )
        .unwrap();
        let out = mesh(ws, &["publish", &format!("ops/{p}")]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), crate::stderr(&out));
    }
    let workspace = ws.display().to_string();
    let env = [
        ("MESH_NO_SCHEDULES", "false"),
        ("MESH_WORKSPACE", workspace.as_str()),
    ];
    let (one, two) = (crate::serve(ws, &env), crate::serve(ws, &env));
    let slots = |p: &str| -> Vec<serde_json::Value> {
        let out = mesh(
            ws,
            &[
                "schedule",
                &format!("ops.{p}"),
                "--last",
                "100",
                "--next",
                "0",
                "--output",
                "json",
            ],
        );
        assert_eq!(code(&out), 0, "{}", crate::stderr(&out));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        doc["products"][0]["last"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let finished = |s: &serde_json::Value| s["state"] != "claimed";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let done = products
            .iter()
            .all(|p| slots(p).iter().filter(|s| finished(s)).count() >= 3);
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three minutes of slots within five"
        );
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    drop((one, two));
    for p in &products {
        let mut all = slots(p);
        all.reverse();
        let all: Vec<&serde_json::Value> = all.iter().filter(|s| finished(s)).collect();
        // Consecutive minutes: none missed.
        let minutes: Vec<chrono::DateTime<chrono::Utc>> = all
            .iter()
            .map(|s| s["slot_at"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            minutes
                .windows(2)
                .all(|w| w[1] - w[0] == chrono::Duration::minutes(1)),
            "{p}: {minutes:?}"
        );
        let states: Vec<&str> = all.iter().map(|s| s["state"].as_str().unwrap()).collect();
        assert_eq!(states[0], "succeeded", "{p}: {all:?}");
        assert!(states[1..].iter().all(|s| *s == "skipped"), "{p}: {all:?}");
        assert!(all.iter().all(|s| s["attempts"] == 1), "{p}: {all:?}");
        let out = mesh(ws, &["runs", &format!("ops.{p}"), "--output", "json"]);
        let runs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let runs = runs["runs"].as_array().unwrap();
        assert_eq!(
            runs.len(),
            1,
            "{p}: one run for one succeeded slot: {runs:?}"
        );
        assert_eq!(runs[0]["state"], "succeeded", "{p}");
    }
}
