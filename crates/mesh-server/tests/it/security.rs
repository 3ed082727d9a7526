//! The security suite over HTTP: each test tries what a hostile domain or a curious consumer
//! would, and checks the platform holds. Tests named `hole_<n>_...` are the holes issue 18 found;
//! each was committed failing, before its fix (see docs/security.md).

use mesh_catalog::{Principal, Role};

use crate::harness::{Harness, bundle};

/// `bundle`, with its product classified `product_class` and each `(column, class)` given.
fn classified(
    id: &str,
    columns: &[&str],
    product_class: &str,
    classes: &[(&str, &str)],
) -> mesh_catalog::Bundle {
    let mut b = bundle(id, "1.0.0", columns);
    b.descriptor.text = b.descriptor.text.replace(
        "property: dataClassification\n    value: internal",
        &format!("property: dataClassification\n    value: {product_class}"),
    );
    for (column, class) in classes {
        let from = format!("      - name: {column}\n        logicalType: string\n");
        assert!(b.contracts[0].text.contains(&from), "{column}");
        b.contracts[0].text = b.contracts[0]
            .text
            .replace(&from, &format!("{from}        classification: {class}\n"));
    }
    b
}

/// A second owner of `sales` (restricted data needs two people).
async fn second_owner(h: &Harness) -> String {
    h.catalog
        .bootstrap_token("sales_owner2", &[(Role::Owner, Some("sales".into()))], None)
        .await
        .unwrap()
}

/// Hole 4: the effective grant is what every approver agreed to — the intersection — and an
/// approval that leaves nothing in common grants nothing.
#[tokio::test]
async fn hole_4_two_approvals_grant_only_their_common_columns() {
    let h = Harness::new().await;
    let admin = Principal::local();
    let b = classified(
        "sales.orders",
        &["id", "amount", "note"],
        "internal",
        &[("note", "restricted")],
    );
    h.catalog.publish(&admin, &b, false).await.unwrap();
    let owner2 = second_owner(&h).await;
    let consumer = h.token("consumer").unwrap().to_owned();
    let owner = h.token("sales_owner").unwrap().to_owned();
    let ask = |columns: &[&str]| {
        serde_json::json!({
            "product": "sales.orders", "port": "orders", "columns": columns, "days": 30,
            "purpose": "Reconciling the ledger every month.",
        })
    };
    let approve = |columns: &[&str]| serde_json::json!({"decision": "approve", "columns": columns});

    // Disjoint approvals: nothing in common, nothing granted.
    let r = h
        .send(
            "POST",
            "/api/v1/access/requests",
            Some(&consumer),
            Some(&ask(&["id", "amount", "note"])),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.json);
    assert_eq!(r.json["needed"], 2, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let decide = format!("/api/v1/access/requests/{id}/decision");
    let first = h
        .send(
            "POST",
            &decide,
            Some(&owner),
            Some(&approve(&["id", "amount"])),
        )
        .await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.json);
    let second = h
        .send("POST", &decide, Some(&owner2), Some(&approve(&["note"])))
        .await;
    assert!(
        second.status.is_client_error(),
        "{} {}",
        second.status,
        second.json
    );
    let grants = h
        .send(
            "GET",
            "/api/v1/access/grants?product=sales.orders",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(
        grants.json.as_array().map(Vec::len),
        Some(0),
        "{}",
        grants.json
    );

    // Overlapping approvals: the grant is their intersection.
    let r = h
        .send(
            "POST",
            "/api/v1/access/requests",
            Some(&consumer),
            Some(&ask(&["id", "amount", "note"])),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let decide = format!("/api/v1/access/requests/{id}/decision");
    h.send(
        "POST",
        &decide,
        Some(&owner),
        Some(&approve(&["id", "amount"])),
    )
    .await;
    let done = h
        .send(
            "POST",
            &decide,
            Some(&owner2),
            Some(&approve(&["amount", "note"])),
        )
        .await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.json);
    assert_eq!(
        done.json["grant"]["columns"],
        serde_json::json!(["amount"]),
        "{}",
        done.json
    );
}

/// Hole 4: how many approvals a request needs comes from the strictest classification of what
/// it asks for: the product's, and every column's, nested ones included; an unclassified column
/// takes the product's.
#[tokio::test]
async fn hole_4_restricted_products_and_nested_columns_need_two_approvers() {
    let h = Harness::new().await;
    let admin = Principal::local();
    let consumer = h.token("consumer").unwrap().to_owned();
    // A restricted product whose columns say nothing.
    let b = classified("sales.payroll", &["id", "amount"], "restricted", &[]);
    h.catalog.publish(&admin, &b, false).await.unwrap();
    // An internal product with a restricted field nested in an object column.
    let mut nested = classified("sales.people", &["id", "address"], "internal", &[]);
    nested.contracts[0].text = nested.contracts[0].text.replace(
        "      - name: address\n        logicalType: string\n        required: false\n",
        "      - name: address\n        logicalType: object\n        required: false\n        properties:\n          - name: street\n            logicalType: string\n            classification: restricted\n",
    );
    assert!(nested.contracts[0].text.contains("name: street"));
    h.catalog.publish(&admin, &nested, false).await.unwrap();
    for (product, port) in [("sales.payroll", "payroll"), ("sales.people", "people")] {
        let ask = serde_json::json!({
            "product": product, "port": port, "columns": [], "days": 30,
            "purpose": "Reconciling the ledger every month.",
        });
        let r = h
            .send(
                "POST",
                "/api/v1/access/requests",
                Some(&consumer),
                Some(&ask),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.json);
        assert_eq!(r.json["needed"], 2, "{product}: {}", r.json);
    }
}

/// A tiny HTTP endpoint: answers every request with `answer` and counts what it got.
fn endpoint(answer: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, hits)
}

/// Hole 9: a webhook receiver that answers with a redirect does not get the payload sent on to
/// wherever it points.
#[tokio::test]
async fn hole_9_webhooks_never_follow_redirects() {
    let h = Harness::new().await;
    let admin = Principal::local();
    h.catalog
        .publish(
            &admin,
            &bundle("sales.orders", "1.0.0", &["id", "amount"]),
            false,
        )
        .await
        .unwrap();
    let (elsewhere, stolen) = endpoint("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into());
    let (hook, asked) = endpoint(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}\r\ncontent-length: 0\r\n\r\n"
    ));
    let app = mesh_server::app_with_options(
        h.catalog.clone(),
        mesh_server::Options {
            access_webhook: Some(hook),
            ..mesh_server::Options::default()
        },
    );
    let ask = serde_json::json!({
        "product": "sales.orders", "port": "orders", "columns": [], "days": 30,
        "purpose": "Reconciling the ledger every month.",
    });
    let request = axum::http::Request::post("/api/v1/access/requests")
        .header(
            "authorization",
            format!("Bearer {}", h.token("consumer").unwrap()),
        )
        .header("content-type", "application/json")
        .body(axum::body::Body::from(ask.to_string()))
        .unwrap();
    use tower::ServiceExt as _;
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    // The delivery is retried in the background: give it its attempts.
    for _ in 0..80 {
        if asked.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        stolen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the payload followed the redirect"
    );
}

/// Hole 9: the event log is read per domain: its owners and members see their domain's events
/// (other readers' SQL included), admins everyone's.
#[tokio::test]
async fn hole_9_events_are_read_per_domain() {
    let h = Harness::new().await;
    let admin = Principal::local();
    for id in ["sales.orders", "hr.people"] {
        h.catalog
            .publish(&admin, &bundle(id, "1.0.0", &["id"]), false)
            .await
            .unwrap();
    }
    let subjects = |reply: &crate::harness::Reply| -> Vec<String> {
        reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    let member = h
        .send(
            "GET",
            "/api/v1/events?limit=1000",
            h.token("sales_member"),
            None,
        )
        .await;
    assert_eq!(member.status.as_u16(), 200, "{}", member.json);
    let seen = subjects(&member);
    assert!(seen.contains(&"sales.orders".to_owned()), "{seen:?}");
    assert!(seen.iter().all(|s| s.starts_with("sales.")), "{seen:?}");
    let hr = h
        .send(
            "GET",
            "/api/v1/events?limit=1000",
            h.token("hr_owner"),
            None,
        )
        .await;
    let seen = subjects(&hr);
    assert!(seen.contains(&"hr.people".to_owned()), "{seen:?}");
    assert!(seen.iter().all(|s| s.starts_with("hr.")), "{seen:?}");
    let all = h
        .send("GET", "/api/v1/events?limit=1000", h.token("admin"), None)
        .await;
    let seen = subjects(&all);
    assert!(seen.contains(&"hr.people".to_owned()) && seen.contains(&"sales.orders".to_owned()));
}

/// Issues a token over HTTP as the admin: `(principal, [(role, domain)])`.
async fn issue(h: &Harness, principal: &str, roles: &[(&str, Option<&str>)]) -> String {
    let body = serde_json::json!({
        "principal": principal,
        "roles": roles.iter().map(|(r, d)| serde_json::json!({"role": r, "domain": d})).collect::<Vec<_>>(),
    });
    let r = h
        .send("POST", "/api/v1/tokens", h.token("admin"), Some(&body))
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.json);
    r.json["token"].as_str().unwrap().to_owned()
}

/// Hole 5: a credential holds the roles it was issued with, not every role its principal holds:
/// a consumer token made for a member cannot publish.
#[tokio::test]
async fn hole_5_a_token_holds_only_its_own_roles() {
    let h = Harness::new().await;
    let reader = issue(&h, "sales_member", &[("consumer", None)]).await;
    let publish = crate::harness::publish_body(&bundle("sales.orders", "1.0.0", &["id"]));
    let r = h
        .send("POST", "/api/v1/products", Some(&reader), Some(&publish))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.json);
    // The member's own token still publishes.
    let r = h
        .send(
            "POST",
            "/api/v1/products",
            h.token("sales_member"),
            Some(&publish),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.json);
}

/// Hole 5: revoking a principal revokes what it held — its tokens, roles and grants — so a
/// fresh token under the same name starts with nothing.
#[tokio::test]
async fn hole_5_a_revoked_principal_leaves_nothing_behind() {
    let h = Harness::new().await;
    let admin = Principal::local();
    h.catalog
        .publish(
            &admin,
            &bundle("sales.orders", "1.0.0", &["id", "amount"]),
            false,
        )
        .await
        .unwrap();
    let ana = issue(&h, "ana", &[("consumer", None)]).await;
    let ask = serde_json::json!({
        "product": "sales.orders", "port": "orders", "columns": [], "days": 30,
        "purpose": "Reconciling the ledger every month.",
    });
    let r = h
        .send("POST", "/api/v1/access/requests", Some(&ana), Some(&ask))
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let approve = serde_json::json!({"decision": "approve"});
    let r = h
        .send(
            "POST",
            &format!("/api/v1/access/requests/{id}/decision"),
            h.token("sales_owner"),
            Some(&approve),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.json);
    let r = h
        .send(
            "POST",
            "/api/v1/principals/ana/revoke",
            h.token("admin"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.json);
    let r = h
        .send("GET", "/api/v1/access/grants", Some(&ana), None)
        .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.json);
    let again = issue(&h, "ana", &[("consumer", None)]).await;
    let r = h
        .send("GET", "/api/v1/access/grants", Some(&again), None)
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.json);
    assert!(
        r.json
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["active"] == false),
        "{}",
        r.json
    );
}

/// Hole 5: names are one name whatever their case: `ANA` is `ana`, and may not approve ana's
/// own request.
#[tokio::test]
async fn hole_5_names_are_compared_without_case() {
    let h = Harness::new().await;
    let admin = Principal::local();
    h.catalog
        .publish(
            &admin,
            &bundle("sales.orders", "1.0.0", &["id", "amount"]),
            false,
        )
        .await
        .unwrap();
    let ana = issue(&h, "ana", &[("consumer", None)]).await;
    let upper = issue(&h, "ANA", &[("owner", Some("sales"))]).await;
    let ask = serde_json::json!({
        "product": "sales.orders", "port": "orders", "columns": [], "days": 30,
        "purpose": "Reconciling the ledger every month.",
    });
    let r = h
        .send("POST", "/api/v1/access/requests", Some(&ana), Some(&ask))
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let r = h
        .send(
            "POST",
            &format!("/api/v1/access/requests/{id}/decision"),
            Some(&upper),
            Some(&serde_json::json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.json);
}

/// An OpenLineage RunEvent of `job` (namespace, name) reading `inputs` and writing `outputs`
/// (namespace, name each).
fn run_event(
    job: (&str, &str),
    inputs: &[(&str, &str)],
    outputs: &[(&str, &str)],
    schema_url: bool,
) -> serde_json::Value {
    let datasets = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(ns, name)| serde_json::json!({"namespace": ns, "name": name}))
            .collect::<Vec<_>>()
    };
    let mut event = serde_json::json!({
        "eventType": "COMPLETE", "eventTime": "2026-11-01T10:00:00Z",
        "run": {"runId": "9d6e2b1c-3f4a-4b5c-8d7e-0f1a2b3c4d5e"},
        "job": {"namespace": job.0, "name": job.1},
        "inputs": datasets(inputs), "outputs": datasets(outputs),
        "producer": "https://example.com/pipeline",
    });
    if schema_url {
        event["schemaURL"] =
            "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent".into();
    }
    event
}

/// Hole 7: lineage about a product — its job, or its datasets as outputs — is reported by its
/// own domain (or its service identity) only; and events are held to the OpenLineage 2-0-2
/// schema's required fields.
#[tokio::test]
async fn hole_7_lineage_of_a_product_comes_from_its_domain() {
    let h = Harness::new().await;
    let admin = Principal::local();
    h.catalog
        .publish(&admin, &bundle("hr.people", "1.0.0", &["id"]), false)
        .await
        .unwrap();
    let member = h.token("sales_member");
    // A fake upstream on another domain's job.
    let forged = run_event(
        ("mesh", "hr.people"),
        &[("s3://attacker-bucket", "exfil")],
        &[],
        true,
    );
    let r = h
        .send("POST", "/api/v1/lineage", member, Some(&forged))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.json);
    // Another domain's dataset claimed as one's output.
    let claimed = run_event(
        ("airflow", "sales_loader"),
        &[],
        &[("mesh", "hr.people.people")],
        true,
    );
    let r = h
        .send("POST", "/api/v1/lineage", member, Some(&claimed))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.json);
    // Its own domain may, with a schema-valid event.
    let own = run_event(
        ("mesh", "hr.people"),
        &[("postgres://hr", "people")],
        &[],
        true,
    );
    let r = h
        .send("POST", "/api/v1/lineage", h.token("hr_owner"), Some(&own))
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.json);
    // An event without its schemaURL is not an OpenLineage 2-0-2 event.
    let sloppy = run_event(("airflow", "sales_loader"), &[], &[], false);
    let r = h
        .send("POST", "/api/v1/lineage", member, Some(&sloppy))
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.json);
    assert!(
        r.json["detail"].as_str().unwrap().contains("schemaURL"),
        "{}",
        r.json
    );
}

/// A portal request: method, path, the cookie (if any), the Origin header (if any), a form body
/// (if any). Answers (status, set-cookie, headers, body).
async fn portal(
    app: &axum::Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: Option<&str>,
) -> (u16, Option<String>, axum::http::HeaderMap, String) {
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    let body = match form {
        Some(f) => {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            axum::body::Body::from(f.to_owned())
        }
        None => axum::body::Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        cookie,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Hole 8: the portal refuses cross-site form posts, keeps no token in its cookie, sends the
/// browser security headers, and renders no link from user text but http(s) ones.
#[tokio::test]
async fn hole_8_the_portal_resists_csrf_and_script_links() {
    let h = Harness::new().await;
    let admin = Principal::local();
    h.catalog
        .publish(
            &admin,
            &bundle("sales.orders", "1.0.0", &["id", "amount"]),
            false,
        )
        .await
        .unwrap();
    h.catalog
        .publish(&admin, &bundle("sales.orders", "2.0.0", &["id"]), false)
        .await
        .unwrap();
    let sunset = chrono::NaiveDate::from_ymd_opt(2027, 6, 1).unwrap();
    h.catalog
        .deprecate(
            &admin,
            "sales.orders",
            "1.0.0",
            sunset,
            "javascript:alert(document.cookie)",
        )
        .await
        .unwrap();
    let app = &h.app;
    let same = Some("http://localhost");
    let token = h.token("sales_owner").unwrap();
    let (status, cookie, _, _) = portal(
        app,
        "POST",
        "/signin",
        None,
        same,
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(status, 303);
    let cookie = cookie.unwrap();
    assert!(
        !cookie.contains(token),
        "the cookie carries the token: {cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    // Headers that keep the pages out of frames and sniffing, and scripts out.
    let (status, _, headers, body) = portal(
        app,
        "GET",
        "/products/sales.orders",
        Some(&session),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(
        headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff")
    );
    assert!(headers.get("referrer-policy").is_some());
    assert!(
        !body.contains("href=\"javascript:"),
        "a script link: {body}"
    );

    // A cross-site form post with the owner's cookie is refused; so is a same-site one
    // without the form's CSRF token.
    let form = "port=orders&purpose=Reconciling+the+ledger+every+month.&days=30";
    let (status, ..) = portal(
        app,
        "POST",
        "/products/sales.orders/requests",
        Some(&session),
        Some("https://evil.example"),
        Some(form),
    )
    .await;
    assert_eq!(status, 403);
    let (status, ..) = portal(
        app,
        "POST",
        "/products/sales.orders/requests",
        Some(&session),
        same,
        Some(form),
    )
    .await;
    assert_eq!(status, 403);

    // Served as https://, the cookie is Secure.
    let secure = mesh_server::app_with_options(
        h.catalog.clone(),
        mesh_server::Options {
            public_url: Some("https://mesh.example.com".into()),
            ..mesh_server::Options::default()
        },
    );
    let (_, cookie, ..) = portal(
        &secure,
        "POST",
        "/signin",
        None,
        Some("https://mesh.example.com"),
        Some(&format!("token={token}")),
    )
    .await;
    assert!(cookie.unwrap().contains("Secure"));
}

/// Found while closing issue 18: Rego's parser backtracks on every `[` and `{` (a literal or a
/// comprehension?), so time doubles with each level of nesting. A domain owner's bundle with
/// `x := [[[[...1...]]]]` 50 deep held a server core for over five minutes and went on; a few
/// such requests stop the server. Nesting and size are bounded before anything parses a file.
#[tokio::test]
async fn hole_14_a_policy_bundle_cannot_pin_a_server_core() {
    let h = Harness::new().await;
    let owner = h.token("sales_owner").unwrap().to_owned();
    let deep = |open: &str, close: &str, n: usize| {
        format!(
            "package sales.deep\n\nimport rego.v1\n\nx := {}1{}\n",
            open.repeat(n),
            close.repeat(n)
        )
    };
    for text in [
        deep("[", "]", 18),
        deep("{\"a\": ", "}", 18),
        deep("{", "}", 18),
    ] {
        let body = serde_json::json!({"files": [{"path": "deep.rego", "text": text}]});
        let reply = h
            .send("POST", "/api/v1/policies/sales", Some(&owner), Some(&body))
            .await;
        assert_eq!(reply.status.as_u16(), 422, "{}", reply.json);
        let detail = reply.json.to_string();
        assert!(
            detail.contains("deep.rego:5") && detail.contains("nest"),
            "{detail}"
        );
    }
    // Real policies nest a few levels: still published.
    let fine = serde_json::json!({"files": [{"path": "fine.rego", "text": deep("[", "]", 6)}]});
    let reply = h
        .send("POST", "/api/v1/policies/sales", Some(&owner), Some(&fine))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.json);
    // And a bundle is policies, not data: a few hundred KiB at most.
    let big = format!(
        "package sales.big\n\nimport rego.v1\n\nx := [{}1]\n",
        "1, ".repeat(400_000)
    );
    let body = serde_json::json!({"files": [{"path": "big.rego", "text": big}]});
    let reply = h
        .send("POST", "/api/v1/policies/sales", Some(&owner), Some(&body))
        .await;
    assert!(
        reply.status.is_client_error(),
        "{} {}",
        reply.status,
        reply.json
    );
}
