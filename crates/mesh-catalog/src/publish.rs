//! Publishing a product version, as a sequence of named steps: [`prepare`] (strict lint, then the
//! parts the catalog keys on), then in one write transaction — retried from the start when
//! another writer wins a race — [`Catalog::already_published`], [`Catalog::owning_product`],
//! [`Catalog::check_compatibility`] (every output port against its history in its major
//! version), [`Catalog::govern`] (the policies), and [`Catalog::store_version`] (the version, its
//! contracts, input ports and lineage, the product's latest, and the events). A refusal by policy
//! is recorded too ([`Catalog::record_refusal`]).

use std::cmp::Ordering;

use mesh_model::changelog::{self, Changelog, Compatibility, Incompatibility};
use mesh_model::diag::Diagnostic;
use mesh_model::lint::{LintOptions, SourceFile, lint};
use mesh_model::names::{Version, VersionStatus, by_semver, props};
use mesh_model::odps::DataProduct;
use mesh_model::source::Node;
use mesh_model::{DocKind, parse_document};
use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, Step, digest, parse_json, retry_on_conflict};
use crate::error::{Denied, ErrorCode, Problem, ToProblem};
use crate::governance::{BundleVersions, GovernanceError, PolicyRefusal};
use crate::lineage::ImpactReport;
use crate::store::{
    DependencyRow, DomainRow, NewEvent, PortRow, ProductRow, StoreError, TeamRow, Tx, VersionRow,
};

/// Why a publish was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The documents do not pass strict lint; every finding is listed.
    #[error("the data product does not pass `mesh lint --strict` ({} errors)", .findings.iter().filter(|(_, d)| d.is_error()).count())]
    Invalid {
        /// (file, finding).
        findings: Vec<(String, Diagnostic)>,
    },
    #[error("{path} is not a data product descriptor (kind: DataProduct)")]
    NotAProduct { path: String },
    #[error("{path} has no `{field}`")]
    MissingField { path: String, field: &'static str },
    #[error("version `{version}` is not a semantic version: {reason}")]
    BadVersion { version: String, reason: String },
    #[error("version {version} is too large")]
    VersionTooLarge { version: String },
    #[error(
        "a version is published as draft or active, not `{status}`; use `mesh deprecate` to deprecate it"
    )]
    BadStatus { status: String },
    #[error("{path}: two {kind}s are named `{name}`; port names must be unique in a product")]
    DuplicatePort {
        path: String,
        kind: &'static str,
        name: String,
    },
    #[error("output port `{port}` has no contractId")]
    NoContractId { port: String },
    #[error("contract `{contract}` of output port `{port}` is not in the bundle")]
    ContractNotInBundle { contract: String, port: String },
    /// A schedule the orchestrator could not carry out.
    #[error("{path}: {product} has a schedule but no runnable pipeline: {reason}")]
    NotRunnable {
        path: String,
        product: String,
        reason: String,
    },
    #[error("output port `{port}`: compatibility {value} is not one of {}", Compatibility::ALL.map(Compatibility::as_str).join(", "))]
    BadCompatibility { port: String, value: String },
    /// A different document is already published under this version.
    #[error(
        "{product}@{version} is already published with different content; publish it under a new version"
    )]
    VersionExists { product: String, version: String },
    /// The product exists in another domain.
    #[error("{product} belongs to domain `{domain}`, not `{claimed}`")]
    WrongDomain {
        product: String,
        domain: String,
        claimed: String,
    },
    /// A port's new contract breaks compatibility with its history.
    #[error("{product}@{version} breaks the compatibility of {} output port(s); a breaking change needs a new major version", .ports.len())]
    Incompatible {
        product: String,
        version: String,
        ports: Vec<PortIncompatibility>,
    },
    /// A blocking governance policy is violated; every violation is listed.
    #[error(transparent)]
    PolicyViolation(PolicyRefusal),
    #[error(transparent)]
    Policies(#[from] GovernanceError),
    /// Reading the documents failed unexpectedly (a crashed worker).
    #[error("the documents could not be read: {0}")]
    Internal(String),
    #[error("the catalog is busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

retry_on_conflict!(PublishError);

impl ToProblem for PublishError {
    fn code(&self) -> ErrorCode {
        match self {
            PublishError::Denied(_) => ErrorCode::Forbidden,
            PublishError::Invalid { .. } => ErrorCode::Invalid,
            PublishError::NotAProduct { .. }
            | PublishError::MissingField { .. }
            | PublishError::BadVersion { .. }
            | PublishError::VersionTooLarge { .. }
            | PublishError::DuplicatePort { .. }
            | PublishError::NoContractId { .. }
            | PublishError::ContractNotInBundle { .. }
            | PublishError::NotRunnable { .. }
            | PublishError::BadCompatibility { .. }
            | PublishError::WrongDomain { .. } => ErrorCode::BadRequest,
            PublishError::BadStatus { .. } => ErrorCode::Lifecycle,
            PublishError::VersionExists { .. } => ErrorCode::VersionExists,
            PublishError::Incompatible { .. } => ErrorCode::Incompatible,
            PublishError::PolicyViolation(_) => ErrorCode::Policy,
            PublishError::Policies(e) => e.code(),
            PublishError::Busy(_) => ErrorCode::Busy,
            PublishError::Internal(_) => ErrorCode::Internal,
            PublishError::Store(e) => e.code(),
        }
    }

    fn extend(&self, problem: &mut Problem) {
        match self {
            PublishError::Invalid { findings } => {
                problem.diagnostics =
                    Some(findings.iter().map(|(path, d)| d.to_json(path)).collect());
            }
            PublishError::Incompatible { ports, .. } => {
                problem.ports = Some(ports_json(ports));
            }
            PublishError::PolicyViolation(refusal) => refusal.extend(problem),
            PublishError::Policies(e) => e.extend(problem),
            _ => {}
        }
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
    /// The pipeline's `transform.sql`: published and versioned with the product, so the
    /// orchestrator of any server runs what was reviewed. Required when the product has a
    /// schedule.
    pub transform: Option<Source>,
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

/// A decision as the publish report shows it: the decision and the bundle versions behind it.
fn policy_json(decision: &mesh_policy::Decision, bundles: &BundleVersions) -> serde_json::Value {
    let mut json = serde_json::to_value(decision).unwrap_or_default();
    json["bundles"] = serde_json::to_value(bundles).unwrap_or_default();
    json
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
    version: Version,
    status: VersionStatus,
    descriptor: serde_json::Value,
    ports: Vec<PreparedPort>,
    inputs: Vec<(String, String)>,
    digest: String,
    /// The pipeline's SQL, when the bundle has one.
    transform: Option<String>,
    /// The `schedule` custom property's value.
    schedule: Option<serde_json::Value>,
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

impl Prepared {
    /// The report of a publish of this bundle.
    fn report(
        &self,
        outcome: PublishOutcome,
        ports: Vec<PortReport>,
        policy: Option<serde_json::Value>,
        event: Option<i64>,
    ) -> PublishReport {
        PublishReport {
            product: self.id.clone(),
            version: self.version.to_string(),
            outcome,
            digest: self.digest.clone(),
            ports,
            policy,
            event,
        }
    }
}

/// Strict lint of the whole bundle, then the parts the catalog keys on.
fn prepare(bundle: &Bundle) -> Result<Prepared, PublishError> {
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
        return Err(PublishError::Invalid { findings: problems });
    }
    let kind_of = |f: &Source| {
        report
            .files
            .iter()
            .find(|r| r.path == f.path)
            .and_then(|r| r.kind)
    };
    let not_a_product = || PublishError::NotAProduct {
        path: bundle.descriptor.path.clone(),
    };
    if kind_of(&bundle.descriptor) != Some(DocKind::Product) {
        return Err(not_a_product());
    }
    let mesh_model::document::AnyParsed::Product(parsed) =
        parse_document(&bundle.descriptor.path, &bundle.descriptor.text)
    else {
        return Err(not_a_product());
    };
    let (Some(product), Some(root)) = (parsed.model, parsed.root) else {
        return Err(not_a_product());
    };
    let missing = |field: &'static str| PublishError::MissingField {
        path: bundle.descriptor.path.clone(),
        field,
    };
    let id = product.id.clone().ok_or_else(|| missing("id"))?;
    let domain = product.domain.clone().ok_or_else(|| missing("domain"))?;
    let version_text = product.version.clone().ok_or_else(|| missing("version"))?;
    let version = Version::parse(&version_text).map_err(|e| PublishError::BadVersion {
        version: version_text.clone(),
        reason: e.to_string(),
    })?;
    let status_text = product.status.as_deref().unwrap_or("active");
    let status =
        VersionStatus::publishable(status_text).ok_or_else(|| PublishError::BadStatus {
            status: status_text.to_owned(),
        })?;

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
            return Err(PublishError::DuplicatePort {
                path: bundle.descriptor.path.clone(),
                kind: what,
                name: dup.to_owned(),
            });
        }
    }
    let mut ports = Vec::new();
    for port in &product.output_ports {
        let contract_id = port
            .contract_id
            .clone()
            .ok_or_else(|| PublishError::NoContractId {
                port: port.name.clone(),
            })?;
        let (root, source) = contracts
            .iter()
            .find(|(id, _, _)| *id == contract_id)
            .map(|(_, root, source)| (root.clone(), source.clone()))
            .ok_or_else(|| PublishError::ContractNotInBundle {
                contract: contract_id.clone(),
                port: port.name.clone(),
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
    let transform = bundle
        .transform
        .as_ref()
        .map(|t| t.text.clone())
        .filter(|t| !t.trim().is_empty());
    let schedule = mesh_model::schedule::property(&root).map(|(_, value)| value.to_json());
    if let Some(reason) = schedule
        .as_ref()
        .and_then(|_| not_runnable(transform.is_some(), product.output_ports.len()))
    {
        return Err(PublishError::NotRunnable {
            path: bundle.descriptor.path.clone(),
            product: id,
            reason,
        });
    }
    let mut digested = serde_json::json!({
        "descriptor": descriptor,
        "contracts": contracts_json,
    });
    // (Only when there is one: the digests of bundles without a pipeline stay what they were.)
    if let Some(sql) = &transform {
        digested["transform"] = sql.clone().into();
    }
    let digest = digest(&digested);
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
        transform,
        schedule,
    })
}

/// Why a scheduled product could not be run by the orchestrator, if it could not.
fn not_runnable(has_transform: bool, outputs: usize) -> Option<String> {
    if !has_transform {
        return Some(
            "the bundle has no transform.sql (the orchestrator runs the published pipeline); \
             add one to the product folder, or remove the `schedule` property"
                .to_owned(),
        );
    }
    (outputs != 1).then(|| {
        format!("a pipeline writes exactly one output port, and this product has {outputs}")
    })
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
fn port_mode(product: &DataProduct, port: &str) -> Result<Compatibility, PublishError> {
    let Some(port) = product.output_ports.iter().find(|p| p.name == port) else {
        return Ok(Compatibility::default());
    };
    match port
        .custom_properties
        .iter()
        .find(|c| c.property == props::COMPATIBILITY)
    {
        None => Ok(Compatibility::default()),
        Some(c) => c
            .value
            .as_str()
            .and_then(Compatibility::parse)
            .ok_or_else(|| PublishError::BadCompatibility {
                port: port.name.clone(),
                value: c.value.to_string(),
            }),
    }
}

/// The breaking changes of each port, each with `line` and `column` in the contract file that
/// brought it (for a removal, the nearest node still there), where known.
fn ports_json(ports: &[PortIncompatibility]) -> serde_json::Value {
    let mut json = serde_json::to_value(ports).unwrap_or_default();
    for (port, pj) in ports.iter().zip(json.as_array_mut().into_iter().flatten()) {
        let failures = pj["failures"].as_array_mut().into_iter().flatten();
        for (failure, fj) in port.failures.iter().zip(failures) {
            let changes = fj["changes"].as_array_mut().into_iter().flatten();
            for (change, cj) in failure.changes.iter().zip(changes) {
                let at = if change.in_old {
                    change.anchor
                } else {
                    change.span
                }
                .start;
                if at.is_known() {
                    cj["line"] = at.line.into();
                    cj["column"] = at.col.into();
                }
            }
        }
    }
    json
}

impl Catalog {
    /// Publishes a product version: strict lint, compatibility of every output port against its
    /// history in the same major version, the policies, then one transaction that stores the
    /// version, its contracts and input ports, advances the product, and appends an event. With
    /// `dry_run` everything is checked and nothing is stored.
    pub async fn publish(
        &self,
        who: &Principal,
        bundle: &Bundle,
        dry_run: bool,
    ) -> Result<PublishReport, PublishError> {
        // Lint and parsing are CPU work on documents up to the body limit: off the async threads.
        let owned = bundle.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&owned))
            .await
            .map_err(|e| PublishError::Internal(e.to_string()))??;
        Self::allow(
            who,
            Action::Publish {
                domain: &prepared.domain,
            },
        )?;
        let p = &prepared;
        let result = self
            .retrying(|mut tx| async move {
                let result = self.publish_in(tx.as_mut(), who, p, dry_run).await;
                (tx, result)
            })
            .await;
        if !dry_run {
            self.record_refusal(who, &result).await?;
        }
        result
    }

    /// One attempt at a publish, in `tx`: the steps, in order.
    async fn publish_in(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        p: &Prepared,
        dry_run: bool,
    ) -> Result<Step<PublishReport>, PublishError> {
        if let Some(report) = self.already_published(tx, p).await? {
            return Ok(Step::Rollback(report));
        }
        let product = self.owning_product(tx, p).await?;
        let ports = self.check_compatibility(tx, p).await?;
        let decision = self.govern(tx, p, product.as_ref()).await?;
        if let Some((d, bundles)) = &decision
            && d.blocked()
        {
            return Err(PublishError::PolicyViolation(PolicyRefusal {
                subject: p.id.clone(),
                version: p.version.to_string(),
                violations: d.violations.clone(),
                bundles: *bundles,
            }));
        }
        let policy = decision.as_ref().map(|(d, v)| policy_json(d, v));
        if dry_run {
            return Ok(Step::Rollback(p.report(
                PublishOutcome::Checked,
                ports,
                policy,
                None,
            )));
        }
        let event = self
            .store_version(tx, who, p, product.as_ref(), &ports, decision.as_ref())
            .await?;
        Ok(Step::Commit(p.report(
            PublishOutcome::Published,
            ports,
            policy,
            Some(event),
        )))
    }

    /// The same document already published under this version: nothing to do. A different one:
    /// refused.
    async fn already_published(
        &self,
        tx: &mut dyn Tx,
        p: &Prepared,
    ) -> Result<Option<PublishReport>, PublishError> {
        let version = p.version.to_string();
        let Some(existing) = tx.version(&p.id, &version).await? else {
            return Ok(None);
        };
        if existing.digest == p.digest {
            return Ok(Some(p.report(
                PublishOutcome::Unchanged,
                Vec::new(),
                None,
                None,
            )));
        }
        Err(PublishError::VersionExists {
            product: p.id.clone(),
            version,
        })
    }

    /// The product as stored, if it is: it must stay in its domain.
    async fn owning_product(
        &self,
        tx: &mut dyn Tx,
        p: &Prepared,
    ) -> Result<Option<ProductRow>, PublishError> {
        let product = tx.product(&p.id).await?;
        if let Some(product) = &product
            && product.domain != p.domain
        {
            return Err(PublishError::WrongDomain {
                product: p.id.clone(),
                domain: product.domain.clone(),
                claimed: p.domain.clone(),
            });
        }
        Ok(product)
    }

    /// Every output port's new contract against its history in its major version (before it and,
    /// for a version published between existing ones, after it), and no port of the previous
    /// version of the major gone; the change report of each port.
    async fn check_compatibility(
        &self,
        tx: &mut dyn Tx,
        p: &Prepared,
    ) -> Result<Vec<PortReport>, PublishError> {
        let version = p.version.to_string();
        let mut ports = Vec::new();
        let mut failures = Vec::new();
        for port in &p.ports {
            let history = self.history(tx, &p.id, &port.port, &p.version).await?;
            // A mode change takes effect from the next version: this one is checked under the
            // mode its port had so far.
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
            .filter_map(|v| Version::parse(&v.version).ok())
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
            return Err(PublishError::Incompatible {
                product: p.id.clone(),
                version,
                ports: failures,
            });
        }
        Ok(ports)
    }

    /// Stores the version: its domain and team when new, the product row (advanced when this is
    /// its newest version), the version, its port contracts, lineage (for the newest) and input
    /// ports, then the `product.published` event (and the policy decision's). The event's
    /// sequence number.
    async fn store_version(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        p: &Prepared,
        product: Option<&ProductRow>,
        ports: &[PortReport],
        decision: Option<&(mesh_policy::Decision, BundleVersions)>,
    ) -> Result<i64, PublishError> {
        let now = self.now();
        let version = p.version.to_string();
        let major = i64::try_from(p.version.major).map_err(|_| PublishError::VersionTooLarge {
            version: version.clone(),
        })?;
        let status = p.status.as_str().to_owned();
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
        let newest = product
            .and_then(|o| o.latest.as_deref())
            .is_none_or(|l| by_semver(&version, l) == Ordering::Greater);
        match product {
            None => {
                tx.insert_product(&ProductRow {
                    id: p.id.clone(),
                    domain: p.domain.clone(),
                    team: p.team.clone(),
                    name: p.name.clone(),
                    latest: Some(version.clone()),
                    status: status.clone(),
                    revision: 1,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                })
                .await?;
            }
            Some(old) => {
                // An older version published later leaves the product's latest alone.
                let row = if newest {
                    ProductRow {
                        team: p.team.clone(),
                        name: p.name.clone(),
                        latest: Some(version.clone()),
                        status: status.clone(),
                        revision: old.revision + 1,
                        updated_at: now.clone(),
                        ..old.clone()
                    }
                } else {
                    ProductRow {
                        revision: old.revision + 1,
                        updated_at: now.clone(),
                        ..old.clone()
                    }
                };
                tx.update_product(&row, old.revision).await?;
            }
        }
        tx.insert_version(&VersionRow {
            product: p.id.clone(),
            version: version.clone(),
            major,
            status: status.clone(),
            digest: p.digest.clone(),
            descriptor: p.descriptor.to_string(),
            published_by: who.name.clone(),
            published_at: now.clone(),
            sunset: None,
            migration_guide: None,
            deprecated_at: None,
            revision: 1,
            transform: p.transform.clone(),
            schedule: p.schedule.as_ref().map(|s| s.to_string()),
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
        if newest {
            let contracts: Vec<(String, serde_json::Value)> = p
                .ports
                .iter()
                .map(|x| (x.port.clone(), x.json.clone()))
                .collect();
            let update = crate::lineage::graph::product_lineage(&p.id, &p.descriptor, &contracts);
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
                    "version": version, "digest": p.digest, "status": status, "ports": summary,
                }),
            })
            .await?;
        if let Some((d, bundles)) = decision {
            tx.append_event(&NewEvent {
                at: now,
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
        Ok(event)
    }

    /// Every decision goes to the audit log, refusals too (their transaction rolled back).
    async fn record_refusal(
        &self,
        who: &Principal,
        result: &Result<PublishReport, PublishError>,
    ) -> Result<(), StoreError> {
        let Err(PublishError::PolicyViolation(refusal)) = result else {
            return Ok(());
        };
        let mut tx = self.store.write().await?;
        tx.append_event(&NewEvent {
            at: self.now(),
            kind: "policy.decision".into(),
            subject: refusal.subject.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "version": refusal.version, "outcome": "refused",
                "violations": refusal.violations, "bundles": refusal.bundles,
            }),
        })
        .await?;
        tx.commit().await
    }

    /// The stored contracts of `port` in the same major version as `version`: those before it
    /// (oldest first), those after it (nearest first), and the port's mode so far.
    async fn history(
        &self,
        tx: &mut dyn Tx,
        product: &str,
        port: &str,
        version: &Version,
    ) -> Result<PortHistory, StoreError> {
        let mut rows: Vec<(semver::Version, PortRow)> = tx
            .port_history(product, port)
            .await?
            .into_iter()
            .filter_map(|row| {
                let v = Version::parse(&row.version).ok()?;
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

    /// The policy decision on a prepared product, with the context the catalog knows: the latest
    /// version before this one and how many breaking changes lead from it.
    async fn govern(
        &self,
        tx: &mut dyn Tx,
        p: &Prepared,
        product: Option<&ProductRow>,
    ) -> Result<Option<(mesh_policy::Decision, BundleVersions)>, PublishError> {
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
        let decision = policies.evaluate(&input).map_err(GovernanceError::from)?;
        Ok(Some((decision, versions)))
    }
}
