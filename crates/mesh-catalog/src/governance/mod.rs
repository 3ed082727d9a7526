//! Governance in the catalog: the policies every publish and every audit are judged by.
//!
//! The global policies are the ones the catalog was built with (the standard pack of the binary,
//! [`Catalog::with_policies`]) plus the platform's own, published to scope `global`. Each domain
//! adds its own bundle, published to its scope: Rego files and `overrides` that tighten global
//! policies. Every publish of a bundle is a new version (the history is kept); a publish is
//! refused when the bundle does not load (Rego errors, a domain replacing or weakening a global
//! policy, a new global policy clashing with a domain's) or when its Rego tests fail.
//!
//! Compiled policy sets are cached by the versions they were built from, and the versions are
//! read in the transaction of each publish, so every catalog instance on one database judges a
//! publish by the same policies.

pub(crate) mod sets;

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_model::names::DomainName;
use mesh_policy::{Enforcement, Overrides, PolicySet, Source};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Action;
use crate::catalog::{Catalog, Step, retry_on_conflict, stamp};
use crate::error::{Denied, ErrorCode, Missing, Problem, ToProblem, wraps};
use crate::store::{NewEvent, PolicyBundleRow, StoreError, Tx};

pub use sets::BundleVersions;
use sets::CACHED_SETS;

/// Why a governance operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    /// Neither `global` nor a domain name.
    #[error("`{scope}` is neither `global` nor a domain name (snake_case)")]
    BadScope { scope: String },
    /// Policies that do not load with the ones they join, or whose Rego tests fail; every
    /// problem is listed.
    #[error("the policies are refused: {}", .problems.join("; "))]
    InvalidPolicies { problems: Vec<String> },
    /// The policies failed while judging (a Rego runtime error).
    #[error("{0}")]
    Evaluation(mesh_policy::PolicyError),
    /// Compiling policies failed unexpectedly (a crashed worker).
    #[error("loading policies: {0}")]
    Internal(String),
    #[error("the catalog is busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

retry_on_conflict!(GovernanceError);

impl ToProblem for GovernanceError {
    fn code(&self) -> ErrorCode {
        match self {
            GovernanceError::Denied(_) => ErrorCode::Forbidden,
            GovernanceError::NotFound(_) => ErrorCode::NotFound,
            GovernanceError::BadScope { .. } | GovernanceError::Evaluation(_) => {
                ErrorCode::BadRequest
            }
            GovernanceError::InvalidPolicies { .. } => ErrorCode::InvalidPolicies,
            GovernanceError::Busy(_) => ErrorCode::Busy,
            GovernanceError::Internal(_) => ErrorCode::Internal,
            GovernanceError::Store(e) => e.code(),
        }
    }

    fn extend(&self, problem: &mut Problem) {
        if let GovernanceError::InvalidPolicies { problems } = self {
            problem.problems = Some(problems.clone());
        }
    }
}

/// A request or a product version refused by a blocking policy: every violation (blocking and
/// not), and the bundle versions that decided.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{subject}@{version} violates {} blocking polic(y/ies)", .violations.iter().filter(|v| v.enforcement == Enforcement::Block).count())]
pub struct PolicyRefusal {
    /// The product, or `the request for domain.product.port`.
    pub subject: String,
    /// The version, or `v<major>` for a request.
    pub version: String,
    pub violations: Vec<mesh_policy::Violation>,
    pub bundles: BundleVersions,
}

impl PolicyRefusal {
    /// Its violations in the problem document.
    pub(crate) fn extend(&self, problem: &mut Problem) {
        problem.violations = serde_json::to_value(&self.violations).ok();
    }
}

wraps!(GovernanceError: mesh_policy::PolicyError => Evaluation);

/// Whose policies: the platform's, or one domain's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyScope {
    Global,
    Domain(String),
}

impl PolicyScope {
    /// `global`, or a domain name.
    pub fn parse(text: &str) -> Result<PolicyScope, GovernanceError> {
        if text == "global" {
            return Ok(PolicyScope::Global);
        }
        let domain = DomainName::parse(text).map_err(|_| GovernanceError::BadScope {
            scope: text.to_owned(),
        })?;
        Ok(PolicyScope::Domain(domain.to_string()))
    }

    /// How the store keys it.
    fn key(&self) -> String {
        match self {
            PolicyScope::Global => "global".to_owned(),
            PolicyScope::Domain(d) => format!("domain:{d}"),
        }
    }

    fn from_key(key: &str) -> PolicyScope {
        match key.strip_prefix("domain:") {
            Some(d) => PolicyScope::Domain(d.to_owned()),
            None => PolicyScope::Global,
        }
    }

    /// `global` or the domain name, as users write it.
    pub fn name(&self) -> &str {
        match self {
            PolicyScope::Global => "global",
            PolicyScope::Domain(d) => d,
        }
    }
}

/// One Rego file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyFile {
    /// The file name, e.g. `money_decimal.rego` (`*_test.rego` for Rego unit tests).
    pub path: String,
    pub text: String,
}

/// What a publish of policies sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyBundle {
    #[serde(default)]
    pub files: Vec<PolicyFile>,
    /// Tightenings of global policies: policy id → `block`, `warn` or `audit`. A domain's hold
    /// for its products; the global bundle's for every domain.
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
}

/// One policy, as a bundle or an effective set lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyInfo {
    pub id: String,
    pub title: String,
    pub description: String,
    /// classification, retention, access_control, quality, privacy, interoperability, other.
    #[serde(rename = "type")]
    pub kind: String,
    /// `block`, `warn` or `audit`.
    pub enforcement: String,
    /// What it judges: `publish` (products) or `access` (access requests).
    pub on: String,
    /// `global`, or the domain that added it.
    pub scope: String,
    pub path: String,
}

impl PolicyInfo {
    fn of(p: &mesh_policy::Policy) -> PolicyInfo {
        PolicyInfo {
            id: p.id.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            kind: p.kind.clone(),
            enforcement: p.enforcement.as_str().to_owned(),
            on: p.on.as_str().to_owned(),
            scope: match &p.scope {
                mesh_policy::Scope::Global => "global".to_owned(),
                mesh_policy::Scope::Domain(d) => d.clone(),
            },
            path: p.path.clone(),
        }
    }
}

/// One version of a scope's bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyBundleView {
    /// `global`, or the domain name.
    pub scope: String,
    pub version: i64,
    /// SHA-256 of the bundle's files and overrides.
    pub digest: String,
    pub published_by: String,
    pub published_at: String,
    /// The files, by name (their text with [`Catalog::policy_bundle`]).
    pub paths: Vec<String>,
    pub overrides: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<PolicyFile>>,
}

/// What publishing a bundle did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyPublishReport {
    /// `published`, `unchanged` (the same bundle is the current version), or `checked` (dry run).
    pub outcome: String,
    pub bundle: PolicyBundleView,
    /// The policies that now apply to the scope (for a domain: global and its own).
    pub policies: Vec<PolicyInfo>,
    /// How many Rego unit tests ran, all passing.
    pub tests: usize,
    /// The event recording it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
}

/// The policies that apply to a domain's products (or to all, without a domain), and the bundle
/// versions they come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectivePolicies {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub versions: BundleVersions,
    pub policies: Vec<PolicyInfo>,
}

/// The current bundle of every scope.
#[derive(Debug, Default)]
pub(crate) struct Bundles {
    global: Option<PolicyBundleRow>,
    domains: std::collections::HashMap<String, PolicyBundleRow>,
}

impl Bundles {
    pub(crate) fn is_empty(&self) -> bool {
        self.global.is_none() && self.domains.is_empty()
    }
}

/// A bundle's files together may not exceed this.
const MAX_BUNDLE_BYTES: usize = 1 << 20;

fn files_of(row: &PolicyBundleRow) -> Result<Vec<PolicyFile>, GovernanceError> {
    serde_json::from_str(&row.files).map_err(|e| {
        GovernanceError::Store(StoreError::Corrupt(format!(
            "policy bundle {}@{}: {e}",
            row.scope, row.version
        )))
    })
}

fn overrides_of(row: &PolicyBundleRow) -> Result<BTreeMap<String, String>, GovernanceError> {
    serde_json::from_str(&row.overrides).map_err(|e| {
        GovernanceError::Store(StoreError::Corrupt(format!(
            "policy bundle {}@{}: {e}",
            row.scope, row.version
        )))
    })
}

/// Sources named after the bundle they come from (`global@3/pii.rego`), so errors say where.
fn sources(scope: &PolicyScope, version: i64, files: &[PolicyFile]) -> Vec<Source> {
    files
        .iter()
        .map(|f| Source {
            path: format!("{}@{version}/{}", scope.name(), f.path),
            text: f.text.clone(),
        })
        .collect()
}

/// The overrides of a bundle, or every one that is not `block`, `warn` or `audit`.
fn parse_overrides(raw: &BTreeMap<String, String>) -> Result<Overrides, Vec<String>> {
    let mut bad = Vec::new();
    let mut out = Overrides::new();
    for (id, level) in raw {
        match Enforcement::parse(level) {
            Some(e) => {
                out.insert(id.clone(), e);
            }
            None => bad.push(format!(
                "override of `{id}`: `{level}` is not block, warn or audit"
            )),
        }
    }
    if bad.is_empty() { Ok(out) } else { Err(bad) }
}

impl PolicyBundle {
    /// What identifies the bundle's content: the digest its version would carry.
    pub fn digest(&self) -> String {
        digest(self)
    }
}

fn digest(bundle: &PolicyBundle) -> String {
    let mut files = bundle.files.clone();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let canonical = serde_json::json!({ "files": files, "overrides": bundle.overrides });
    crate::auth::hex(&Sha256::digest(canonical.to_string().as_bytes()))
}

fn load_errors(errors: Vec<mesh_policy::PolicyError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// A policy set from the base global sources and the stored bundles.
fn build(
    base: &[Source],
    global: Option<&PolicyBundleRow>,
    domain: Option<(&str, &PolicyBundleRow)>,
) -> Result<PolicySet, GovernanceError> {
    let overrides_of_row = |row: &PolicyBundleRow| -> Result<Overrides, GovernanceError> {
        parse_overrides(&overrides_of(row)?)
            .map_err(|problems| GovernanceError::InvalidPolicies { problems })
    };
    let mut all = base.to_vec();
    // The platform's overrides tighten global policies for every domain; a domain's tighten them
    // further for its own products (the stricter of the two holds).
    let mut overrides = Overrides::new();
    if let Some(row) = global {
        all.extend(sources(&PolicyScope::Global, row.version, &files_of(row)?));
        overrides = overrides_of_row(row)?;
    }
    let (own, name) = match domain {
        Some((name, row)) => {
            for (id, level) in overrides_of_row(row)? {
                let stricter = overrides.get(&id).map_or(level, |l| (*l).max(level));
                overrides.insert(id, stricter);
            }
            (
                sources(
                    &PolicyScope::Domain(name.to_owned()),
                    row.version,
                    &files_of(row)?,
                ),
                name,
            )
        }
        None => (Vec::new(), ""),
    };
    PolicySet::load(&all, Some((name, &own)), &overrides).map_err(|errors| {
        GovernanceError::InvalidPolicies {
            problems: load_errors(errors),
        }
    })
}

impl Catalog {
    /// The policies a product of `domain` is judged by now, and the bundle versions they come
    /// from; `None` when the catalog has no policies at all.
    pub(crate) async fn policy_set(
        &self,
        tx: &mut dyn Tx,
        domain: &str,
    ) -> Result<Option<(Arc<PolicySet>, BundleVersions)>, GovernanceError> {
        let global = tx.policy_bundle("global", None).await?;
        let own = tx
            .policy_bundle(&PolicyScope::Domain(domain.to_owned()).key(), None)
            .await?;
        self.set_for(global.as_ref(), own.as_ref(), domain).await
    }

    /// Every scope's current bundle, read once, to judge many products by (the audit).
    pub(crate) async fn current_bundles(&self, tx: &mut dyn Tx) -> Result<Bundles, StoreError> {
        let mut out = Bundles::default();
        for row in tx.current_policy_bundles().await? {
            match PolicyScope::from_key(&row.scope) {
                PolicyScope::Global => out.global = Some(row),
                PolicyScope::Domain(d) => {
                    out.domains.insert(d, row);
                }
            }
        }
        Ok(out)
    }

    /// [`Catalog::policy_set`] from bundles read before.
    pub(crate) async fn policy_set_from(
        &self,
        bundles: &Bundles,
        domain: &str,
    ) -> Result<Option<(Arc<PolicySet>, BundleVersions)>, GovernanceError> {
        self.set_for(bundles.global.as_ref(), bundles.domains.get(domain), domain)
            .await
    }

    async fn set_for(
        &self,
        global: Option<&PolicyBundleRow>,
        own: Option<&PolicyBundleRow>,
        domain: &str,
    ) -> Result<Option<(Arc<PolicySet>, BundleVersions)>, GovernanceError> {
        if self.base_policies.is_none() && global.is_none() && own.is_none() {
            return Ok(None);
        }
        let versions = BundleVersions {
            global: global.map(|r| r.version),
            domain: own.map(|r| r.version),
        };
        // Domains without a bundle share one set.
        let key = (
            if own.is_some() {
                domain.to_owned()
            } else {
                String::new()
            },
            versions,
        );
        if let Some(set) = self
            .policy_sets
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(Some((set, versions)));
        }
        let base = self.base_policies.clone().unwrap_or_default();
        let (global, own, domain) = (global.cloned(), own.cloned(), domain.to_owned());
        let set = tokio::task::spawn_blocking(move || {
            build(
                &base,
                global.as_ref(),
                own.as_ref().map(|r| (domain.as_str(), r)),
            )
        })
        .await
        .map_err(|e| GovernanceError::Internal(e.to_string()))??;
        let set = Arc::new(set);
        if let Ok(mut cache) = self.policy_sets.lock() {
            if cache.len() >= CACHED_SETS {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&set));
        }
        Ok(Some((set, versions)))
    }

    /// Publishes a new version of a scope's policies: the platform's (admins) or a domain's (its
    /// owners). Refused when the bundle does not load with the policies it joins, or when its
    /// Rego tests fail; the same bundle as the current version is not a new version.
    pub async fn publish_policies(
        &self,
        who: &crate::Principal,
        scope: &PolicyScope,
        bundle: PolicyBundle,
        dry_run: bool,
    ) -> Result<PolicyPublishReport, GovernanceError> {
        Self::allow(
            who,
            match scope {
                PolicyScope::Global => Action::Administer,
                PolicyScope::Domain(d) => Action::Govern { domain: d },
            },
        )?;
        validate(&bundle)?;
        let digest = digest(&bundle);
        let (bundle, digest) = (&bundle, digest.as_str());
        self.retrying(|mut tx| async move {
            let result = self
                .publish_policies_in(tx.as_mut(), who, scope, bundle, digest, dry_run)
                .await;
            (tx, result)
        })
        .await
    }

    async fn publish_policies_in(
        &self,
        tx: &mut dyn Tx,
        who: &crate::Principal,
        scope: &PolicyScope,
        bundle: &PolicyBundle,
        digest: &str,
        dry_run: bool,
    ) -> Result<Step<PolicyPublishReport>, GovernanceError> {
        let current = tx.policy_bundle(&scope.key(), None).await?;
        let version = current.as_ref().map_or(1, |r| r.version + 1);
        let now = stamp(self.clock.now());
        let row = PolicyBundleRow {
            scope: scope.key(),
            version,
            files: serde_json::to_string(&bundle.files).unwrap_or_default(),
            overrides: serde_json::to_string(&bundle.overrides).unwrap_or_default(),
            digest: digest.to_owned(),
            published_by: who.name.clone(),
            published_at: now.clone(),
        };
        // What the bundle joins: for a domain, the current global policies; for the platform,
        // every domain's current bundle, each of which must still load.
        let global = match scope {
            PolicyScope::Global => Some(row.clone()),
            PolicyScope::Domain(_) => tx.policy_bundle("global", None).await?,
        };
        let domains: Vec<(String, PolicyBundleRow)> = match scope {
            PolicyScope::Domain(d) => vec![(d.clone(), row.clone())],
            PolicyScope::Global => tx
                .current_policy_bundles()
                .await?
                .into_iter()
                .filter_map(|r| match PolicyScope::from_key(&r.scope) {
                    PolicyScope::Domain(d) => Some((d, r)),
                    PolicyScope::Global => None,
                })
                .collect(),
        };
        let base = self.base_policies.clone().unwrap_or_default();
        let own = matches!(scope, PolicyScope::Domain(_));
        let checked =
            tokio::task::spawn_blocking(move || check(&base, global.as_ref(), &domains, own))
                .await
                .map_err(|e| GovernanceError::Internal(e.to_string()))??;
        let (policies, tests) = checked;
        let unchanged = current.as_ref().is_some_and(|c| c.digest == digest);
        let shown = if unchanged {
            current.clone().unwrap_or(row.clone())
        } else {
            row.clone()
        };
        let mut report = PolicyPublishReport {
            outcome: if dry_run {
                "checked"
            } else if unchanged {
                "unchanged"
            } else {
                "published"
            }
            .to_owned(),
            bundle: view(&shown, false)?,
            policies,
            tests,
            event: None,
        };
        if dry_run || unchanged {
            return Ok(Step::Rollback(report));
        }
        tx.insert_policy_bundle(&row).await?;
        let ids: Vec<&str> = report
            .policies
            .iter()
            .filter(|p| p.scope == scope.name())
            .map(|p| p.id.as_str())
            .collect();
        let event = tx
            .append_event(&NewEvent {
                at: now,
                kind: "policy.published".into(),
                subject: scope.name().to_owned(),
                actor: who.name.clone(),
                payload: serde_json::json!({
                    "scope": scope.name(), "version": version, "digest": digest,
                    "files": report.bundle.paths, "overrides": bundle.overrides, "policies": ids,
                }),
            })
            .await?;
        report.event = Some(event);
        Ok(Step::Commit(report))
    }

    /// Every version of a scope's bundle, oldest first (without the files' text).
    pub async fn policy_bundles(
        &self,
        who: &crate::Principal,
        scope: &PolicyScope,
    ) -> Result<Vec<PolicyBundleView>, GovernanceError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        tx.policy_bundles(&scope.key())
            .await?
            .iter()
            .map(|r| view(r, false))
            .collect()
    }

    /// One version of a scope's bundle, with its files.
    pub async fn policy_bundle(
        &self,
        who: &crate::Principal,
        scope: &PolicyScope,
        version: i64,
    ) -> Result<PolicyBundleView, GovernanceError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let row = tx
            .policy_bundle(&scope.key(), Some(version))
            .await?
            .ok_or_else(|| Missing::PolicyBundle {
                scope: scope.name().to_owned(),
                version,
            })?;
        view(&row, true)
    }

    /// The policies that apply to a domain's products now (without a domain: the global ones).
    pub async fn effective_policies(
        &self,
        who: &crate::Principal,
        domain: Option<&str>,
    ) -> Result<EffectivePolicies, GovernanceError> {
        Self::allow(who, Action::Read)?;
        if let Some(d) = domain {
            PolicyScope::parse(d)?;
        }
        let mut tx = self.store.read().await?;
        let found = self.policy_set(tx.as_mut(), domain.unwrap_or("")).await?;
        let (policies, versions) = match found {
            Some((set, versions)) => (
                set.policies().iter().map(PolicyInfo::of).collect(),
                versions,
            ),
            None => (Vec::new(), BundleVersions::default()),
        };
        Ok(EffectivePolicies {
            domain: domain.map(str::to_owned),
            versions: BundleVersions {
                domain: domain.and(versions.domain),
                ..versions
            },
            policies,
        })
    }
}

fn view(row: &PolicyBundleRow, with_files: bool) -> Result<PolicyBundleView, GovernanceError> {
    let files = files_of(row)?;
    Ok(PolicyBundleView {
        scope: PolicyScope::from_key(&row.scope).name().to_owned(),
        version: row.version,
        digest: row.digest.clone(),
        published_by: row.published_by.clone(),
        published_at: row.published_at.clone(),
        paths: files.iter().map(|f| f.path.clone()).collect(),
        overrides: overrides_of(row)?,
        files: with_files.then_some(files),
    })
}

/// What a bundle may hold before anything is compiled.
fn validate(bundle: &PolicyBundle) -> Result<(), GovernanceError> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    for f in &bundle.files {
        bytes += f.text.len();
        let plain = !f.path.is_empty()
            && !f.path.contains(['/', '\\'])
            && !f.path.starts_with('.')
            && f.path.ends_with(".rego");
        if !plain {
            problems.push(format!(
                "`{}`: a policy file is a plain file name ending in .rego",
                f.path
            ));
        }
        if !seen.insert(f.path.as_str()) {
            problems.push(format!("`{}` is in the bundle twice", f.path));
        }
    }
    if bytes > MAX_BUNDLE_BYTES {
        problems.push(format!(
            "the bundle's files hold {bytes} bytes; at most {MAX_BUNDLE_BYTES} are accepted"
        ));
    }
    if let Err(bad) = parse_overrides(&bundle.overrides) {
        problems.extend(bad);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(GovernanceError::InvalidPolicies { problems })
    }
}

/// Loads the global policies with each domain bundle and runs the Rego tests of each: for a
/// domain's publish, its own bundle; for the platform's, the global policies alone (what domains
/// without a bundle get) and then with every domain's bundle. Returns the policies of the first
/// set (the published scope's view) and how many of its tests ran.
fn check(
    base: &[Source],
    global: Option<&PolicyBundleRow>,
    domains: &[(String, PolicyBundleRow)],
    domain_scope: bool,
) -> Result<(Vec<PolicyInfo>, usize), GovernanceError> {
    let mut problems = Vec::new();
    let mut first: Option<(Vec<PolicyInfo>, usize)> = None;
    let mut sets: Vec<Option<(&str, &PolicyBundleRow)>> =
        domains.iter().map(|(d, r)| Some((d.as_str(), r))).collect();
    if !domain_scope {
        sets.insert(0, None);
    }
    for domain in sets {
        let set = match build(base, global, domain) {
            Ok(set) => set,
            Err(GovernanceError::InvalidPolicies { problems: errors }) => {
                let whose = domain.map_or("the global policies".to_owned(), |(d, _)| {
                    format!("with the policies of domain `{d}`")
                });
                problems.extend(errors.into_iter().map(|e| format!("{whose}: {e}")));
                continue;
            }
            Err(e) => return Err(e),
        };
        let results = set.run_tests();
        for r in &results {
            if let Err(why) = &r.outcome {
                problems.push(format!("test {} fails: {why}", r.test));
            }
        }
        if first.is_none() {
            first = Some((
                set.policies().iter().map(PolicyInfo::of).collect(),
                results.len(),
            ));
        }
    }
    problems.dedup();
    if !problems.is_empty() {
        return Err(GovernanceError::InvalidPolicies { problems });
    }
    Ok(first.unwrap_or_default())
}
