//! The catalog a command talks to: the local database (as its admin), or a `mesh serve` over HTTP
//! with a token. Both give the same typed answers, so every command prints the same either way.

use std::fmt;

use mesh_catalog::access::{AccessAsk, AccessDecision, GrantView, RequestView};
use mesh_catalog::governance::{
    EffectivePolicies, PolicyBundle, PolicyBundleView, PolicyPublishReport, PolicyScope,
};
use mesh_catalog::runs::{RunEnd, RunStart, RunView, Snapshot};
use mesh_catalog::search::{SearchQuery, SearchResults};
use mesh_catalog::store::DeliveryRow;
use mesh_catalog::{
    AuditReport, Bundle, Catalog, CatalogError, Deprecation, Principal, ProductView, PublishReport,
    VersionView,
};
use serde::de::DeserializeOwned;

fn bad_request(message: String) -> Failure {
    Failure::Catalog(CatalogError::BadRequest(message))
}

/// Why a catalog call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The local catalog refused or failed.
    Catalog(CatalogError),
    /// The server answered with a problem document.
    Remote {
        status: u16,
        problem: serde_json::Value,
    },
    /// The server could not be reached, or answered something that is not mesh.
    Transport(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Catalog(e) => write!(f, "{e}"),
            Failure::Remote { status, problem } => write!(
                f,
                "{} ({status})",
                problem["detail"]
                    .as_str()
                    .unwrap_or("the server refused the request")
            ),
            Failure::Transport(e) => f.write_str(e),
        }
    }
}

impl From<CatalogError> for Failure {
    fn from(e: CatalogError) -> Self {
        Failure::Catalog(e)
    }
}

impl Failure {
    /// A problem code, the same for both kinds (`not_found`, `incompatible`, ...).
    pub(crate) fn code(&self) -> &str {
        match self {
            Failure::Catalog(e) => crate::cmd::show::error_code(e),
            Failure::Remote { problem, .. } => problem["code"].as_str().unwrap_or("error"),
            Failure::Transport(_) => "unreachable",
        }
    }

    /// Refusals are findings about the user's input (exit 1); anything else is an error (exit 2).
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(
            self.code(),
            "invalid"
                | "policy"
                | "invalid_policies"
                | "version_exists"
                | "incompatible"
                | "lifecycle"
                | "bad_request"
                | "not_found"
        )
    }

    /// The problem's list of problems (`invalid_policies`), one line each.
    pub(crate) fn problems(&self) -> Vec<String> {
        match self {
            Failure::Catalog(CatalogError::InvalidPolicies(p)) => p.clone(),
            Failure::Remote { problem, .. } => problem["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The policy violations of a `policy` refusal, as (policy, enforcement, message).
    pub(crate) fn violations(&self) -> Vec<(String, String, String)> {
        match self {
            Failure::Catalog(CatalogError::PolicyViolation { violations, .. }) => violations
                .iter()
                .map(|v| {
                    (
                        v.policy.clone(),
                        v.enforcement.as_str().to_owned(),
                        v.message.clone(),
                    )
                })
                .collect(),
            Failure::Remote { problem, .. } => problem["violations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                    (text("policy"), text("enforcement"), text("message"))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The problem as JSON (what the API returns; built locally for the local catalog).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Failure::Catalog(e) => crate::cmd::show::error_json(e),
            Failure::Remote { problem, .. } => problem.clone(),
            Failure::Transport(e) => serde_json::json!({ "code": "unreachable", "detail": e }),
        }
    }
}

/// A catalog: local or remote.
#[derive(Debug)]
pub(crate) enum Client {
    Local(Catalog, Principal),
    Remote(Remote),
}

#[derive(Debug)]
pub(crate) struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub(crate) fn new(base: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--server `{base}` is not an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("mesh/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Remote { base, token, http })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        let bytes = self
            .send(method, path, body)
            .await?
            .bytes()
            .await
            .map_err(|e| Failure::Transport(format!("reading the answer of {}: {e}", self.base)))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Transport(format!(
                "{} did not answer as a mesh server does: {e}",
                self.base
            ))
        })
    }
}

impl Remote {
    /// A POST of `body` as JSON, answered with JSON.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, Failure> {
        let body = serde_json::to_value(body)
            .map_err(|e| Failure::Transport(format!("encoding the request to {path}: {e}")))?;
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A request whose successful answer is read by the caller (bytes, not JSON); a problem
    /// document otherwise.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transport(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(format!("reading the answer of {}: {e}", self.base)))?;
        let problem = serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({ "code": "error", "detail": String::from_utf8_lossy(&bytes) }),
        );
        Err(Failure::Remote {
            status: status.as_u16(),
            problem,
        })
    }
}

/// A governed read on the local catalog: the server's own path.
async fn local_read(
    catalog: &Catalog,
    who: &Principal,
    sql: &str,
) -> Result<
    (
        mesh_engine::query::SchemaRef,
        Vec<mesh_engine::query::RecordBatch>,
    ),
    Failure,
> {
    Ok(mesh_server::governed_read(catalog, who, sql).await?)
}

/// Percent-encodes one path segment.
fn segment(text: &str) -> String {
    mesh_server::percent_encode(text)
}

fn bundle_json(bundle: &Bundle) -> serde_json::Value {
    serde_json::json!({
        "descriptor": { "path": bundle.descriptor.path, "content": bundle.descriptor.text },
        "contracts": bundle.contracts.iter()
            .map(|c| serde_json::json!({ "path": c.path, "content": c.text }))
            .collect::<Vec<_>>(),
    })
}

impl Client {
    pub(crate) async fn publish(
        &self,
        bundle: &Bundle,
        dry_run: bool,
    ) -> Result<PublishReport, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.publish(who, bundle, dry_run).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/products?dry_run={dry_run}");
                r.call(reqwest::Method::POST, &path, Some(bundle_json(bundle)))
                    .await
            }
        }
    }

    pub(crate) async fn product(&self, id: &str) -> Result<ProductView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.product(who, id).await?),
            Client::Remote(r) => {
                r.call(
                    reqwest::Method::GET,
                    &format!("/api/v1/products/{}", segment(id)),
                    None,
                )
                .await
            }
        }
    }

    pub(crate) async fn versions(&self, id: &str) -> Result<Vec<VersionView>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.versions(who, id).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/products/{}/versions", segment(id));
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn version(&self, id: &str, selector: &str) -> Result<VersionView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.version(who, id, selector).await?),
            Client::Remote(r) => {
                let path = format!(
                    "/api/v1/products/{}/versions/{}",
                    segment(id),
                    segment(selector)
                );
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn deprecate(
        &self,
        id: &str,
        version: &str,
        sunset: chrono::NaiveDate,
        guide: &str,
    ) -> Result<Deprecation, Failure> {
        match self {
            Client::Local(catalog, who) => {
                Ok(catalog.deprecate(who, id, version, sunset, guide).await?)
            }
            Client::Remote(r) => {
                let path = format!(
                    "/api/v1/products/{}/versions/{}/deprecate",
                    segment(id),
                    segment(version)
                );
                let body =
                    serde_json::json!({ "sunset": sunset.to_string(), "migration_guide": guide });
                r.call(reqwest::Method::POST, &path, Some(body)).await
            }
        }
    }

    pub(crate) async fn search(&self, query: &SearchQuery) -> Result<SearchResults, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.search(who, query).await?),
            Client::Remote(r) => {
                let mut path = format!("/api/v1/search?q={}", segment(&query.q));
                for (key, value) in [
                    ("domain", &query.domain),
                    ("tag", &query.tag),
                    ("type", &query.product_type),
                    ("classification", &query.classification),
                    ("status", &query.status),
                ] {
                    if let Some(value) = value {
                        path.push_str(&format!("&{key}={}", segment(value)));
                    }
                }
                if let Some(limit) = query.limit {
                    path.push_str(&format!("&limit={limit}"));
                }
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn lineage(
        &self,
        product: &str,
        depth: usize,
        direction: mesh_catalog::lineage::Direction,
        column: Option<&str>,
    ) -> Result<mesh_catalog::lineage::Graph, Failure> {
        use mesh_catalog::lineage::Direction;
        match self {
            Client::Local(catalog, who) => Ok(catalog
                .product_lineage(who, product, depth, direction, column)
                .await?),
            Client::Remote(r) => {
                let direction = match direction {
                    Direction::Upstream => "upstream",
                    Direction::Downstream => "downstream",
                    Direction::Both => "both",
                };
                let mut path = format!(
                    "/api/v1/products/{}/lineage?direction={direction}&depth={depth}",
                    segment(product)
                );
                if let Some(column) = column {
                    path.push_str(&format!("&column={}", segment(column)));
                }
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn retire(&self, id: &str, version: &str) -> Result<VersionView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.retire(who, id, version).await?),
            Client::Remote(r) => {
                let path = format!(
                    "/api/v1/products/{}/versions/{}/retire",
                    segment(id),
                    segment(version)
                );
                r.call(reqwest::Method::POST, &path, None).await
            }
        }
    }

    pub(crate) async fn publish_policies(
        &self,
        scope: &PolicyScope,
        bundle: PolicyBundle,
        dry_run: bool,
    ) -> Result<PolicyPublishReport, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog
                .publish_policies(who, scope, bundle, dry_run)
                .await?),
            Client::Remote(r) => {
                let path = format!(
                    "/api/v1/policies/{}?dry_run={dry_run}",
                    segment(scope.name())
                );
                r.post(&path, &bundle).await
            }
        }
    }

    pub(crate) async fn policy_versions(
        &self,
        scope: &PolicyScope,
    ) -> Result<Vec<PolicyBundleView>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.policy_bundles(who, scope).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/policies/{}/versions", segment(scope.name()));
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn effective_policies(
        &self,
        domain: Option<&str>,
    ) -> Result<EffectivePolicies, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.effective_policies(who, domain).await?),
            Client::Remote(r) => {
                let path = match domain {
                    Some(d) => format!("/api/v1/policies?domain={}", segment(d)),
                    None => "/api/v1/policies".to_owned(),
                };
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn audit(&self) -> Result<AuditReport, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.audit(who).await?),
            Client::Remote(r) => r.call(reqwest::Method::POST, "/api/v1/audit", None).await,
        }
    }

    pub(crate) async fn begin_run(&self, start: &RunStart) -> Result<RunView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.begin_run(who, start).await?),
            Client::Remote(r) => r.post("/api/v1/runs", start).await,
        }
    }

    pub(crate) async fn committing_run(&self, id: &str, version: i64) -> Result<RunView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.committing_run(who, id, version).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/runs/{}/committing", segment(id));
                let body = serde_json::json!({ "delta_version": version });
                r.call(reqwest::Method::POST, &path, Some(body)).await
            }
        }
    }

    pub(crate) async fn finish_run(&self, id: &str, end: &RunEnd) -> Result<RunView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.finish_run(who, id, end).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/runs/{}/finish", segment(id));
                r.post(&path, end).await
            }
        }
    }

    pub(crate) async fn settle_run(
        &self,
        id: &str,
        version: Option<i64>,
    ) -> Result<RunView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.settle_run(who, id, version).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/runs/{}/settle", segment(id));
                let body = serde_json::json!({ "delta_version": version });
                r.call(reqwest::Method::POST, &path, Some(body)).await
            }
        }
    }

    pub(crate) async fn run(&self, id: &str) -> Result<RunView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.run(who, id).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/runs/{}", segment(id));
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// A product's runs, newest first; with `open`, only the unfinished ones of `port`.
    pub(crate) async fn runs(
        &self,
        product: &str,
        port: Option<&str>,
        open: bool,
        limit: i64,
    ) -> Result<Vec<RunView>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(match (open, port) {
                (true, Some(port)) => catalog.open_runs(who, product, port).await?,
                _ => catalog.runs(who, product, port, limit).await?,
            }),
            Client::Remote(r) => {
                let mut path = format!(
                    "/api/v1/products/{}/runs?limit={limit}&open={open}",
                    segment(product)
                );
                if let Some(port) = port {
                    path.push_str(&format!("&port={}", segment(port)));
                }
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn snapshots(&self, product: &str) -> Result<Vec<Snapshot>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.snapshots(who, product).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/products/{}/snapshots", segment(product));
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn ingest_lineage(&self, event: &serde_json::Value) -> Result<(), Failure> {
        match self {
            Client::Local(catalog, who) => {
                catalog.ingest_lineage(who, event).await?;
                Ok(())
            }
            Client::Remote(r) => {
                let _: serde_json::Value = r
                    .call(
                        reqwest::Method::POST,
                        "/api/v1/lineage",
                        Some(event.clone()),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn request_access(&self, ask: &AccessAsk) -> Result<RequestView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.request_access(who, ask).await?),
            Client::Remote(r) => r.post("/api/v1/access/requests", ask).await,
        }
    }

    pub(crate) async fn access_requests(
        &self,
        product: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.access_requests(who, product, state).await?),
            Client::Remote(r) => {
                let mut path = "/api/v1/access/requests?".to_owned();
                if let Some(p) = product {
                    path.push_str(&format!("product={}&", segment(p)));
                }
                if let Some(s) = state {
                    path.push_str(&format!("state={}", segment(s)));
                }
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn decide_access(
        &self,
        id: &str,
        decision: &AccessDecision,
    ) -> Result<RequestView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.decide_access(who, id, decision).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/access/requests/{}/decision", segment(id));
                r.post(&path, decision).await
            }
        }
    }

    pub(crate) async fn access_grants(
        &self,
        product: Option<&str>,
    ) -> Result<Vec<GrantView>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.access_grants(who, product).await?),
            Client::Remote(r) => {
                let path = match product {
                    Some(p) => format!("/api/v1/access/grants?product={}", segment(p)),
                    None => "/api/v1/access/grants".to_owned(),
                };
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// Who reads a product's ports through the query port.
    pub(crate) async fn usage(
        &self,
        product: &str,
    ) -> Result<Vec<mesh_catalog::store::UsageRow>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.usage(who, product).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/products/{}/usage", segment(product));
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// The grants of a consuming product's service identity.
    pub(crate) async fn consumer_grants(&self, consumer: &str) -> Result<Vec<GrantView>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.consumer_grants(who, consumer).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/access/grants?consumer={}", segment(consumer));
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub(crate) async fn revoke_access(&self, id: &str, reason: &str) -> Result<GrantView, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.revoke_access(who, id, reason).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/access/grants/{}/revoke", segment(id));
                r.call(
                    reqwest::Method::POST,
                    &path,
                    Some(serde_json::json!({ "reason": reason })),
                )
                .await
            }
        }
    }

    /// A governed read as CSV, Arrow IPC or Parquet, written to `out` as it is produced.
    pub(crate) async fn query_to(
        &self,
        sql: &str,
        format: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<(), Failure> {
        let parsed = mesh_engine::query::ResultFormat::parse(format).ok_or_else(|| {
            Failure::Catalog(CatalogError::BadRequest(format!(
                "format `{format}` is not json, csv, arrow or parquet"
            )))
        })?;
        let written = |e: std::io::Error| Failure::Transport(format!("writing the result: {e}"));
        match self {
            Client::Local(catalog, who) => {
                use futures::StreamExt as _;
                let bad = |e: mesh_engine::pipeline::RunError| {
                    Failure::Catalog(CatalogError::BadRequest(e.to_string()))
                };
                let mut read = mesh_server::governed_stream(catalog, who, sql).await?;
                let mut encoder =
                    mesh_engine::query::Encoder::new(parsed, read.schema).map_err(bad)?;
                while let Some(batch) = read.batches.next().await {
                    out.write_all(&encoder.push(&batch?).map_err(bad)?)
                        .map_err(written)?;
                }
                out.write_all(&encoder.finish().map_err(bad)?)
                    .map_err(written)?;
                Ok(())
            }
            Client::Remote(r) => {
                let path = format!("/api/v1/query?format={format}");
                let mut response = r
                    .send(
                        reqwest::Method::POST,
                        &path,
                        Some(serde_json::json!({ "sql": sql })),
                    )
                    .await?;
                while let Some(chunk) = response.chunk().await.map_err(|e| {
                    Failure::Transport(format!("reading the answer of {}: {e}", r.base))
                })? {
                    out.write_all(&chunk).map_err(written)?;
                }
                Ok(())
            }
        }
    }

    /// The event log, oldest first: every event after `after`, about `subject` when given.
    pub(crate) async fn events(
        &self,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<mesh_catalog::store::EventRow>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.events(who, after, limit, subject).await?),
            Client::Remote(r) => {
                let mut path = format!("/api/v1/events?after={after}&limit={limit}");
                if let Some(subject) = subject {
                    path.push_str(&format!("&subject={}", segment(subject)));
                }
                #[derive(serde::Deserialize)]
                struct Page {
                    items: Vec<mesh_catalog::store::EventRow>,
                }
                let page: Page = r.call(reqwest::Method::GET, &path, None).await?;
                Ok(page.items)
            }
        }
    }

    /// The service levels of every product's output ports (or one product's), measured now.
    pub(crate) async fn sla(
        &self,
        product: Option<&str>,
        window: &str,
    ) -> Result<mesh_catalog::sla::SlaReport, Failure> {
        match self {
            Client::Local(catalog, who) => {
                let options = mesh_catalog::sla::SlaOptions {
                    window: mesh_server::sla::parse_window(window).map_err(bad_request)?,
                    product: product.map(str::to_owned),
                };
                Ok(catalog.sla(who, &options).await?)
            }
            Client::Remote(r) => {
                let mut path = format!("/api/v1/sla?window={}", segment(window));
                if let Some(product) = product {
                    path.push_str(&format!("&product={}", segment(product)));
                }
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// One monitor pass that records violations and recoveries: locally with these options
    /// (and the webhook deliveries it made), or the server's own pass.
    pub(crate) async fn sla_check(
        &self,
        options: &mesh_server::sla::MonitorOptions,
    ) -> Result<(mesh_catalog::sla::SlaReport, Vec<DeliveryRow>), Failure> {
        match self {
            Client::Local(catalog, who) => {
                let monitor = mesh_server::sla::Monitor::new(options.clone());
                Ok(Box::pin(monitor.check(catalog, who, false)).await?)
            }
            Client::Remote(r) => {
                let report = r
                    .call(reqwest::Method::POST, "/api/v1/sla/check", None)
                    .await?;
                Ok((report, Vec::new()))
            }
        }
    }

    /// SLA violations, open and closed, the most recently started first.
    pub(crate) async fn sla_violations(
        &self,
        product: Option<&str>,
        limit: i64,
    ) -> Result<Vec<mesh_catalog::store::ViolationRow>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.sla_violations(who, product, limit).await?),
            Client::Remote(r) => {
                let mut path = format!("/api/v1/sla/violations?limit={limit}");
                if let Some(product) = product {
                    path.push_str(&format!("&product={}", segment(product)));
                }
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// Webhook deliveries, the most recent first.
    pub(crate) async fn deliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, Failure> {
        match self {
            Client::Local(catalog, who) => Ok(catalog.deliveries(who, limit).await?),
            Client::Remote(r) => {
                let path = format!("/api/v1/webhooks/deliveries?limit={limit}");
                r.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// A governed read: local (as the catalog's admin) or through the server (as the token).
    pub(crate) async fn query(&self, sql: &str) -> Result<serde_json::Value, Failure> {
        match self {
            Client::Local(catalog, who) => {
                let (schema, batches) = local_read(catalog, who, sql).await?;
                let rows = mesh_engine::query::json_rows(&batches)
                    .map_err(|e| Failure::Catalog(CatalogError::BadRequest(e.to_string())))?;
                let columns: Vec<String> =
                    schema.fields().iter().map(|f| f.name().clone()).collect();
                Ok(serde_json::json!({ "columns": columns, "rows": rows }))
            }
            Client::Remote(r) => {
                r.call(
                    reqwest::Method::POST,
                    "/api/v1/query",
                    Some(serde_json::json!({ "sql": sql })),
                )
                .await
            }
        }
    }
}
