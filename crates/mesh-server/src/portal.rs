//! The portal: server-rendered pages on the same port as the API. Reading works without
//! JavaScript; forms post back and redirect. Signing in opens a session kept on the server: the
//! cookie holds only its random id (HttpOnly, SameSite=Strict, Secure when the server's public
//! URL is https), and every page acts as the session token's principal, so the catalog
//! authorizes the portal exactly as it does the API. Every form post must come from the portal's
//! own origin (`Origin`, else `Referer`) and, once signed in, carry the session's CSRF token.
//! Pages forbid framing, sniffing and scripts (CSP), and links from user text are rendered only
//! when they are http(s). With `--open-portal`, anyone who reaches the server may read (as a
//! reader); asking for and deciding on access still needs a sign-in.

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

const COOKIE: &str = "mesh_session";

/// How long a session lasts from sign-in.
const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// Sessions kept at most (the oldest go first past it).
const MAX_SESSIONS: usize = 100_000;

/// Values this server keeps in its memory for a while, by a random key: the portal's sessions,
/// the sign-ins in flight. At most `max`; past it the soonest to expire go first, so creating
/// them in a loop cannot fill the server's memory.
#[derive(Debug)]
pub(crate) struct Expiring<V> {
    map: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, V)>>,
    max: usize,
}

impl<V: Clone> Expiring<V> {
    pub(crate) fn new(max: usize) -> Self {
        Expiring {
            map: std::sync::Mutex::default(),
            max,
        }
    }

    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, V)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `value` under `key` for `ttl`.
    pub(crate) fn insert(&self, key: String, value: V, ttl: std::time::Duration) {
        let now = std::time::Instant::now();
        let mut map = self.map();
        map.retain(|_, (expires, _)| *expires > now);
        if map.len() >= self.max
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(key, (now + ttl, value));
    }

    /// The value under `key`, while it lasts.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let mut map = self.map();
        match map.get(key) {
            Some((expires, v)) if *expires > std::time::Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// The value under `key`, once: it is gone afterwards.
    pub(crate) fn take(&self, key: &str) -> Option<V> {
        self.map()
            .remove(key)
            .filter(|(expires, _)| *expires > std::time::Instant::now())
            .map(|(_, v)| v)
    }

    pub(crate) fn remove(&self, key: &str) {
        self.map().remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

/// The portal's sessions, in this server's memory: id → the token signed in with and the CSRF
/// token its forms carry. Only the id ever leaves the server.
#[derive(Debug)]
pub(crate) struct Sessions(Expiring<Session>);

impl Default for Sessions {
    fn default() -> Self {
        Sessions(Expiring::new(MAX_SESSIONS))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) token: String,
    csrf: String,
}

/// 244 random bits, as hex.
pub(crate) fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    /// A new session for `token`: its id.
    pub(crate) fn open(&self, token: &str) -> String {
        let id = random_id();
        let session = Session {
            token: token.to_owned(),
            csrf: random_id(),
        };
        self.0.insert(id.clone(), session, SESSION_TTL);
        id
    }

    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.0.get(id)
    }

    pub(crate) fn close(&self, id: &str) {
        self.0.remove(id);
    }
}

/// The value of the cookie `name` a request carries.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The session id a request's cookie names.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// Whether the portal's cookies are `Secure`: when people reach the server over https.
pub(crate) fn secure_cookies(state: &AppState) -> bool {
    state
        .public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    })
}

/// Whether a form post comes from the portal itself: its `Origin` (else its `Referer`) is the
/// server as the request reached it, or its public URL. Browsers send one of them on every
/// form post; a request with neither is refused.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = value(header::ORIGIN)
        .filter(|o| *o != "null")
        .and_then(origin_of)
        .or_else(|| value(header::REFERER).and_then(origin_of))
    else {
        return false;
    };
    let mut allowed = Vec::new();
    if let Some(host) = value(header::HOST) {
        let host = host.to_ascii_lowercase();
        allowed.push(format!("http://{host}"));
        allowed.push(format!("https://{host}"));
    }
    if let Some(public) = state.public_url.as_deref().and_then(origin_of) {
        allowed.push(public);
    }
    allowed.contains(&origin)
}

/// Equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The refusal of a form post that is not the portal's own: from another origin, or, for a
/// signed-in viewer, without its session's CSRF token.
pub(crate) fn forged(
    state: &AppState,
    headers: &HeaderMap,
    viewer: &Viewer,
    csrf: &str,
) -> Option<Response> {
    let own = same_origin(state, headers)
        && viewer
            .csrf
            .as_deref()
            .is_none_or(|expected| same_secret(expected, csrf));
    if own {
        return None;
    }
    let mut page = render(
        "error.html",
        viewer,
        json!({ "title": "Not allowed", "detail": "This form did not come from this portal (its origin or its form token is missing or wrong); reload the page and try again." }),
    );
    *page.status_mut() = StatusCode::FORBIDDEN;
    Some(page)
}

/// The cookie that carries a session id (or, with an empty id, ends it).
pub(crate) fn session_cookie(state: &AppState, id: &str) -> String {
    let secure = secure_cookies(state);
    let end = if id.is_empty() { "; Max-Age=0" } else { "" };
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}{end}",
        if secure { "; Secure" } else { "" }
    )
}

/// What every portal response says to the browser: no framing, no sniffing, no scripts, no
/// referrer beyond this origin.
pub(crate) async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    response
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A link from user text (a migration guide) is rendered only when it is http(s).
    env.add_test("http_url", |value: &str| {
        let lower = value.trim_start().to_ascii_lowercase();
        lower.starts_with("https://") || lower.starts_with("http://")
    });
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("index.html", include_str!("../templates/index.html")),
        ("search.html", include_str!("../templates/search.html")),
        ("product.html", include_str!("../templates/product.html")),
        ("domain.html", include_str!("../templates/domain.html")),
        ("signin.html", include_str!("../templates/signin.html")),
        ("landing.html", include_str!("../templates/landing.html")),
        (
            "credential.html",
            include_str!("../templates/credential.html"),
        ),
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
        .route("/grants/{id}/credentials", post(mint_credential))
        .route("/credentials/{id}/revoke", post(revoke_credential))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Who is looking: the signed-in token's principal, the anonymous reader of an open portal, or
/// nobody.
pub(crate) struct Viewer {
    pub(crate) principal: Option<Principal>,
    pub(crate) signed_in: bool,
    /// The session's CSRF token, which its forms carry.
    pub(crate) csrf: Option<String>,
}

pub(crate) async fn viewer(state: &AppState, headers: &HeaderMap) -> Viewer {
    if let Some(id) = session_id(headers)
        && let Some(session) = state.sessions.get(&id)
    {
        // A token revoked since sign-in ends the session.
        match state.auth.authenticate(&session.token).await {
            Ok(p) => {
                return Viewer {
                    principal: Some(p),
                    signed_in: true,
                    csrf: Some(session.csrf),
                };
            }
            Err(_) => state.sessions.close(&id),
        }
    }
    let principal = state.open_portal.then(|| Principal {
        name: "anonymous".into(),
        bindings: vec![RoleBinding {
            principal: "anonymous".into(),
            role: "consumer".into(),
            domain: mesh_catalog::auth::ANY_DOMAIN.into(),
        }],
        grant: None,
    });
    Viewer {
        principal,
        signed_in: false,
        csrf: None,
    }
}

pub(crate) fn render(name: &str, viewer: &Viewer, mut context: Value) -> Response {
    if let Value::Object(map) = &mut context {
        map.insert("csrf".into(), viewer.csrf.clone().into());
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

/// A failure as a page, for whoever is looking.
pub(crate) async fn error_for(state: &AppState, headers: &HeaderMap, e: ApiError) -> Response {
    let viewer = viewer(state, headers).await;
    error_page(&viewer, e)
}

/// The sign-in page (with a reason a sign-in failed): a token form, and the identity
/// provider's button when the server signs people in through one.
pub(crate) async fn signin_page(state: &AppState, error: Option<String>) -> Response {
    let nobody = Viewer {
        principal: None,
        signed_in: false,
        csrf: None,
    };
    let oidc = state
        .auth
        .idp()
        .filter(|idp| idp.config().client_id.is_some())
        .map(|idp| idp.issuer().to_owned());
    render(
        "signin.html",
        &nobody,
        json!({ "error": error, "oidc": oidc }),
    )
}

/// The page a sign-in through the provider lands on: it sets the session cookie and moves on to
/// `next` itself. (A redirect would not do: the browser arrived here from the provider's site,
/// and a SameSite=Strict cookie set now rides only on requests this site starts.)
pub(crate) fn landing(
    state: &AppState,
    session: &str,
    name: &str,
    next: &str,
    flow_cookie: String,
) -> Response {
    let viewer = Viewer {
        principal: None,
        signed_in: false,
        csrf: None,
    };
    let mut page = render(
        "landing.html",
        &viewer,
        json!({ "name": name, "next": next, "title": "Signed in" }),
    );
    let headers = page.headers_mut();
    for cookie in [session_cookie(state, session), flow_cookie] {
        if let Ok(v) = cookie.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
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
        "credential-revoked" => Some("The credential is revoked: it reads nothing from now on."),
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
    let (requests, grants, credentials) = if viewer.signed_in {
        (
            requests_for(&state, &who).await,
            catalog
                .access_grants(&who, None)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|g| g.grantee == who.name)
                .collect(),
            catalog.credentials(&who, None).await.unwrap_or_default(),
        )
    } else {
        (Vec::new(), Vec::new(), Vec::new())
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
            "grants": grants,
            "credentials": credentials,
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
    let schedule = catalog
        .schedule_view(&who, &id, 1, 10)
        .await
        .ok()
        .map(|v| serde_json::to_value(v).unwrap_or_default())
        .unwrap_or_default();
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
    // Only those who decide (the product's domain owners, admins) get the decision buttons;
    // a requester or a consuming domain's member sees the state.
    let decides = who.may(mesh_catalog::Action::Lifecycle {
        domain: &view.domain,
    });
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
            "schedule": schedule,
            "lineage": crate::graph::svg(&graph, &id),
            "column": column,
            "recommendations": recommendations,
            "consumers": consumers,
            "pending": pending,
            "decides": decides,
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
    #[serde(default)]
    csrf: String,
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
    if let Some(refused) = forged(&state, &headers, &viewer, &form.csrf) {
        return refused;
    }
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
    #[serde(default)]
    csrf: String,
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
    if let Some(refused) = forged(&state, &headers, &viewer, &form.csrf) {
        return refused;
    }
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

async fn signin_form(State(state): State<AppState>) -> Response {
    signin_page(&state, None).await
}

#[derive(Debug, Deserialize)]
struct SignIn {
    token: String,
}

async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let nobody = Viewer {
        principal: None,
        signed_in: false,
        csrf: None,
    };
    if let Some(refused) = forged(&state, &headers, &nobody, "") {
        return refused;
    }
    let token = form.token.trim();
    match state.auth.authenticate(token).await {
        Ok(_) => {
            let id = state.sessions.open(token);
            (
                [(header::SET_COOKIE, session_cookie(&state, &id))],
                Redirect::to("/?done=signed-in"),
            )
                .into_response()
        }
        Err(e) => {
            let mut page = signin_page(&state, Some(e.detail().to_owned())).await;
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            page
        }
    }
}

#[derive(Debug, Deserialize)]
struct MintForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

/// Mints a credential for one of the viewer's grants and shows its secret, once.
async fn mint_credential(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<MintForm>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    if let Some(refused) = forged(&state, &headers, &viewer, &form.csrf) {
        return refused;
    }
    let who = signed_in!(viewer);
    let ask = mesh_catalog::credentials::CredentialAsk {
        label: Some(form.label).filter(|l| !l.trim().is_empty()),
        days: None,
    };
    let minted = tried!(viewer, state.catalog.mint_credential(&who, &id, &ask).await);
    let mut page = render(
        "credential.html",
        &viewer,
        json!({ "minted": minted.credential, "secret": minted.secret }),
    );
    page.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    page
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn revoke_credential(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let viewer = viewer(&state, &headers).await;
    if let Some(refused) = forged(&state, &headers, &viewer, &form.csrf) {
        return refused;
    }
    let who = signed_in!(viewer);
    tried!(viewer, state.catalog.revoke_credential(&who, &id).await);
    Redirect::to("/?done=credential-revoked#grants").into_response()
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
            "landing.html",
            "credential.html",
        ] {
            assert!(super::TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }
}
