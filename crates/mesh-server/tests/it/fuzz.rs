//! Fuzzing HTTP bodies (issue 19): every write endpoint of the API, as an admin (who gets past
//! every permission check to the parsing and the rules), with mutated request bodies and odd
//! path parameters. Whatever arrives is a 4xx problem or a success — never a 500 (which is
//! what a panicking handler or an unhandled input becomes).

use axum::body::Body;
use axum::http::{Request, header};
use mesh_testkit::fuzz;

use crate::harness::Harness;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"sales.orders\"",
    "\"orders\"",
    "\"../../etc/passwd\"",
    "\"\\u0000\"",
    "\"\u{1F600}\"",
    "\"columns\": [",
    "\"sql\": \"",
    "SELECT ",
    "\"content\": \"",
    "apiVersion: v3.1.0\\n",
    "\"days\": ",
    "\"major\": ",
    "\"role\": \"admin\"",
    "\"domain\": \"",
];

const PARAMS: &[&str] = &[
    "sales.orders",
    "orders",
    "1.0.0",
    "x",
    "..",
    "%2e%2e",
    "sales",
    "9999999999999999999",
    "-1",
    "a.b.c.d",
    "%00",
    "%F0%9F%98%80",
    "global",
];

#[test]
fn request_bodies_never_fail_the_server() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = runtime.block_on(Harness::new());
    let admin = h.token("admin").unwrap().to_owned();
    let doc: serde_json::Value = serde_json::from_str(&mesh_server::openapi_document()).unwrap();
    let mut endpoints: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["post", "delete"] {
            if item.get(method).is_some() {
                endpoints.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    endpoints.sort();
    let mut rng = fuzz::Rng::new(0x6874_7470);
    fuzz::campaign("http", fuzz::cases(600), TOKENS, |body| {
        let (method, template) = rng.pick(&endpoints).clone();
        let mut uri = String::new();
        for part in template.split('/') {
            if !uri.is_empty() || part.is_empty() {
                uri.push('/');
            }
            if part.starts_with('{') {
                let param: &&str = rng.pick(PARAMS);
                uri.push_str(param);
            } else {
                uri.push_str(part);
            }
        }
        let uri = format!("/{}", uri.trim_start_matches('/'));
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()));
        let Ok(request) = request else {
            return;
        };
        let reply = runtime.block_on(h.raw(request));
        assert!(
            reply.status.as_u16() != 500,
            "{method} {uri}: 500 {}",
            reply.json
        );
    });
}
