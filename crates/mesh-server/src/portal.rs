//! The portal: server-rendered pages on the same port as the API. Reading works without
//! JavaScript; forms post back and redirect. Signing in keeps an API token in an HttpOnly,
//! SameSite=Strict cookie, and every page acts as that token's principal, so the catalog
//! authorizes the portal exactly as it does the API. With `--open-portal`, anyone who reaches the
//! server may read (as a reader); asking for and deciding on access still needs a sign-in.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mesh_catalog::access::{AccessAsk, AccessDecision};
use mesh_catalog::lineage::{Direction, Graph};
use mesh_catalog::search::SearchQuery;
use mesh_catalog::store::RoleBinding;
use mesh_catalog::{ErrorCode, Principal};

use crate::error::ApiError;
use minijinja::Environment;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;

const COOKIE: &str = "mesh_token";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("index.html", include_str!("../templates/index.html")),
        ("search.html", include_str!("../templates/search.html")),
        ("product.html", include_str!("../templates/product.html")),
        ("domain.html", include_str!("../templates/domain.html")),
        ("signin.html", include_str!("../templates/signin.html")),
        ("error.html", include_str!("../templates/error.html")),
    ] {
        // The templates are part of the binary: one that does not parse fails every test.
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env
});

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/search", get(search))
        .route("/products/{id}", get(product))
        .route("/products/{id}/lineage.svg", get(lineage_svg))
        .route("/products/{id}/requests", post(request_access))
        .route("/requests/{id}/decision", post(decide))
        .route("/domains/{domain}", get(domain))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
}

/// Who is looking: the signed-in token's principal, the anonymous reader of an open portal, or
/// nobody.
struct Viewer {
    principal: Option<Principal>,
    signed_in: bool,
}

async fn viewer(state: &AppState, headers: &HeaderMap) -> Viewer {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned());
    if let Some(token) = token
        && let Ok(p) = state.catalog.authenticate(&token).await
    {
        return Viewer {
            principal: Some(p),
            signed_in: true,
        };
    }
    let principal = state.open_portal.then(|| Principal {
        name: "anonymous".into(),
        bindings: vec![RoleBinding {
            principal: "anonymous".into(),
            role: "consumer".into(),
            domain: mesh_catalog::auth::ANY_DOMAIN.into(),
        }],
    });
    Viewer {
        principal,
        signed_in: false,
    }
}

fn render(name: &str, viewer: &Viewer, mut context: Value) -> Response {
    if let Value::Object(map) = &mut context {
        map.insert(
            "user".into(),
            viewer
                .signed_in
                .then(|| viewer.principal.as_ref().map(|p| p.name.clone()))
                .flatten()
                .into(),
        );
    }
    match TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(&context))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

/// A failure as a page: its problem's detail (for the platform's own failures, only the error id
/// the server logged it under), under a title that says what kind it is.
fn error_page(viewer: &Viewer, e: ApiError) -> Response {
    let code = e.problem.error_code().unwrap_or(ErrorCode::Internal);
    let (status, title) = match code {
        ErrorCode::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        ErrorCode::Forbidden | ErrorCode::Unauthenticated => (StatusCode::FORBIDDEN, "Not allowed"),
        c if c.is_client_error() => (StatusCode::BAD_REQUEST, "Not done"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    };
    let mut page = render(
        "error.html",
        viewer,
        json!({ "title": title, "detail": e.detail() }),
    );
    *page.status_mut() = status;
    page
}

/// The page for a visitor the portal does not know.
fn sign_in_first(viewer: &Viewer) -> Response {
    let mut page = render(
        "error.html",
        viewer,
        json!({ "title": "Sign in", "detail": "This catalog's portal is for signed-in users." }),
    );
    *page.status_mut() = StatusCode::UNAUTHORIZED;
    page
}

macro_rules! who {
    ($viewer:expr) => {
        match &$viewer.principal {
            Some(p) => p.clone(),
            None => return sign_in_first(&$viewer),
        }
    };
}

/// The signed-in principal, for what only a signed-in person may do (an open portal's anonymous
/// reader may not).
macro_rules! signed_in {
    ($viewer:expr) => {
        match &$viewer.principal {
            Some(p) if $viewer.signed_in => p.clone(),
            _ => return sign_in_first(&$viewer),
        }
    };
}

macro_rules! tried {
    ($viewer:expr, $result:expr) => {
        match $result {
            Ok(v) => v,
            Err(e) => return error_page(&$viewer, ApiError::from(e)),
        }
    };
}

#[derive(Debug, Deserialize)]
struct Flash {
    done: Option<String>,
    /// A column of the product's ports: the lineage shown is that column's.
    column: Option<String>,
}

fn flash(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "requested" => Some("Access requested: the owning domain decides."),
        "approved" => Some("Approved: the grant is active."),
        "denied" => Some("Denied."),
        "signed-in" => Some("Signed in."),
        _ => None,
    }
}

async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Flash>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = who!(viewer);
    let catalog = &state.catalog;
    let everything = SearchQuery {
        limit: Some(1),
        ..SearchQuery::default()
    };
    let products = tried!(viewer, catalog.search(&who, &everything).await).total;
    let domains = tried!(viewer, catalog.domains(&who).await);
    let sla = tried!(
        viewer,
        state
            .monitor
            .current(&state.catalog, &who)
            .await
            .map(|p| p.report)
    );
    let violated: Vec<_> = sla
        .ports
        .iter()
        .filter(|p| p.status == "violated")
        .collect();
    let mut by_age: Vec<(f64, &str)> = sla
        .ports
        .iter()
        .filter_map(|p| Some((p.metrics.freshness_seconds?, p.product.as_str())))
        .collect();
    by_age.sort_by(|a, b| a.0.total_cmp(&b.0));
    let aged = |list: &mut dyn Iterator<Item = &(f64, &str)>| -> Vec<Value> {
        list.take(5)
            .map(|(s, p)| json!({ "product": p, "age": mesh_catalog::sla::human(*s) }))
            .collect()
    };
    let freshest = aged(&mut by_age.iter());
    let stalest = aged(&mut by_age.iter().rev());
    let audit = compliance(&state).await;
    let requests = if viewer.signed_in {
        requests_for(&state, &who).await
    } else {
        Vec::new()
    };
    render(
        "index.html",
        &viewer,
        json!({
            "flash": flash(f.done.as_deref()),
            "products": products,
            "domains": domains,
            "sla": *sla,
            "violated": violated,
            "freshest": freshest,
            "stalest": stalest,
            "audit": audit.unwrap_or_else(|| json!({"compliant": "–", "products": "–", "by_domain": {}})),
            "requests": requests,
        }),
    )
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = who!(viewer);
    let mut query = query;
    query.limit = Some(query.limit.unwrap_or(50).min(100));
    let results = tried!(viewer, state.catalog.search(&who, &query).await);
    let filters: BTreeMap<&str, Option<&String>> = [
        ("domain", query.domain.as_ref()),
        ("tag", query.tag.as_ref()),
        ("type", query.product_type.as_ref()),
        ("classification", query.classification.as_ref()),
        ("status", query.status.as_ref()),
    ]
    .into_iter()
    .collect();
    // Each facet value links to the same search with that filter set (or cleared when set).
    let mut links = BTreeMap::new();
    for (facet, values) in &results.facets {
        for value in values.keys() {
            let mut params = vec![("q".to_owned(), query.q.clone())];
            for (name, current) in &filters {
                match (*name == facet, current) {
                    (true, Some(c)) if *c == value => {}
                    (true, _) => params.push(((*name).to_owned(), value.clone())),
                    (false, Some(c)) => params.push(((*name).to_owned(), (*c).clone())),
                    (false, None) => {}
                }
            }
            links.insert(
                format!("{facet}={value}"),
                format!("/search?{}", encode(&params)),
            );
        }
    }
    render(
        "search.html",
        &viewer,
        json!({
            "q": query.q,
            "results": results,
            "filters": filters,
            "filtered": filters.values().any(Option::is_some),
            "facet_links": links,
        }),
    )
}

fn encode(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", mesh_service::routes::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The access requests a signed-in person cares about, newest first: their own, and those on the
/// products of the domains they own (or all, for admins).
async fn requests_for(state: &AppState, who: &Principal) -> Vec<mesh_catalog::access::RequestView> {
    let catalog = &state.catalog;
    let mut all = catalog
        .access_requests(who, None, None)
        .await
        .unwrap_or_default();
    let owned: Vec<&str> = who
        .bindings
        .iter()
        .filter(|b| b.role == "owner" && b.domain != mesh_catalog::auth::ANY_DOMAIN)
        .map(|b| b.domain.as_str())
        .collect();
    for domain in owned {
        let query = mesh_catalog::store::ProductQuery {
            domain: Some(domain.to_owned()),
            after: None,
            limit: 1000,
        };
        for product in catalog.products(who, &query).await.unwrap_or_default() {
            all.extend(
                catalog
                    .access_requests(who, Some(&product.id), None)
                    .await
                    .unwrap_or_default(),
            );
        }
    }
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    all.dedup_by(|a, b| a.id == b.id);
    all.truncate(20);
    all
}

/// How long the portal shows one audit's compliance counts before running it again.
const COMPLIANCE_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Policy compliance per domain and overall, for everyone who may read the portal: the counts
/// only (the violations' messages stay with the domains, in `mesh policy audit`). An audit judges
/// every product, so its result is kept for a minute.
async fn compliance(state: &AppState) -> Option<Value> {
    let cached = state
        .compliance
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some((at, value)) = cached
        && at.elapsed() < COMPLIANCE_FOR
    {
        return Some(value);
    }
    let value = audit_counts(state).await?;
    *state.compliance.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), value.clone()));
    Some(value)
}

async fn audit_counts(state: &AppState) -> Option<Value> {
    let report = state
        .catalog
        .audit(&Principal::system("portal"))
        .await
        .ok()?;
    // Per product: how many violations of each enforcement.
    let mut by_product: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for v in &report.violations {
        if let (Some(p), Some(e)) = (v["product"].as_str(), v["enforcement"].as_str()) {
            *by_product
                .entry(p.to_owned())
                .or_default()
                .entry(e.to_owned())
                .or_default() += 1;
        }
    }
    Some(json!({
        "products": report.products,
        "compliant": report.compliant,
        "by_domain": report.by_domain,
        "by_product": by_product,
    }))
}

/// Checks counted by outcome in a run's checks document.
fn check_counts(checks: Option<&Value>) -> (usize, usize, usize) {
    let list = checks
        .and_then(|c| c["checks"].as_array())
        .cloned()
        .unwrap_or_default();
    let count = |r: &str| list.iter().filter(|c| c["result"] == r).count();
    (
        count("passed"),
        count("warning"),
        count("failed") + count("error"),
    )
}

async fn product(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = who!(viewer);
    let catalog = &state.catalog;
    let view = tried!(viewer, catalog.product(&who, &id).await);
    let latest = tried!(viewer, catalog.version(&who, &id, "latest").await);
    let descriptor = latest.descriptor.clone().unwrap_or_default();
    let options = mesh_catalog::sla::SlaOptions {
        window: state.monitor.options.window,
        product: Some(id.clone()),
    };
    let sla = tried!(viewer, Box::pin(catalog.sla(&who, &options)).await);
    let name = id.rsplit('.').next().unwrap_or(&id).to_owned();
    let ports: Vec<Value> = latest
        .ports
        .iter()
        .map(|p| {
            let sla = sla.ports.iter().find(|s| s.port == p.port);
            json!({
                "name": p.port,
                "contract_id": p.contract_id,
                "compatibility": p.compatibility,
                "schema": p.contract["schema"],
                "sla": sla,
                "table": if p.port == name { name.clone() } else { format!("{name}__{}", p.port) },
            })
        })
        .collect();
    let history = catalog
        .sla_violations(&who, Some(&id), 20)
        .await
        .unwrap_or_default();
    // The catalog's clock, not the wall's: the history is in its time.
    let policy = compliance(&state)
        .await
        .map(|c| c["by_product"][&id].clone())
        .unwrap_or(Value::Null);
    let now = chrono::DateTime::parse_from_rfc3339(&catalog.now())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let history_chart = crate::chart::timeline(&history, now - state.monitor.options.window, now);
    let runs: Vec<Value> = catalog
        .runs(&who, &id, None, 20)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let (passed, warned, failed) = check_counts(r.checks.as_ref());
            json!({
                "started_at": r.started_at, "port": r.port, "state": r.state,
                "rows_out": r.rows_out, "passed": passed, "warned": warned, "failed": failed,
            })
        })
        .collect();
    let column = f.column.as_deref().filter(|c| !c.is_empty());
    let graph = Box::pin(catalog.product_lineage(&who, &id, 3, Direction::Both, column))
        .await
        .unwrap_or(Graph { graph: Vec::new() });
    let recommendations = catalog
        .recommendations(&who, &id, 5)
        .await
        .unwrap_or_default();
    // Readers and decisions are for the product's domain; others simply do not see them.
    let consumers = catalog.usage(&who, &id).await.unwrap_or_default();
    let pending = if viewer.signed_in {
        catalog
            .access_requests(&who, Some(&id), None)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    render(
        "product.html",
        &viewer,
        json!({
            "flash": flash(f.done.as_deref()),
            "product": view,
            "purpose": descriptor["description"]["purpose"],
            "usage": descriptor["description"]["usage"],
            "limitations": descriptor["description"]["limitations"],
            "tags": descriptor["tags"],
            "ports": ports,
            "history_chart": history_chart,
            "policy": policy,
            "history": history,
            "runs": runs,
            "lineage": crate::graph::svg(&graph, &id),
            "column": column,
            "recommendations": recommendations,
            "consumers": consumers,
            "pending": pending,
        }),
    )
}

async fn lineage_svg(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = who!(viewer);
    let column = f.column.as_deref().filter(|c| !c.is_empty());
    let graph = tried!(
        viewer,
        Box::pin(
            state
                .catalog
                .product_lineage(&who, &id, 3, Direction::Both, column)
        )
        .await
    );
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        crate::graph::svg(&graph, &id),
    )
        .into_response()
}

async fn domain(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = who!(viewer);
    let query = mesh_catalog::store::ProductQuery {
        domain: Some(domain.clone()),
        after: None,
        limit: 1000,
    };
    let products = tried!(viewer, state.catalog.products(&who, &query).await);
    if products.is_empty()
        && !tried!(viewer, state.catalog.domains(&who).await)
            .iter()
            .any(|d| d.name == domain)
    {
        return error_page(
            &viewer,
            ApiError::not_found(format!("not found: domain `{domain}`")),
        );
    }
    let sla = tried!(
        viewer,
        state
            .monitor
            .current(&state.catalog, &who)
            .await
            .map(|p| p.report)
    );
    let mut status: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &sla.ports {
        let entry = status.entry(p.product.as_str()).or_insert("met");
        if p.status == "violated" {
            *entry = "violated";
        }
    }
    let audit = compliance(&state).await;
    render(
        "domain.html",
        &viewer,
        json!({
            "domain": domain,
            "products": products.iter().map(|p| json!({
                "id": p.id, "name": p.name, "team": p.team, "latest": p.latest, "status": p.status,
            })).collect::<Vec<_>>(),
            "sla": status,
            "compliance": audit.map(|a| a["by_domain"][&domain].clone()).filter(|c| !c.is_null()),
        }),
    )
}

#[derive(Debug, Deserialize)]
struct RequestForm {
    port: String,
    #[serde(default)]
    columns: String,
    purpose: String,
    #[serde(default)]
    days: String,
}

async fn request_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RequestForm>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = signed_in!(viewer);
    let days = match form.days.trim() {
        "" => 30,
        d => match d.parse() {
            Ok(d) => d,
            Err(_) => {
                return error_page(
                    &viewer,
                    ApiError::bad_request(format!("`{d}` is not a number of days")),
                );
            }
        },
    };
    let ask = AccessAsk {
        product: id.clone(),
        port: form.port,
        major: None,
        purpose: form.purpose,
        columns: form
            .columns
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        days,
        consumer: None,
    };
    let request = tried!(viewer, state.catalog.request_access(&who, &ask).await);
    crate::notify::send(&state, "access.requested", &request.product, &request);
    Redirect::to(&format!("/products/{id}?done=requested")).into_response()
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    product: String,
    approve: String,
}

async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    let who = signed_in!(viewer);
    let approve = form.approve == "true";
    let decision = if approve {
        AccessDecision::Approve {
            columns: None,
            days: None,
        }
    } else {
        AccessDecision::Deny {
            reason: "denied in the portal".into(),
        }
    };
    let request = tried!(
        viewer,
        state.catalog.decide_access(&who, &id, &decision).await
    );
    let event = mesh_catalog::access::decision_event(&request.state, request.grant.is_some());
    crate::notify::send(&state, event, &request.product, &request);
    let done = if approve { "approved" } else { "denied" };
    Redirect::to(&format!(
        "/products/{}?done={done}",
        mesh_service::routes::encode(&form.product)
    ))
    .into_response()
}

async fn signin_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = viewer(&state, &headers).await;
    render("signin.html", &viewer, json!({}))
}

#[derive(Debug, Deserialize)]
struct SignIn {
    token: String,
}

async fn signin(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    let token = form.token.trim();
    match state.catalog.authenticate(token).await {
        Ok(_) => (
            [(
                header::SET_COOKIE,
                format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
            )],
            Redirect::to("/?done=signed-in"),
        )
            .into_response(),
        Err(e) => {
            let viewer = Viewer {
                principal: None,
                signed_in: false,
            };
            let mut page = render("signin.html", &viewer, json!({ "error": e.to_string() }));
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            page
        }
    }
}

async fn signout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        for name in [
            "index.html",
            "search.html",
            "product.html",
            "domain.html",
            "signin.html",
            "error.html",
        ] {
            assert!(super::TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }
}
