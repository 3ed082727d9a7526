//! `mesh access`: analytics asks e-commerce for its orders, the owner approves without the
//! e-mail column, then revokes; a requester cannot approve their own request. Over HTTP, with
//! tokens, as two teams would.

use std::fs;

use crate::{code, mesh, stderr, stdout};

#[test]
fn analytics_gets_orders_without_email_for_thirty_days() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, None, &[]);
    // An e-mail column, classified and tagged as the policies want.
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap().replace(
        "      - name: amount\n",
        "      - name: email\n        description: Where the receipt goes.\n        logicalType: string\n        required: false\n        classification: confidential\n        encryptedName: email_enc\n        tags: [pii]\n      - name: amount\n",
    );
    fs::write(&contract, text).unwrap();
    let product = ws.join("ecommerce/orders/product.odps.yaml");
    let text = fs::read_to_string(&product)
        .unwrap()
        .replace("value: internal", "value: confidential");
    fs::write(&product, text).unwrap();
    let sql = ws.join("ecommerce/orders/transform.sql");
    let text = fs::read_to_string(&sql).unwrap().replace(
        "CAST(label AS VARCHAR) AS label,",
        "CAST(label AS VARCHAR) AS label,\n       concat(orders_id, '@mail.example') AS email,",
    );
    assert!(text.contains("AS email"), "{text}");
    fs::write(&sql, text).unwrap();
    ok(&["publish", "ecommerce/orders"]);
    ok(&["run", "ecommerce/orders"]);
    let token = |args: &[&str]| ok(args).trim().to_owned();
    let analyst = token(&[
        "token",
        "create",
        "ana",
        "--role",
        "member",
        "--domain",
        "analytics",
    ]);
    let owner = token(&[
        "token",
        "create",
        "olga",
        "--role",
        "owner",
        "--domain",
        "ecommerce",
    ]);

    let server = crate::serve(ws, &[]);
    let url = server.url.clone();
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["access"];
        all.extend_from_slice(args);
        all.extend([
            "--server",
            url.as_str(),
            "--token",
            token,
            "--output",
            "json",
        ]);
        mesh(ws, &all)
    };
    let json = |out: std::process::Output| -> serde_json::Value {
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };

    // Confidential columns need a purpose an owner can judge.
    let out = remote(
        &analyst,
        &["request", "ecommerce.orders.orders", "--purpose", "churn"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("state a purpose"), "{}", stderr(&out));
    let request = json(remote(
        &analyst,
        &[
            "request",
            "ecommerce.orders.orders",
            "--purpose",
            "Customer lifetime value per segment.",
            "--days",
            "60",
        ],
    ));
    let id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(request["policy"]["sensitive"], serde_json::json!(["email"]));

    // The requester cannot approve; the owner approves without e-mail, for 30 days.
    let out = remote(&analyst, &["approve", &id]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("(403)"), "{}", stderr(&out));
    let approved = json(remote(
        &owner,
        &[
            "approve",
            &id,
            "--columns",
            "orders_id,label,amount,updated_at",
            "--days",
            "30",
        ],
    ));
    assert_eq!(approved["state"], "approved");
    let grant = approved["grant"]["id"].as_str().unwrap().to_owned();
    assert!(
        !approved["grant"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "email")
    );
    let grants = json(remote(&analyst, &["grants"]));
    assert_eq!(grants[0]["active"], true);

    // Revoked: the grant stops at once.
    let revoked = json(remote(
        &owner,
        &["revoke", &grant, "--reason", "project ended"],
    ));
    assert_eq!(revoked["active"], false);
    let grants = json(remote(&analyst, &["grants"]));
    assert_eq!(grants[0]["active"], false);
}
