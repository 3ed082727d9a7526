//! The API: every endpoint as every role, malformed input, the OpenAPI document, and the flows.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use mesh_catalog::Principal;

use crate::harness::{Harness, bundle, publish_body};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
enum Allowed {
    /// Anyone, without a token.
    Anyone,
    /// Any authenticated principal.
    Readers,
    /// Domain owners and members (any domain) and admins.
    Workers,
    /// Publishing in `sales`: its owner and member, and admins.
    SalesPublishers,
    /// Lifecycle in `sales`: its owner and admins.
    SalesOwners,
    Admins,
}

impl Allowed {
    fn admits(self, caller: &str) -> bool {
        match self {
            Allowed::Anyone => true,
            Allowed::Readers => caller != "anonymous",
            Allowed::Workers => !matches!(caller, "anonymous" | "consumer"),
            Allowed::SalesPublishers => matches!(caller, "admin" | "sales_owner" | "sales_member"),
            Allowed::SalesOwners => matches!(caller, "admin" | "sales_owner"),
            Allowed::Admins => caller == "admin",
        }
    }
}

/// One row of the matrix: a request for a caller (index `i` lets a row use a fresh target).
struct Endpoint {
    method: &'static str,
    /// The path template as in the OpenAPI document.
    template: &'static str,
    allowed: Allowed,
    request: fn(usize, &[String]) -> (String, Option<serde_json::Value>),
}

fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            method: "GET",
            template: "/health",
            allowed: Allowed::Anyone,
            request: |_, _| ("/health".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/openapi.json",
            allowed: Allowed::Anyone,
            request: |_, _| ("/openapi.json".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products?domain=sales&limit=10".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/products",
            allowed: Allowed::SalesPublishers,
            request: |i, _| {
                (
                    "/api/v1/products".into(),
                    Some(publish_body(&bundle(
                        "sales.orders",
                        &format!("1.{}.0", 10 + i),
                        &["id", "amount"],
                    ))),
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/compatibility",
            allowed: Allowed::SalesPublishers,
            request: |_, _| {
                (
                    "/api/v1/compatibility".into(),
                    Some(publish_body(&bundle(
                        "sales.orders",
                        "1.99.0",
                        &["id", "amount"],
                    ))),
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.orders".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/versions",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.orders/versions".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/versions/{version}",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.orders/versions/1".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/products/{product}/versions/{version}/deprecate",
            allowed: Allowed::SalesOwners,
            request: |i, _| {
                (
                    format!("/api/v1/products/sales.orders/versions/1.0.{i}/deprecate"),
                    Some(serde_json::json!({"sunset": "2027-06-30", "migration_guide": "Use @2."})),
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/products/{product}/versions/{version}/retire",
            allowed: Allowed::SalesOwners,
            request: |i, _| {
                (
                    format!("/api/v1/products/sales.retired/versions/1.0.{i}/retire"),
                    None,
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/ports/{port}/changelog",
            allowed: Allowed::Readers,
            request: |_, _| {
                (
                    "/api/v1/products/sales.orders/ports/orders/changelog?from=1.0.0&to=2.0.0"
                        .into(),
                    None,
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/changelog",
            allowed: Allowed::Readers,
            request: |_, _| {
                (
                    "/api/v1/changelog".into(),
                    Some(serde_json::json!({
                        "old": {"content": "kind: DataContract\nschema: [{name: t, properties: [{name: a}]}]\n"},
                        "new": {"content": {"kind": "DataContract", "schema": [{"name": "t", "properties": []}]}},
                    })),
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/search",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/search?q=ordrs&domain=sales&limit=5".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/lineage",
            allowed: Allowed::Workers,
            request: |i, _| {
                let event = serde_json::json!({
                    "eventType": "COMPLETE", "eventTime": "2026-11-01T10:00:00Z",
                    "run": {"runId": format!("00000000-0000-4000-8000-00000000000{i}")},
                    "job": {"namespace": "airflow", "name": "load_orders"},
                    "inputs": [{"namespace": "postgres://db", "name": "public.orders"}],
                    "outputs": [{"namespace": "warehouse", "name": "analytics.orders"}],
                    "producer": "https://example.com/test",
                    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                });
                ("/api/v1/lineage".into(), Some(event))
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/lineage",
            allowed: Allowed::Readers,
            request: |_, _| {
                (
                    "/api/v1/lineage?nodeId=job:mesh:sales.orders&depth=2".into(),
                    None,
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/lineage",
            allowed: Allowed::Readers,
            request: |_, _| {
                (
                    "/api/v1/products/sales.orders/lineage?direction=downstream".into(),
                    None,
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/ports/{port}/impact",
            allowed: Allowed::Readers,
            request: |_, _| {
                (
                    "/api/v1/products/sales.orders/ports/orders/impact?columns=id,amount".into(),
                    None,
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/recommendations",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.orders/recommendations".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/domains",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/domains".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/teams",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/teams".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/events",
            allowed: Allowed::Workers,
            request: |_, _| ("/api/v1/events?after=0&limit=5".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/versions/{version}/ports/{port}/contract",
            allowed: Allowed::Readers,
            request: |_, _| {
                let uri = "/api/v1/products/sales.orders/versions/latest/ports/orders/contract";
                (uri.into(), None)
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/policies",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/policies?domain=sales".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/policies/{scope}",
            allowed: Allowed::SalesOwners,
            request: |i, _| {
                let text = format!(
                    "package sales.rule{i}\n\nimport rego.v1\n\ndeny contains \"never\" if false\n"
                );
                (
                    "/api/v1/policies/sales".into(),
                    Some(serde_json::json!({"files": [{"path": "rule.rego", "text": text}]})),
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/policies/{scope}/versions",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/policies/sales/versions".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/policies/{scope}/versions/{version}",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/policies/sales/versions/1".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/audit",
            allowed: Allowed::Workers,
            request: |_, _| ("/api/v1/audit".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/runs",
            allowed: Allowed::SalesPublishers,
            request: |i, _| {
                let start = serde_json::json!({
                    "product": format!("sales.r{i}"), "port": format!("r{i}"),
                    "inputs": [], "owner": "host:1",
                });
                ("/api/v1/runs".into(), Some(start))
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/runs/{id}",
            allowed: Allowed::Readers,
            request: |_, ids| (format!("/api/v1/runs/{}", ids[RUNS + 18]), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/runs/{id}/committing",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| {
                let body = serde_json::json!({"delta_version": 1});
                (
                    format!("/api/v1/runs/{}/committing", ids[RUNS + i]),
                    Some(body),
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/runs/{id}/finish",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| {
                // A failed run: a version would have to be the run's own commit.
                let body = serde_json::json!({"error": "the transform failed"});
                (
                    format!("/api/v1/runs/{}/finish", ids[RUNS + 6 + i]),
                    Some(body),
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/runs/{id}/settle",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| {
                let body = serde_json::json!({"delta_version": null});
                (
                    format!("/api/v1/runs/{}/settle", ids[RUNS + 12 + i]),
                    Some(body),
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/runs/{id}/heartbeat",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| (format!("/api/v1/runs/{}/heartbeat", ids[RUNS + i]), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/runs",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.c0/runs?limit=5".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/usage",
            allowed: Allowed::SalesPublishers,
            request: |_, _| ("/api/v1/products/sales.orders/usage".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/snapshots",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.c0/snapshots".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/subscriptions",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/subscriptions".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/subscriptions",
            allowed: Allowed::SalesPublishers,
            request: |i, _| {
                (
                    "/api/v1/subscriptions".into(),
                    Some(serde_json::json!({
                        "scope": "product", "subject": "sales.orders", "channel": "slack",
                        "target": format!("https://hooks.example.com/new{i}"),
                        "events": ["run.failed"],
                    })),
                )
            },
        },
        Endpoint {
            method: "DELETE",
            template: "/api/v1/subscriptions/{id}",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| {
                (
                    format!("/api/v1/subscriptions/{}", ids[ids.len() - 6 + i]),
                    None,
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/schedule",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/products/sales.c0/schedule".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/principals/{principal}/revoke",
            allowed: Allowed::Admins,
            request: |i, _| (format!("/api/v1/principals/gone{i}/revoke"), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/inputs",
            allowed: Allowed::SalesPublishers,
            request: |_, _| ("/api/v1/products/sales.c0/inputs".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/access/requests",
            allowed: Allowed::Readers,
            request: |_, _| {
                let ask = serde_json::json!({
                    "product": "sales.orders", "port": "orders", "purpose": "Monthly revenue.",
                    "columns": ["id"], "days": 30,
                });
                ("/api/v1/access/requests".into(), Some(ask))
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/access/requests",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/access/requests?product=sales.orders".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/access/requests/{id}/decision",
            allowed: Allowed::SalesOwners,
            request: |i, ids| {
                let body = serde_json::json!({"decision": "approve", "days": 7});
                (
                    format!("/api/v1/access/requests/{}/decision", ids[ACCESS + i]),
                    Some(body),
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/access/grants",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/access/grants".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/access/grants/{id}/revoke",
            allowed: Allowed::SalesOwners,
            request: |i, ids| {
                let body = serde_json::json!({"reason": "no longer needed"});
                (
                    format!("/api/v1/access/grants/{}/revoke", ids[ACCESS + 6 + i]),
                    Some(body),
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/access/grants/{id}/credentials",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| {
                let body = serde_json::json!({"label": format!("dash-{i}")});
                (
                    format!("/api/v1/access/grants/{}/credentials", ids[ACCESS + 12 + i]),
                    Some(body),
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/access/credentials",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/access/credentials".into(), None),
        },
        Endpoint {
            method: "DELETE",
            template: "/api/v1/access/credentials/{id}",
            allowed: Allowed::SalesPublishers,
            request: |i, ids| {
                (
                    format!("/api/v1/access/credentials/{}", ids[ACCESS + 18 + i]),
                    None,
                )
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/query",
            allowed: Allowed::Readers,
            request: |_, _| {
                (
                    "/api/v1/query".into(),
                    Some(serde_json::json!({"sql": "SELECT 1 AS one"})),
                )
            },
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/sla",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/sla?product=sales.orders&window=7d".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/sla/check",
            allowed: Allowed::Admins,
            request: |_, _| ("/api/v1/sla/check".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/sla/violations",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/sla/violations?product=sales.orders".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/webhooks/deliveries",
            allowed: Allowed::Admins,
            request: |_, _| ("/api/v1/webhooks/deliveries?limit=10".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/masking-key",
            allowed: Allowed::Admins,
            request: |_, _| ("/api/v1/masking-key".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/masking-key/rotate",
            allowed: Allowed::Admins,
            request: |_, _| ("/api/v1/masking-key/rotate".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/products/{product}/sources",
            allowed: Allowed::SalesPublishers,
            request: |_, _| ("/api/v1/products/sales.c0/sources".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/locations",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/locations".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/locations",
            allowed: Allowed::Admins,
            request: |i, _| {
                let body = serde_json::json!({
                    "name": format!("new{i}"), "url": format!("s3://landing/new{i}"),
                    "domain": "sales",
                });
                ("/api/v1/locations".into(), Some(body))
            },
        },
        Endpoint {
            method: "DELETE",
            template: "/api/v1/locations/{name}",
            allowed: Allowed::Admins,
            request: |i, _| (format!("/api/v1/locations/old{i}"), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/whoami",
            allowed: Allowed::Readers,
            request: |_, _| ("/api/v1/whoami".into(), None),
        },
        Endpoint {
            method: "GET",
            template: "/api/v1/bindings",
            allowed: Allowed::Admins,
            request: |_, _| ("/api/v1/bindings".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/bindings",
            allowed: Allowed::Admins,
            request: |i, _| {
                let body = serde_json::json!({
                    "principal": format!("p{i}"), "role": "member", "domain": "sales",
                });
                ("/api/v1/bindings".into(), Some(body))
            },
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/bindings/remove",
            allowed: Allowed::Admins,
            request: |i, _| {
                let body = serde_json::json!({
                    "principal": format!("p{i}"), "role": "member", "domain": "sales",
                });
                ("/api/v1/bindings/remove".into(), Some(body))
            },
        },
        Endpoint {
            method: "PUT",
            template: "/api/v1/domains/{domain}",
            allowed: Allowed::Admins,
            request: |i, _| {
                let body = serde_json::json!({ "description": format!("Sales, take {i}.") });
                ("/api/v1/domains/sales".into(), Some(body))
            },
        },
        Endpoint {
            method: "GET",
            template: "/metrics",
            allowed: Allowed::Readers,
            request: |_, _| ("/metrics".into(), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/tokens/{id}/revoke",
            allowed: Allowed::Admins,
            request: |i, ids| (format!("/api/v1/tokens/{}/revoke", ids[i]), None),
        },
        Endpoint {
            method: "POST",
            template: "/api/v1/tokens",
            allowed: Allowed::Admins,
            request: |i, _| {
                (
                    "/api/v1/tokens".into(),
                    Some(
                        serde_json::json!({"principal": format!("svc{i}"), "roles": [{"role": "consumer"}]}),
                    ),
                )
            },
        },
    ]
}

/// Where the seeded run ids start in the ids `seed` returns (after the victims' token ids):
/// running runs for `committing` (6), for `finish` (6), for `settle` (6), then a finished one.
const RUNS: usize = 6;
/// Where the seeded access ids start: pending requests for `decision` (6), grants for `revoke`
/// (6), all asked for by `requester`, who is none of the callers; then grants to the service
/// identity `sales.dash` (6) and a credential on each (6).
const ACCESS: usize = RUNS + 19;

/// Products the matrix acts on: sales.orders 1.0.0..1.0.5 and 2.0.0, and sales.retired
/// 1.0.0..1.0.5 deprecated with a sunset that has passed when the matrix runs.
async fn seed(h: &Harness) -> Vec<String> {
    let admin = Principal::local();
    let mut victims = Vec::new();
    for i in 0..6 {
        let token = h
            .catalog
            .bootstrap_token(
                &format!("victim{i}"),
                &[(mesh_catalog::Role::Consumer, None)],
                None,
            )
            .await
            .unwrap();
        victims.push(mesh_catalog::auth::token_id(&token));
        // And a principal to revoke whole.
        h.catalog
            .bootstrap_token(
                &format!("gone{i}"),
                &[(mesh_catalog::Role::Consumer, None)],
                None,
            )
            .await
            .unwrap();
    }
    for i in 0..6 {
        h.catalog
            .publish(
                &admin,
                &bundle("sales.orders", &format!("1.0.{i}"), &["id", "amount"]),
                false,
            )
            .await
            .unwrap();
        h.catalog
            .publish(
                &admin,
                &bundle("sales.retired", &format!("1.0.{i}"), &["id"]),
                false,
            )
            .await
            .unwrap();
        let sunset = chrono::NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
        h.catalog
            .deprecate(&admin, "sales.retired", &format!("1.0.{i}"), sunset, "gone")
            .await
            .unwrap();
    }
    h.catalog
        .publish(&admin, &bundle("sales.orders", "2.0.0", &["id"]), false)
        .await
        .unwrap();
    let policies = mesh_catalog::governance::PolicyBundle {
        files: vec![mesh_catalog::governance::PolicyFile {
            path: "seed.rego".into(),
            text: "package sales.seed\n\nimport rego.v1\n\ndeny contains \"never\" if false\n"
                .into(),
        }],
        overrides: Default::default(),
    };
    h.catalog
        .publish_policies(
            &admin,
            &mesh_catalog::governance::PolicyScope::Domain("sales".into()),
            policies,
            false,
        )
        .await
        .unwrap();
    // Runs: a product per matrix cell that starts one, and a running run per cell that acts on one.
    for i in 0..6 {
        let id = format!("sales.r{i}");
        h.catalog
            .publish(&admin, &bundle(&id, "1.0.0", &["id"]), false)
            .await
            .unwrap();
    }
    for group in ["c", "f", "s"] {
        for i in 0..6 {
            let id = format!("sales.{group}{i}");
            h.catalog
                .publish(&admin, &bundle(&id, "1.0.0", &["id"]), false)
                .await
                .unwrap();
            let start = mesh_catalog::runs::RunStart {
                product: id.clone(),
                port: format!("{group}{i}"),
                location: None,
                inputs: vec![],
                owner: "host:1".into(),
            };
            let run = h.catalog.begin_run(&admin, &start).await.unwrap();
            victims.push(run.id);
        }
    }
    let finished = victims[RUNS + 12 + 5].clone();
    h.catalog.settle_run(&admin, &finished, None).await.unwrap();
    victims.push(finished);
    let requester = h
        .catalog
        .authenticate(
            &h.catalog
                .bootstrap_token("requester", &[(mesh_catalog::Role::Consumer, None)], None)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let ask = mesh_catalog::access::AccessAsk {
        product: "sales.orders".into(),
        port: "orders".into(),
        major: Some(1),
        purpose: "Monthly revenue.".into(),
        columns: vec![],
        days: 30,
        consumer: None,
    };
    let mut granted = Vec::new();
    for i in 0..12 {
        let request = h.catalog.request_access(&requester, &ask).await.unwrap();
        if i < 6 {
            victims.push(request.id);
        } else {
            let approve = mesh_catalog::access::AccessDecision::Approve {
                columns: None,
                days: None,
            };
            let decided = h
                .catalog
                .decide_access(&admin, &request.id, &approve)
                .await
                .unwrap();
            granted.push(decided.grant.unwrap().id);
        }
    }
    victims.extend(granted);
    // Grants made out to the service identity `sales.dash` (its domain mints credentials for
    // them), and a credential on each to revoke.
    let mut dash = Vec::new();
    let mut credentials = Vec::new();
    {
        let mut tx = h.catalog.store().write().await.unwrap();
        for i in 0..6 {
            tx.insert_grant(&mesh_catalog::store::GrantRow {
                id: format!("dash-grant-{i}"),
                request: format!("dash-request-{i}"),
                product: "sales.orders".into(),
                port: "orders".into(),
                major: 1,
                grantee: "sales.dash".into(),
                columns: "[]".into(),
                granted_by: "admin".into(),
                granted_at: "2026-11-01T00:00:00.000Z".into(),
                expires_at: "2027-06-01T00:00:00.000Z".into(),
                revoked_at: None,
                revoked_by: None,
                reason: None,
            })
            .await
            .unwrap();
            dash.push(format!("dash-grant-{i}"));
        }
        tx.commit().await.unwrap();
    }
    for grant in &dash {
        let minted = h
            .catalog
            .mint_credential(&admin, grant, &Default::default())
            .await
            .unwrap();
        credentials.push(minted.credential.id);
    }
    victims.extend(dash);
    victims.extend(credentials);
    for i in 0..6 {
        let old = mesh_catalog::locations::NewLocation {
            name: format!("old{i}"),
            url: format!("s3://landing/old{i}"),
            domain: "sales".into(),
            replace: false,
        };
        h.catalog.add_location(&admin, &old).await.unwrap();
    }
    // Subscriptions to remove, one per caller: the last six ids.
    for i in 0..6 {
        let new = mesh_catalog::subscriptions::NewSubscription {
            scope: "product".into(),
            subject: "sales.orders".into(),
            channel: "webhook".into(),
            target: format!("https://hooks.example.com/old{i}"),
            events: Vec::new(),
        };
        victims.push(h.catalog.subscribe(&admin, &new).await.unwrap().id);
    }
    h.clock
        .set(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    victims
}

#[tokio::test]
async fn every_endpoint_as_every_role() {
    let h = Harness::new().await;
    let callers = h.callers.clone();
    matrix(&h, &callers).await;

    // The matrix covers every operation the OpenAPI document declares.
    let doc: serde_json::Value = serde_json::from_str(&mesh_server::openapi_document()).unwrap();
    let mut declared = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            declared.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut tested: BTreeSet<(String, String)> = endpoints()
        .iter()
        .map(|e| (e.method.to_owned(), e.template.to_owned()))
        .collect();
    tested.remove(&("GET".to_owned(), "/openapi.json".to_owned()));
    assert_eq!(
        declared, tested,
        "every documented operation is in the matrix"
    );
}

/// The same matrix with the company's identity provider: each role held only through a group of
/// an IdP token (principals the catalog binds nothing to), so the IdP's principals get exactly
/// what mesh's own tokens of the same roles get, on every endpoint.
#[tokio::test]
async fn every_endpoint_as_every_role_with_idp_tokens() {
    let idp = crate::idp::TestIdp::start().await;
    let mut h = Harness::new().await;
    let mut config = idp.config();
    config.role_map = vec![
        ("g-admin", "admin", "*"),
        ("g-sales-owner", "owner", "sales"),
        ("g-sales-member", "member", "sales"),
        ("g-hr-owner", "owner", "hr"),
        ("g-consumer", "consumer", "*"),
    ]
    .into_iter()
    .map(|(group, role, domain)| mesh_server::idp::RoleMapping {
        group: group.into(),
        role: role.into(),
        domain: domain.into(),
    })
    .collect();
    h.app = mesh_server::app_with_options(
        h.catalog.clone(),
        mesh_server::Options {
            identity: Some(config),
            ..mesh_server::Options::default()
        },
    );
    let group = |caller: &str| match caller {
        "admin" => "g-admin",
        "sales_owner" => "g-sales-owner",
        "sales_member" => "g-sales-member",
        "hr_owner" => "g-hr-owner",
        _ => "g-consumer",
    };
    let callers: Vec<(&'static str, Option<String>)> = h
        .callers
        .iter()
        .map(|(caller, token)| {
            let token = token
                .as_ref()
                .map(|_| idp.token(&format!("idp-{caller}"), &[group(caller)]));
            (*caller, token)
        })
        .collect();
    matrix(&h, &callers).await;
}

/// Sends every endpoint's request as every caller and checks 2xx, 401 or 403 as its row says.
async fn matrix(h: &Harness, callers: &[(&'static str, Option<String>)]) {
    let victims = seed(h).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for endpoint in endpoints() {
        for (i, (caller, token)) in callers.iter().enumerate() {
            let (uri, body) = (endpoint.request)(i, &victims);
            let reply = h
                .send(endpoint.method, &uri, token.as_deref(), body.as_ref())
                .await;
            cells += 1;
            let expected_ok = endpoint.allowed.admits(caller);
            let ok = reply.status.is_success();
            let expected_denial = if *caller == "anonymous" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            if expected_ok != ok || (!expected_ok && reply.status != expected_denial) {
                failures.push(format!(
                    "{} {uri} as {caller}: got {} (expected {}) {}",
                    endpoint.method,
                    reply.status,
                    if expected_ok {
                        "2xx".to_owned()
                    } else {
                        expected_denial.to_string()
                    },
                    reply.json
                ));
            }
            if !ok {
                assert_eq!(reply.content_type, "application/problem+json", "{uri}");
                assert_eq!(reply.json["status"], reply.status.as_u16());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let h = Harness::new().await;
    let reply = h
        .send("GET", "/api/v1/domains", Some("mesh_0000"), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "unauthenticated");
    let request = Request::get("/api/v1/domains")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    let reply = h.raw(request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.json["detail"].as_str().unwrap().contains("Bearer"));
}

#[tokio::test]
async fn malformed_requests_get_4xx_problems_never_5xx() {
    let h = Harness::new().await;
    seed(&h).await;
    let admin = h.token("admin").unwrap().to_owned();
    let post = |uri: &'static str, content_type: Option<&'static str>, body: Vec<u8>| {
        let mut r = Request::post(uri).header(header::AUTHORIZATION, format!("Bearer {admin}"));
        if let Some(ct) = content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body)).unwrap()
    };
    let posts = [
        "/api/v1/lineage",
        "/api/v1/products",
        "/api/v1/compatibility",
        "/api/v1/changelog",
        "/api/v1/tokens",
        "/api/v1/products/sales.orders/versions/2.0.0/deprecate",
    ];
    let json = Some("application/json");
    let mut cases: Vec<(Request<Body>, StatusCode)> = Vec::new();
    for uri in posts {
        cases.push((
            post(uri, json, b"{not json".to_vec()),
            StatusCode::BAD_REQUEST,
        ));
        cases.push((
            post(uri, Some("text/plain"), b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ));
        cases.push((
            post(uri, None, b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ));
        cases.push((
            post(uri, json, b"[1, 2, 3]".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
        cases.push((
            post(uri, json, br#"{"surprise": true}"#.to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
        cases.push((
            post(uri, json, vec![b' '; 17 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
        cases.push((
            post(uri, json, vec![0xff, 0xfe, 0x00]),
            StatusCode::BAD_REQUEST,
        ));
    }
    let doc = |content: serde_json::Value| serde_json::json!({"descriptor": {"content": content}});
    let body = |v: serde_json::Value| v.to_string().into_bytes();
    // Publish: content of the wrong JSON type, YAML that does not parse, a contract that does not lint.
    cases.push((
        post("/api/v1/products", json, body(doc(serde_json::json!(42)))),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/products",
            json,
            body(doc(serde_json::json!("a: ["))),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    cases.push((
        post(
            "/api/v1/products",
            json,
            body(doc(serde_json::json!({"kind": "DataProduct"}))),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    let mut broken = bundle("sales.orders", "1.50.0", &["id"]);
    broken.contracts[0].text = broken.contracts[0]
        .text
        .replace("logicalType: string", "logicalType: [1]");
    cases.push((
        post("/api/v1/products", json, body(publish_body(&broken))),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    cases.push((
        post(
            "/api/v1/products?dry_run=maybe",
            json,
            body(publish_body(&broken)),
        ),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/changelog",
            json,
            body(serde_json::json!({"old": {"content": "a: ["}, "new": {"content": "{}"}})),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    cases.push((
        post(
            "/api/v1/tokens",
            json,
            body(serde_json::json!({"principal": "x", "roles": [{"role": "king"}]})),
        ),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/tokens",
            json,
            body(serde_json::json!({"principal": "x", "roles": [], "expires_at": "tomorrow"})),
        ),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/tokens",
            json,
            body(serde_json::json!({"principal": " ", "roles": []})),
        ),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/products/sales.orders/versions/2.0.0/deprecate",
            json,
            body(serde_json::json!({"sunset": "soon", "migration_guide": "x"})),
        ),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/products/sales.orders/versions/2.0.0/deprecate",
            json,
            body(serde_json::json!({"sunset": "2020-01-01", "migration_guide": "x"})),
        ),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        post(
            "/api/v1/products/sales.orders/versions/9.9.9/retire",
            None,
            vec![],
        ),
        StatusCode::NOT_FOUND,
    ));
    let get = |uri: &str| {
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .body(Body::empty())
            .unwrap()
    };
    cases.push((get("/api/v1/products?limit=abc"), StatusCode::BAD_REQUEST));
    cases.push((
        get("/api/v1/search?q=x&limit=1000"),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((get("/api/v1/search?limit=-1"), StatusCode::BAD_REQUEST));
    cases.push((get("/api/v1/lineage"), StatusCode::BAD_REQUEST));
    cases.push((
        get("/api/v1/products/sales.orders/ports/nope/impact"),
        StatusCode::NOT_FOUND,
    ));
    cases.push((
        get("/api/v1/lineage?nodeId=dataset:x:y"),
        StatusCode::NOT_FOUND,
    ));
    cases.push((
        get("/api/v1/lineage?nodeId=job:mesh:sales.orders&depth=1000"),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        get("/api/v1/products/sales.orders/lineage?direction=sideways"),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        get("/api/v1/products/sales.orders/lineage?column=nope"),
        StatusCode::NOT_FOUND,
    ));
    cases.push((post("/api/v1/lineage", json, body(serde_json::json!({"eventTime": "2026-01-01T00:00:00Z", "run": {}, "job": {"namespace": "a", "name": "b"}}))), StatusCode::UNPROCESSABLE_ENTITY));
    cases.push((post("/api/v1/lineage", json, body(serde_json::json!({"eventTime": "yesterday", "job": {"namespace": "a", "name": "b"}}))), StatusCode::UNPROCESSABLE_ENTITY));
    cases.push((get("/api/v1/products?limit=0"), StatusCode::BAD_REQUEST));
    cases.push((get("/api/v1/events?after=x"), StatusCode::BAD_REQUEST));
    cases.push((
        get("/api/v1/products/sales.orders/versions/not-a-version"),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        get("/api/v1/products/sales.orders/ports/orders/changelog"),
        StatusCode::BAD_REQUEST,
    ));
    cases.push((
        get("/api/v1/products/sales.orders/ports/nope/changelog?from=1.0.0&to=2.0.0"),
        StatusCode::NOT_FOUND,
    ));
    cases.push((
        get("/api/v1/products/nobody.nothing"),
        StatusCode::NOT_FOUND,
    ));
    cases.push((get("/api/v1/nothing-here"), StatusCode::NOT_FOUND));
    cases.push((
        Request::delete("/api/v1/products")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .body(Body::empty())
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    ));

    let mut failures = Vec::new();
    for (request, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = h.raw(request).await;
        let problem_ok = reply.content_type == "application/problem+json"
            && reply.json["status"] == reply.status.as_u16()
            && reply.json["code"].is_string()
            && reply.json["detail"].is_string()
            && reply.json["type"].is_string();
        if reply.status != expected || !problem_ok {
            failures.push(format!(
                "{what}: {} (expected {expected}) {} {}",
                reply.status, reply.content_type, reply.json
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Invalid documents come back with every finding and its position.
    let reply = h
        .send(
            "POST",
            "/api/v1/products",
            Some(&admin),
            Some(&publish_body(&broken)),
        )
        .await;
    let finding = &reply.json["diagnostics"][0];
    assert_eq!(
        finding["file"], "contracts/port.odcs.yaml",
        "{}",
        reply.json
    );
    assert!(finding["line"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn garbage_bodies_never_cause_a_server_error() {
    let h = Harness::new().await;
    let admin = h.token("admin").unwrap().to_owned();
    // A small deterministic generator: no dependency, same inputs every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let fragments: [&[u8]; 12] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"descriptor\"",
        b"\"content\"",
        b":",
        b",",
        b"\"a: [\"",
        b"null",
        b"1e999",
        b"\"\\ud800\"",
    ];
    for uri in [
        "/api/v1/products",
        "/api/v1/compatibility",
        "/api/v1/changelog",
        "/api/v1/tokens",
    ] {
        for _ in 0..150 {
            let mut body = Vec::new();
            for _ in 0..(next() % 24) {
                body.extend_from_slice(fragments[(next() % fragments.len() as u64) as usize]);
            }
            let request = Request::post(uri)
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let reply = h.raw(request).await;
            assert!(
                reply.status.is_client_error() || reply.status.is_success(),
                "{uri} {:?} -> {} {}",
                String::from_utf8_lossy(&body),
                reply.status,
                reply.json
            );
        }
    }
}

#[tokio::test]
async fn publish_flow_over_http() {
    let h = Harness::new().await;
    let member = h.token("sales_member").unwrap().to_owned();
    let owner = h.token("sales_owner").unwrap().to_owned();
    let v1 = publish_body(&bundle("sales.orders", "1.0.0", &["id", "amount"]));
    let reply = h
        .send("POST", "/api/v1/products", Some(&member), Some(&v1))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["outcome"], "published");
    let reply = h
        .send("POST", "/api/v1/products", Some(&member), Some(&v1))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["outcome"], "unchanged");

    // A breaking change: 409 with the report; the dry run says the same.
    let breaking = publish_body(&bundle("sales.orders", "1.1.0", &["id"]));
    for uri in ["/api/v1/compatibility", "/api/v1/products"] {
        let reply = h.send("POST", uri, Some(&member), Some(&breaking)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{uri}");
        assert_eq!(reply.json["code"], "incompatible");
        assert_eq!(
            reply.json["ports"][0]["failures"][0]["changes"][0]["path"],
            "schema.orders.properties.amount"
        );
    }
    // The same content under another version that exists: 409 version_exists.
    let other = publish_body(&bundle("sales.orders", "1.0.0", &["id", "amount", "extra"]));
    let reply = h
        .send("POST", "/api/v1/products", Some(&member), Some(&other))
        .await;
    assert_eq!(reply.json["code"], "version_exists");

    let v2 = publish_body(&bundle("sales.orders", "2.0.0", &["id"]));
    assert_eq!(
        h.send("POST", "/api/v1/products", Some(&member), Some(&v2))
            .await
            .status,
        StatusCode::CREATED
    );
    let reply = h
        .send(
            "GET",
            "/api/v1/products/sales.orders/versions",
            Some(&member),
            None,
        )
        .await;
    let versions: Vec<&str> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2.0.0", "1.0.0"]);
    let reply = h
        .send(
            "GET",
            "/api/v1/products/sales.orders/versions/v1",
            Some(&member),
            None,
        )
        .await;
    assert_eq!(reply.json["version"], "1.0.0");
    assert_eq!(
        reply.json["ports"][0]["contract"]["id"],
        "sales.orders.orders"
    );
    let reply = h
        .send(
            "GET",
            "/api/v1/products/sales.orders/ports/orders/changelog?from=1&to=latest",
            Some(&member),
            None,
        )
        .await;
    assert_eq!(reply.json["impact"], "breaking", "{}", reply.json);

    let reply = h
        .send(
            "POST",
            "/api/v1/products/sales.orders/versions/1.0.0/deprecate",
            Some(&owner),
            Some(&serde_json::json!({"sunset": "2027-01-31", "migration_guide": "Use @2."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["version"]["status"], "deprecated");
    let reply = h
        .send(
            "POST",
            "/api/v1/products/sales.orders/versions/1.0.0/retire",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json["code"], "lifecycle");

    let reply = h
        .send("GET", "/api/v1/events?limit=2", Some(&owner), None)
        .await;
    assert_eq!(reply.json["items"].as_array().unwrap().len(), 2);
    let next = reply.json["next"].as_i64().unwrap();
    let reply = h
        .send(
            "GET",
            &format!("/api/v1/events?after={next}&limit=100"),
            Some(&owner),
            None,
        )
        .await;
    assert!(reply.json["next"].is_null());
    let kinds: Vec<&str> = reply.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"version.deprecated"), "{kinds:?}");

    // A token issued over the API works at once.
    let admin = h.token("admin").unwrap().to_owned();
    let reply = h
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(&serde_json::json!({"principal": "bi", "roles": [{"role": "consumer"}]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let token = reply.json["token"].as_str().unwrap().to_owned();
    assert_eq!(
        h.send("GET", "/api/v1/products", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
}

/// The client's paths and the server's are one list (`mesh_service::routes`): the OpenAPI
/// document declares exactly those.
#[test]
fn openapi_paths_are_the_shared_routes() {
    let doc: serde_json::Value = serde_json::from_str(&mesh_server::openapi_document()).unwrap();
    let declared: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let shared: BTreeSet<&str> = mesh_service::routes::ALL.iter().copied().collect();
    assert_eq!(declared, shared);
}

#[test]
fn openapi_document_is_committed_and_current() {
    let doc = mesh_server::openapi_document();
    let parsed: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
    assert_eq!(parsed["openapi"], "3.1.0");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = format!("{doc}\n");
    if std::env::var_os("MESH_BLESS").is_some() {
        std::fs::write(&path, &committed).expect("write docs/openapi.json");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == committed,
        "docs/openapi.json is out of date with the handlers: run `MESH_BLESS=1 cargo test -p mesh-server` and commit it"
    );
}

/// Two `mesh serve` instances on one PostgreSQL: what one publishes or deprecates, the other
/// finds (or ranks down) at once. Skipped without MESH_TEST_POSTGRES_URL (required under CI).
#[tokio::test]
async fn two_servers_on_one_postgres_never_disagree() {
    use std::sync::Arc;

    use mesh_catalog::store::PostgresStore;

    let url = match std::env::var("MESH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true but MESH_TEST_POSTGRES_URL is not set");
            return;
        }
    };
    let name = format!("mesh_api_{}_{}", std::process::id(), rand_suffix());
    let db = PostgresStore::create_database(&url, &name, false)
        .await
        .unwrap();
    let one = mesh_catalog::Catalog::new(Arc::new(PostgresStore::open(&db).await.unwrap()));
    let two = mesh_catalog::Catalog::new(Arc::new(PostgresStore::open(&db).await.unwrap()));
    let token = one
        .bootstrap_token("ops", &[(mesh_catalog::Role::Admin, None)], None)
        .await
        .unwrap();
    let (a, b) = (mesh_server::app(one), mesh_server::app(two));
    let send = |app: &axum::Router, method: &str, uri: &str, body: Option<serde_json::Value>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let app = app.clone();
        let request = request.body(body).unwrap();
        async move {
            use tower::ServiceExt;
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    let (status, _) = send(&b, "GET", "/api/v1/search?q=payroll", None).await;
    assert_eq!(status, StatusCode::OK);
    for (product, purpose) in [
        ("hr.payroll", "Monthly payroll."),
        ("hr.payroll_eu", "Payroll in the EU."),
    ] {
        let mut bundle = bundle(product, "1.0.0", &["employee_id"]);
        bundle.descriptor.text = bundle.descriptor.text.replace("API test product.", purpose);
        let (status, body) =
            send(&a, "POST", "/api/v1/products", Some(publish_body(&bundle))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // The other server finds it at once.
        let (_, found) = send(&b, "GET", "/api/v1/search?q=payroll", None).await;
        let ids: Vec<&str> = found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&product), "{ids:?}");
    }
    let (status, body) = send(
        &a,
        "POST",
        "/api/v1/products/hr.payroll/versions/1.0.0/deprecate",
        Some(serde_json::json!({"sunset": "2999-01-01", "migration_guide": "Use hr.payroll_eu."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, found) = send(&b, "GET", "/api/v1/search?q=payroll", None).await;
    let order: Vec<(&str, &str)> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap(), h["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [("hr.payroll_eu", "active"), ("hr.payroll", "deprecated")]
    );
    // Lineage, too, comes from the shared database.
    let (status, _) = send(
        &b,
        "GET",
        "/api/v1/lineage?nodeId=job:mesh:hr.payroll&depth=1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

pub(crate) fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) % 1_000_000
}

#[tokio::test]
async fn queries_are_rate_limited_per_consumer_and_timed_out() {
    let h = Harness::new().await;
    let limits = mesh_server::QueryLimits {
        per_minute: 60,
        burst: 2,
        timeout: std::time::Duration::from_millis(300),
        ..mesh_server::QueryLimits::default()
    };
    let app = mesh_server::app_with(h.catalog.clone(), limits);
    let token = |name: &str| {
        h.callers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, t)| t.clone())
            .unwrap()
    };
    let send = |token: String, sql: &'static str| {
        let app = app.clone();
        async move {
            use tower::ServiceExt as _;
            let request = Request::post("/api/v1/query")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::json!({ "sql": sql }).to_string()))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let retry = response.headers().get(header::RETRY_AFTER).is_some();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            (status, json, retry)
        }
    };
    // A burst of two, then the consumer waits; another consumer has a bucket of its own.
    for _ in 0..2 {
        let (status, _, _) = send(token("consumer"), "SELECT 1 AS one").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, json, retry) = send(token("consumer"), "SELECT 1 AS one").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert!(retry, "429 says when to retry");
    assert_eq!(json["code"], "rate_limited");
    let (status, _, _) = send(token("sales_member"), "SELECT 1 AS one").await;
    assert_eq!(status, StatusCode::OK);
    // A query that runs too long is stopped.
    let (status, json, _) = send(
        token("sales_member"),
        "SELECT COUNT(*) FROM (SELECT a.value FROM generate_series(1, 100000000) a CROSS JOIN generate_series(1, 1000) b)",
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{json}");
    assert_eq!(json["code"], "timeout");
}
