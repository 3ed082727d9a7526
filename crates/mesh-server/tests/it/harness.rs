//! An app over a fresh catalog, with one token per role, and a way to send it requests.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use mesh_catalog::store::SqliteStore;
use mesh_catalog::{Bundle, Catalog, FixedClock, Role, Source};
use tower::ServiceExt;

pub(crate) struct Harness {
    pub(crate) app: Router,
    pub(crate) catalog: Catalog,
    pub(crate) clock: Arc<FixedClock>,
    /// (name, token); `anonymous` has no token.
    pub(crate) callers: Vec<(&'static str, Option<String>)>,
    _dir: tempfile::TempDir,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) json: serde_json::Value,
}

impl Harness {
    pub(crate) async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("catalog.db").to_str().expect("utf-8"))
            .await
            .expect("catalog");
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        ));
        let storage = format!("file://{}", dir.path().join("data").display());
        let catalog = Catalog::with_clock(Arc::new(store), clock.clone()).with_storage(&storage);
        let mut callers = vec![("anonymous", None)];
        for (name, role, domain) in [
            ("admin", Role::Admin, None),
            ("sales_owner", Role::Owner, Some("sales")),
            ("sales_member", Role::Member, Some("sales")),
            ("hr_owner", Role::Owner, Some("hr")),
            ("consumer", Role::Consumer, None),
        ] {
            let token = catalog
                .bootstrap_token(name, &[(role, domain.map(str::to_owned))], None)
                .await
                .expect("token");
            callers.push((name, Some(token)));
        }
        Harness {
            app: mesh_server::app(catalog.clone()),
            catalog,
            clock,
            callers,
            _dir: dir,
        }
    }

    pub(crate) fn token(&self, name: &str) -> Option<&str> {
        self.callers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, t)| t.as_deref())
    }

    /// Sends a request; `body` is sent as JSON when it is `Some`.
    pub(crate) async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.raw(request.body(body).expect("request")).await
    }

    pub(crate) async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            content_type,
            json,
        }
    }
}

/// A product bundle: `domain.name` at `version` with one output port of the given columns.
pub(crate) fn bundle(id: &str, version: &str, columns: &[&str]) -> Bundle {
    let (domain, name) = id.split_once('.').expect("domain.name");
    let mut props = String::new();
    for (i, col) in columns.iter().enumerate() {
        props.push_str(&format!(
            "      - name: {col}\n        logicalType: string\n        required: {}\n",
            i == 0
        ));
        if i == 0 {
            props.push_str("        primaryKey: true\n        quality:\n          - metric: duplicateValues\n            mustBe: 0\n");
        }
    }
    let descriptor = format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: {id}\nname: {name}\ndomain: {domain}\nstatus: active\nversion: {version}\n\
description:\n  purpose: API test product.\ncustomProperties:\n  - property: productType\n    value: source\n  - property: dataClassification\n    value: internal\n  - property: retentionDays\n    value: 30\n\
team:\n  name: {domain}-team\n  members:\n    - username: o@example.com\n      role: owner\n\
support:\n  - channel: \"#{domain}\"\n    url: https://chat.example.com/{domain}\n\
outputPorts:\n  - name: {name}\n    description: The table.\n    type: tables\n    version: {version}\n    contractId: {id}.{name}\n"
    );
    let contract = format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: {id}.{name}\nname: {name}\nversion: {version}\nstatus: active\ndomain: {domain}\n\
description:\n  purpose: The table.\nschema:\n  - name: {name}\n    physicalType: table\n    properties:\n{props}\
slaProperties:\n  - property: latency\n    value: 1\n    unit: d\n  - property: availability\n    value: 99.5\n    unit: percent\n"
    );
    Bundle {
        descriptor: Source {
            path: "product.odps.yaml".into(),
            text: descriptor,
        },
        contracts: vec![Source {
            path: "contracts/port.odcs.yaml".into(),
            text: contract,
        }],
        transform: None,
    }
}

/// The JSON body of a publish request for a bundle.
pub(crate) fn publish_body(bundle: &Bundle) -> serde_json::Value {
    serde_json::json!({
        "descriptor": { "path": bundle.descriptor.path, "content": bundle.descriptor.text },
        "contracts": bundle.contracts.iter().map(|c| serde_json::json!({"path": c.path, "content": c.text})).collect::<Vec<_>>(),
    })
}
