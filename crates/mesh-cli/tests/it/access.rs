//! `mesh access`: analytics asks e-commerce for its orders, the owner approves without the
//! e-mail column, then revokes; a requester cannot approve their own request. Over HTTP, with
//! tokens, as two teams would.

use std::fs;
use std::path::Path;

use crate::{code, mesh, stderr, stdout};

/// `ecommerce.orders` with a confidential `email` column, published and run; tokens for an
/// analyst of analytics (`ana`) and an owner of e-commerce (`olga`).
pub(crate) fn orders_with_email(ws: &Path) -> (String, String) {
    orders_with_email_masked(ws, None)
}

/// [`orders_with_email`], the contract saying how a masked e-mail is hidden (`hash`, ...).
pub(crate) fn orders_with_email_masked(ws: &Path, mask: Option<&str>) -> (String, String) {
    let ok = |args: &[&str]| {
        let out = mesh(ws, args);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    crate::two_domains(ws, None, &[]);
    // An e-mail column, classified and tagged as the policies want.
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let mask = mask
        .map(|m| {
            format!(
                "        customProperties:\n          - property: mask\n            value: {m}\n"
            )
        })
        .unwrap_or_default();
    let text = fs::read_to_string(&contract).unwrap().replace(
        "      - name: amount\n",
        &format!("      - name: email\n        description: Where the receipt goes.\n        logicalType: string\n        required: false\n        classification: confidential\n        encryptedName: email_enc\n        tags: [pii]\n{mask}      - name: amount\n"),
    );
    fs::write(&contract, text).unwrap();
    let product = ws.join("ecommerce/orders/product.odps.yaml");
    // The port masks the e-mail for readers outside e-commerce, unless a grant names it.
    let text = fs::read_to_string(&product)
        .unwrap()
        .replace("value: internal", "value: confidential")
        .replace(
            "    contractId: ecommerce.orders.orders\n",
            "    contractId: ecommerce.orders.orders\n    customProperties:\n      - property: masked\n        value: [email]\n",
        );
    assert!(text.contains("property: masked"), "{text}");
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
    (analyst, owner)
}

#[test]
fn analytics_gets_orders_without_email_for_thirty_days() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let (analyst, owner) = orders_with_email(ws);
    // The owning domain's webhook, down at first: the server retries.
    let hook = crate::receiver("/hooks/access", 1);
    let server = crate::serve(ws, &[("MESH_ACCESS_WEBHOOK", hook.url.as_str())]);
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

    // The analyst reads: e-mail masked, everything else there — over HTTP...
    let sql = "SELECT * FROM ecommerce.orders ORDER BY orders_id";
    let query = |token: &str| {
        mesh(
            ws,
            &[
                "query", sql, "--server", &url, "--token", token, "--output", "json",
            ],
        )
    };
    let read = json(query(&analyst));
    assert!(
        read["columns"]
            .as_array()
            .unwrap()
            .contains(&"email".into())
    );
    let rows = read["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "{read}");
    for row in rows {
        assert!(row["email"].is_null(), "{row}");
        assert!(
            row["label"].is_string() && row["amount"].is_number(),
            "{row}"
        );
    }
    // ...and over Arrow Flight SQL, from Python's ADBC driver, as a notebook would.
    let flight_url = url.replace("http://", "grpc://");
    if let Some(python) = crate::python_adbc() {
        for auth in ["basic", "bearer"] {
            let read = adbc(python, &flight_url, &analyst, sql, auth);
            assert!(read.get("error").is_none(), "{auth}: {read}");
            let rows = read["rows"].as_array().unwrap();
            assert_eq!(rows.len(), 10, "{read}");
            assert!(rows.iter().all(|r| r["email"].is_null()), "{read}");
            assert!(rows.iter().all(|r| r["label"].is_string()), "{read}");
            assert!(
                read["tables"]
                    .as_array()
                    .unwrap()
                    .contains(&"mesh.ecommerce.orders".into()),
                "{read}"
            );
        }
        let wrong = adbc(python, &flight_url, "not-a-token", sql, "basic");
        assert!(
            wrong["error"].as_str().unwrap().contains("nauthenticated"),
            "{wrong}"
        );
    }

    // The owning domain sees who reads its product, how often, how much.
    let usage = json(mesh(
        ws,
        &[
            "access",
            "usage",
            "ecommerce.orders",
            "--server",
            &url,
            "--token",
            &owner,
            "--output",
            "json",
        ],
    ));
    assert_eq!(usage[0]["reader"], "ana", "{usage}");
    let reads = usage[0]["reads"].as_i64().unwrap();
    assert!(reads >= 1, "{usage}");
    assert_eq!(
        usage[0]["rows_read"].as_i64().unwrap(),
        10 * reads,
        "{usage}"
    );

    // Revoked: the grant stops at once, and the next read is refused.
    let revoked = json(remote(
        &owner,
        &["revoke", &grant, "--reason", "project ended"],
    ));
    assert_eq!(revoked["active"], false);
    let grants = json(remote(&analyst, &["grants"]));
    assert_eq!(grants[0]["active"], false);
    let out = query(&analyst);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    if let Some(python) = crate::python_adbc() {
        let read = adbc(python, &flight_url, &analyst, sql, "basic");
        assert!(
            read["error"].as_str().unwrap().contains("not found"),
            "{read}"
        );
    }

    // The webhook heard of the request, the grant and the revocation (after a retry).
    let events = || -> Vec<String> {
        hook.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["event"].to_string())
            .collect()
    };
    for _ in 0..100 {
        if events().len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut heard = events();
    heard.sort();
    assert_eq!(
        heard,
        [
            "\"access.granted\"",
            "\"access.requested\"",
            "\"access.revoked\""
        ],
        "attempts: {:?}",
        hook.attempts
    );
    assert!(hook.attempts.load(std::sync::atomic::Ordering::SeqCst) >= 4);

    // The audit log shows every step, in order.
    let audit = json(mesh(
        ws,
        &[
            "audit",
            "ecommerce.orders",
            "--kind",
            "access.",
            "--server",
            &url,
            "--token",
            &owner,
            "--output",
            "json",
        ],
    ));
    let steps: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    let position = |step: (&str, &str)| {
        steps
            .iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("{step:?} not in {steps:?}"))
    };
    let order = [
        position(("access.requested", "ana")),
        position(("access.granted", "olga")),
        position(("access.read", "ana")),
        position(("access.revoked", "olga")),
        position(("access.read_denied", "ana")),
    ];
    assert!(order.is_sorted(), "{steps:?}");
    let read = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "access.read")
        .unwrap();
    assert_eq!(read["payload"]["rows"], 10);
    assert_eq!(read["payload"]["masked"], true);
}

/// Runs tests/python/flight_sql.py: `sql` over Flight SQL with ADBC, as `token`.
pub(crate) fn adbc(
    python: &str,
    url: &str,
    token: &str,
    sql: &str,
    auth: &str,
) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/flight_sql.py");
    let out = std::process::Command::new(python)
        .args([script, url, token, sql, auth])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Flight SQL, tried every way a consumer without a grant could: the metadata calls show
/// nothing of e-commerce, statements and prepared statements on its tables fail, a ticket
/// forged or kept from before a revocation reads nothing, and nothing but reads is allowed.
#[test]
fn flight_sql_shows_and_serves_only_what_is_granted() {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, ProstMessageExt};
    use futures::TryStreamExt;
    use mesh_engine::query::RecordBatch;
    use prost::Message;

    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let (analyst, owner) = orders_with_email(ws);
    let server = crate::serve(ws, &[]);
    let url = server.url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    type Client = FlightSqlServiceClient<tonic::transport::Channel>;
    let connect = |token: Option<&str>| {
        runtime.block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = FlightSqlServiceClient::new(channel);
            if let Some(token) = token {
                client.set_token(token.to_owned());
            }
            client
        })
    };
    let fetch = |client: &mut Client, ticket: arrow_flight::Ticket| {
        runtime.block_on(async {
            let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
            stream
                .try_collect::<Vec<RecordBatch>>()
                .await
                .map_err(|e| e.to_string())
        })
    };
    let read = |client: &mut Client, sql: &str| -> Result<Vec<RecordBatch>, String> {
        let info = runtime
            .block_on(client.execute(sql.to_owned(), None))
            .map_err(|e| e.to_string())?;
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            batches.extend(fetch(client, endpoint.ticket.unwrap())?);
        }
        Ok(batches)
    };
    let tables = |client: &mut Client| -> Vec<String> {
        let info = runtime
            .block_on(client.get_tables(CommandGetTables {
                include_schema: true,
                ..Default::default()
            }))
            .unwrap();
        let batches = fetch(client, info.endpoint[0].ticket.clone().unwrap()).unwrap();
        let rows = mesh_engine::query::json_rows(&batches).unwrap();
        rows.iter()
            .map(|r| {
                format!(
                    "{}.{}",
                    r["db_schema_name"].as_str().unwrap(),
                    r["table_name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let schemas = |client: &mut Client| -> Vec<String> {
        let info = runtime
            .block_on(client.get_db_schemas(CommandGetDbSchemas::default()))
            .unwrap();
        let batches = fetch(client, info.endpoint[0].ticket.clone().unwrap()).unwrap();
        let rows = mesh_engine::query::json_rows(&batches).unwrap();
        rows.iter()
            .map(|r| r["db_schema_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let refused = |result: Result<Vec<RecordBatch>, String>, why: &str| {
        let e = result.expect_err("refused");
        assert!(e.contains(why), "expected `{why}` in {e}");
    };

    // No token, a wrong token: nothing at all.
    let mut anonymous = connect(None);
    refused(read(&mut anonymous, "SELECT 1"), "unauthenticated");
    let mut forged = connect(Some("mesh_not_a_token"));
    refused(read(&mut forged, "SELECT 1"), "unauthenticated");
    let handshake = runtime.block_on(anonymous.handshake("token", "mesh_not_a_token"));
    assert!(handshake.is_err());

    // The owner sees the table; the analyst, without a grant, sees no e-commerce at all.
    let mut olga = connect(Some(&owner));
    assert!(tables(&mut olga).contains(&"ecommerce.orders".to_owned()));
    let mut ana = connect(None);
    runtime.block_on(ana.handshake("ana", &analyst)).unwrap();
    assert!(!tables(&mut ana).iter().any(|t| t.starts_with("ecommerce.")));
    assert!(!schemas(&mut ana).contains(&"ecommerce".to_owned()));
    for sql in [
        "SELECT * FROM ecommerce.orders",
        "SELECT email FROM mesh.ecommerce.orders",
        "SELECT * FROM orders",
        "WITH o AS (SELECT * FROM ecommerce.orders) SELECT * FROM o",
        "SELECT (SELECT MAX(email) FROM ecommerce.orders) AS m",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM ecommerce.orders__v1",
    ] {
        refused(read(&mut ana, sql), "not found");
    }
    let data = ws.join(".mesh/data").display().to_string();
    refused(
        read(&mut ana, &format!("SELECT * FROM '{data}'")),
        "not found",
    );
    refused(
        read(&mut ana, "CREATE VIEW v AS SELECT 1 AS one"),
        "not supported",
    );
    refused(
        read(
            &mut ana,
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/'",
        ),
        "not supported",
    );
    // A prepared statement on the table is refused as the statement is.
    let prepared = runtime.block_on(ana.prepare("SELECT * FROM ecommerce.orders".into(), None));
    assert!(prepared.is_err());
    // A ticket is only the statement: forging one does not skip the check.
    let ticket = arrow_flight::sql::TicketStatementQuery {
        statement_handle: "SELECT * FROM ecommerce.orders".as_bytes().to_vec().into(),
    };
    let forged_ticket = arrow_flight::Ticket::new(ticket.as_any().encode_to_vec());
    let e = fetch(&mut ana, forged_ticket.clone()).expect_err("refused");
    assert!(e.contains("not found"), "{e}");
    // Nothing but reads: updates are not a Flight SQL call mesh answers.
    let update = runtime.block_on(ana.execute_update("DELETE FROM analytics.x".into(), None));
    assert!(update.is_err());

    // Granted (without e-mail): the table appears, e-mail is null in every row.
    let access = |token: &str, args: &[&str]| {
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
        let out = mesh(ws, &all);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let request = access(
        &analyst,
        &[
            "request",
            "ecommerce.orders.orders",
            "--purpose",
            "Customer lifetime value per segment.",
        ],
    );
    let id = request["id"].as_str().unwrap();
    let approved = access(
        &owner,
        &[
            "approve",
            id,
            "--columns",
            "orders_id,label,amount,updated_at",
        ],
    );
    let grant = approved["grant"]["id"].as_str().unwrap();
    assert!(tables(&mut ana).contains(&"ecommerce.orders".to_owned()));
    for sql in [
        "SELECT * FROM ecommerce.orders",
        "SELECT o.email FROM ecommerce.orders o JOIN ecommerce.orders p ON o.orders_id = p.orders_id",
        "WITH o AS (SELECT * FROM ecommerce.orders) SELECT email, label FROM o",
        "SELECT email, label FROM (SELECT * FROM ecommerce.orders) AS s",
    ] {
        let batches = read(&mut ana, sql).unwrap();
        let rows = mesh_engine::query::json_rows(&batches).unwrap();
        assert_eq!(rows.len(), 10, "{sql}");
        assert!(rows.iter().all(|r| r["email"].is_null()), "{sql}: {rows:?}");
    }
    let prepared = runtime
        .block_on(ana.prepare("SELECT label FROM ecommerce.orders".into(), None))
        .unwrap();
    let kept = fetch(&mut ana, forged_ticket.clone()).unwrap();
    assert_eq!(kept.iter().map(|b| b.num_rows()).sum::<usize>(), 10);

    // Revoked: the ticket and the prepared statement from before read nothing.
    access(&owner, &["revoke", grant, "--reason", "project ended"]);
    let e = fetch(&mut ana, forged_ticket).expect_err("refused");
    assert!(e.contains("not found"), "{e}");
    let mut prepared = prepared;
    let info = runtime.block_on(prepared.execute());
    assert!(info.is_err());
    assert!(!tables(&mut ana).iter().any(|t| t.starts_with("ecommerce.")));

    // A grant of every column still leaves masked what the port masks; naming it shows it.
    let every = |columns: Option<&str>| {
        let mut args = vec![
            "request",
            "ecommerce.orders.orders",
            "--purpose",
            "Customer lifetime value per segment.",
        ];
        if let Some(c) = columns {
            args.extend(["--columns", c]);
        }
        let request = access(&analyst, &args);
        let id = request["id"].as_str().unwrap().to_owned();
        access(&owner, &["approve", &id])["grant"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let all = every(None);
    let rows = mesh_engine::query::json_rows(
        &read(&mut ana, "SELECT email, label FROM ecommerce.orders").unwrap(),
    )
    .unwrap();
    assert!(
        rows.iter()
            .all(|r| r["email"].is_null() && r["label"].is_string()),
        "{rows:?}"
    );
    access(&owner, &["revoke", &all]);
    every(Some("orders_id,email"));
    let rows = mesh_engine::query::json_rows(
        &read(&mut ana, "SELECT email, label FROM ecommerce.orders").unwrap(),
    )
    .unwrap();
    assert!(
        rows.iter()
            .all(|r| r["email"].as_str().is_some_and(|e| e.contains('@')) && r["label"].is_null()),
        "{rows:?}"
    );
}
