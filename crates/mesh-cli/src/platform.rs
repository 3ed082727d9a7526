//! The mesh as code: the repository's `platform/` folder and product folders, compared with the
//! catalog ([`plan`]) and carried out ([`apply`]).
//!
//! A plan is a list of steps, each one catalog operation that is atomic and recorded on its own
//! (an event per step, as the imperative commands record them). Steps run in dependency order:
//! domains, then roles, locations, policies (global before domains'), products (upstream
//! before downstream), access (requests, approvals, revocations), subscriptions. A step the
//! caller may not take is shown as refused, with why, in the plan; `apply` stops at the first
//! refused or failing step.
//!
//! What the repository declares for a kind is the whole truth for it, so what the catalog has
//! beyond it — changed by hand, outside the repository — is *drift*, planned away (a delete)
//! unless imported back into the files (`mesh plan --import`). A kind the files do not mention
//! (no `members:` key, no policies folder) is not managed and never planned.

mod import;

pub(crate) use import::{Imported, import};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mesh_catalog::access::{AccessAsk, AccessDecision};
use mesh_catalog::governance::{PolicyBundle, PolicyScope};
use mesh_catalog::locations::NewLocation;
use mesh_catalog::platform::Binding;
use mesh_catalog::subscriptions::NewSubscription;
use mesh_catalog::{Bundle, PublishOutcome};
use mesh_model::platform::{DomainFile, PlatformFile};
use mesh_model::source::Node;
use serde::{Deserialize, Serialize};

use crate::client::{CatalogApi, Failure};
use crate::files::{load_bundle, read_text};

/// The folder of platform files, under the workspace root.
pub(crate) const FOLDER: &str = "platform";

/// A platform file as read: where it is, its located tree (for positions) and its model.
#[derive(Debug)]
pub(crate) struct FileOf<T> {
    /// As printed: relative to the workspace root.
    pub(crate) path: String,
    root: Node,
    pub(crate) model: T,
}

impl<T> FileOf<T> {
    /// `path:line:col` of the value at `pointer` (the file's start when there is none).
    pub(crate) fn at(&self, pointer: &str) -> String {
        let pos = self
            .root
            .pointer(pointer)
            .map_or(self.root.span.start, |n| n.span.start);
        format!("{}:{}:{}", self.path, pos.line, pos.col)
    }
}

/// What the repository declares.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub(crate) global: Option<FileOf<PlatformFile>>,
    pub(crate) domains: Vec<FileOf<DomainFile>>,
    /// `global` or a domain, with the folder it came from.
    pub(crate) policies: Vec<(PolicyScope, String, PolicyBundle)>,
    /// Product folders (relative) and their bundles.
    pub(crate) products: Vec<(String, Bundle)>,
    /// The repository's root, where product folders are.
    pub(crate) root: PathBuf,
}

/// Problems in the repository's files, each `file:line:col: message`.
#[derive(Debug)]
pub(crate) struct Invalid(pub(crate) Vec<String>);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Invalid {}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Reads one platform file as `T`, every problem in it at its `file:line:col`.
fn read_file<T: mesh_model::de::FromNode>(
    root: &Path,
    path: &Path,
    problems: &mut Vec<String>,
) -> Option<FileOf<T>> {
    let shown = relative(root, path);
    let text = match read_text(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("{e:#}"));
            return None;
        }
    };
    if text.len() > 4 << 20 {
        problems.push(format!(
            "{shown}:1:1: a platform file is at most 4 MiB; this one is {} bytes",
            text.len()
        ));
        return None;
    }
    let parsed = mesh_model::yaml::parse(&text);
    let mut diagnostics = parsed.diagnostics;
    let model = parsed.root.as_ref().and_then(|root| {
        let (model, more) = mesh_model::document::from_root::<T>(root);
        diagnostics.extend(more);
        model
    });
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.render(&shown))
        .collect();
    if !errors.is_empty() {
        problems.extend(errors);
        return None;
    }
    match (parsed.root, model) {
        (Some(root), Some(model)) => Some(FileOf {
            path: shown,
            root,
            model,
        }),
        _ => {
            problems.push(format!("{shown}:1:1: empty file"));
            None
        }
    }
}

/// Reads the repository at `root`: `platform/` and every product folder (a folder holding a
/// `*.odps.yaml`, outside `platform/`), honouring `.gitignore`.
pub(crate) fn load(root: &Path) -> anyhow::Result<Repo> {
    let mut problems = Vec::new();
    let mut repo = Repo {
        root: root.to_path_buf(),
        ..Repo::default()
    };
    let base = root.join(FOLDER);
    let global = base.join("global.yaml");
    if global.is_file() {
        repo.global = read_file(root, &global, &mut problems);
    }
    let domains = base.join("domains");
    if domains.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&domains)
            .with_context(|| format!("cannot read {}", domains.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        for path in files {
            let Some(file) = read_file::<DomainFile>(root, &path, &mut problems) else {
                continue;
            };
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let name = file.model.name.clone().unwrap_or_default();
            if name != stem {
                problems.push(format!(
                    "{}: the domain file of `{name}` is named {stem}.yaml; name it {name}.yaml",
                    file.at("/name")
                ));
                continue;
            }
            check_domain(&file, &mut problems);
            repo.domains.push(file);
        }
    }
    let policies = base.join("policies");
    if policies.is_dir() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&policies)
            .with_context(|| format!("cannot read {}", policies.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir.file_name().and_then(|s| s.to_str()).unwrap_or_default();
            let shown = relative(root, &dir);
            let scope = match PolicyScope::parse(name) {
                Ok(scope) => scope,
                Err(e) => {
                    problems.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            match crate::cmd::policy::bundle(&dir) {
                Ok(bundle) => repo.policies.push((scope, shown, bundle)),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
    }
    let mut folders = BTreeSet::new();
    for entry in ignore::WalkBuilder::new(root).require_git(false).build() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!("cannot search {}: {e}", root.display()));
                continue;
            }
        };
        let path = entry.path();
        if path.starts_with(&base)
            || !entry.file_type().is_some_and(|t| t.is_file())
            || !path.to_string_lossy().ends_with(".odps.yaml")
        {
            continue;
        }
        if let Some(dir) = path.parent() {
            folders.insert(dir.to_path_buf());
        }
    }
    for dir in folders {
        match load_bundle(&dir) {
            Ok(bundle) => repo.products.push((relative(root, &dir), bundle)),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        return Err(Invalid(problems).into());
    }
    Ok(repo)
}

/// What a domain file says that its types cannot: unique names, subscriptions naming one
/// target, reads and approvals of the right domains.
fn check_domain(file: &FileOf<DomainFile>, problems: &mut Vec<String>) {
    let d = &file.model;
    let domain = d.name.as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, m) in d.members.iter().flatten().enumerate() {
        if !seen.insert((m.principal.to_lowercase(), m.role.as_str())) {
            problems.push(format!(
                "{}: {} is listed twice as {}",
                file.at(&format!("/members/{i}")),
                m.principal,
                m.role.as_str()
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (i, l) in d.locations.iter().flatten().enumerate() {
        if !names.insert(l.name.as_str()) {
            problems.push(format!(
                "{}: location `{}` is declared twice",
                file.at(&format!("/locations/{i}/name")),
                l.name
            ));
        }
    }
    for (i, s) in d.subscriptions.iter().flatten().enumerate() {
        let at = file.at(&format!("/subscriptions/{i}"));
        let channels = [&s.webhook, &s.slack, &s.email]
            .iter()
            .filter(|c| c.is_some())
            .count();
        if channels != 1 {
            problems.push(format!(
                "{at}: a subscription names exactly one of `webhook`, `slack`, `email`"
            ));
        }
        if s.product.is_some() && s.team.is_some() {
            problems.push(format!(
                "{at}: a subscription is to a product or a team (or, with neither, the domain), not both"
            ));
        }
        if let Some(p) = &s.product
            && mesh_model::names::domain_of(p) != domain
        {
            problems.push(format!(
                "{at}: {p} is not a product of domain `{domain}`; its own domain's file subscribes to it"
            ));
        }
    }
    for (i, r) in d.reads.iter().flatten().enumerate() {
        if mesh_model::names::domain_of(&r.consumer) != domain {
            problems.push(format!(
                "{}: {} is not a product of domain `{domain}`; a domain declares what its own products read",
                file.at(&format!("/reads/{i}/for")),
                r.consumer
            ));
        }
        if r.purpose.trim().is_empty() {
            problems.push(format!(
                "{}: say what the data is for",
                file.at(&format!("/reads/{i}/purpose"))
            ));
        }
    }
    for (i, a) in d.approves.iter().flatten().enumerate() {
        if mesh_model::names::domain_of(&a.product) != domain {
            problems.push(format!(
                "{}: {} is not a product of domain `{domain}`; a domain approves requests for its own ports",
                file.at(&format!("/approves/{i}/product")),
                a.product
            ));
        }
    }
}

/// One change a plan makes: one catalog operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum Change {
    PutDomain {
        domain: String,
        description: Option<String>,
    },
    Bind(Binding),
    Unbind(Binding),
    AddLocation {
        name: String,
        url: String,
        domain: String,
        /// The URL it replaces, in the same catalog transaction (a changed location).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
        /// The domain it belonged to, when another: the location moves between domains.
        #[serde(
            default,
            rename = "previousDomain",
            skip_serializing_if = "Option::is_none"
        )]
        previous_domain: Option<String>,
    },
    RemoveLocation {
        name: String,
        url: String,
        domain: String,
    },
    PublishPolicies {
        scope: String,
        folder: String,
        digest: String,
    },
    PublishProduct {
        product: String,
        version: String,
        folder: String,
    },
    Request {
        product: String,
        port: String,
        major: Option<i64>,
        consumer: String,
        purpose: String,
        columns: Vec<String>,
        days: i64,
    },
    Approve {
        request: String,
        product: String,
        port: String,
        consumer: String,
    },
    Revoke {
        grant: String,
        product: String,
        port: String,
        consumer: String,
    },
    Subscribe(NewSubscription),
    Unsubscribe {
        id: String,
        scope: String,
        subject: String,
        channel: String,
        target: String,
    },
    /// A generated monitoring file of a product (its `monitoring/` folder), out of step with the
    /// product's contracts; `digest` is the new text's.
    WriteMonitoring {
        product: String,
        file: String,
        digest: String,
    },
}

impl Change {
    /// `create`, `update` or `delete`, as plans say.
    fn action(&self, update: bool) -> &'static str {
        match self {
            Change::Unbind(_)
            | Change::RemoveLocation { .. }
            | Change::Revoke { .. }
            | Change::Unsubscribe { .. } => "delete",
            _ if update => "update",
            _ => "create",
        }
    }

    /// One line for people.
    pub(crate) fn describe(&self) -> String {
        match self {
            Change::PutDomain {
                domain,
                description,
            } => format!(
                "domain {domain}{}",
                description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            Change::Bind(b) => format!("role {} of {} in {}", b.role, b.principal, b.domain),
            Change::Unbind(b) => format!("role {} of {} in {}", b.role, b.principal, b.domain),
            Change::AddLocation {
                name,
                url,
                domain,
                previous,
                previous_domain,
            } => match (previous, previous_domain) {
                (Some(old), Some(from)) => {
                    format!("location {name} = {url} for {domain} (was {old}, of {from})")
                }
                (Some(old), None) => format!("location {name} = {url} for {domain} (was {old})"),
                _ => format!("location {name} = {url} for {domain}"),
            },
            Change::RemoveLocation { name, url, domain } => {
                format!("location {name} = {url} of {domain}")
            }
            Change::PublishPolicies { scope, folder, .. } => {
                format!("{scope} policies from {folder}")
            }
            Change::PublishProduct {
                product,
                version,
                folder,
            } => format!("product {product}@{version} from {folder}"),
            Change::Request {
                product,
                port,
                consumer,
                ..
            } => format!("access request: {consumer} reads {product}.{port}"),
            Change::Approve {
                product,
                port,
                consumer,
                request,
            } => format!("approval of {request}: {consumer} reads {product}.{port}"),
            Change::Revoke {
                product,
                port,
                consumer,
                grant,
            } => format!("grant {grant}: {consumer} reads {product}.{port}"),
            Change::Subscribe(s) => format!(
                "subscription of {} {} by {} to {}",
                s.scope, s.subject, s.channel, s.target
            ),
            Change::Unsubscribe {
                id,
                scope,
                subject,
                channel,
                target,
            } => format!("subscription {id} of {scope} {subject} by {channel} to {target}"),
            Change::WriteMonitoring { product, file, .. } => {
                format!("monitoring of {product}: {file}, from its contracts")
            }
        }
    }
}

/// A step of a plan: the change, where the repository asks for it, and what the catalog would
/// decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step {
    pub(crate) action: String,
    #[serde(flatten)]
    pub(crate) change: Change,
    /// `file:line:col` of the declaration; absent for drift (what the files do not declare).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    /// The policy decision the catalog gave on a dry run (products and policy bundles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) decision: Option<serde_json::Value>,
    /// Why the catalog would refuse it, when it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refused: Option<String>,
}

/// A plan: what `apply` does, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Plan {
    /// The plan format.
    pub(crate) format: u32,
    /// Who planned it (the catalog's name for the caller).
    pub(crate) principal: String,
    pub(crate) steps: Vec<Step>,
    /// What was not compared, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
}

pub(crate) const FORMAT: u32 = 1;

impl Plan {
    pub(crate) fn refused(&self) -> usize {
        self.steps.iter().filter(|s| s.refused.is_some()).count()
    }
}

fn step(change: Change, update: bool, source: Option<String>) -> Step {
    Step {
        action: change.action(update).to_owned(),
        change,
        source,
        decision: None,
        refused: None,
    }
}

/// Compares the repository with the catalog, as the caller sees it.
pub(crate) async fn plan(client: &dyn CatalogApi, repo: &Repo) -> anyhow::Result<Plan> {
    let me = client.whoami().await.map_err(anyhow::Error::from)?;
    let admin = me
        .bindings
        .iter()
        .any(|b| b.role == "admin" && b.domain == "*");
    let not_admin = || {
        Some(format!(
            "{} is not a platform admin (only admins change domains, roles and locations)",
            me.principal
        ))
    };
    let mut steps = Vec::new();

    // Domains.
    let domains = client.domains().await.map_err(anyhow::Error::from)?;
    for file in &repo.domains {
        let d = &file.model;
        let name = d.name.clone().unwrap_or_default();
        let description = d
            .description
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let existing = domains.iter().find(|x| x.name == name);
        let changed = match existing {
            None => true,
            Some(x) => d.description.is_some() && x.description.as_deref() != description,
        };
        if changed {
            let mut s = step(
                Change::PutDomain {
                    domain: name.clone(),
                    description: description
                        .map(str::to_owned)
                        .or_else(|| existing.and_then(|x| x.description.clone())),
                },
                existing.is_some(),
                Some(file.at("/name")),
            );
            if !admin {
                s.refused = not_admin();
            }
            steps.push(s);
        }
    }

    // Roles: admins (global file) and each domain's members.
    let managed_admins = repo.global.as_ref().and_then(|g| g.model.admins.as_ref());
    let managed_domains: BTreeMap<String, &FileOf<DomainFile>> = repo
        .domains
        .iter()
        .filter(|f| f.model.members.is_some())
        .map(|f| (f.model.name.clone().unwrap_or_default(), f))
        .collect();
    let mut notes = Vec::new();
    if (managed_admins.is_some() || !managed_domains.is_empty()) && !admin {
        // Only admins see and change roles: a domain's own apply (its approvals, its products)
        // leaves them to the platform's.
        notes.push(format!(
            "roles were not compared: only platform admins see them, and {} is not one",
            me.principal
        ));
    } else if managed_admins.is_some() || !managed_domains.is_empty() {
        let current = client.role_bindings().await.map_err(anyhow::Error::from)?;
        let mut wanted: Vec<(Binding, String)> = Vec::new();
        if let (Some(admins), Some(g)) = (managed_admins, &repo.global) {
            for (i, p) in admins.iter().enumerate() {
                wanted.push((
                    Binding {
                        principal: p.trim().to_lowercase(),
                        role: "admin".into(),
                        domain: "*".into(),
                    },
                    g.at(&format!("/admins/{i}")),
                ));
            }
        }
        for (domain, file) in &managed_domains {
            for (i, m) in file.model.members.iter().flatten().enumerate() {
                wanted.push((
                    Binding {
                        principal: m.principal.trim().to_lowercase(),
                        role: m.role.as_str().to_owned(),
                        domain: domain.clone(),
                    },
                    file.at(&format!("/members/{i}")),
                ));
            }
        }
        for (b, at) in &wanted {
            if !current.contains(b) {
                steps.push(step(Change::Bind(b.clone()), false, Some(at.clone())));
            }
        }
        // Drift: roles the catalog has where the files manage them, and the files lack.
        for b in &current {
            let managed = if b.role == "admin" {
                managed_admins.is_some()
            } else {
                managed_domains.contains_key(&b.domain)
            };
            if managed && !wanted.iter().any(|(w, _)| w == b) {
                steps.push(step(Change::Unbind(b.clone()), false, None));
            }
        }
    }

    // Locations of domains that declare them.
    let located: Vec<&FileOf<DomainFile>> = repo
        .domains
        .iter()
        .filter(|f| f.model.locations.is_some())
        .collect();
    if !located.is_empty() {
        let current = client.locations().await.map_err(anyhow::Error::from)?;
        for file in &located {
            let domain = file.model.name.clone().unwrap_or_default();
            let declared = file.model.locations.as_deref().unwrap_or_default();
            for (i, l) in declared.iter().enumerate() {
                let url = mesh_catalog::locations::normalize(&l.url)
                    .map(|(_, url)| url)
                    .unwrap_or_else(|_| l.url.clone());
                let existing = current.iter().find(|c| c.name == l.name);
                let same = existing.is_some_and(|c| c.url == url && c.domain == domain);
                if same {
                    continue;
                }
                // A changed location is replaced in one catalog transaction: a refused new URL
                // leaves the old one.
                let mut s = step(
                    Change::AddLocation {
                        name: l.name.clone(),
                        url,
                        domain: domain.clone(),
                        previous: existing.map(|c| c.url.clone()),
                        previous_domain: existing
                            .filter(|c| c.domain != domain)
                            .map(|c| c.domain.clone()),
                    },
                    existing.is_some(),
                    Some(file.at(&format!("/locations/{i}"))),
                );
                if !admin {
                    s.refused = not_admin();
                }
                steps.push(s);
            }
            for c in current.iter().filter(|c| c.domain == domain) {
                if !declared.iter().any(|l| l.name == c.name) {
                    steps.push(step(
                        Change::RemoveLocation {
                            name: c.name.clone(),
                            url: c.url.clone(),
                            domain: c.domain.clone(),
                        },
                        false,
                        None,
                    ));
                }
            }
        }
    }

    // Policies: global first.
    let mut policies: Vec<&(PolicyScope, String, PolicyBundle)> = repo.policies.iter().collect();
    policies.sort_by_key(|(scope, _, _)| !matches!(scope, PolicyScope::Global));
    for (scope, folder, bundle) in policies {
        let current = client
            .policy_versions(scope)
            .await
            .map_err(anyhow::Error::from)?;
        let digest = bundle.digest();
        if current.last().is_some_and(|c| c.digest == digest) {
            continue;
        }
        let (refused, decision) = match client.publish_policies(scope, bundle.clone(), true).await {
            Ok(report) => (
                None,
                Some(
                    serde_json::json!({ "tests": report.tests, "policies": report.policies.len() }),
                ),
            ),
            Err(e) => (Some(e.to_string()), None),
        };
        let mut s = step(
            Change::PublishPolicies {
                scope: scope_name(scope),
                folder: folder.clone(),
                digest,
            },
            !current.is_empty(),
            Some(format!("{folder}/")),
        );
        s.refused = refused;
        s.decision = decision;
        steps.push(s);
    }

    // Products, upstream first.
    for (folder, bundle) in upstream_first(&repo.products) {
        match client.publish(bundle, true).await {
            Ok(report) if report.outcome == PublishOutcome::Unchanged => {}
            Ok(report) => {
                let mut s = step(
                    Change::PublishProduct {
                        product: report.product.clone(),
                        version: report.version.clone(),
                        folder: folder.clone(),
                    },
                    !report.ports.is_empty() && report.ports.iter().any(|p| p.previous.is_some()),
                    Some(format!("{folder}/{}", bundle.descriptor.path)),
                );
                s.decision = report.policy.clone();
                steps.push(s);
            }
            Err(e) => {
                let model = mesh_model::parse_product(&bundle.descriptor.text).model;
                let id = model
                    .as_ref()
                    .and_then(|p| p.id.clone())
                    .unwrap_or_else(|| folder.clone());
                // Another domain's product the caller may not publish: nothing to plan when
                // its version is in the catalog already (its own domain's apply publishes it).
                let forbidden =
                    matches!(&e, Failure::Problem { problem, .. } if problem.code == "forbidden");
                if forbidden
                    && let Some(version) = model.as_ref().and_then(|p| p.version.as_deref())
                    && client.version(&id, version).await.is_ok()
                {
                    continue;
                }
                let mut s = step(
                    Change::PublishProduct {
                        product: id,
                        version: String::new(),
                        folder: folder.clone(),
                    },
                    false,
                    Some(format!("{folder}/{}", bundle.descriptor.path)),
                );
                s.decision = match &e {
                    Failure::Problem { problem, .. } => problem.violations.clone(),
                    Failure::Transport(_) => None,
                };
                s.refused = Some(e.to_string());
                steps.push(s);
            }
        }
    }

    // Access: what domains read (requests, revocations) and approve.
    let reading: Vec<&FileOf<DomainFile>> = repo
        .domains
        .iter()
        .filter(|f| f.model.reads.is_some())
        .collect();
    let approving: Vec<&FileOf<DomainFile>> = repo
        .domains
        .iter()
        .filter(|f| f.model.approves.is_some())
        .collect();
    if !reading.is_empty() || !approving.is_empty() {
        // Per product: its owners (and admins) see every request and grant of it.
        let products: BTreeSet<&str> = reading
            .iter()
            .flat_map(|f| f.model.reads.iter().flatten().map(|r| r.product.as_str()))
            .chain(approving.iter().flat_map(|f| {
                f.model
                    .approves
                    .iter()
                    .flatten()
                    .map(|a| a.product.as_str())
            }))
            .collect();
        let mut requests = Vec::new();
        let mut grants = Vec::new();
        for product in products {
            match client.access_requests(Some(product), None).await {
                Ok(found) => requests.extend(found),
                // Not published yet: nothing asked for or granted.
                Err(Failure::Problem { problem, .. }) if problem.code == "not_found" => continue,
                Err(e) => return Err(e.into()),
            }
            grants.extend(
                client
                    .access_grants(Some(product))
                    .await
                    .map_err(anyhow::Error::from)?,
            );
        }
        // The grants a reading domain's products hold, of products no longer read too: listed
        // per consuming product (its service identity), which the domain's own token may.
        let mut consumers: BTreeSet<String> = BTreeSet::new();
        for file in &reading {
            let domain = file.model.name.clone().unwrap_or_default();
            consumers.extend(
                file.model
                    .reads
                    .iter()
                    .flatten()
                    .map(|r| r.consumer.clone()),
            );
            consumers.extend(
                repo.products
                    .iter()
                    .map(|(folder, _)| product_id(repo, folder))
                    .filter(|id| mesh_model::names::domain_of(id) == domain),
            );
        }
        for consumer in &consumers {
            let held = match client.consumer_grants(consumer).await {
                Ok(held) => held,
                // Another domain's product: its own apply plans its grants.
                Err(Failure::Problem { problem, .. }) if problem.code == "forbidden" => continue,
                Err(e) => return Err(e.into()),
            };
            for g in held {
                if !grants.iter().any(|x| x.id == g.id) {
                    grants.push(g);
                }
            }
        }
        for file in &reading {
            let domain = file.model.name.clone().unwrap_or_default();
            let reads = file.model.reads.as_deref().unwrap_or_default();
            for (i, r) in reads.iter().enumerate() {
                let active = grants.iter().any(|g| {
                    g.active
                        && g.product == r.product
                        && g.port == r.port
                        && g.grantee == r.consumer
                });
                let pending = requests.iter().any(|q| {
                    q.state == "pending"
                        && q.product == r.product
                        && q.port == r.port
                        && q.consumer.as_deref() == Some(r.consumer.as_str())
                });
                if active || pending {
                    continue;
                }
                steps.push(step(
                    Change::Request {
                        product: r.product.clone(),
                        port: r.port.clone(),
                        major: r.major,
                        consumer: r.consumer.clone(),
                        purpose: r.purpose.clone(),
                        columns: r.columns.clone(),
                        days: r.days.unwrap_or(365),
                    },
                    false,
                    Some(file.at(&format!("/reads/{i}"))),
                ));
            }
            for g in grants
                .iter()
                .filter(|g| g.active && mesh_model::names::domain_of(&g.grantee) == domain)
            {
                let declared = reads
                    .iter()
                    .any(|r| r.product == g.product && r.port == g.port && r.consumer == g.grantee);
                if !declared {
                    steps.push(step(
                        Change::Revoke {
                            grant: g.id.clone(),
                            product: g.product.clone(),
                            port: g.port.clone(),
                            consumer: g.grantee.clone(),
                        },
                        false,
                        None,
                    ));
                }
            }
        }
        for file in &approving {
            let approves = file.model.approves.as_deref().unwrap_or_default();
            for (i, a) in approves.iter().enumerate() {
                for q in requests.iter().filter(|q| {
                    q.state == "pending"
                        && q.product == a.product
                        && q.port == a.port
                        && q.consumer.as_deref() == Some(a.consumer.as_str())
                }) {
                    let mut s = step(
                        Change::Approve {
                            request: q.id.clone(),
                            product: q.product.clone(),
                            port: q.port.clone(),
                            consumer: a.consumer.clone(),
                        },
                        false,
                        Some(file.at(&format!("/approves/{i}"))),
                    );
                    if q.requester.eq_ignore_ascii_case(&me.principal) {
                        s.refused = Some(format!(
                            "{} asked for this access and may not approve it; apply the approval as another principal",
                            me.principal
                        ));
                    }
                    steps.push(s);
                }
            }
        }
    }

    // Subscriptions of domains that declare them.
    let subscribing: Vec<&FileOf<DomainFile>> = repo
        .domains
        .iter()
        .filter(|f| f.model.subscriptions.is_some())
        .collect();
    if !subscribing.is_empty() {
        let current = client.subscriptions().await.map_err(anyhow::Error::from)?;
        for file in &subscribing {
            let domain = file.model.name.clone().unwrap_or_default();
            let declared: Vec<(NewSubscription, String)> = file
                .model
                .subscriptions
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| {
                    (
                        new_subscription(&domain, s),
                        file.at(&format!("/subscriptions/{i}")),
                    )
                })
                .collect();
            for (new, at) in &declared {
                if !current.iter().any(|c| same_subscription(c, new)) {
                    steps.push(step(
                        Change::Subscribe(new.clone()),
                        false,
                        Some(at.clone()),
                    ));
                }
            }
            for c in current.iter().filter(|c| subscription_domain(c) == domain) {
                if !declared.iter().any(|(n, _)| same_subscription(c, n)) {
                    steps.push(step(
                        Change::Unsubscribe {
                            id: c.id.clone(),
                            scope: c.scope.clone(),
                            subject: c.subject.clone(),
                            channel: c.channel.clone(),
                            target: c.target.clone(),
                        },
                        false,
                        None,
                    ));
                }
            }
        }
    }

    // Generated monitoring files, where a product keeps them, in step with its contracts.
    for (folder, (file, text), exists) in monitoring(repo) {
        steps.push(step(
            Change::WriteMonitoring {
                product: product_id(repo, &folder),
                digest: crate::monitoring::digest(&text),
                file: file.clone(),
            },
            exists,
            Some(file),
        ));
    }

    Ok(Plan {
        format: FORMAT,
        principal: me.principal,
        steps,
        notes,
    })
}

fn scope_name(scope: &PolicyScope) -> String {
    match scope {
        PolicyScope::Global => "global".to_owned(),
        PolicyScope::Domain(d) => d.clone(),
    }
}

fn new_subscription(domain: &str, s: &mesh_model::platform::SubscriptionDecl) -> NewSubscription {
    let (scope, subject) = match (&s.product, &s.team) {
        (Some(p), _) => ("product", p.clone()),
        (None, Some(t)) => ("team", t.clone()),
        (None, None) => ("domain", domain.to_owned()),
    };
    let (channel, target) = match (&s.webhook, &s.slack, &s.email) {
        (Some(w), _, _) => ("webhook", w.clone()),
        (None, Some(s), _) => ("slack", s.clone()),
        (None, None, Some(e)) => ("email", e.clone()),
        (None, None, None) => ("webhook", String::new()),
    };
    let mut events = s.events.clone();
    events.sort();
    NewSubscription {
        scope: scope.to_owned(),
        subject,
        channel: channel.to_owned(),
        target,
        events,
    }
}

fn same_subscription(c: &mesh_catalog::subscriptions::Subscription, n: &NewSubscription) -> bool {
    let mut events: Vec<String> = c.events.iter().filter(|e| *e != "*").cloned().collect();
    events.sort();
    c.scope == n.scope
        && c.subject == n.subject
        && c.channel == n.channel
        && c.target == n.target
        && events == n.events
}

/// The domain a subscription belongs to: its own, its product's; a team's is not known here.
fn subscription_domain(c: &mesh_catalog::subscriptions::Subscription) -> &str {
    match c.scope.as_str() {
        "domain" => &c.subject,
        "product" => mesh_model::names::domain_of(&c.subject),
        _ => "",
    }
}

/// The monitoring files out of step: (product folder, (file path, new text), whether it exists),
/// for each product with a `monitoring/` folder.
fn monitoring(repo: &Repo) -> Vec<(String, (String, String), bool)> {
    let mut out = Vec::new();
    for (folder, bundle) in &repo.products {
        for (file, exists) in out_of_step(repo, folder, bundle) {
            out.push((folder.clone(), file, exists));
        }
    }
    out
}

/// One product's monitoring files out of step: ((file path, new text), whether it exists).
fn out_of_step(repo: &Repo, folder: &str, bundle: &Bundle) -> Vec<((String, String), bool)> {
    let dir = repo.root.join(folder).join(crate::monitoring::FOLDER);
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, text) in crate::monitoring::files(bundle, folder) {
        let current = std::fs::read_to_string(dir.join(name)).ok();
        if current.as_deref() != Some(text.as_str()) {
            let shown = format!("{folder}/{}/{name}", crate::monitoring::FOLDER);
            out.push(((shown, text), current.is_some()));
        }
    }
    out
}

/// A product's id, from its descriptor (the folder when it has none).
fn product_id(repo: &Repo, folder: &str) -> String {
    repo.products
        .iter()
        .find(|(f, _)| f == folder)
        .and_then(|(_, b)| mesh_model::parse_product(&b.descriptor.text).model)
        .and_then(|p| p.id)
        .unwrap_or_else(|| folder.replace('/', "."))
}

/// Writes a monitoring file the plan said is out of step, if it still is the text planned
/// (written beside and renamed, so a reader never sees half a file).
fn write_monitoring(repo: &Repo, file: &str, planned: &str) -> Result<(), String> {
    // Only the file's own product is generated again.
    let folder = file
        .rsplit_once(&format!("/{}/", crate::monitoring::FOLDER))
        .map_or("", |(folder, _)| folder);
    let Some(((_, text), _)) = repo
        .products
        .iter()
        .filter(|(f, _)| f == folder)
        .flat_map(|(f, bundle)| out_of_step(repo, f, bundle))
        .find(|((f, _), _)| f == file)
    else {
        return Ok(());
    };
    if crate::monitoring::digest(&text) != planned {
        return Err(format!(
            "{file}: the contracts changed since the plan was made; plan again"
        ));
    }
    let path = repo.root.join(file);
    let temp = path.with_extension("mesh-tmp");
    std::fs::write(&temp, &text)
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The repository's products, each after the products of the repository it reads.
pub(crate) fn upstream_first(products: &[(String, Bundle)]) -> Vec<&(String, Bundle)> {
    let parsed: Vec<(String, Vec<String>)> = products
        .iter()
        .map(|(folder, b)| {
            let model = mesh_model::parse_product(&b.descriptor.text).model;
            let id = model
                .as_ref()
                .and_then(|p| p.id.clone())
                .unwrap_or_else(|| folder.clone());
            let inputs = model
                .map(|p| {
                    p.input_ports
                        .iter()
                        .map(|i| {
                            let mut parts = i.contract_id.splitn(3, '.');
                            format!(
                                "{}.{}",
                                parts.next().unwrap_or_default(),
                                parts.next().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (id, inputs)
        })
        .collect();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::with_capacity(products.len());
    while done.len() < products.len() {
        let before = done.len();
        for (i, (_, inputs)) in parsed.iter().enumerate() {
            if done.contains(&i) {
                continue;
            }
            let waiting = inputs.iter().any(|up| {
                parsed
                    .iter()
                    .enumerate()
                    .any(|(j, (id, _))| j != i && id == up && !done.contains(&j))
            });
            if !waiting {
                done.insert(i);
                out.push(&products[i]);
            }
        }
        if done.len() == before {
            // A cycle: the rest in folder order (the catalog refuses what cannot be).
            for (i, p) in products.iter().enumerate() {
                if done.insert(i) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// What one applied step did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Applied {
    #[serde(flatten)]
    pub(crate) step: Step,
    /// `applied`, `refused` or `failed`.
    pub(crate) result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// Carries out `plan` step by step, stopping at the first step refused or failing.
pub(crate) async fn apply(client: &dyn CatalogApi, repo: &Repo, plan: &Plan) -> Vec<Applied> {
    let mut out = Vec::new();
    for s in &plan.steps {
        if let Some(reason) = &s.refused {
            out.push(Applied {
                step: s.clone(),
                result: "refused".into(),
                detail: Some(reason.clone()),
            });
            break;
        }
        let done = run_step(client, repo, &s.change).await;
        let failed = done.is_err();
        out.push(Applied {
            step: s.clone(),
            result: if failed { "failed" } else { "applied" }.into(),
            detail: done.err(),
        });
        if failed {
            break;
        }
    }
    out
}

async fn run_step(client: &dyn CatalogApi, repo: &Repo, change: &Change) -> Result<(), String> {
    let e = |e: Failure| e.to_string();
    match change {
        Change::PutDomain {
            domain,
            description,
        } => client
            .put_domain(domain, description.as_deref())
            .await
            .map(drop)
            .map_err(e),
        Change::Bind(b) => client.bind(b).await.map(drop).map_err(e),
        Change::Unbind(b) => client.unbind(b).await.map(drop).map_err(e),
        Change::AddLocation {
            name,
            url,
            domain,
            previous,
            ..
        } => client
            .add_location(&NewLocation {
                name: name.clone(),
                url: url.clone(),
                domain: domain.clone(),
                replace: previous.is_some(),
            })
            .await
            .map(drop)
            .map_err(e),
        Change::RemoveLocation { name, .. } => {
            client.remove_location(name).await.map(drop).map_err(e)
        }
        Change::PublishPolicies { folder, scope, .. } => {
            let Some((scope, _, bundle)) = repo
                .policies
                .iter()
                .find(|(s, f, _)| f == folder && scope_name(s) == *scope)
            else {
                return Err(format!("{folder}: no longer in the repository"));
            };
            client
                .publish_policies(scope, bundle.clone(), false)
                .await
                .map(drop)
                .map_err(e)
        }
        Change::PublishProduct { folder, .. } => {
            let Some((_, bundle)) = repo.products.iter().find(|(f, _)| f == folder) else {
                return Err(format!("{folder}: no longer in the repository"));
            };
            client.publish(bundle, false).await.map(drop).map_err(e)
        }
        Change::Request {
            product,
            port,
            major,
            consumer,
            purpose,
            columns,
            days,
        } => client
            .request_access(&AccessAsk {
                product: product.clone(),
                port: port.clone(),
                major: *major,
                purpose: purpose.clone(),
                columns: columns.clone(),
                days: *days,
                consumer: Some(consumer.clone()),
            })
            .await
            .map(drop)
            .map_err(e),
        Change::Approve { request, .. } => client
            .decide_access(
                request,
                &AccessDecision::Approve {
                    columns: None,
                    days: None,
                },
            )
            .await
            .map(drop)
            .map_err(e),
        Change::Revoke { grant, .. } => client
            .revoke_access(
                grant,
                "no longer declared in the repository's platform files",
            )
            .await
            .map(drop)
            .map_err(e),
        Change::Subscribe(new) => client.subscribe(new).await.map(drop).map_err(e),
        Change::Unsubscribe { id, .. } => client.unsubscribe(id).await.map(drop).map_err(e),
        Change::WriteMonitoring { file, digest, .. } => write_monitoring(repo, file, digest),
    }
}
