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
    /// What its token endpoint answers next, and what was posted to it.
    token_endpoint: Arc<std::sync::Mutex<TokenEndpoint>>,
    _dir: tempfile::TempDir,
}

/// A post to a token endpoint: its form fields and its Authorization header.
type Post = (Vec<(String, String)>, Option<String>);

#[derive(Debug, Default)]
pub(crate) struct TokenEndpoint {
    pub(crate) answer: Option<Value>,
    /// Each post: its form fields and its Authorization header.
    pub(crate) posts: Vec<Post>,
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
        let discovery = json!({
            "issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "end_session_endpoint": format!("{issuer}/logout"),
        });
        let counter = Arc::clone(&fetches);
        let token_endpoint = Arc::new(std::sync::Mutex::new(TokenEndpoint::default()));
        let endpoint = Arc::clone(&token_endpoint);
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
            )
            .route(
                "/token",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap,
                          axum::Form(form): axum::Form<Vec<(String, String)>>| {
                        let mut e = endpoint.lock().unwrap();
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        e.posts.push((form, auth));
                        let answer = e.answer.take().unwrap_or_else(
                            || json!({"error": "invalid_grant", "error_description": "no such code"}),
                        );
                        async move { axum::Json(answer) }
                    },
                ),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIdp {
            issuer,
            key,
            fetches,
            token_endpoint,
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
            ..IdpConfig::default()
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

/// A browser's request to the portal: its cookies, and (for form posts) its origin.
fn browser(
    method: &str,
    uri: &str,
    cookies: &[String],
    form: Option<&str>,
) -> axum::http::Request<axum::body::Body> {
    let mut r = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    if !cookies.is_empty() {
        r = r.header("cookie", cookies.join("; "));
    }
    match form {
        Some(body) => r
            .header("origin", "http://localhost")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap(),
        None => r.body(axum::body::Body::empty()).unwrap(),
    }
}

struct Page {
    status: StatusCode,
    location: String,
    cookies: Vec<String>,
    body: String,
}

async fn visit(h: &Harness, request: axum::http::Request<axum::body::Body>) -> Page {
    use tower::ServiceExt as _;
    let response = h.app.clone().oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let location = header("location").join("");
    let cookies = header("set-cookie");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Page {
        status,
        location,
        cookies,
        // As a browser reads the attributes: the entities the templates escape, unescaped.
        body: String::from_utf8_lossy(&bytes)
            .replace("&#x2f;", "/")
            .replace("&amp;", "&"),
    }
}

/// A query parameter of a URL, decoded.
fn param(url: &str, name: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// `name=value` of a Set-Cookie header.
fn pair(set_cookie: &[String], name: &str) -> String {
    set_cookie
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookie:?}"))
}

/// The portal signs people in through the provider with the authorization-code flow: PKCE
/// (S256) the provider can check, the client secret, state bound to the browser and used once,
/// the nonce in the ID token, the ID token verified like every IdP token; the session cookie
/// holds only an id; sign-out ends the provider's session too.
#[tokio::test]
async fn portal_sign_in_through_the_idp_checks_state_nonce_and_pkce() {
    let idp = TestIdp::start().await;
    let mut h = Harness::new().await;
    let mut config = idp.config();
    config.client_id = Some("mesh".into());
    config.client_secret = Some("s3cret".into());
    h.app = mesh_server::app_with_options(
        h.catalog.clone(),
        mesh_server::Options {
            identity: Some(config),
            ..mesh_server::Options::default()
        },
    );
    let page = visit(&h, browser("GET", "/signin", &[], None)).await;
    assert!(page.body.contains("href=\"/signin/oidc\""), "{}", page.body);

    // A flow: where the browser is sent, and the cookie that ties the flow to it.
    let start = |next: &'static str| {
        let h = &h;
        async move {
            let uri = format!("/signin/oidc?next={next}");
            let page = visit(h, browser("GET", &uri, &[], None)).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
            (page.location.clone(), pair(&page.cookies, "mesh_oidc"))
        }
    };
    let (authorize, flow_cookie) = start("%2Fsearch").await;
    assert!(authorize.starts_with(&format!("{}/authorize?", idp.issuer)));
    assert_eq!(param(&authorize, "response_type"), "code");
    assert_eq!(param(&authorize, "client_id"), "mesh");
    assert_eq!(param(&authorize, "code_challenge_method"), "S256");
    assert_eq!(
        param(&authorize, "redirect_uri"),
        "http://localhost/oidc/callback"
    );
    let state = param(&authorize, "state");
    let nonce = param(&authorize, "nonce");
    let challenge = param(&authorize, "code_challenge");
    assert_eq!(flow_cookie, format!("mesh_oidc={state}"));

    let id_token = |nonce: &str, exp: i64| {
        let mut claims = idp.claims("ana", &["data-sales-owners"]);
        claims["nonce"] = json!(nonce);
        claims["exp"] = json!(chrono::Utc::now().timestamp() + exp);
        json!({ "id_token": idp.sign(&claims, Some("key-1")), "token_type": "Bearer" })
    };
    idp.token_endpoint.lock().unwrap().answer = Some(id_token(&nonce, 300));
    let callback = format!("/oidc/callback?code=c0de&state={state}");
    let landed = visit(
        &h,
        browser("GET", &callback, std::slice::from_ref(&flow_cookie), None),
    )
    .await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert!(landed.body.contains("Signed in as <strong>ana</strong>"));
    assert!(landed.body.contains("url=/search"), "{}", landed.body);
    let session = pair(&landed.cookies, "mesh_session");
    assert!(
        landed
            .cookies
            .iter()
            .any(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict"))
    );
    assert!(
        !session.contains("eyJ"),
        "the cookie holds no token: {session}"
    );
    // What mesh sent the token endpoint: the code, the verifier of the challenge, the secret.
    {
        let e = idp.token_endpoint.lock().unwrap();
        let (form, auth) = e.posts.last().unwrap();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(field("code").as_deref(), Some("c0de"));
        assert_eq!(field("grant_type").as_deref(), Some("authorization_code"));
        let verifier = field("code_verifier").unwrap();
        use base64::Engine as _;
        use sha2::Digest as _;
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        assert_eq!(expected, challenge, "PKCE S256");
        let basic = base64::engine::general_purpose::STANDARD.encode("mesh:s3cret");
        assert_eq!(auth.as_deref(), Some(format!("Basic {basic}").as_str()));
    }
    // Signed in: the portal shows who, with the roles the groups map to (an owner of sales
    // sees the sales domain's request list, like the same token on the API).
    let home = visit(
        &h,
        browser("GET", "/", std::slice::from_ref(&session), None),
    )
    .await;
    assert!(
        home.body.contains("signed in as <strong>ana</strong>"),
        "{}",
        home.body
    );

    // The same callback again: the state was used.
    idp.token_endpoint.lock().unwrap().answer = Some(id_token(&nonce, 300));
    let replay = visit(
        &h,
        browser("GET", &callback, std::slice::from_ref(&flow_cookie), None),
    )
    .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("used already"), "{}", replay.body);

    // A callback in a browser that did not start the flow (login CSRF), or with another's state.
    let (authorize, _) = start("%2F").await;
    let other_state = param(&authorize, "state");
    for cookies in [vec![], vec![flow_cookie.clone()]] {
        let uri = format!("/oidc/callback?code=c0de&state={other_state}");
        let page = visit(&h, browser("GET", &uri, &cookies, None)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{cookies:?}");
    }

    // Each bad answer of the provider, in a flow of its own, refused with the reason.
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        ("wrong nonce", Some(id_token("someone-elses", 300)), "nonce"),
        ("expired", Some(id_token("NONCE", -600)), "has expired"),
        ("no code", None, "no such code"),
        (
            "another audience",
            {
                let mut claims = idp.claims("ana", &[]);
                claims["aud"] = json!("another-app");
                claims["nonce"] = json!("NONCE");
                Some(json!({ "id_token": idp.sign(&claims, Some("key-1")) }))
            },
            "another audience",
        ),
    ];
    for (case, answer, reason) in cases {
        let (authorize, cookie) = start("%2F").await;
        let nonce = param(&authorize, "nonce");
        let state = param(&authorize, "state");
        let answer = answer.map(|a| {
            let token = a["id_token"].as_str().unwrap();
            if token.is_empty() {
                a.clone()
            } else {
                // Put this flow's nonce where the case says NONCE.
                let mut claims: Value = {
                    use base64::Engine as _;
                    let part = token.split('.').nth(1).unwrap();
                    serde_json::from_slice(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(part)
                            .unwrap(),
                    )
                    .unwrap()
                };
                if claims["nonce"] == "NONCE" {
                    claims["nonce"] = json!(nonce);
                }
                json!({ "id_token": idp.sign(&claims, Some("key-1")) })
            }
        });
        idp.token_endpoint.lock().unwrap().answer = answer;
        let uri = format!("/oidc/callback?code=c0de&state={state}");
        let page = visit(&h, browser("GET", &uri, &[cookie], None)).await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            page.body
        );
        assert!(page.body.contains(reason), "{case}: {}", page.body);
        assert!(
            !page.cookies.iter().any(|c| c.starts_with("mesh_session=")),
            "{case}: no session"
        );
    }
    // The provider said no.
    let (authorize, cookie) = start("%2F").await;
    let uri = format!(
        "/oidc/callback?error=access_denied&error_description=the+user+said+no&state={}",
        param(&authorize, "state")
    );
    let page = visit(&h, browser("GET", &uri, &[cookie], None)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("access_denied the user said no"),
        "{}",
        page.body
    );

    // Sign-out: the session ends here, and the browser moves on to the provider's end-session
    // endpoint with the ID token as the hint.
    let csrf = home
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let out = visit(
        &h,
        browser(
            "POST",
            "/signout",
            std::slice::from_ref(&session),
            Some(&format!("csrf={csrf}")),
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(
        out.body
            .contains(&format!("url={}/logout?id_token_hint=eyJ", idp.issuer)),
        "{}",
        out.body
    );
    let home = visit(&h, browser("GET", "/", &[session], None)).await;
    assert!(!home.body.contains("signed in as"));
}

/// Revoking a principal the identity provider vouches for holds against the tokens the provider
/// had already issued (`iat` before the revocation): they are refused with the reason, though
/// the catalog holds nothing for that name; a token issued afterwards is judged afresh.
#[tokio::test]
async fn a_revoked_principal_s_earlier_idp_tokens_are_refused() {
    use mesh_catalog::Clock as _;
    let idp = TestIdp::start().await;
    let h = harness(&idp).await;
    let now = h.clock.now().timestamp();
    let token = |iat: i64| {
        let mut claims = idp.claims("ivan", &["data-sales-owners"]);
        claims["iat"] = json!(iat);
        idp.sign(&claims, Some("key-1"))
    };
    let before = token(now - 60);
    let r = h.send("GET", "/api/v1/domains", Some(&before), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let admin = h.token("admin").unwrap().to_owned();
    let r = h
        .send("POST", "/api/v1/principals/ivan/revoke", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    for sent in [before, token(now)] {
        let r = h.send("GET", "/api/v1/domains", Some(&sent), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
        assert!(
            r.json["detail"]
                .as_str()
                .unwrap()
                .contains("ivan was revoked at"),
            "{}",
            r.json
        );
    }
    // Without `iat`, a token cannot show it is newer: refused too.
    let mut claims = idp.claims("ivan", &[]);
    claims.as_object_mut().unwrap().remove("iat");
    let r = h
        .send(
            "GET",
            "/api/v1/domains",
            Some(&idp.sign(&claims, Some("key-1"))),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let after = token(now + 60);
    let r = h.send("GET", "/api/v1/domains", Some(&after), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}
