//! The business rules of the catalog, above [`CatalogStore`]: every operation authorizes the
//! caller, validates, decides inside one write transaction, records an event, and retries from the
//! start when another writer got there first.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use mesh_model::changelog::{self, Changelog, Compatibility, Incompatibility};
use mesh_model::diag::Diagnostic;
use mesh_model::lint::{LintOptions, SourceFile, lint};
use mesh_model::odps::DataProduct;
use mesh_model::source::Node;
use mesh_model::{DocKind, parse_document};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{self, ANY_DOMAIN, Action, Principal, Role};
use crate::lineage::{self, Graph, GraphNode, LineageGraph};
use crate::search::{SearchIndex, SearchQuery, SearchResults};
use crate::store::{
    CatalogStore, DependencyRow, DomainRow, EventRow, NewEvent, PortRow, ProductQuery, ProductRow,
    RoleBinding, StoreError, TeamRow, TokenRow, Tx, VersionRow,
};

/// How many times a write is retried after losing a race before giving up.
const MAX_ATTEMPTS: usize = 64;

/// Why a catalog operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The caller is not known (no or a bad token).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The documents do not pass strict lint; every finding is listed.
    #[error("the data product does not pass `mesh lint --strict` ({} errors)", .0.iter().filter(|(_, d)| d.is_error()).count())]
    Invalid(Vec<(String, Diagnostic)>),
    /// A document that is well-formed JSON but not what it should be (e.g. an OpenLineage event
    /// without a run id).
    #[error("{0}")]
    InvalidDocument(String),
    /// The request itself is malformed (a bad version, date or mode).
    #[error("{0}")]
    BadRequest(String),
    /// A different document is already published under this version.
    #[error(
        "{product}@{version} is already published with different content; publish it under a new version"
    )]
    VersionExists { product: String, version: String },
    /// A port's new contract breaks compatibility with its history.
    #[error("{product}@{version} breaks the compatibility of {} output port(s); a breaking change needs a new major version", .ports.len())]
    Incompatible {
        product: String,
        version: String,
        ports: Vec<PortIncompatibility>,
    },
    /// A blocking governance policy is violated; every violation is listed.
    #[error("{product}@{version} violates {} blocking polic(y/ies)", .violations.iter().filter(|v| v.enforcement == mesh_policy::Enforcement::Block).count())]
    PolicyViolation {
        product: String,
        version: String,
        violations: Vec<mesh_policy::Violation>,
        /// The policy bundle versions that decided.
        bundles: crate::governance::BundleVersions,
    },
    /// Policies that do not load with the ones they join, or whose Rego tests fail.
    #[error("the policies are refused: {}", .0.join("; "))]
    InvalidPolicies(Vec<String>),
    /// The lifecycle forbids it (retire before sunset, deprecate a retired version, ...).
    #[error("{0}")]
    Lifecycle(String),
    /// Too many concurrent writers; try again.
    #[error("the catalog is busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CatalogError {
    fn from(e: StoreError) -> Self {
        CatalogError::Store(e)
    }
}

/// The compatibility failures of one output port.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortIncompatibility {
    pub port: String,
    /// The contract file the new contract came from, as the bundle names it.
    pub source: String,
    pub mode: Compatibility,
    pub failures: Vec<Incompatibility>,
    /// Who the breaking changes would hurt, from the lineage graph.
    pub affected: ImpactReport,
}

/// A compliance report over the whole catalog: every product's latest version against the
/// policies, per domain and per policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    pub at: String,
    pub products: usize,
    /// Products with no blocking violation.
    pub compliant: usize,
    pub by_domain: std::collections::BTreeMap<String, Compliance>,
    pub by_policy: std::collections::BTreeMap<String, Compliance>,
    /// Every violation found: product, version, policy, enforcement, message.
    pub violations: Vec<serde_json::Value>,
}

/// Counts for one domain or one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Compliance {
    /// Products looked at (for a policy: products it found a violation in).
    pub products: usize,
    pub compliant: usize,
    pub blocking: usize,
    pub warnings: usize,
    pub audit: usize,
}

/// A product worth a look, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    pub product: String,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// Who a change to an output port (or some of its columns) reaches downstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImpactReport {
    /// Downstream data products (mesh jobs), nearest first.
    pub products: Vec<String>,
    /// Downstream columns (`datasetField:NS:DATASET:FIELD`) of the changed columns.
    pub columns: Vec<String>,
    /// Downstream jobs and datasets outside mesh (reported through OpenLineage).
    pub external: Vec<String>,
}

/// The time, injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where it is set.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One document of a bundle: where it came from (for messages) and its YAML or JSON text.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub text: String,
}

/// What is published: a product descriptor and the contracts of its output ports.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub descriptor: Source,
    pub contracts: Vec<Source>,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PublishOutcome {
    /// A new version was stored.
    Published,
    /// The same document was already published under this version: nothing changed.
    Unchanged,
    /// A dry run that would have published.
    Checked,
}

/// The report of a publish: the outcome and what changed in each port since its previous version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishReport {
    pub product: String,
    pub version: String,
    pub outcome: PublishOutcome,
    pub digest: String,
    /// Per output port: the version compared with and the change report (absent for a first
    /// version of the port in its major version).
    pub ports: Vec<PortReport>,
    /// The governance decision (violations that did not block: warnings and audit records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
    /// Sequence number of the `product.published` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortReport {
    pub port: String,
    pub contract_id: String,
    pub compatibility: Compatibility,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub changes: Changelog,
}

/// A product and its versions, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductView {
    pub id: String,
    pub domain: String,
    pub team: Option<String>,
    pub name: Option<String>,
    pub latest: Option<String>,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub versions: Vec<VersionView>,
}

/// One version, with its lifecycle, its descriptor and (when asked for) its port contracts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionView {
    pub product: String,
    pub version: String,
    pub status: String,
    pub digest: String,
    pub published_by: String,
    pub published_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_guide: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortView {
    pub port: String,
    pub contract_id: String,
    pub compatibility: String,
    pub digest: String,
    pub contract: serde_json::Value,
}

/// A product version that reads a deprecated one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumerRef {
    pub product: String,
    pub version: String,
    pub input_port: String,
    pub contract_id: String,
}

/// The result of deprecating a version: who must move.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deprecation {
    pub version: VersionView,
    pub consumers: Vec<ConsumerRef>,
    /// The people and services who have queried the version's major through the query port,
    /// each notified too.
    #[serde(default)]
    pub readers: Vec<String>,
}

/// The catalog: a store, a clock, and the rules.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) store: Arc<dyn CatalogStore>,
    pub(crate) clock: Arc<dyn Clock>,
    search: Arc<SearchState>,
    lineage: Arc<LineageState>,
    /// The global policies the catalog was built with (the binary's standard pack), to which the
    /// published global and domain bundles add; none and no bundle = no governance.
    pub(crate) base_policies: Option<Arc<Vec<mesh_policy::Source>>>,
    /// Compiled policy sets by the bundle versions they were built from.
    pub(crate) policy_sets: Arc<crate::governance::SetCache>,
}

/// The lineage graph and the last event it reflects.
#[derive(Debug, Default)]
struct LineageState {
    graph: std::sync::RwLock<LineageGraph>,
    applied: tokio::sync::Mutex<Option<i64>>,
}

/// The search index and the last event it reflects.
#[derive(Debug, Default)]
struct SearchState {
    index: std::sync::RwLock<SearchIndex>,
    /// The sequence number of the last applied event; `None` before the first build. Held while
    /// syncing, so one task brings the index up to date and the others wait for it.
    applied: tokio::sync::Mutex<Option<i64>>,
}

/// Event kinds that change what search shows for their subject.
const SEARCH_EVENTS: [&str; 3] = ["product.published", "version.deprecated", "version.retired"];

/// A decision as the publish report shows it: the decision and the bundle versions behind it.
fn policy_json(
    decision: &mesh_policy::Decision,
    bundles: &crate::governance::BundleVersions,
) -> serde_json::Value {
    let mut json = serde_json::to_value(decision).unwrap_or_default();
    json["bundles"] = serde_json::to_value(bundles).unwrap_or_default();
    json
}

pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Orders version strings by semver (unparseable ones last, by text).
fn by_semver(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// JSON with object keys sorted: the same document in any key order has the same digest.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

fn digest(value: &serde_json::Value) -> String {
    auth::hex(&Sha256::digest(canonical(value).to_string().as_bytes()))
}

fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, CatalogError> {
    serde_json::from_str(text)
        .map_err(|e| CatalogError::Store(StoreError::Corrupt(format!("{what}: {e}"))))
}

/// One port's contracts in a major version, around the version being published.
#[derive(Debug, Default)]
struct PortHistory {
    before: Vec<(String, Node)>,
    after: Vec<(String, Node)>,
    /// The mode stored with the latest version before.
    mode: Option<Compatibility>,
}

/// A bundle, validated and taken apart.
#[derive(Debug)]
struct Prepared {
    /// Where the descriptor came from, for messages.
    descriptor_path: String,
    id: String,
    domain: String,
    team: Option<String>,
    name: Option<String>,
    version: semver::Version,
    status: String,
    descriptor: serde_json::Value,
    ports: Vec<PreparedPort>,
    inputs: Vec<(String, String)>,
    digest: String,
}

#[derive(Debug)]
struct PreparedPort {
    port: String,
    source: String,
    contract_id: String,
    mode: Compatibility,
    root: Node,
    json: serde_json::Value,
    digest: String,
}

/// Strict lint of the whole bundle, then the parts the catalog keys on.
fn prepare(bundle: &Bundle) -> Result<Prepared, CatalogError> {
    let mut files = vec![SourceFile {
        path: bundle.descriptor.path.clone(),
        text: bundle.descriptor.text.clone(),
        explicit: true,
    }];
    files.extend(bundle.contracts.iter().map(|c| SourceFile {
        path: c.path.clone(),
        text: c.text.clone(),
        explicit: true,
    }));
    let report = lint(&files, LintOptions { strict: true });
    let problems: Vec<(String, Diagnostic)> = report
        .files
        .iter()
        .flat_map(|f| f.diagnostics.iter().map(|d| (f.path.clone(), d.clone())))
        .filter(|(_, d)| d.is_error())
        .collect();
    if !problems.is_empty() {
        return Err(CatalogError::Invalid(problems));
    }
    let kind_of = |f: &Source| {
        report
            .files
            .iter()
            .find(|r| r.path == f.path)
            .and_then(|r| r.kind)
    };
    if kind_of(&bundle.descriptor) != Some(DocKind::Product) {
        return Err(CatalogError::BadRequest(format!(
            "{} is not a data product descriptor (kind: DataProduct)",
            bundle.descriptor.path
        )));
    }
    let mesh_model::document::AnyParsed::Product(parsed) =
        parse_document(&bundle.descriptor.path, &bundle.descriptor.text)
    else {
        return Err(CatalogError::BadRequest(format!(
            "{} is not a data product descriptor",
            bundle.descriptor.path
        )));
    };
    let (Some(product), Some(root)) = (parsed.model, parsed.root) else {
        return Err(CatalogError::BadRequest(format!(
            "{} has no data product",
            bundle.descriptor.path
        )));
    };
    let missing = |what: &str| {
        CatalogError::BadRequest(format!("{} has no `{what}`", bundle.descriptor.path))
    };
    let id = product.id.clone().ok_or_else(|| missing("id"))?;
    let domain = product.domain.clone().ok_or_else(|| missing("domain"))?;
    let version_text = product.version.clone().ok_or_else(|| missing("version"))?;
    let version = semver::Version::parse(&version_text).map_err(|e| {
        CatalogError::BadRequest(format!(
            "version `{version_text}` is not a semantic version: {e}"
        ))
    })?;
    let status = product
        .status
        .clone()
        .unwrap_or_else(|| "active".to_owned());
    if !["draft", "active", "proposed"].contains(&status.as_str()) {
        return Err(CatalogError::Lifecycle(format!(
            "a version is published as draft or active, not `{status}`; use `mesh deprecate` to deprecate it"
        )));
    }
    let status = if status == "proposed" {
        "draft".to_owned()
    } else {
        status
    };

    // Contracts by id, from the bundle's contract files.
    let mut contracts: Vec<(String, Node, String)> = Vec::new();
    for source in &bundle.contracts {
        if let mesh_model::document::AnyParsed::Contract(parsed) =
            parse_document(&source.path, &source.text)
            && let (Some(contract), Some(root)) = (parsed.model, parsed.root)
        {
            let id = contract.id.clone().unwrap_or_default();
            contracts.push((id, root, source.path.clone()));
        }
    }
    for (what, names) in [
        (
            "output port",
            product
                .output_ports
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            "input port",
            product
                .input_ports
                .iter()
                .map(|p| p.name.as_str())
                .collect(),
        ),
    ] {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.into_iter().find(|n| !seen.insert(*n)) {
            return Err(CatalogError::BadRequest(format!(
                "{}: two {what}s are named `{dup}`; port names must be unique in a product",
                bundle.descriptor.path
            )));
        }
    }
    let mut ports = Vec::new();
    for port in &product.output_ports {
        let contract_id = port.contract_id.clone().ok_or_else(|| {
            CatalogError::BadRequest(format!("output port `{}` has no contractId", port.name))
        })?;
        let (root, source) = contracts
            .iter()
            .find(|(id, _, _)| *id == contract_id)
            .map(|(_, root, source)| (root.clone(), source.clone()))
            .ok_or_else(|| {
                CatalogError::BadRequest(format!(
                    "contract `{contract_id}` of output port `{}` is not in the bundle",
                    port.name
                ))
            })?;
        let mode = port_mode(&product, &port.name)?;
        let json = root.to_json();
        ports.push(PreparedPort {
            port: port.name.clone(),
            source,
            contract_id,
            mode,
            digest: digest(&json),
            root,
            json,
        });
    }
    let inputs = product
        .input_ports
        .iter()
        .map(|p| (p.name.clone(), p.contract_id.clone()))
        .collect();
    let descriptor = root.to_json();
    let contracts_json: serde_json::Map<String, serde_json::Value> = ports
        .iter()
        .map(|p| (p.port.clone(), p.json.clone()))
        .collect();
    let digest = digest(&serde_json::json!({
        "descriptor": descriptor,
        "contracts": contracts_json,
    }));
    Ok(Prepared {
        descriptor_path: bundle.descriptor.path.clone(),
        id,
        domain,
        team: product.team.as_ref().and_then(|t| t.name.clone()),
        name: product.name.clone(),
        version,
        status,
        descriptor,
        ports,
        inputs,
        digest,
    })
}

/// A product's latest version with its documents parsed.
struct LatestVersion {
    version: String,
    status: String,
    descriptor: serde_json::Value,
    /// (port, contract).
    contracts: Vec<(String, serde_json::Value)>,
}

/// The next page of products (after `after`, in id order) with their latest versions; `None`
/// when there are no more. Returns the page's last id, to continue from.
async fn latest_page(
    tx: &mut dyn Tx,
    after: Option<&str>,
    limit: i64,
) -> Result<Option<(String, Vec<(ProductRow, LatestVersion)>)>, CatalogError> {
    let page = tx.latest_versions(after, limit).await?;
    let Some(upto) = page.last().map(|(p, _)| p.id.clone()) else {
        return Ok(None);
    };
    let mut ports = tx.latest_ports(after, &upto).await?.into_iter().peekable();
    let mut out = Vec::with_capacity(page.len());
    for (product, version) in page {
        let mut contracts = Vec::new();
        while let Some(port) = ports.next_if(|p| p.product == product.id) {
            contracts.push((port.port, parse_json(&port.contract, "contract")?));
        }
        let latest = LatestVersion {
            descriptor: parse_json(&version.descriptor, "descriptor")?,
            version: version.version,
            status: version.status,
            contracts,
        };
        out.push((product, latest));
    }
    Ok(Some((upto, out)))
}

/// The next page of events after `seq`: its last sequence number and the distinct keys `key`
/// picks from it (what derived state must re-read); `None` when there are no new events.
async fn next_subjects(
    tx: &mut dyn Tx,
    seq: i64,
    key: impl Fn(&EventRow) -> Option<String>,
) -> Result<Option<(i64, Vec<String>)>, CatalogError> {
    let events = tx.events(seq, 1000, None).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(None);
    };
    let mut keys: Vec<String> = events.iter().filter_map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    Ok(Some((last, keys)))
}

/// The columns (`schema.<object>.properties.<column>...`) that breaking changes touch.
fn breaking_columns(failures: &[Incompatibility]) -> Vec<String> {
    let mut out: Vec<String> = failures
        .iter()
        .flat_map(|f| f.changes.iter())
        .filter_map(|c| {
            let mut parts = c.path.split('.');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("schema"), Some(_), Some("properties"), Some(column)) => {
                    Some(column.to_owned())
                }
                _ => None,
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A port's compatibility mode: the output port's `compatibility` custom property, else BACKWARD.
fn port_mode(product: &DataProduct, port: &str) -> Result<Compatibility, CatalogError> {
    let Some(port) = product.output_ports.iter().find(|p| p.name == port) else {
        return Ok(Compatibility::default());
    };
    match port
        .custom_properties
        .iter()
        .find(|c| c.property == "compatibility")
    {
        None => Ok(Compatibility::default()),
        Some(c) => c
            .value
            .as_str()
            .and_then(Compatibility::parse)
            .ok_or_else(|| {
                CatalogError::BadRequest(format!(
                    "output port `{}`: compatibility {} is not one of {}",
                    port.name,
                    c.value,
                    Compatibility::ALL.map(Compatibility::as_str).join(", ")
                ))
            }),
    }
}

fn version_view(
    row: VersionRow,
    ports: Vec<PortRow>,
    full: bool,
) -> Result<VersionView, CatalogError> {
    let descriptor = if full {
        Some(parse_json(&row.descriptor, "descriptor")?)
    } else {
        None
    };
    let ports = ports
        .into_iter()
        .map(|p| {
            Ok(PortView {
                contract: parse_json(&p.contract, "contract")?,
                port: p.port,
                contract_id: p.contract_id,
                compatibility: p.compatibility,
                digest: p.digest,
            })
        })
        .collect::<Result<Vec<_>, CatalogError>>()?;
    Ok(VersionView {
        product: row.product,
        version: row.version,
        status: row.status,
        digest: row.digest,
        published_by: row.published_by,
        published_at: row.published_at,
        sunset: row.sunset,
        migration_guide: row.migration_guide,
        deprecated_at: row.deprecated_at,
        descriptor,
        ports,
    })
}

/// Runs `body` in a write transaction, again from the start whenever it loses a race.
/// After a write lost a race: waits a little (spreading the retries of writers that collided)
/// and says whether to try again.
pub(crate) async fn retry_pause(attempt: usize) -> bool {
    if attempt >= MAX_ATTEMPTS {
        return false;
    }
    let jitter = rand::random::<u64>() % (2 + attempt as u64 * 2);
    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
    true
}

macro_rules! retrying {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let mut $tx = $self.store.write().await?;
            let result: Result<_, CatalogError> = async { $body }.await;
            // The transaction ends here, before any retry sleeps: no lock is held while waiting.
            let result = match result {
                Ok((value, true)) => $tx
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(CatalogError::from),
                Ok((value, false)) => {
                    drop($tx);
                    Ok(value)
                }
                Err(e) => {
                    drop($tx);
                    Err(e)
                }
            };
            match result {
                Err(CatalogError::Store(StoreError::Conflict(why))) => {
                    if !retry_pause(attempt).await {
                        break Err(CatalogError::Busy(why));
                    }
                }
                other => break other,
            }
        }
    }};
}

impl Catalog {
    pub fn new(store: Arc<dyn CatalogStore>) -> Catalog {
        Catalog::with_clock(store, Arc::new(SystemClock))
    }

    pub fn with_clock(store: Arc<dyn CatalogStore>, clock: Arc<dyn Clock>) -> Catalog {
        Catalog {
            store,
            clock,
            search: Arc::default(),
            lineage: Arc::default(),
            base_policies: None,
            policy_sets: Arc::default(),
        }
    }

    /// Judges every publish by these global policies (with the global and domain bundles
    /// published to the catalog): blocking violations refuse it, the others are recorded with it.
    /// Refused when they do not load.
    pub fn with_policies(
        mut self,
        global: Vec<mesh_policy::Source>,
    ) -> Result<Catalog, Vec<mesh_policy::PolicyError>> {
        mesh_policy::PolicySet::load(&global, None, &mesh_policy::Overrides::new())?;
        self.base_policies = Some(Arc::new(global));
        self.policy_sets = Arc::default();
        Ok(self)
    }

    /// The policy decision on a prepared product, with the context the catalog knows: the latest
    /// version before this one and how many breaking changes lead from it.
    async fn govern(
        &self,
        tx: &mut dyn Tx,
        p: &Prepared,
        product: Option<&ProductRow>,
    ) -> Result<Option<(mesh_policy::Decision, crate::governance::BundleVersions)>, CatalogError>
    {
        let Some((policies, versions)) = self.policy_set(tx, &p.domain).await? else {
            return Ok(None);
        };
        let mut context = serde_json::json!({ "domain": p.domain });
        if let Some(previous) = product.and_then(|r| r.latest.clone()) {
            let old_ports = tx.ports(&p.id, &previous).await?;
            let mut breaking = 0;
            for port in &p.ports {
                if let Some(old) = old_ports.iter().find(|o| o.port == port.port) {
                    let old = Node::from_json(&parse_json(&old.contract, "contract")?);
                    breaking += changelog::diff(&old, &port.root).breaking().count();
                }
            }
            context["previous"] = serde_json::json!({ "version": previous });
            context["changes"] = serde_json::json!({ "breaking": breaking });
        }
        // Who reads this product's output ports today (any version).
        let ids: Vec<String> = p.ports.iter().map(|x| x.contract_id.clone()).collect();
        let mut consumers: Vec<serde_json::Value> = tx
            .dependents(&ids)
            .await?
            .into_iter()
            .filter(|d| d.product != p.id)
            .map(|d| {
                serde_json::json!({
                    "product": d.product, "version": d.version,
                    "input_port": d.input_port, "contract_id": d.contract_id,
                })
            })
            .collect();
        consumers.sort_by_key(|c| c.to_string());
        context["consumers"] = serde_json::Value::Array(consumers);
        let contracts: Vec<serde_json::Value> = p.ports.iter().map(|x| x.json.clone()).collect();
        let input = mesh_policy::input(&p.descriptor, &contracts, context);
        policies
            .evaluate(&input)
            .map(|d| Some((d, versions)))
            .map_err(|e| CatalogError::BadRequest(e.to_string()))
    }

    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }

    /// The time by the catalog's clock, as the catalog writes it.
    pub fn now(&self) -> String {
        stamp(self.clock.now())
    }

    pub(crate) fn allow(who: &Principal, action: Action<'_>) -> Result<(), CatalogError> {
        if who.may(action) {
            return Ok(());
        }
        let what = match action {
            Action::Read => "read the catalog".to_owned(),
            Action::ReadEvents => "read the event log".to_owned(),
            Action::ReportLineage => "report lineage".to_owned(),
            Action::Publish { domain } => format!("publish in domain `{domain}`"),
            Action::Lifecycle { domain } => {
                format!("deprecate or retire versions in domain `{domain}`")
            }
            Action::Govern { domain } => format!("publish the policies of domain `{domain}`"),
            Action::Administer => "administer the catalog".to_owned(),
        };
        Err(CatalogError::Forbidden(format!(
            "{} may not {what}",
            who.name
        )))
    }

    /// Publishes a product version: strict lint, compatibility of every output port against its
    /// history in the same major version, then one transaction that stores the version, its
    /// contracts and input ports, advances the product, and appends an event. With `dry_run`
    /// everything is checked and nothing is stored.
    pub async fn publish(
        &self,
        who: &Principal,
        bundle: &Bundle,
        dry_run: bool,
    ) -> Result<PublishReport, CatalogError> {
        // Lint and parsing are CPU work on documents up to the body limit: off the async threads.
        let owned = bundle.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&owned))
            .await
            .map_err(|e| {
                CatalogError::BadRequest(format!("the documents could not be read: {e}"))
            })??;
        Self::allow(
            who,
            Action::Publish {
                domain: &prepared.domain,
            },
        )?;
        let p = &prepared;
        let version = p.version.to_string();
        let major = i64::try_from(p.version.major)
            .map_err(|_| CatalogError::BadRequest(format!("version {version} is too large")))?;
        let result = retrying!(self, |tx| {
            let now = self.now();
            if let Some(existing) = tx.version(&p.id, &version).await? {
                if existing.digest == p.digest {
                    let report = PublishReport {
                        product: p.id.clone(),
                        version: version.clone(),
                        outcome: PublishOutcome::Unchanged,
                        digest: p.digest.clone(),
                        ports: Vec::new(),
                        policy: None,
                        event: None,
                    };
                    return Ok((report, false));
                }
                return Err(CatalogError::VersionExists {
                    product: p.id.clone(),
                    version: version.clone(),
                });
            }
            let product = tx.product(&p.id).await?;
            if let Some(product) = &product
                && product.domain != p.domain
            {
                return Err(CatalogError::BadRequest(format!(
                    "{} belongs to domain `{}`, not `{}`",
                    p.id, product.domain, p.domain
                )));
            }
            let mut ports = Vec::new();
            let mut failures = Vec::new();
            for port in &p.ports {
                let history = self
                    .history(tx.as_mut(), &p.id, &port.port, &p.version)
                    .await?;
                // A mode change takes effect from the next version: this one is checked under
                // the mode its port had so far.
                let mode = history.mode.unwrap_or(port.mode);
                let mut failed = changelog::check(mode, &port.root, &history.before);
                // A version published between existing ones must fit the ones after it too.
                if mode != Compatibility::None {
                    let candidate = [(version.clone(), port.root.clone())];
                    let after = if mode.transitive() {
                        &history.after[..]
                    } else {
                        &history.after[..history.after.len().min(1)]
                    };
                    for (later, node) in after {
                        for mut found in changelog::check(mode, node, &candidate) {
                            found.against = later.clone();
                            failed.push(found);
                        }
                    }
                }
                if !failed.is_empty() {
                    let columns = breaking_columns(&failed);
                    let affected = self.impact_of(&p.id, &port.contract_id, &columns).await?;
                    failures.push(PortIncompatibility {
                        port: port.port.clone(),
                        source: port.source.clone(),
                        mode,
                        failures: failed,
                        affected,
                    });
                }
                let (previous, changes) = match history.before.last() {
                    Some((v, old)) => (Some(v.clone()), changelog::diff(old, &port.root)),
                    None => (None, Changelog::default()),
                };
                ports.push(PortReport {
                    port: port.port.clone(),
                    contract_id: port.contract_id.clone(),
                    compatibility: port.mode,
                    previous,
                    changes,
                });
            }
            // An output port the previous version of this major had cannot just disappear.
            let previous = tx
                .versions(&p.id)
                .await?
                .into_iter()
                .filter_map(|v| semver::Version::parse(&v.version).ok())
                .filter(|v| v.major == p.version.major && *v < p.version)
                .max();
            if let Some(previous) = previous {
                for old in tx.ports(&p.id, &previous.to_string()).await? {
                    let mode = Compatibility::parse(&old.compatibility).unwrap_or_default();
                    if mode == Compatibility::None || p.ports.iter().any(|n| n.port == old.port) {
                        continue;
                    }
                    let affected = self.impact_of(&p.id, &old.contract_id, &[]).await?;
                    failures.push(PortIncompatibility {
                        port: old.port.clone(),
                        source: p.descriptor_path.clone(),
                        affected,
                        mode,
                        failures: vec![Incompatibility {
                            against: previous.to_string(),
                            direction: changelog::Direction::Backward,
                            changes: vec![changelog::Change::breaking(
                                format!("outputPorts.{}", old.port),
                                changelog::ChangeType::Removed,
                                "an output port was removed",
                            )],
                        }],
                    });
                }
            }
            if !failures.is_empty() {
                return Err(CatalogError::Incompatible {
                    product: p.id.clone(),
                    version: version.clone(),
                    ports: failures,
                });
            }
            let decision = self.govern(tx.as_mut(), p, product.as_ref()).await?;
            if let Some((d, bundles)) = &decision
                && d.blocked()
            {
                return Err(CatalogError::PolicyViolation {
                    product: p.id.clone(),
                    version: version.clone(),
                    violations: d.violations.clone(),
                    bundles: *bundles,
                });
            }
            if dry_run {
                let report = PublishReport {
                    product: p.id.clone(),
                    version: version.clone(),
                    outcome: PublishOutcome::Checked,
                    digest: p.digest.clone(),
                    ports,
                    policy: decision.as_ref().map(|(d, v)| policy_json(d, v)),
                    event: None,
                };
                return Ok((report, false));
            }
            if tx.domain(&p.domain).await?.is_none() {
                tx.insert_domain(&DomainRow {
                    name: p.domain.clone(),
                    description: None,
                    created_at: now.clone(),
                })
                .await?;
            }
            if let Some(team) = &p.team
                && tx.team(team).await?.is_none()
            {
                tx.insert_team(&TeamRow {
                    name: team.clone(),
                    domain: p.domain.clone(),
                    created_at: now.clone(),
                })
                .await?;
            }
            let becomes_latest = product
                .as_ref()
                .and_then(|o| o.latest.as_deref())
                .is_none_or(|l| by_semver(&version, l) == Ordering::Greater);
            let row = match &product {
                None => ProductRow {
                    id: p.id.clone(),
                    domain: p.domain.clone(),
                    team: p.team.clone(),
                    name: p.name.clone(),
                    latest: Some(version.clone()),
                    status: p.status.clone(),
                    revision: 1,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                },
                Some(old) => {
                    let newest = old
                        .latest
                        .as_deref()
                        .is_none_or(|l| by_semver(&version, l) == Ordering::Greater);
                    ProductRow {
                        team: if newest {
                            p.team.clone()
                        } else {
                            old.team.clone()
                        },
                        name: if newest {
                            p.name.clone()
                        } else {
                            old.name.clone()
                        },
                        latest: if newest {
                            Some(version.clone())
                        } else {
                            old.latest.clone()
                        },
                        status: if newest {
                            p.status.clone()
                        } else {
                            old.status.clone()
                        },
                        revision: old.revision + 1,
                        updated_at: now.clone(),
                        ..old.clone()
                    }
                }
            };
            match &product {
                None => tx.insert_product(&row).await?,
                Some(old) => tx.update_product(&row, old.revision).await?,
            }
            tx.insert_version(&VersionRow {
                product: p.id.clone(),
                version: version.clone(),
                major,
                status: p.status.clone(),
                digest: p.digest.clone(),
                descriptor: p.descriptor.to_string(),
                published_by: who.name.clone(),
                published_at: now.clone(),
                sunset: None,
                migration_guide: None,
                deprecated_at: None,
                revision: 1,
            })
            .await?;
            for port in &p.ports {
                tx.insert_port(&PortRow {
                    product: p.id.clone(),
                    version: version.clone(),
                    port: port.port.clone(),
                    major,
                    contract_id: port.contract_id.clone(),
                    compatibility: port.mode.as_str().to_owned(),
                    digest: port.digest.clone(),
                    contract: port.json.to_string(),
                })
                .await?;
            }
            if becomes_latest {
                let contracts: Vec<(String, serde_json::Value)> = p
                    .ports
                    .iter()
                    .map(|x| (x.port.clone(), x.json.clone()))
                    .collect();
                let update = lineage::product_lineage(&p.id, &p.descriptor, &contracts);
                tx.replace_lineage(&update.origin, &update.edges).await?;
                for (node, data) in &update.nodes {
                    tx.put_lineage_node(node, data, &now).await?;
                }
            }
            for (input_port, contract_id) in &p.inputs {
                tx.insert_dependency(&DependencyRow {
                    product: p.id.clone(),
                    version: version.clone(),
                    input_port: input_port.clone(),
                    contract_id: contract_id.clone(),
                })
                .await?;
            }
            let summary: Vec<serde_json::Value> = ports
                .iter()
                .map(|r| {
                    let (breaking, warning, info) = r.changes.counts();
                    serde_json::json!({
                        "port": r.port, "previous": r.previous,
                        "breaking": breaking, "warning": warning, "info": info,
                    })
                })
                .collect();
            let event = tx
                .append_event(&NewEvent {
                    at: now.clone(),
                    kind: "product.published".into(),
                    subject: p.id.clone(),
                    actor: who.name.clone(),
                    payload: serde_json::json!({
                        "version": version, "digest": p.digest, "status": p.status, "ports": summary,
                    }),
                })
                .await?;
            if let Some((d, bundles)) = &decision {
                tx.append_event(&NewEvent {
                    at: now.clone(),
                    kind: "policy.decision".into(),
                    subject: p.id.clone(),
                    actor: who.name.clone(),
                    payload: serde_json::json!({
                        "version": version, "outcome": "accepted", "evaluated": d.evaluated,
                        "violations": d.violations, "bundles": bundles,
                    }),
                })
                .await?;
            }
            let report = PublishReport {
                product: p.id.clone(),
                version: version.clone(),
                outcome: PublishOutcome::Published,
                digest: p.digest.clone(),
                ports,
                policy: decision.as_ref().map(|(d, v)| policy_json(d, v)),
                event: Some(event),
            };
            Ok((report, true))
        });
        // Every decision goes to the audit log, refusals too (their transaction rolled back).
        if let Err(CatalogError::PolicyViolation {
            product,
            version,
            violations,
            bundles,
        }) = &result
            && !dry_run
        {
            let mut tx = self.store.write().await?;
            tx.append_event(&NewEvent {
                at: self.now(),
                kind: "policy.decision".into(),
                subject: product.clone(),
                actor: who.name.clone(),
                payload: serde_json::json!({
                    "version": version, "outcome": "refused", "violations": violations,
                    "bundles": bundles,
                }),
            })
            .await?;
            tx.commit().await?;
        }
        result
    }

    /// The stored contracts of `port` in the same major version as `version`: those before it
    /// (oldest first), those after it (nearest first), and the port's mode so far.
    async fn history(
        &self,
        tx: &mut dyn Tx,
        product: &str,
        port: &str,
        version: &semver::Version,
    ) -> Result<PortHistory, CatalogError> {
        let mut rows: Vec<(semver::Version, PortRow)> = tx
            .port_history(product, port)
            .await?
            .into_iter()
            .filter_map(|row| {
                let v = semver::Version::parse(&row.version).ok()?;
                (v.major == version.major && v != *version).then_some((v, row))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut history = PortHistory::default();
        for (v, row) in rows {
            let node = Node::from_json(&parse_json(&row.contract, "contract")?);
            if v < *version {
                history.mode = Compatibility::parse(&row.compatibility);
                history.before.push((v.to_string(), node));
            } else {
                history.after.push((v.to_string(), node));
            }
        }
        Ok(history)
    }

    /// A product with all its versions (newest first, without documents).
    pub async fn product(&self, who: &Principal, id: &str) -> Result<ProductView, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let row = tx
            .product(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("data product `{id}`")))?;
        let mut versions = tx.versions(id).await?;
        versions.sort_by(|a, b| by_semver(&b.version, &a.version));
        let versions = versions
            .into_iter()
            .map(|v| version_view(v, Vec::new(), false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProductView {
            id: row.id,
            domain: row.domain,
            team: row.team,
            name: row.name,
            latest: row.latest,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            versions,
        })
    }

    /// Products in id order, a page at a time.
    pub async fn products(
        &self,
        who: &Principal,
        query: &ProductQuery,
    ) -> Result<Vec<ProductRow>, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut query = query.clone();
        query.limit = query.limit.clamp(1, 1000);
        Ok(self.store.read().await?.products(&query).await?)
    }

    /// Every version of a product, newest first.
    pub async fn versions(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Vec<VersionView>, CatalogError> {
        Ok(self.product(who, id).await?.versions)
    }

    /// One version with its descriptor and contracts. `selector` is a version (`1.2.0`), a major
    /// version (`1` or `v1`: its newest non-retired version) or `latest`.
    pub async fn version(
        &self,
        who: &Principal,
        id: &str,
        selector: &str,
    ) -> Result<VersionView, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let version = self.resolve(tx.as_mut(), id, selector).await?;
        let row = tx
            .version(id, &version)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("{id}@{version}")))?;
        let ports = tx.ports(id, &version).await?;
        version_view(row, ports, true)
    }

    async fn resolve(
        &self,
        tx: &mut dyn Tx,
        id: &str,
        selector: &str,
    ) -> Result<String, CatalogError> {
        if semver::Version::parse(selector).is_ok() {
            return Ok(selector.to_owned());
        }
        let product = tx
            .product(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("data product `{id}`")))?;
        if selector.is_empty() || selector == "latest" {
            return product
                .latest
                .ok_or_else(|| CatalogError::NotFound(format!("{id} has no version")));
        }
        let major: u64 = selector.trim_start_matches('v').parse().map_err(|_| {
            CatalogError::BadRequest(format!(
                "`{selector}` is not a version, a major version or `latest`"
            ))
        })?;
        let mut versions = tx.versions(id).await?;
        versions.retain(|v| {
            v.status != "retired"
                && semver::Version::parse(&v.version).is_ok_and(|s| s.major == major)
        });
        versions
            .into_iter()
            .map(|v| v.version)
            .max_by(|a, b| by_semver(a, b))
            .ok_or_else(|| CatalogError::NotFound(format!("{id}@{major}: no such major version")))
    }

    /// What changed in one output port between two versions of a product.
    pub async fn changelog(
        &self,
        who: &Principal,
        id: &str,
        port: &str,
        from: &str,
        to: &str,
    ) -> Result<Changelog, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let mut contract = async |selector: &str| -> Result<Node, CatalogError> {
            let version = self.resolve(tx.as_mut(), id, selector).await?;
            let ports = tx.ports(id, &version).await?;
            let row = ports.into_iter().find(|p| p.port == port).ok_or_else(|| {
                CatalogError::NotFound(format!("output port `{port}` in {id}@{version}"))
            })?;
            Ok(Node::from_json(&parse_json(&row.contract, "contract")?))
        };
        let old = contract(from).await?;
        let new = contract(to).await?;
        Ok(changelog::diff(&old, &new))
    }

    /// Deprecates a version: it stays readable until `sunset`, when it may be retired; every
    /// product reading it is told through the event log.
    pub async fn deprecate(
        &self,
        who: &Principal,
        id: &str,
        version: &str,
        sunset: NaiveDate,
        guide: &str,
    ) -> Result<Deprecation, CatalogError> {
        if guide.trim().is_empty() {
            return Err(CatalogError::BadRequest(
                "a deprecation needs a migration guide for the consumers".into(),
            ));
        }
        let today = self.clock.now().date_naive();
        if sunset <= today {
            return Err(CatalogError::BadRequest(format!(
                "the sunset date {sunset} must be after today ({today})"
            )));
        }
        retrying!(self, |tx| {
            let (product, mut row) = self.lifecycle_target(tx.as_mut(), who, id, version).await?;
            if row.status != "active" && row.status != "draft" {
                return Err(CatalogError::Lifecycle(format!(
                    "{id}@{version} is {}; only a draft or active version can be deprecated",
                    row.status
                )));
            }
            let now = self.now();
            let expected = row.revision;
            row.status = "deprecated".into();
            row.sunset = Some(sunset.to_string());
            row.migration_guide = Some(guide.to_owned());
            row.deprecated_at = Some(now.clone());
            row.revision += 1;
            tx.update_version(&row, expected).await?;
            self.touch_product(tx.as_mut(), &product, &row, &now)
                .await?;
            let ports = tx.ports(id, version).await?;
            let contract_ids: Vec<String> = ports.iter().map(|p| p.contract_id.clone()).collect();
            let consumers: Vec<ConsumerRef> = tx
                .dependents(&contract_ids)
                .await?
                .into_iter()
                .filter(|d| d.product != id)
                .map(|d| ConsumerRef {
                    product: d.product,
                    version: d.version,
                    input_port: d.input_port,
                    contract_id: d.contract_id,
                })
                .collect();
            // Whoever reads this major through the query port hears of it too.
            let mut readers: Vec<String> = tx
                .usage(Some(id), None, 1000)
                .await?
                .into_iter()
                .filter(|u| u.major == row.major)
                .map(|u| u.reader)
                .collect();
            readers.sort();
            readers.dedup();
            let payload = serde_json::json!({
                "version": version, "sunset": row.sunset, "migration_guide": guide,
                "consumers": consumers, "readers": readers,
            });
            tx.append_event(&NewEvent {
                at: now.clone(),
                kind: "version.deprecated".into(),
                subject: id.to_owned(),
                actor: who.name.clone(),
                payload: payload.clone(),
            })
            .await?;
            for consumer in &consumers {
                tx.append_event(&NewEvent {
                    at: now.clone(),
                    kind: "consumer.notified".into(),
                    subject: consumer.product.clone(),
                    actor: who.name.clone(),
                    payload: serde_json::json!({
                        "deprecated": format!("{id}@{version}"),
                        "input_port": consumer.input_port,
                        "sunset": row.sunset, "migration_guide": guide,
                    }),
                })
                .await?;
            }
            for reader in &readers {
                tx.append_event(&NewEvent {
                    at: now.clone(),
                    kind: "reader.notified".into(),
                    subject: id.to_owned(),
                    actor: who.name.clone(),
                    payload: serde_json::json!({
                        "reader": reader, "deprecated": format!("{id}@{version}"),
                        "sunset": row.sunset, "migration_guide": guide,
                    }),
                })
                .await?;
            }
            let view = version_view(row, Vec::new(), false)?;
            Ok((
                Deprecation {
                    version: view,
                    consumers,
                    readers,
                },
                true,
            ))
        })
    }

    /// Retires a deprecated version once its sunset date has come.
    pub async fn retire(
        &self,
        who: &Principal,
        id: &str,
        version: &str,
    ) -> Result<VersionView, CatalogError> {
        retrying!(self, |tx| {
            let (product, mut row) = self.lifecycle_target(tx.as_mut(), who, id, version).await?;
            if row.status != "deprecated" {
                return Err(CatalogError::Lifecycle(format!(
                    "{id}@{version} is {}; deprecate it with a sunset date first",
                    row.status
                )));
            }
            let today = self.clock.now().date_naive();
            let sunset = row
                .sunset
                .as_deref()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
            if let Some(sunset) = sunset
                && today < sunset
            {
                return Err(CatalogError::Lifecycle(format!(
                    "{id}@{version} cannot be retired before its sunset date {sunset} (today is {today})"
                )));
            }
            let now = self.now();
            let expected = row.revision;
            row.status = "retired".into();
            row.revision += 1;
            tx.update_version(&row, expected).await?;
            self.touch_product(tx.as_mut(), &product, &row, &now)
                .await?;
            tx.append_event(&NewEvent {
                at: now,
                kind: "version.retired".into(),
                subject: id.to_owned(),
                actor: who.name.clone(),
                payload: serde_json::json!({ "version": version }),
            })
            .await?;
            Ok((version_view(row, Vec::new(), false)?, true))
        })
    }

    async fn lifecycle_target(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        id: &str,
        version: &str,
    ) -> Result<(ProductRow, VersionRow), CatalogError> {
        Self::allow(who, Action::Read)?;
        let product = tx
            .product(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("data product `{id}`")))?;
        Self::allow(
            who,
            Action::Lifecycle {
                domain: &product.domain,
            },
        )?;
        let row = tx
            .version(id, version)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("{id}@{version}")))?;
        Ok((product, row))
    }

    /// Bumps the product's revision (so concurrent publishers re-read) and mirrors the status of
    /// its latest version.
    async fn touch_product(
        &self,
        tx: &mut dyn Tx,
        product: &ProductRow,
        changed: &VersionRow,
        now: &str,
    ) -> Result<(), CatalogError> {
        let mut row = product.clone();
        if product.latest.as_deref() == Some(changed.version.as_str()) {
            row.status = changed.status.clone();
        }
        row.revision += 1;
        row.updated_at = now.to_owned();
        tx.update_product(&row, product.revision).await?;
        Ok(())
    }

    /// Searches products. The index first catches up with the event log, so whatever has been
    /// committed — by this process or any other on the same database — is what is searched.
    pub async fn search(
        &self,
        who: &Principal,
        query: &SearchQuery,
    ) -> Result<SearchResults, CatalogError> {
        Self::allow(who, Action::Read)?;
        self.sync_search().await?;
        let index = self.search.index.read().unwrap_or_else(|e| e.into_inner());
        Ok(index.search(query))
    }

    /// How many products the search index holds (after catching up).
    pub async fn indexed_products(&self) -> Result<usize, CatalogError> {
        self.sync_search().await?;
        Ok(self
            .search
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len())
    }

    /// Brings the search index up to date: a full build the first time, then the products named
    /// by new events, each re-read from the database.
    pub async fn sync_search(&self) -> Result<(), CatalogError> {
        let mut applied = self.search.applied.lock().await;
        let mut tx = self.store.read().await?;
        let mut seq = match *applied {
            Some(seq) => seq,
            None => {
                let upto = tx.max_event_seq().await?;
                let index = self.build_index(tx.as_mut()).await?;
                *self.search.index.write().unwrap_or_else(|e| e.into_inner()) = index;
                upto
            }
        };
        while let Some((last, touched)) = next_subjects(tx.as_mut(), seq, |e| {
            SEARCH_EVENTS
                .contains(&e.kind.as_str())
                .then(|| e.subject.clone())
        })
        .await?
        {
            let mut docs = Vec::new();
            for id in touched {
                let doc = self.search_document(tx.as_mut(), &id).await?;
                docs.push((id, doc));
            }
            let mut index = self.search.index.write().unwrap_or_else(|e| e.into_inner());
            for (id, doc) in docs {
                match doc {
                    Some(doc) => index.upsert(doc),
                    None => index.remove(&id),
                }
            }
            seq = last;
        }
        *applied = Some(seq);
        Ok(())
    }

    /// Every product's latest version, a page at a time.
    async fn build_index(&self, tx: &mut dyn Tx) -> Result<SearchIndex, CatalogError> {
        let mut index = SearchIndex::default();
        let mut after: Option<String> = None;
        while let Some((upto, page)) = latest_page(tx, after.as_deref(), 1000).await? {
            for (product, version) in page {
                index.upsert(crate::search::document(
                    &product,
                    Some(&version.descriptor),
                    &version.contracts,
                ));
            }
            after = Some(upto);
        }
        Ok(index)
    }

    async fn search_document(
        &self,
        tx: &mut dyn Tx,
        id: &str,
    ) -> Result<Option<crate::search::SearchDoc>, CatalogError> {
        let Some(product) = tx.product(id).await? else {
            return Ok(None);
        };
        let Some(latest) = product.latest.clone() else {
            return Ok(None);
        };
        let descriptor = match tx.version(id, &latest).await? {
            Some(v) => Some(parse_json(&v.descriptor, "descriptor")?),
            None => None,
        };
        let contracts = tx
            .ports(id, &latest)
            .await?
            .into_iter()
            .map(|p| Ok((p.port, parse_json(&p.contract, "contract")?)))
            .collect::<Result<Vec<_>, CatalogError>>()?;
        Ok(Some(crate::search::document(
            &product,
            descriptor.as_ref(),
            &contracts,
        )))
    }

    /// Ingests one OpenLineage event (RunEvent, DatasetEvent or JobEvent): its job's inputs,
    /// outputs and column lineage join the graph; the datasets' schemas become node data.
    pub async fn ingest_lineage(
        &self,
        who: &Principal,
        event: &serde_json::Value,
    ) -> Result<lineage::LineageUpdate, CatalogError> {
        Self::allow(who, Action::ReportLineage)?;
        let update = lineage::openlineage(event).map_err(|e| {
            CatalogError::InvalidDocument(format!("invalid OpenLineage event: {}", e.0))
        })?;
        let mut tx = self.store.write().await?;
        let now = self.now();
        tx.add_lineage(&update.origin, &update.edges).await?;
        for (node, data) in &update.nodes {
            tx.put_lineage_node(node, data, &now).await?;
        }
        tx.append_event(&NewEvent {
            at: now,
            kind: "lineage.ingested".into(),
            subject: update.origin.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "edges": update.edges.len(), "eventType": event["eventType"] }),
        })
        .await?;
        tx.commit().await?;
        Ok(update)
    }

    /// How many distinct edges the lineage graph holds (after catching up).
    pub async fn lineage_edges(&self) -> Result<usize, CatalogError> {
        self.sync_lineage().await?;
        Ok(self
            .lineage
            .graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .edge_count())
    }

    /// Brings the lineage graph up to date with the event log (a full load the first time).
    pub async fn sync_lineage(&self) -> Result<(), CatalogError> {
        let mut applied = self.lineage.applied.lock().await;
        let mut tx = self.store.read().await?;
        let mut seq = match *applied {
            Some(seq) => seq,
            None => {
                let upto = tx.max_event_seq().await?;
                let mut graph = LineageGraph::default();
                let mut after: Option<(String, String, String)> = None;
                let mut origin: Option<String> = None;
                let mut edges: Vec<(String, String)> = Vec::new();
                loop {
                    let page = tx.lineage_page(after.as_ref(), 10_000).await?;
                    let Some(last) = page.last().cloned() else {
                        break;
                    };
                    for (o, s, t) in page {
                        if origin.as_deref() != Some(o.as_str()) {
                            if let Some(done) = origin.take() {
                                graph.set_origin(&done, &edges);
                            }
                            edges.clear();
                            origin = Some(o);
                        }
                        edges.push((s, t));
                    }
                    after = Some(last);
                }
                if let Some(done) = origin {
                    graph.set_origin(&done, &edges);
                }
                *self
                    .lineage
                    .graph
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = graph;
                upto
            }
        };
        while let Some((last, origins)) =
            next_subjects(tx.as_mut(), seq, |e| match e.kind.as_str() {
                "product.published" => Some(lineage::product_origin(&e.subject)),
                "lineage.ingested" => Some(e.subject.clone()),
                _ => None,
            })
            .await?
        {
            let mut loaded = Vec::new();
            for origin in origins {
                let edges = tx.lineage_of(&origin).await?;
                loaded.push((origin, edges));
            }
            let mut graph = self
                .lineage
                .graph
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for (origin, edges) in loaded {
                graph.set_origin(&origin, &edges);
            }
            seq = last;
        }
        *applied = Some(seq);
        Ok(())
    }

    /// The lineage around a node (`dataset:NS:NAME`, `job:NS:NAME`, `datasetField:NS:NAME:FIELD`),
    /// `depth` edges away in `direction`, in Marquez's graph shape.
    pub async fn lineage(
        &self,
        who: &Principal,
        node: &str,
        depth: usize,
        direction: lineage::Direction,
    ) -> Result<Graph, CatalogError> {
        Self::allow(who, Action::Read)?;
        self.sync_lineage().await?;
        let walked = {
            let graph = self.lineage.graph.read().unwrap_or_else(|e| e.into_inner());
            if !graph.contains(node) {
                return Err(CatalogError::NotFound(format!("lineage node `{node}`")));
            }
            graph
                .walk(node, depth, direction)
                .into_iter()
                .map(|(id, _)| {
                    let (ins, outs) = graph.edges_of(&id);
                    (id, ins, outs)
                })
                .collect::<Vec<_>>()
        };
        let mut tx = self.store.read().await?;
        let mut nodes = Vec::with_capacity(walked.len());
        for (id, in_edges, out_edges) in walked {
            let data = tx
                .lineage_node(&id)
                .await?
                .unwrap_or(serde_json::Value::Null);
            nodes.push(GraphNode {
                kind: lineage::node_kind(&id).to_owned(),
                id,
                data,
                in_edges,
                out_edges,
            });
        }
        Ok(Graph { graph: nodes })
    }

    /// The lineage of a product: its job node, `depth` products up or down (two edges per
    /// product: job → dataset → job), or of one of its columns when `column` is given.
    pub async fn product_lineage(
        &self,
        who: &Principal,
        product: &str,
        depth: usize,
        direction: lineage::Direction,
        column: Option<&str>,
    ) -> Result<Graph, CatalogError> {
        let view = self.version(who, product, "latest").await?;
        let ns = lineage::MESH_NAMESPACE;
        let Some(column) = column else {
            let start = lineage::job(ns, product);
            return self
                .lineage(who, &start, depth.saturating_mul(2), direction)
                .await;
        };
        let start = view
            .ports
            .iter()
            .find(|p| {
                p.contract["schema"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| {
                        o["properties"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["name"] == column)
                    })
            })
            .map(|p| lineage::field(ns, &p.contract_id, column))
            .ok_or_else(|| {
                CatalogError::NotFound(format!(
                    "column `{column}` in the output ports of {product}"
                ))
            })?;
        self.sync_lineage().await?;
        let known = self
            .lineage
            .graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&start);
        if !known {
            return Ok(Graph {
                graph: vec![GraphNode {
                    kind: "DATASET_FIELD".into(),
                    id: start,
                    data: serde_json::Value::Null,
                    in_edges: Vec::new(),
                    out_edges: Vec::new(),
                }],
            });
        }
        self.lineage(who, &start, depth, direction).await
    }

    /// Impact analysis: which downstream products, columns and outside jobs a change to `port` of
    /// `product` (or to some of its `columns`) reaches, transitively.
    pub async fn impact(
        &self,
        who: &Principal,
        product: &str,
        port: &str,
        columns: &[String],
    ) -> Result<ImpactReport, CatalogError> {
        let view = self.version(who, product, "latest").await?;
        let contract = view
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.contract_id.clone())
            .ok_or_else(|| CatalogError::NotFound(format!("output port `{port}` of {product}")))?;
        self.impact_of(product, &contract, columns).await
    }

    async fn impact_of(
        &self,
        product: &str,
        contract: &str,
        columns: &[String],
    ) -> Result<ImpactReport, CatalogError> {
        self.sync_lineage().await?;
        let graph = self.lineage.graph.read().unwrap_or_else(|e| e.into_inner());
        let ns = lineage::MESH_NAMESPACE;
        let me = lineage::job(ns, product);
        let mut report = ImpactReport::default();
        let mut starts = vec![lineage::dataset(ns, contract)];
        starts.extend(columns.iter().map(|c| lineage::field(ns, contract, c)));
        for (i, start) in starts.iter().enumerate() {
            for (node, distance) in graph.walk(start, 1000, lineage::Direction::Downstream) {
                if distance == 0 || node == me {
                    continue;
                }
                let list = if let Some(name) = node.strip_prefix("job:mesh:") {
                    report.products.push(name.to_owned());
                    continue;
                } else if node.starts_with("datasetField:") {
                    if i == 0 {
                        continue;
                    }
                    &mut report.columns
                } else if node.starts_with("dataset:mesh:") {
                    continue;
                } else {
                    &mut report.external
                };
                list.push(node);
            }
        }
        for list in [
            &mut report.products,
            &mut report.columns,
            &mut report.external,
        ] {
            let mut seen = std::collections::HashSet::new();
            list.retain(|x| seen.insert(x.clone()));
        }
        Ok(report)
    }

    /// Products to look at next from `product`: those its consumers also read, then those of the
    /// same domain or with shared tags and columns. Best first, at most `limit`.
    pub async fn recommendations(
        &self,
        who: &Principal,
        product: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>, CatalogError> {
        Self::allow(who, Action::Read)?;
        if self.store.read().await?.product(product).await?.is_none() {
            return Err(CatalogError::NotFound(format!("data product `{product}`")));
        }
        self.sync_search().await?;
        self.sync_lineage().await?;
        let mut scores: HashMap<String, (f32, Vec<String>)> = HashMap::new();
        {
            // "Consumers of this also use": jobs reading this product's datasets, and what else
            // they read.
            let graph = self.lineage.graph.read().unwrap_or_else(|e| e.into_inner());
            let me = lineage::job(lineage::MESH_NAMESPACE, product);
            let (_, outputs) = graph.edges_of(&me);
            for output in outputs {
                let (_, readers) = graph.edges_of(&output.destination);
                for reader in readers.iter().filter(|e| e.destination.starts_with("job:")) {
                    let consumer = reader.destination.trim_start_matches("job:mesh:");
                    let (inputs, _) = graph.edges_of(&reader.destination);
                    for input in inputs {
                        let (producers, _) = graph.edges_of(&input.origin);
                        for producer in producers {
                            let Some(other) = producer.origin.strip_prefix("job:mesh:") else {
                                continue;
                            };
                            if other == product {
                                continue;
                            }
                            let slot = scores.entry(other.to_owned()).or_default();
                            slot.0 += 2.0;
                            slot.1.push(format!("also read by {consumer}"));
                        }
                    }
                }
            }
        }
        {
            // ...and the people who query it: what else they read through the query port.
            let mut tx = self.store.read().await?;
            let readers = tx.usage(Some(product), None, 200).await?;
            let mut seen = std::collections::HashSet::new();
            for reader in readers.iter().filter(|r| seen.insert(r.reader.clone())) {
                for other in tx.usage(None, Some(&reader.reader), 200).await? {
                    if other.product == product {
                        continue;
                    }
                    let slot = scores.entry(other.product.clone()).or_default();
                    slot.0 += 1.5;
                    slot.1.push(format!("also queried by {}", reader.reader));
                }
            }
        }
        {
            let index = self.search.index.read().unwrap_or_else(|e| e.into_inner());
            for (id, score, why) in index.related(product) {
                let slot = scores.entry(id).or_default();
                slot.0 += score;
                slot.1.extend(why);
            }
        }
        let mut out: Vec<Recommendation> = scores
            .into_iter()
            .map(|(product, (score, mut reasons))| {
                reasons.dedup();
                Recommendation {
                    product,
                    score,
                    reasons,
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.product.cmp(&b.product)));
        out.truncate(limit.clamp(1, 100));
        Ok(out)
    }

    /// Audits the whole catalog: every product's latest version against the policies, with a
    /// compliance report per domain and per policy, kept in the event log (`policy.audit`) as
    /// the history.
    pub async fn audit(&self, who: &Principal) -> Result<AuditReport, CatalogError> {
        Self::allow(who, Action::ReadEvents)?;
        let mut report = AuditReport {
            at: self.now(),
            ..AuditReport::default()
        };
        let mut tx = self.store.read().await?;
        let bundles = self.current_bundles(tx.as_mut()).await?;
        if self.base_policies.is_none() && bundles.is_empty() {
            return Err(CatalogError::BadRequest(
                "this catalog has no policies to audit with".into(),
            ));
        }
        let mut after: Option<String> = None;
        while let Some((upto, page)) = latest_page(tx.as_mut(), after.as_deref(), 500).await? {
            for (product, version) in page {
                let contracts: Vec<serde_json::Value> =
                    version.contracts.iter().map(|(_, c)| c.clone()).collect();
                let descriptor = &version.descriptor;
                if version.status == "retired" {
                    continue;
                }
                let Some((policies, _)) = self.policy_set_from(&bundles, &product.domain).await?
                else {
                    continue;
                };
                let input = mesh_policy::input(descriptor, &contracts, serde_json::json!({}));
                let decision = policies
                    .evaluate(&input)
                    .map_err(|e| CatalogError::BadRequest(e.to_string()))?;
                report.products += 1;
                let ok = !decision.blocked();
                report.compliant += usize::from(ok);
                let domain = report.by_domain.entry(product.domain.clone()).or_default();
                domain.products += 1;
                domain.compliant += usize::from(ok);
                for v in &decision.violations {
                    let level = v.enforcement;
                    for c in [
                        report.by_domain.entry(product.domain.clone()).or_default(),
                        report.by_policy.entry(v.policy.clone()).or_default(),
                    ] {
                        match level {
                            mesh_policy::Enforcement::Block => c.blocking += 1,
                            mesh_policy::Enforcement::Warn => c.warnings += 1,
                            mesh_policy::Enforcement::Audit => c.audit += 1,
                        }
                    }
                    report.violations.push(serde_json::json!({
                        "product": product.id, "version": version.version, "policy": v.policy,
                        "enforcement": v.enforcement, "message": v.message, "path": v.path,
                    }));
                }
                let mut hit: Vec<&str> = decision
                    .violations
                    .iter()
                    .map(|v| v.policy.as_str())
                    .collect();
                hit.sort_unstable();
                hit.dedup();
                for policy in hit {
                    report
                        .by_policy
                        .entry(policy.to_owned())
                        .or_default()
                        .products += 1;
                }
            }
            after = Some(upto);
        }
        drop(tx);
        let mut tx = self.store.write().await?;
        tx.append_event(&NewEvent {
            at: report.at.clone(),
            kind: "policy.audit".into(),
            subject: "*".into(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "products": report.products, "compliant": report.compliant,
                "by_domain": report.by_domain, "by_policy": report.by_policy,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    pub async fn domains(&self, who: &Principal) -> Result<Vec<DomainRow>, CatalogError> {
        Self::allow(who, Action::Read)?;
        Ok(self.store.read().await?.domains().await?)
    }

    pub async fn teams(&self, who: &Principal) -> Result<Vec<TeamRow>, CatalogError> {
        Self::allow(who, Action::Read)?;
        Ok(self.store.read().await?.teams().await?)
    }

    /// The event log after `after`, oldest first.
    pub async fn events(
        &self,
        who: &Principal,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<EventRow>, CatalogError> {
        Self::allow(who, Action::ReadEvents)?;
        let limit = limit.clamp(1, 1000);
        Ok(self
            .store
            .read()
            .await?
            .events(after, limit, subject)
            .await?)
    }

    /// Issues a token for `principal` (shown once) and binds it the given roles.
    pub async fn issue_token(
        &self,
        who: &Principal,
        principal: &str,
        roles: &[(Role, Option<String>)],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String, CatalogError> {
        Self::allow(who, Action::Administer)?;
        self.bootstrap_token(principal, roles, expires_at).await
    }

    /// [`Catalog::issue_token`] without the caller check: for `mesh serve`'s first admin token
    /// and for whoever holds the catalog file.
    pub async fn bootstrap_token(
        &self,
        principal: &str,
        roles: &[(Role, Option<String>)],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String, CatalogError> {
        if principal.trim().is_empty() {
            return Err(CatalogError::BadRequest(
                "a token needs a principal name".into(),
            ));
        }
        if let Some((role, _)) = roles
            .iter()
            .find(|(r, d)| matches!(r, Role::Owner | Role::Member) && d.is_none())
        {
            return Err(CatalogError::BadRequest(format!(
                "the {role} role is held in a domain"
            )));
        }
        let (token, hash) = auth::new_token();
        let mut tx = self.store.write().await?;
        let now = self.now();
        tx.insert_token(&TokenRow {
            id: hash[..16].to_owned(),
            hash,
            principal: principal.to_owned(),
            created_at: now.clone(),
            expires_at: expires_at.map(stamp),
            revoked_at: None,
        })
        .await?;
        for (role, domain) in roles {
            tx.insert_binding(&RoleBinding {
                principal: principal.to_owned(),
                role: role.as_str().to_owned(),
                domain: domain.clone().unwrap_or_else(|| ANY_DOMAIN.to_owned()),
            })
            .await?;
        }
        tx.append_event(&NewEvent {
            at: now,
            kind: "token.issued".into(),
            subject: principal.to_owned(),
            actor: "catalog".into(),
            payload: serde_json::json!({ "roles": roles.iter().map(|(r, d)| serde_json::json!({"role": r, "domain": d})).collect::<Vec<_>>() }),
        })
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revokes a token by its id (see [`auth::token_id`]); it stops working at once.
    pub async fn revoke_token(&self, who: &Principal, id: &str) -> Result<(), CatalogError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.write().await?;
        let now = self.now();
        if !tx.revoke_token(id, &now).await? {
            return Err(CatalogError::NotFound(format!("live token `{id}`")));
        }
        tx.append_event(&NewEvent {
            at: now,
            kind: "token.revoked".into(),
            subject: id.to_owned(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "token": id }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The principal behind a token: unknown, revoked or expired tokens are refused alike.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, CatalogError> {
        let refused = || CatalogError::Unauthenticated("unknown, expired or revoked token".into());
        let mut tx = self.store.read().await?;
        let row = tx
            .token_by_hash(&auth::hash_token(token))
            .await?
            .ok_or_else(refused)?;
        if row.revoked_at.is_some() {
            return Err(refused());
        }
        if let Some(expires) = &row.expires_at
            && expires.as_str() <= self.now().as_str()
        {
            return Err(refused());
        }
        let bindings = tx.bindings(&row.principal).await?;
        Ok(Principal {
            name: row.principal,
            bindings,
        })
    }
}
