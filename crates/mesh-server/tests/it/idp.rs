//! Tokens from a company's identity provider, on HTTP and Flight SQL: a test IdP (an RSA key made
//! by `openssl`, its JWKS and discovery document served on loopback) signs tokens; mesh verifies
//! them against its keys, maps groups to roles at each request, refuses every kind of bad token
//! with the reason, and refreshes the keys once for an unknown `kid`, not once per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mesh_server::idp::{IdpConfig, RoleMapping};
use serde_json::{Value, json};

use crate::harness::Harness;

pub(crate) struct TestIdp {
    issuer: String,
    key: EncodingKey,
    fetches: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

/// An RSA key in PEM from `openssl` (no key generation is linked into mesh for tests).
fn rsa_key(dir: &std::path::Path, name: &str) -> EncodingKey {
    let path = dir.join(format!("{name}.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    EncodingKey::from_rsa_pem(&std::fs::read(&path).unwrap()).expect("an RSA key")
}

impl TestIdp {
    pub(crate) async fn start() -> TestIdp {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa_key(dir.path(), "idp");
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("key-1".into());
        let set = JwkSet { keys: vec![jwk] };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") });
        let counter = Arc::clone(&fetches);
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let d = discovery.clone();
                    async move { axum::Json(d) }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let s = set.clone();
                    async move { axum::Json(s) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIdp {
            issuer,
            key,
            fetches,
            _dir: dir,
        }
    }

    fn claims(&self, user: &str, groups: &[&str]) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "aud": "mesh", "sub": format!("id-{user}"),
            "preferred_username": user, "groups": groups,
            "iat": now, "nbf": now - 5, "exp": now + 300,
        })
    }

    fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    pub(crate) fn token(&self, user: &str, groups: &[&str]) -> String {
        self.sign(&self.claims(user, groups), Some("key-1"))
    }

    pub(crate) fn config(&self) -> IdpConfig {
        IdpConfig {
            issuer: self.issuer.clone(),
            audience: vec!["mesh".into()],
            jwks_uri: None,
            username_claim: None,
            groups_claims: Vec::new(),
            leeway_seconds: Some(0),
            role_map: vec![
                RoleMapping {
                    group: "mesh-admins".into(),
                    role: "admin".into(),
                    domain: "*".into(),
                },
                RoleMapping {
                    group: "data-sales-owners".into(),
                    role: "owner".into(),
                    domain: "sales".into(),
                },
            ],
        }
    }
}

async fn harness(idp: &TestIdp) -> Harness {
    let mut h = Harness::new().await;
    h.app = mesh_server::app_with_options(
        h.catalog.clone(),
        mesh_server::Options {
            identity: Some(idp.config()),
            ..mesh_server::Options::default()
        },
    );
    h
}

/// Issuing a token is for admins: 201 or 403 tells which role a principal has.
async fn issue(h: &Harness, token: &str) -> (StatusCode, Value) {
    let body = json!({ "principal": "svc", "roles": [{ "role": "consumer" }] });
    let r = h
        .send("POST", "/api/v1/tokens", Some(token), Some(&body))
        .await;
    (r.status, r.json)
}

#[tokio::test]
async fn groups_become_roles_at_each_token_and_the_change_is_audited() {
    let idp = TestIdp::start().await;
    let h = harness(&idp).await;
    let (status, body) = issue(&h, &idp.token("Alice", &["mesh-admins", "staff"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Moved out of the admins' group in the IdP: the next token is not an admin's.
    let (status, body) = issue(&h, &idp.token("alice", &["data-sales-owners"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The catalog's own bindings for the same name still count (sales_owner is bound there).
    let (status, _) = issue(&h, &idp.token("admin", &[])).await;
    assert_eq!(status, StatusCode::CREATED);
    // Each change of roles is an event that names the principal and the claims that decided.
    let admin = h.token("admin").unwrap().to_owned();
    let r = h
        .send(
            "GET",
            "/api/v1/events?kind=auth.idp_roles",
            Some(&admin),
            None,
        )
        .await;
    let events: Vec<&Value> = r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["subject"] == "alice")
        .collect();
    assert_eq!(events.len(), 2, "{}", r.json);
    assert_eq!(
        events[0]["payload"]["claims"]["groups"],
        json!(["mesh-admins", "staff"])
    );
    // The same roles again: no new event.
    let _ = issue(&h, &idp.token("alice", &["data-sales-owners"])).await;
    let r = h
        .send(
            "GET",
            "/api/v1/events?kind=auth.idp_roles",
            Some(&admin),
            None,
        )
        .await;
    let again = r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["subject"] == "alice")
        .count();
    assert_eq!(again, 2);
}

#[tokio::test]
async fn every_bad_token_is_a_401_with_its_reason() {
    let idp = TestIdp::start().await;
    let h = harness(&idp).await;
    let good = idp.claims("bob", &["mesh-admins"]);
    let now = chrono::Utc::now().timestamp();
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let valid = idp.sign(&good, Some("key-1"));
    let (payload, signature) = {
        let parts: Vec<&str> = valid.split('.').collect();
        (parts[1].to_owned(), parts[2].to_owned())
    };
    // Tampered: the payload of an admin with another user's name, the original signature.
    let forged_payload = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&b64.decode(&payload).unwrap()).unwrap();
        claims["preferred_username"] = json!("mallory");
        b64.encode(claims.to_string())
    };
    let header_of = |alg: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}"))
    };
    let other_key = rsa_key(idp._dir.path(), "other");
    let foreign = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some("key-1".into());
            h
        },
        &good,
        &other_key,
    )
    .unwrap();
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"guessable").unwrap(),
    )
    .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            idp.sign(&with("exp", json!(now - 120)), Some("key-1")),
            "expired",
        ),
        (
            "not yet valid",
            idp.sign(&with("nbf", json!(now + 3_600)), Some("key-1")),
            "not valid yet",
        ),
        (
            "wrong audience",
            idp.sign(&with("aud", json!("another-app")), Some("key-1")),
            "another audience",
        ),
        (
            "wrong issuer",
            idp.sign(&with("iss", json!("https://evil.example")), Some("key-1")),
            "another issuer",
        ),
        (
            "alg none",
            format!("{}.{payload}.", header_of("none")),
            "algorithm",
        ),
        ("HS256 with a guessed secret", hs256, "not accepted"),
        (
            "tampered",
            format!(
                "{}.{forged_payload}.{signature}",
                valid.split('.').next().unwrap()
            ),
            "does not verify",
        ),
        ("signed by another key", foreign, "does not verify"),
        (
            "unknown kid",
            idp.sign(&good, Some("key-9")),
            "does not publish",
        ),
        (
            "no exp",
            idp.sign(
                &{
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                },
                Some("key-1"),
            ),
            "exp",
        ),
        ("garbage", "eyJhbGciOi.x.y".into(), "well-formed"),
    ];
    for (what, token, reason) in cases {
        let (status, body) = issue(&h, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{what}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(reason),
            "{what}: `{detail}` does not say `{reason}`"
        );
    }
    // The good one still works, and mesh's own tokens too.
    assert_eq!(issue(&h, &valid).await.0, StatusCode::CREATED);
    assert_eq!(
        issue(&h, h.token("admin").unwrap()).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_once_not_per_request() {
    let idp = TestIdp::start().await;
    let h = harness(&idp).await;
    assert_eq!(
        issue(&h, &idp.token("carol", &["mesh-admins"])).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "the first token fetches the keys"
    );
    let unknown = idp.sign(&idp.claims("carol", &["mesh-admins"]), Some("rotated-away"));
    let mut handles = Vec::new();
    for _ in 0..50 {
        let app = h.app.clone();
        let unknown = unknown.clone();
        handles.push(tokio::spawn(async move {
            let request = axum::http::Request::builder()
                .method("GET")
                .uri("/api/v1/products")
                .header("authorization", format!("Bearer {unknown}"))
                .body(axum::body::Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(app, request)
                .await
                .unwrap()
                .status()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    // One refresh for the unknown key (within the refresh interval, the others wait or reuse it).
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_an_issuer_idp_tokens_are_refused_and_mesh_tokens_work() {
    let idp = TestIdp::start().await;
    let h = Harness::new().await;
    let (status, body) = issue(&h, &idp.token("dave", &["mesh-admins"])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("trusts no identity provider"),
        "{body}"
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 0);
}
