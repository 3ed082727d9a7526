//! The catalog a command talks to, behind one trait ([`CatalogApi`]): the local database (as its
//! admin, or as the principal a `--token` names), or a `mesh serve` over HTTP with a token. Both
//! give the same typed answers and fail with the same problem documents, so every command prints
//! the same either way. The remote side calls the paths `mesh_service::routes` lists, the same
//! list the server serves.

use std::fmt;
use std::sync::Arc;

use mesh_catalog::access::{AccessAsk, AccessDecision, GrantView, RequestView};
use mesh_catalog::audit::{AuditReport, Event, Usage};
use mesh_catalog::credentials::{CredentialAsk, CredentialView, MintedCredential};
use mesh_catalog::governance::{
    EffectivePolicies, PolicyBundle, PolicyBundleView, PolicyPublishReport, PolicyScope,
};
use mesh_catalog::lifecycle::Deprecation;
use mesh_catalog::lineage::{Direction, Graph};
use mesh_catalog::locations::{LocationView, NewLocation};
use mesh_catalog::platform::{Binding, WhoAmI};
use mesh_catalog::products::Domain;
use mesh_catalog::runs::{RunEnd, RunStart, RunView, Snapshot};
use mesh_catalog::schedule::ScheduleView;
use mesh_catalog::search::{SearchQuery, SearchResults};
use mesh_catalog::sla::{Delivery, SlaOptions, SlaReport, Violation};
use mesh_catalog::subscriptions::{NewSubscription, Subscription};
use mesh_catalog::tokens::MaskingKeyInfo;
use mesh_catalog::{
    Bundle, ErrorCode, Principal, Problem, ProductView, PublishReport, ToProblem, VersionView,
};
use mesh_engine::query::ResultFormat;
use mesh_service::routes::{self, path, with_query};
use mesh_service::{ResolvedInput, ResolvedSource, Service};
use serde::de::DeserializeOwned;

/// Why a catalog call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A refusal or failure as a problem document: the server's, or built from the local
    /// catalog's error by the same mapping the server uses.
    Problem {
        problem: Box<Problem>,
        /// A server sent it (its HTTP status is shown).
        remote: bool,
    },
    /// The server could not be reached, or answered something that is not mesh.
    Transport(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Problem {
                problem,
                remote: true,
            } => {
                let detail = if problem.detail.is_empty() {
                    "the server refused the request"
                } else {
                    &problem.detail
                };
                write!(f, "{detail} ({})", problem.status)
            }
            Failure::Problem { problem, .. } => f.write_str(&problem.detail),
            Failure::Transport(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Failure {}

impl<E: ToProblem> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Problem {
            problem: Box::new(e.problem()),
            remote: false,
        }
    }
}

impl Failure {
    fn local(code: ErrorCode, detail: String) -> Failure {
        Failure::Problem {
            problem: Box::new(Problem::new(code, detail)),
            remote: false,
        }
    }

    /// A problem code, the same for both kinds (`not_found`, `incompatible`, ...).
    pub(crate) fn code(&self) -> &str {
        match self {
            Failure::Problem { problem, .. } if !problem.code.is_empty() => &problem.code,
            Failure::Problem { .. } => "error",
            Failure::Transport(_) => "unreachable",
        }
    }

    /// Refusals are findings about the user's input (exit 1); anything else is an error (exit 2).
    pub(crate) fn is_refusal(&self) -> bool {
        ErrorCode::parse(self.code()).is_some_and(ErrorCode::is_refusal)
    }

    /// The problem document, when there is one.
    pub(crate) fn problem(&self) -> Option<&Problem> {
        match self {
            Failure::Problem { problem, .. } => Some(problem),
            Failure::Transport(_) => None,
        }
    }

    /// The problem's list of problems (`invalid_policies`), one line each.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.problem()
            .and_then(|p| p.problems.clone())
            .unwrap_or_default()
    }

    /// The policy violations of a `policy` refusal, as (policy, enforcement, message).
    pub(crate) fn violations(&self) -> Vec<(String, String, String)> {
        self.problem()
            .and_then(|p| p.violations.as_ref())
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|v| {
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (text("policy"), text("enforcement"), text("message"))
            })
            .collect()
    }

    /// The problem as JSON (what the API returns).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Failure::Problem { problem, .. } => serde_json::to_value(problem).unwrap_or_default(),
            Failure::Transport(e) => serde_json::json!({ "code": "unreachable", "detail": e }),
        }
    }
}

/// Every catalog operation a command uses, on the local catalog or a server.
#[async_trait::async_trait]
pub(crate) trait CatalogApi: Send + Sync + fmt::Debug {
    /// A server, rather than the catalog database.
    fn is_remote(&self) -> bool {
        false
    }
    async fn publish(&self, bundle: &Bundle, dry_run: bool) -> Result<PublishReport, Failure>;
    async fn product(&self, id: &str) -> Result<ProductView, Failure>;
    async fn versions(&self, id: &str) -> Result<Vec<VersionView>, Failure>;
    async fn version(&self, id: &str, selector: &str) -> Result<VersionView, Failure>;
    async fn deprecate(
        &self,
        id: &str,
        version: &str,
        sunset: chrono::NaiveDate,
        guide: &str,
    ) -> Result<Deprecation, Failure>;
    async fn retire(&self, id: &str, version: &str) -> Result<VersionView, Failure>;
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, Failure>;
    async fn lineage(
        &self,
        product: &str,
        depth: usize,
        direction: Direction,
        column: Option<&str>,
    ) -> Result<Graph, Failure>;
    async fn ingest_lineage(&self, event: &serde_json::Value) -> Result<(), Failure>;
    async fn publish_policies(
        &self,
        scope: &PolicyScope,
        bundle: PolicyBundle,
        dry_run: bool,
    ) -> Result<PolicyPublishReport, Failure>;
    async fn policy_versions(&self, scope: &PolicyScope) -> Result<Vec<PolicyBundleView>, Failure>;
    async fn effective_policies(&self, domain: Option<&str>) -> Result<EffectivePolicies, Failure>;
    async fn audit(&self) -> Result<AuditReport, Failure>;
    async fn events(
        &self,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<Event>, Failure>;
    async fn begin_run(&self, start: &RunStart) -> Result<RunView, Failure>;
    async fn committing_run(&self, id: &str, version: i64) -> Result<RunView, Failure>;
    async fn finish_run(&self, id: &str, end: &RunEnd) -> Result<RunView, Failure>;
    async fn settle_run(&self, id: &str, version: Option<i64>) -> Result<RunView, Failure>;
    async fn heartbeat_run(&self, id: &str) -> Result<RunView, Failure>;
    async fn run(&self, id: &str) -> Result<RunView, Failure>;
    /// A product's runs, newest first; with `open`, only the unfinished ones of `port`.
    async fn runs(
        &self,
        product: &str,
        port: Option<&str>,
        open: bool,
        limit: i64,
    ) -> Result<Vec<RunView>, Failure>;
    async fn snapshots(&self, product: &str) -> Result<Vec<Snapshot>, Failure>;
    /// A product's published schedule, its `next` cron slots and its `last` slots.
    async fn schedule(&self, product: &str, next: u16, last: u32) -> Result<ScheduleView, Failure>;
    /// The input ports of a product's latest version, resolved for a run (grants checked).
    async fn pipeline_inputs(&self, product: &str) -> Result<Vec<ResolvedInput>, Failure>;
    /// The sources of a product's latest published version, each allowed for a run.
    async fn pipeline_sources(&self, product: &str) -> Result<Vec<ResolvedSource>, Failure>;
    async fn locations(&self) -> Result<Vec<LocationView>, Failure>;
    /// Who the caller is, with its roles.
    async fn whoami(&self) -> Result<WhoAmI, Failure>;
    async fn domains(&self) -> Result<Vec<Domain>, Failure>;
    /// Creates a domain or sets its description; `None` when it was so already.
    async fn put_domain(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<Option<Domain>, Failure>;
    /// Every role binding (admins).
    async fn role_bindings(&self) -> Result<Vec<Binding>, Failure>;
    /// Gives a role; `false` when it was held already.
    async fn bind(&self, binding: &Binding) -> Result<bool, Failure>;
    /// Takes a role back; `false` when it was not held.
    async fn unbind(&self, binding: &Binding) -> Result<bool, Failure>;
    async fn subscriptions(&self) -> Result<Vec<Subscription>, Failure>;
    async fn subscribe(&self, new: &NewSubscription) -> Result<Subscription, Failure>;
    async fn unsubscribe(&self, id: &str) -> Result<Subscription, Failure>;
    async fn add_location(&self, new: &NewLocation) -> Result<LocationView, Failure>;
    async fn remove_location(&self, name: &str) -> Result<LocationView, Failure>;
    async fn request_access(&self, ask: &AccessAsk) -> Result<RequestView, Failure>;
    async fn access_requests(
        &self,
        product: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, Failure>;
    async fn decide_access(
        &self,
        id: &str,
        decision: &AccessDecision,
    ) -> Result<RequestView, Failure>;
    async fn access_grants(&self, product: Option<&str>) -> Result<Vec<GrantView>, Failure>;
    /// The grants a consuming product's service identity holds (its domain's members may list
    /// them).
    async fn consumer_grants(&self, consumer: &str) -> Result<Vec<GrantView>, Failure>;
    async fn revoke_access(&self, id: &str, reason: &str) -> Result<GrantView, Failure>;
    /// Mints a credential for a grant (its secret shown this once).
    async fn mint_credential(
        &self,
        grant: &str,
        ask: &CredentialAsk,
    ) -> Result<MintedCredential, Failure>;
    async fn credentials(&self, grant: Option<&str>) -> Result<Vec<CredentialView>, Failure>;
    async fn revoke_credential(&self, id: &str) -> Result<CredentialView, Failure>;
    /// Who reads a product's ports through the query port.
    async fn usage(&self, product: &str) -> Result<Vec<Usage>, Failure>;
    /// A governed read, as `{columns, rows}`.
    async fn query(&self, sql: &str) -> Result<serde_json::Value, Failure>;
    /// A governed read as CSV, Arrow IPC or Parquet, written to `out` as it is produced.
    async fn query_to(
        &self,
        sql: &str,
        format: ResultFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), Failure>;
    /// The service levels of every product's output ports (or one product's), measured now.
    async fn sla(&self, product: Option<&str>, window: &str) -> Result<SlaReport, Failure>;
    /// One monitor pass that records violations and recoveries: locally with these options
    /// (and the webhook deliveries it made), or the server's own pass.
    async fn sla_check(
        &self,
        options: &mesh_service::monitor::MonitorOptions,
    ) -> Result<(SlaReport, Vec<Delivery>), Failure>;
    async fn sla_violations(
        &self,
        product: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Violation>, Failure>;
    async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>, Failure>;
    /// The masking key's fingerprint and age (admins).
    async fn masking_key(&self) -> Result<MaskingKeyInfo, Failure>;
    /// A new masking key (admins).
    async fn rotate_masking_key(&self) -> Result<MaskingKeyInfo, Failure>;
}

/// The catalog database itself, as one principal.
#[derive(Debug)]
pub(crate) struct Local {
    service: Service,
    who: Principal,
}

impl Local {
    pub(crate) fn new(service: Service, who: Principal) -> Local {
        Local { service, who }
    }
}

/// A window such as `28d`, or a bad request.
fn window(text: &str) -> Result<chrono::Duration, Failure> {
    mesh_service::monitor::parse_window(text).map_err(|e| Failure::local(ErrorCode::BadRequest, e))
}

fn written(e: std::io::Error) -> Failure {
    Failure::Transport(format!("writing the result: {e}"))
}

#[async_trait::async_trait]
impl CatalogApi for Local {
    async fn publish(&self, bundle: &Bundle, dry_run: bool) -> Result<PublishReport, Failure> {
        Ok(self.catalog().publish(&self.who, bundle, dry_run).await?)
    }

    async fn product(&self, id: &str) -> Result<ProductView, Failure> {
        Ok(self.catalog().product(&self.who, id).await?)
    }

    async fn versions(&self, id: &str) -> Result<Vec<VersionView>, Failure> {
        Ok(self.catalog().versions(&self.who, id).await?)
    }

    async fn version(&self, id: &str, selector: &str) -> Result<VersionView, Failure> {
        Ok(self.catalog().version(&self.who, id, selector).await?)
    }

    async fn deprecate(
        &self,
        id: &str,
        version: &str,
        sunset: chrono::NaiveDate,
        guide: &str,
    ) -> Result<Deprecation, Failure> {
        Ok(self
            .catalog()
            .deprecate(&self.who, id, version, sunset, guide)
            .await?)
    }

    async fn retire(&self, id: &str, version: &str) -> Result<VersionView, Failure> {
        Ok(self.catalog().retire(&self.who, id, version).await?)
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, Failure> {
        Ok(self.catalog().search(&self.who, query).await?)
    }

    async fn lineage(
        &self,
        product: &str,
        depth: usize,
        direction: Direction,
        column: Option<&str>,
    ) -> Result<Graph, Failure> {
        Ok(self
            .catalog()
            .product_lineage(&self.who, product, depth, direction, column)
            .await?)
    }

    async fn ingest_lineage(&self, event: &serde_json::Value) -> Result<(), Failure> {
        self.catalog().ingest_lineage(&self.who, event).await?;
        Ok(())
    }

    async fn publish_policies(
        &self,
        scope: &PolicyScope,
        bundle: PolicyBundle,
        dry_run: bool,
    ) -> Result<PolicyPublishReport, Failure> {
        Ok(self
            .catalog()
            .publish_policies(&self.who, scope, bundle, dry_run)
            .await?)
    }

    async fn policy_versions(&self, scope: &PolicyScope) -> Result<Vec<PolicyBundleView>, Failure> {
        Ok(self.catalog().policy_bundles(&self.who, scope).await?)
    }

    async fn effective_policies(&self, domain: Option<&str>) -> Result<EffectivePolicies, Failure> {
        Ok(self.catalog().effective_policies(&self.who, domain).await?)
    }

    async fn audit(&self) -> Result<AuditReport, Failure> {
        Ok(self.catalog().audit(&self.who).await?)
    }

    async fn events(
        &self,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<Event>, Failure> {
        Ok(self
            .catalog()
            .events(&self.who, after, limit, subject)
            .await?)
    }

    async fn begin_run(&self, start: &RunStart) -> Result<RunView, Failure> {
        Ok(self.catalog().begin_run(&self.who, start).await?)
    }

    async fn committing_run(&self, id: &str, version: i64) -> Result<RunView, Failure> {
        Ok(self
            .catalog()
            .committing_run(&self.who, id, version)
            .await?)
    }

    async fn finish_run(&self, id: &str, end: &RunEnd) -> Result<RunView, Failure> {
        Ok(self.catalog().finish_run(&self.who, id, end).await?)
    }

    async fn settle_run(&self, id: &str, version: Option<i64>) -> Result<RunView, Failure> {
        Ok(self.catalog().settle_run(&self.who, id, version).await?)
    }

    async fn heartbeat_run(&self, id: &str) -> Result<RunView, Failure> {
        Ok(self.catalog().heartbeat_run(&self.who, id).await?)
    }

    async fn run(&self, id: &str) -> Result<RunView, Failure> {
        Ok(self.catalog().run(&self.who, id).await?)
    }

    async fn runs(
        &self,
        product: &str,
        port: Option<&str>,
        open: bool,
        limit: i64,
    ) -> Result<Vec<RunView>, Failure> {
        Ok(match (open, port) {
            (true, Some(port)) => self.catalog().open_runs(&self.who, product, port).await?,
            _ => self.catalog().runs(&self.who, product, port, limit).await?,
        })
    }

    async fn snapshots(&self, product: &str) -> Result<Vec<Snapshot>, Failure> {
        Ok(self.catalog().snapshots(&self.who, product).await?)
    }

    async fn schedule(&self, product: &str, next: u16, last: u32) -> Result<ScheduleView, Failure> {
        Ok(self
            .catalog()
            .schedule_view(&self.who, product, next, last)
            .await?)
    }

    async fn pipeline_inputs(&self, product: &str) -> Result<Vec<ResolvedInput>, Failure> {
        Ok(self.service.pipeline_inputs(&self.who, product).await?)
    }

    async fn pipeline_sources(&self, product: &str) -> Result<Vec<ResolvedSource>, Failure> {
        Ok(self.service.pipeline_sources(&self.who, product).await?)
    }

    async fn locations(&self) -> Result<Vec<LocationView>, Failure> {
        Ok(self.catalog().locations(&self.who).await?)
    }

    async fn whoami(&self) -> Result<WhoAmI, Failure> {
        Ok(self.catalog().whoami(&self.who))
    }

    async fn domains(&self) -> Result<Vec<Domain>, Failure> {
        Ok(self.catalog().domains(&self.who).await?)
    }

    async fn put_domain(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<Option<Domain>, Failure> {
        Ok(self
            .catalog()
            .put_domain(&self.who, name, description)
            .await?)
    }

    async fn role_bindings(&self) -> Result<Vec<Binding>, Failure> {
        Ok(self.catalog().role_bindings(&self.who).await?)
    }

    async fn bind(&self, binding: &Binding) -> Result<bool, Failure> {
        Ok(self.catalog().bind(&self.who, binding).await?)
    }

    async fn unbind(&self, binding: &Binding) -> Result<bool, Failure> {
        Ok(self.catalog().unbind(&self.who, binding).await?)
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, Failure> {
        Ok(self.catalog().subscriptions(&self.who).await?)
    }

    async fn subscribe(&self, new: &NewSubscription) -> Result<Subscription, Failure> {
        Ok(self.catalog().subscribe(&self.who, new).await?)
    }

    async fn unsubscribe(&self, id: &str) -> Result<Subscription, Failure> {
        Ok(self.catalog().unsubscribe(&self.who, id).await?)
    }

    async fn add_location(&self, new: &NewLocation) -> Result<LocationView, Failure> {
        Ok(self.catalog().add_location(&self.who, new).await?)
    }

    async fn remove_location(&self, name: &str) -> Result<LocationView, Failure> {
        Ok(self.catalog().remove_location(&self.who, name).await?)
    }

    async fn request_access(&self, ask: &AccessAsk) -> Result<RequestView, Failure> {
        Ok(self.catalog().request_access(&self.who, ask).await?)
    }

    async fn access_requests(
        &self,
        product: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, Failure> {
        Ok(self
            .catalog()
            .access_requests(&self.who, product, state)
            .await?)
    }

    async fn decide_access(
        &self,
        id: &str,
        decision: &AccessDecision,
    ) -> Result<RequestView, Failure> {
        Ok(self
            .catalog()
            .decide_access(&self.who, id, decision)
            .await?)
    }

    async fn access_grants(&self, product: Option<&str>) -> Result<Vec<GrantView>, Failure> {
        Ok(self.catalog().access_grants(&self.who, product).await?)
    }

    async fn consumer_grants(&self, consumer: &str) -> Result<Vec<GrantView>, Failure> {
        Ok(self.catalog().consumer_grants(&self.who, consumer).await?)
    }

    async fn revoke_access(&self, id: &str, reason: &str) -> Result<GrantView, Failure> {
        Ok(self.catalog().revoke_access(&self.who, id, reason).await?)
    }

    async fn mint_credential(
        &self,
        grant: &str,
        ask: &CredentialAsk,
    ) -> Result<MintedCredential, Failure> {
        Ok(self
            .catalog()
            .mint_credential(&self.who, grant, ask)
            .await?)
    }

    async fn credentials(&self, grant: Option<&str>) -> Result<Vec<CredentialView>, Failure> {
        Ok(self.catalog().credentials(&self.who, grant).await?)
    }

    async fn revoke_credential(&self, id: &str) -> Result<CredentialView, Failure> {
        Ok(self.catalog().revoke_credential(&self.who, id).await?)
    }

    async fn usage(&self, product: &str) -> Result<Vec<Usage>, Failure> {
        Ok(self.catalog().usage(&self.who, product).await?)
    }

    async fn query(&self, sql: &str) -> Result<serde_json::Value, Failure> {
        let (schema, batches) = self.service.read_all(&self.who, sql).await?;
        let rows =
            mesh_engine::query::json_rows(&batches).map_err(mesh_service::ReadError::from)?;
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        Ok(serde_json::json!({ "columns": columns, "rows": rows }))
    }

    async fn query_to(
        &self,
        sql: &str,
        format: ResultFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), Failure> {
        use futures::StreamExt as _;
        let encoding = |e| Failure::from(mesh_service::ReadError::from(e));
        let mut read = self.service.read(&self.who, sql).await?;
        let mut encoder =
            mesh_engine::query::Encoder::new(format, read.schema).map_err(encoding)?;
        while let Some(batch) = read.batches.next().await {
            out.write_all(&encoder.push(&batch?).map_err(encoding)?)
                .map_err(written)?;
        }
        out.write_all(&encoder.finish().map_err(encoding)?)
            .map_err(written)?;
        Ok(())
    }

    async fn sla(&self, product: Option<&str>, window_text: &str) -> Result<SlaReport, Failure> {
        let options = SlaOptions {
            window: window(window_text)?,
            product: product.map(str::to_owned),
        };
        Ok(self.catalog().sla(&self.who, &options).await?)
    }

    async fn sla_check(
        &self,
        options: &mesh_service::monitor::MonitorOptions,
    ) -> Result<(SlaReport, Vec<Delivery>), Failure> {
        let monitor = mesh_service::monitor::Monitor::new(
            options.clone(),
            Arc::new(mesh_server::notify::HttpSender::new()),
        );
        let (report, deliveries) =
            Box::pin(monitor.check(self.catalog(), &self.who, false)).await?;
        Ok((report, deliveries.into_iter().map(Delivery::from).collect()))
    }

    async fn sla_violations(
        &self,
        product: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Violation>, Failure> {
        Ok(self
            .catalog()
            .sla_violations(&self.who, product, limit)
            .await?)
    }

    async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>, Failure> {
        Ok(self.catalog().deliveries(&self.who, limit).await?)
    }

    async fn masking_key(&self) -> Result<MaskingKeyInfo, Failure> {
        Ok(self.catalog().masking_key_info(&self.who).await?)
    }

    async fn rotate_masking_key(&self) -> Result<MaskingKeyInfo, Failure> {
        Ok(self.catalog().rotate_masking_key(&self.who).await?)
    }
}

impl Local {
    fn catalog(&self) -> &mesh_catalog::Catalog {
        self.service.catalog()
    }
}

/// A `mesh serve`, with a token.
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

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(reqwest::Method::GET, path, None).await
    }

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
        let mut problem: Problem = serde_json::from_slice(&bytes).unwrap_or_else(|_| Problem {
            code: "error".into(),
            detail: String::from_utf8_lossy(&bytes).into_owned(),
            ..Problem::default()
        });
        problem.status = status.as_u16();
        Err(Failure::Problem {
            problem: Box::new(problem),
            remote: true,
        })
    }
}

fn bundle_json(bundle: &Bundle) -> serde_json::Value {
    let mut json = serde_json::json!({
        "descriptor": { "path": bundle.descriptor.path, "content": bundle.descriptor.text },
        "contracts": bundle.contracts.iter()
            .map(|c| serde_json::json!({ "path": c.path, "content": c.text }))
            .collect::<Vec<_>>(),
    });
    if let Some(t) = &bundle.transform {
        json["transform"] = serde_json::json!({ "path": t.path, "content": t.text });
    }
    json
}

fn product_path(template: &str, product: &str) -> String {
    path(template, &[("product", product)])
}

fn id_path(template: &str, id: &str) -> String {
    path(template, &[("id", id)])
}

#[async_trait::async_trait]
impl CatalogApi for Remote {
    fn is_remote(&self) -> bool {
        true
    }

    async fn publish(&self, bundle: &Bundle, dry_run: bool) -> Result<PublishReport, Failure> {
        let path = with_query(routes::PRODUCTS, &[("dry_run", Some(&dry_run.to_string()))]);
        self.call(reqwest::Method::POST, &path, Some(bundle_json(bundle)))
            .await
    }

    async fn product(&self, id: &str) -> Result<ProductView, Failure> {
        self.get(&product_path(routes::PRODUCT, id)).await
    }

    async fn versions(&self, id: &str) -> Result<Vec<VersionView>, Failure> {
        self.get(&product_path(routes::PRODUCT_VERSIONS, id)).await
    }

    async fn version(&self, id: &str, selector: &str) -> Result<VersionView, Failure> {
        let path = path(
            routes::PRODUCT_VERSION,
            &[("product", id), ("version", selector)],
        );
        self.get(&path).await
    }

    async fn deprecate(
        &self,
        id: &str,
        version: &str,
        sunset: chrono::NaiveDate,
        guide: &str,
    ) -> Result<Deprecation, Failure> {
        let path = path(routes::DEPRECATE, &[("product", id), ("version", version)]);
        let body = serde_json::json!({ "sunset": sunset.to_string(), "migration_guide": guide });
        self.post(&path, &body).await
    }

    async fn retire(&self, id: &str, version: &str) -> Result<VersionView, Failure> {
        let path = path(routes::RETIRE, &[("product", id), ("version", version)]);
        self.call(reqwest::Method::POST, &path, None).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, Failure> {
        let limit = query.limit.map(|l| l.to_string());
        let path = with_query(
            routes::SEARCH,
            &[
                ("q", Some(query.q.as_str())),
                ("domain", query.domain.as_deref()),
                ("tag", query.tag.as_deref()),
                ("type", query.product_type.as_deref()),
                ("classification", query.classification.as_deref()),
                ("status", query.status.as_deref()),
                ("limit", limit.as_deref()),
            ],
        );
        self.get(&path).await
    }

    async fn lineage(
        &self,
        product: &str,
        depth: usize,
        direction: Direction,
        column: Option<&str>,
    ) -> Result<Graph, Failure> {
        let direction = match direction {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "both",
        };
        let depth = depth.to_string();
        let path = with_query(
            &product_path(routes::PRODUCT_LINEAGE, product),
            &[
                ("direction", Some(direction)),
                ("depth", Some(&depth)),
                ("column", column),
            ],
        );
        self.get(&path).await
    }

    async fn ingest_lineage(&self, event: &serde_json::Value) -> Result<(), Failure> {
        let _: serde_json::Value = self.post(routes::LINEAGE, event).await?;
        Ok(())
    }

    async fn publish_policies(
        &self,
        scope: &PolicyScope,
        bundle: PolicyBundle,
        dry_run: bool,
    ) -> Result<PolicyPublishReport, Failure> {
        let path = with_query(
            &path(routes::POLICY_SCOPE, &[("scope", scope.name())]),
            &[("dry_run", Some(&dry_run.to_string()))],
        );
        self.post(&path, &bundle).await
    }

    async fn policy_versions(&self, scope: &PolicyScope) -> Result<Vec<PolicyBundleView>, Failure> {
        self.get(&path(routes::POLICY_VERSIONS, &[("scope", scope.name())]))
            .await
    }

    async fn effective_policies(&self, domain: Option<&str>) -> Result<EffectivePolicies, Failure> {
        self.get(&with_query(routes::POLICIES, &[("domain", domain)]))
            .await
    }

    async fn audit(&self) -> Result<AuditReport, Failure> {
        self.call(reqwest::Method::POST, routes::AUDIT, None).await
    }

    async fn events(
        &self,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<Event>, Failure> {
        #[derive(serde::Deserialize)]
        struct Page {
            items: Vec<Event>,
        }
        let (after, limit) = (after.to_string(), limit.to_string());
        let path = with_query(
            routes::EVENTS,
            &[
                ("after", Some(&after)),
                ("limit", Some(&limit)),
                ("subject", subject),
            ],
        );
        let page: Page = self.get(&path).await?;
        Ok(page.items)
    }

    async fn begin_run(&self, start: &RunStart) -> Result<RunView, Failure> {
        self.post(routes::RUNS, start).await
    }

    async fn committing_run(&self, id: &str, version: i64) -> Result<RunView, Failure> {
        let body = serde_json::json!({ "delta_version": version });
        self.post(&id_path(routes::RUN_COMMITTING, id), &body).await
    }

    async fn finish_run(&self, id: &str, end: &RunEnd) -> Result<RunView, Failure> {
        self.post(&id_path(routes::RUN_FINISH, id), end).await
    }

    async fn settle_run(&self, id: &str, version: Option<i64>) -> Result<RunView, Failure> {
        let body = serde_json::json!({ "delta_version": version });
        self.post(&id_path(routes::RUN_SETTLE, id), &body).await
    }

    async fn heartbeat_run(&self, id: &str) -> Result<RunView, Failure> {
        self.post(&id_path(routes::RUN_HEARTBEAT, id), &serde_json::json!({}))
            .await
    }

    async fn run(&self, id: &str) -> Result<RunView, Failure> {
        self.get(&id_path(routes::RUN, id)).await
    }

    async fn runs(
        &self,
        product: &str,
        port: Option<&str>,
        open: bool,
        limit: i64,
    ) -> Result<Vec<RunView>, Failure> {
        let (limit, open) = (limit.to_string(), open.to_string());
        let path = with_query(
            &product_path(routes::PRODUCT_RUNS, product),
            &[
                ("limit", Some(&limit)),
                ("open", Some(&open)),
                ("port", port),
            ],
        );
        self.get(&path).await
    }

    async fn snapshots(&self, product: &str) -> Result<Vec<Snapshot>, Failure> {
        self.get(&product_path(routes::PRODUCT_SNAPSHOTS, product))
            .await
    }

    async fn schedule(&self, product: &str, next: u16, last: u32) -> Result<ScheduleView, Failure> {
        let path = with_query(
            &product_path(routes::PRODUCT_SCHEDULE, product),
            &[
                ("next", Some(&next.to_string())),
                ("last", Some(&last.to_string())),
            ],
        );
        self.get(&path).await
    }

    async fn pipeline_inputs(&self, product: &str) -> Result<Vec<ResolvedInput>, Failure> {
        self.get(&product_path(routes::PRODUCT_INPUTS, product))
            .await
    }

    async fn pipeline_sources(&self, product: &str) -> Result<Vec<ResolvedSource>, Failure> {
        self.get(&product_path(routes::PRODUCT_SOURCES, product))
            .await
    }

    async fn locations(&self) -> Result<Vec<LocationView>, Failure> {
        self.get(routes::LOCATIONS).await
    }

    async fn whoami(&self) -> Result<WhoAmI, Failure> {
        self.get(routes::WHOAMI).await
    }

    async fn domains(&self) -> Result<Vec<Domain>, Failure> {
        self.get(routes::DOMAINS).await
    }

    async fn put_domain(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<Option<Domain>, Failure> {
        let response = self
            .send(
                reqwest::Method::PUT,
                &path(routes::DOMAIN, &[("domain", name)]),
                Some(serde_json::json!({ "description": description })),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(format!("reading the answer of {}: {e}", self.base)))?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Failure::Transport(format!(
                "{} did not answer as a mesh server does: {e}",
                self.base
            ))
        })
    }

    async fn role_bindings(&self) -> Result<Vec<Binding>, Failure> {
        self.get(routes::BINDINGS).await
    }

    async fn bind(&self, binding: &Binding) -> Result<bool, Failure> {
        let answer: serde_json::Value = self.post(routes::BINDINGS, binding).await?;
        Ok(answer["changed"].as_bool().unwrap_or(false))
    }

    async fn unbind(&self, binding: &Binding) -> Result<bool, Failure> {
        let answer: serde_json::Value = self.post(routes::BINDINGS_REMOVE, binding).await?;
        Ok(answer["changed"].as_bool().unwrap_or(false))
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, Failure> {
        self.get(routes::SUBSCRIPTIONS).await
    }

    async fn subscribe(&self, new: &NewSubscription) -> Result<Subscription, Failure> {
        self.post(routes::SUBSCRIPTIONS, new).await
    }

    async fn unsubscribe(&self, id: &str) -> Result<Subscription, Failure> {
        self.call(
            reqwest::Method::DELETE,
            &path(routes::SUBSCRIPTION, &[("id", id)]),
            None,
        )
        .await
    }

    async fn add_location(&self, new: &NewLocation) -> Result<LocationView, Failure> {
        self.post(routes::LOCATIONS, new).await
    }

    async fn remove_location(&self, name: &str) -> Result<LocationView, Failure> {
        self.call(
            reqwest::Method::DELETE,
            &path(routes::LOCATION, &[("name", name)]),
            None,
        )
        .await
    }

    async fn request_access(&self, ask: &AccessAsk) -> Result<RequestView, Failure> {
        self.post(routes::ACCESS_REQUESTS, ask).await
    }

    async fn access_requests(
        &self,
        product: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, Failure> {
        let path = with_query(
            routes::ACCESS_REQUESTS,
            &[("product", product), ("state", state)],
        );
        self.get(&path).await
    }

    async fn decide_access(
        &self,
        id: &str,
        decision: &AccessDecision,
    ) -> Result<RequestView, Failure> {
        self.post(&id_path(routes::ACCESS_DECISION, id), decision)
            .await
    }

    async fn access_grants(&self, product: Option<&str>) -> Result<Vec<GrantView>, Failure> {
        self.get(&with_query(routes::ACCESS_GRANTS, &[("product", product)]))
            .await
    }

    async fn consumer_grants(&self, consumer: &str) -> Result<Vec<GrantView>, Failure> {
        self.get(&with_query(
            routes::ACCESS_GRANTS,
            &[("consumer", Some(consumer))],
        ))
        .await
    }

    async fn revoke_access(&self, id: &str, reason: &str) -> Result<GrantView, Failure> {
        let body = serde_json::json!({ "reason": reason });
        self.post(&id_path(routes::ACCESS_REVOKE, id), &body).await
    }

    async fn mint_credential(
        &self,
        grant: &str,
        ask: &CredentialAsk,
    ) -> Result<MintedCredential, Failure> {
        self.post(&id_path(routes::GRANT_CREDENTIALS, grant), ask)
            .await
    }

    async fn credentials(&self, grant: Option<&str>) -> Result<Vec<CredentialView>, Failure> {
        self.get(&with_query(routes::CREDENTIALS, &[("grant", grant)]))
            .await
    }

    async fn revoke_credential(&self, id: &str) -> Result<CredentialView, Failure> {
        self.call(
            reqwest::Method::DELETE,
            &id_path(routes::CREDENTIAL, id),
            None,
        )
        .await
    }

    async fn usage(&self, product: &str) -> Result<Vec<Usage>, Failure> {
        self.get(&product_path(routes::PRODUCT_USAGE, product))
            .await
    }

    async fn query(&self, sql: &str) -> Result<serde_json::Value, Failure> {
        self.post(routes::QUERY, &serde_json::json!({ "sql": sql }))
            .await
    }

    async fn query_to(
        &self,
        sql: &str,
        format: ResultFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), Failure> {
        let name = match format {
            ResultFormat::Json => "json",
            ResultFormat::Csv => "csv",
            ResultFormat::Arrow => "arrow",
            ResultFormat::Parquet => "parquet",
        };
        let path = with_query(routes::QUERY, &[("format", Some(name))]);
        let mut response = self
            .send(
                reqwest::Method::POST,
                &path,
                Some(serde_json::json!({ "sql": sql })),
            )
            .await?;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::Transport(format!("reading the answer of {}: {e}", self.base)))?
        {
            out.write_all(&chunk).map_err(written)?;
        }
        Ok(())
    }

    async fn sla(&self, product: Option<&str>, window: &str) -> Result<SlaReport, Failure> {
        let path = with_query(
            routes::SLA,
            &[("window", Some(window)), ("product", product)],
        );
        self.get(&path).await
    }

    async fn sla_check(
        &self,
        _options: &mesh_service::monitor::MonitorOptions,
    ) -> Result<(SlaReport, Vec<Delivery>), Failure> {
        let report = self
            .call(reqwest::Method::POST, routes::SLA_CHECK, None)
            .await?;
        Ok((report, Vec::new()))
    }

    async fn sla_violations(
        &self,
        product: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Violation>, Failure> {
        let limit = limit.to_string();
        let path = with_query(
            routes::SLA_VIOLATIONS,
            &[("limit", Some(&limit)), ("product", product)],
        );
        self.get(&path).await
    }

    async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>, Failure> {
        let limit = limit.to_string();
        self.get(&with_query(routes::DELIVERIES, &[("limit", Some(&limit))]))
            .await
    }

    async fn masking_key(&self) -> Result<MaskingKeyInfo, Failure> {
        self.get(routes::MASKING_KEY).await
    }

    async fn rotate_masking_key(&self) -> Result<MaskingKeyInfo, Failure> {
        self.post(routes::MASKING_KEY_ROTATE, &serde_json::json!({}))
            .await
    }
}

/// The client a command uses.
pub(crate) type Client = Box<dyn CatalogApi>;
