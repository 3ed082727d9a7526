//! `mesh publish`, `show`, `versions`, `deprecate`, `retire` on a workspace's SQLite catalog: the
//! flows a domain team runs, end to end through the binary.

use std::fs;
use std::path::Path;

use crate::{code, mesh, stderr, stdout};

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn publish_show_deprecate_on_the_local_catalog() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mesh");
    copy_dir(&examples, ws);

    // Outside a workspace the catalog commands say what to do.
    let out = mesh(ws, &["show", "ecommerce.orders"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("run `mesh init`"), "{}", stderr(&out));

    assert_eq!(code(&mesh(ws, &["init"])), 0);
    let out = mesh(
        ws,
        &["publish", "ecommerce/orders", "analytics/customer_ltv"],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Published ecommerce.orders@1.2.0"),
        "{}",
        stdout(&out)
    );
    assert!(ws.join(".mesh/catalog.db").is_file());

    // Found at once, typo and all; filters narrow it.
    let out = mesh(ws, &["search", "ordrs", "placed"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ecommerce.orders@1.2.0"),
        "{}",
        stdout(&out)
    );
    let out = mesh(
        ws,
        &[
            "search",
            "orders",
            "--domain",
            "analytics",
            "--output",
            "json",
        ],
    );
    let found: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(found["hits"][0]["id"], "analytics.customer_ltv", "{found}");
    assert_eq!(found["facets"]["domain"]["analytics"], 1);

    // Lineage from the input ports, in every format.
    let out = mesh(
        ws,
        &[
            "lineage",
            "analytics.customer_ltv",
            "--upstream",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let graph: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let ids: Vec<&str> = graph["graph"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"job:mesh:ecommerce.orders"), "{ids:?}");
    let out = mesh(
        ws,
        &[
            "lineage",
            "ecommerce.orders",
            "--downstream",
            "--output",
            "dot",
        ],
    );
    assert!(
        stdout(&out).starts_with("digraph lineage {"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("\"job:mesh:analytics.customer_ltv\""));
    let out = mesh(ws, &["lineage", "ecommerce.orders", "--output", "mermaid"]);
    assert!(stdout(&out).starts_with("flowchart LR"), "{}", stdout(&out));
    let out = mesh(ws, &["lineage", "ecommerce.orders", "--column", "nope"]);
    assert_eq!(code(&out), 1);

    // The whole catalog against the standard pack.
    let out = mesh(ws, &["policy", "audit", "--output", "json"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let audit: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        (audit["products"].as_u64(), audit["compliant"].as_u64()),
        (Some(2), Some(2))
    );

    // Again: nothing changes.
    let out = mesh(ws, &["publish", "ecommerce/orders"]);
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("Unchanged ecommerce.orders@1.2.0"),
        "{}",
        stdout(&out)
    );

    // A breaking change under the same major is refused, pointing into the new contract.
    let product = ws.join("ecommerce/orders/product.odps.yaml");
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&product)
        .unwrap()
        .replace("1.2.0", "1.3.0");
    fs::write(&product, text).unwrap();
    let c = fs::read_to_string(&contract).unwrap();
    let c = c.replace("version: 1.2.0", "version: 1.3.0").replacen(
        "      - name: placed_at\n        logicalType: timestamp",
        "      - name: placed_at\n        logicalType: date",
        1,
    );
    fs::write(&contract, &c).unwrap();
    let out = mesh(ws, &["publish", "ecommerce/orders"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ecommerce/orders/contracts/orders.odcs.yaml:")
            && err.contains("schema.orders.properties.placed_at.logicalType")
            && err.contains("the type changed"),
        "{err}"
    );
    // As a new major version it goes through.
    fs::write(
        &product,
        fs::read_to_string(&product)
            .unwrap()
            .replace("1.3.0", "2.0.0"),
    )
    .unwrap();
    fs::write(&contract, c.replace("version: 1.3.0", "version: 2.0.0")).unwrap();
    let out = mesh(ws, &["publish", "ecommerce/orders", "--output", "json"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["results"][0]["outcome"], "published");
    assert_eq!(
        json["results"][0]["report"]["ports"][0]["previous"],
        serde_json::Value::Null
    );

    let out = mesh(ws, &["versions", "ecommerce.orders"]);
    assert_eq!(code(&out), 0);
    let listed = stdout(&out);
    assert!(
        listed.find("2.0.0").unwrap() < listed.find("1.2.0").unwrap(),
        "{listed}"
    );

    let out = mesh(ws, &["show", "ecommerce.orders@1", "--output", "json"]);
    assert_eq!(code(&out), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["version"], "1.2.0");
    assert_eq!(v["ports"][0]["contract_id"], "ecommerce.orders.orders");

    let out = mesh(ws, &["show", "ecommerce.orders@1"]);
    assert!(
        stdout(&out).contains("orders: order_id string!"),
        "{}",
        stdout(&out)
    );

    // Deprecation lists the consumer that reads the orders contract.
    let out = mesh(
        ws,
        &[
            "deprecate",
            "ecommerce.orders@1.2.0",
            "--sunset",
            "2999-01-01",
            "--guide",
            "Read @2.",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("analytics.customer_ltv@0.3.0"),
        "{}",
        stdout(&out)
    );
    let out = mesh(ws, &["retire", "ecommerce.orders@1.2.0"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("before its sunset date 2999-01-01"),
        "{}",
        stderr(&out)
    );

    // Bad input: exit 2 or 1 with a clear message, never a panic.
    let out = mesh(
        ws,
        &[
            "deprecate",
            "ecommerce.orders",
            "--sunset",
            "2999-01-01",
            "--guide",
            "x",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("is not PRODUCT@VERSION"),
        "{}",
        stderr(&out)
    );
    let out = mesh(
        ws,
        &[
            "deprecate",
            "ecommerce.orders@2.0.0",
            "--sunset",
            "soon",
            "--guide",
            "x",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("is not a date"), "{}", stderr(&out));
    let out = mesh(ws, &["show", "nobody.nothing"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let out = mesh(ws, &["publish", "no/such/dir"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn commands_work_against_a_server_with_a_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mesh"),
        ws,
    );
    assert_eq!(code(&mesh(ws, &["init"])), 0);
    let token = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    let owner = token(&[
        "token",
        "create",
        "alice",
        "--role",
        "owner",
        "--domain",
        "ecommerce",
    ]);
    let reader = token(&["token", "create", "carol", "--role", "consumer"]);
    assert!(owner.starts_with("mesh_"));
    let bad = mesh(ws, &["token", "create", "x", "--role", "king"]);
    assert_eq!(code(&bad), 2);

    let server = crate::serve(ws, &[]);
    let remote = |args: &[&str], token: &str| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", server.url.as_str(), "--token", token]);
        mesh(ws, &all)
    };
    let out = remote(&["publish", "ecommerce/orders"], &owner);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("Published ecommerce.orders@1.2.0"));

    // The consumer reads, but may not publish: the server says so, exit 2.
    let out = remote(&["show", "ecommerce.orders@1"], &reader);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ecommerce.orders@1.2.0"),
        "{}",
        stdout(&out)
    );
    let out = remote(&["publish", "ecommerce/orders"], &reader);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("(403)"), "{}", stderr(&out));
    let out = remote(&["show", "ecommerce.orders"], "mesh_wrong");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("(401)"), "{}", stderr(&out));

    // A refusal over HTTP prints the same findings as locally.
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract)
        .unwrap()
        .replace("logicalType: timestamp", "logicalType: instant");
    fs::write(&contract, text).unwrap();
    let out = remote(&["publish", "ecommerce/orders"], &owner);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("ecommerce/orders/contracts/orders.odcs.yaml:"),
        "{}",
        stderr(&out)
    );
    let out = remote(
        &["versions", "ecommerce.orders", "--output", "json"],
        &reader,
    );
    let versions: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(versions[0]["version"], "1.2.0");

    // Governance over HTTP: the domain's owner publishes its policies, a consumer may not; the
    // audit runs on the server.
    let policies = ws.join("ecommerce-policies");
    fs::create_dir_all(&policies).unwrap();
    fs::write(
        policies.join("no_drafts.rego"),
        "# METADATA\n# title: No drafts\n# custom:\n#   id: ecommerce-no-drafts\n#   enforcement: warn\npackage ecommerce.no_drafts\n\nimport rego.v1\n\ndeny contains \"draft\" if input.product.status == \"draft\"\n",
    )
    .unwrap();
    let out = remote(
        &[
            "policy",
            "publish",
            "ecommerce-policies",
            "--domain",
            "ecommerce",
        ],
        &reader,
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("(403)"), "{}", stderr(&out));
    let out = remote(
        &[
            "policy",
            "publish",
            "ecommerce-policies",
            "--domain",
            "ecommerce",
        ],
        &owner,
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let out = remote(&["policy", "list", "--domain", "ecommerce"], &reader);
    assert!(
        stdout(&out).contains("ecommerce-no-drafts"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = remote(&["policy", "audit", "--output", "json"], &owner);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let audit: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(audit["products"], 1, "{audit}");

    // A revoked token stops working at once, on the running server.
    assert_eq!(code(&mesh(ws, &["token", "revoke", &reader])), 0);
    let out = remote(&["show", "ecommerce.orders"], &reader);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("(401)"), "{}", stderr(&out));
    assert_eq!(code(&mesh(ws, &["token", "revoke", &reader])), 1);
}
