//! Cross-domain access: a consumer requests to read an output port (per major version) with a
//! purpose, some columns (or all) and a duration; the owning domain approves — possibly fewer
//! columns, a shorter time — or denies with a reason; an approval makes a time-boxed grant,
//! which expires or is revoked. Every step is an event.
//!
//! Rules the catalog enforces, whoever asks:
//! - a requester never approves their own request;
//! - when the port's contract names approvers (`roles[].firstLevelApprovers`), only they approve;
//!   with `secondLevelApprovers`, or when restricted columns are asked for, two distinct
//!   approvals are needed;
//! - asking for confidential or restricted columns needs a purpose a reader can judge (20+
//!   characters); the governance decision is stored with the request;
//! - a grant never covers more than was asked for, nor lasts longer.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use mesh_model::names::{ProductId, Sensitivity, TableName, VersionStatus, domain_of, props};
use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, Problem, ToProblem, wraps};
use crate::governance::{GovernanceError, PolicyRefusal};
use crate::store::{GrantRow, NewEvent, RequestRow, StoreError, Tx};

/// Why an access operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("say what the data is for (purpose)")]
    NoPurpose,
    #[error("access lasts 1 to 365 days, not {days}")]
    BadDuration { days: i64 },
    #[error("{product}.{port} has no column {}", quoted(.columns))]
    UnknownColumns {
        product: String,
        port: String,
        columns: Vec<String>,
    },
    /// Only people of a consuming product's domain may ask for it.
    #[error(
        "forbidden: {principal} may not ask for {consumer}: only people of its domain `{domain}` may"
    )]
    NotForConsumer {
        principal: String,
        consumer: String,
        domain: String,
    },
    /// A blocking policy refused the request.
    #[error(transparent)]
    PolicyViolation(PolicyRefusal),
    #[error(transparent)]
    Policies(#[from] GovernanceError),
    #[error("forbidden: {principal} asked for this access and may not decide on it")]
    OwnRequest { principal: String },
    #[error("access request {request} is already {state}")]
    Decided { request: String, state: String },
    #[error("say why access is denied")]
    NoReason,
    #[error("forbidden: the contract of {product}.{port} names its approvers ({}); {principal} is not one of them", .approvers.join(", "))]
    NotAnApprover {
        product: String,
        port: String,
        approvers: Vec<String>,
        principal: String,
    },
    #[error("{principal} has approved this request already; it needs another approver")]
    ApprovedAlready { principal: String },
    #[error("an approval can only narrow what was asked for; not asked for: {}", quoted(.columns))]
    NotNarrower { columns: Vec<String> },
    #[error("an approval lasts 1 to {asked} days (what was asked for), not {days}")]
    BadApprovalDays { asked: i64, days: i64 },
    #[error("grant {grant} is already revoked")]
    Revoked { grant: String },
    /// The approvals of a request share no column: it would grant nothing.
    #[error(
        "{principal}'s approval of access request {request} has no column in common with the approvals before it; approve what they approved, or deny it"
    )]
    NothingInCommon { request: String, principal: String },
    #[error(
        "forbidden: {principal} may not list the grants of {consumer}: only its domain `{domain}` runs it"
    )]
    ConsumerGrants {
        principal: String,
        consumer: String,
        domain: String,
    },
    /// Only the grantee (or the domain running a service identity) mints its credentials.
    #[error(
        "forbidden: {principal} may not mint credentials for grant {grant}: it is made out to {grantee}, and only it (or, for a product, the people of its domain) may"
    )]
    NotGrantee {
        principal: String,
        grant: String,
        grantee: String,
    },
    #[error("a credential label is 1 to 64 letters, digits, `.`, `_` or `-`, not `{label}`")]
    BadLabel { label: String },
    #[error("grant {grant} has {max} live credentials already: revoke one first")]
    TooManyCredentials { grant: String, max: usize },
    #[error("credential {credential} is already revoked")]
    CredentialRevoked { credential: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn quoted(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ToProblem for AccessError {
    fn code(&self) -> ErrorCode {
        match self {
            AccessError::Denied(_)
            | AccessError::NotForConsumer { .. }
            | AccessError::OwnRequest { .. }
            | AccessError::NotAnApprover { .. }
            | AccessError::ConsumerGrants { .. }
            | AccessError::NotGrantee { .. } => ErrorCode::Forbidden,
            AccessError::NotFound(_) => ErrorCode::NotFound,
            AccessError::NoPurpose
            | AccessError::BadDuration { .. }
            | AccessError::UnknownColumns { .. }
            | AccessError::NoReason
            | AccessError::NotNarrower { .. }
            | AccessError::BadApprovalDays { .. }
            | AccessError::BadLabel { .. } => ErrorCode::BadRequest,
            AccessError::PolicyViolation(_) => ErrorCode::Policy,
            AccessError::Policies(e) => e.code(),
            AccessError::Decided { .. }
            | AccessError::ApprovedAlready { .. }
            | AccessError::Revoked { .. }
            | AccessError::NothingInCommon { .. }
            | AccessError::TooManyCredentials { .. }
            | AccessError::CredentialRevoked { .. } => ErrorCode::Lifecycle,
            AccessError::Store(e) => e.code(),
        }
    }

    fn extend(&self, problem: &mut Problem) {
        match self {
            AccessError::PolicyViolation(refusal) => refusal.extend(problem),
            AccessError::Policies(e) => e.extend(problem),
            _ => {}
        }
    }
}

wraps!(AccessError: mesh_policy::PolicyError => Policies);

/// What a consumer asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessAsk {
    /// `domain.product`.
    pub product: String,
    pub port: String,
    /// The major version (default: the product's latest).
    #[serde(default)]
    pub major: Option<i64>,
    pub purpose: String,
    /// Column names; empty: all.
    #[serde(default)]
    pub columns: Vec<String>,
    /// How long, 1 to 365 days.
    pub days: i64,
    /// The consuming product, when a product's service identity asks.
    #[serde(default)]
    pub consumer: Option<String>,
}

/// An owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum AccessDecision {
    /// Optionally narrower: fewer columns (a subset of those asked), fewer days.
    Approve {
        #[serde(default)]
        columns: Option<Vec<String>>,
        #[serde(default)]
        days: Option<i64>,
    },
    Deny {
        reason: String,
    },
}

/// A request as the catalog shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestView {
    pub id: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    pub requester: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    pub purpose: String,
    pub columns: Vec<String>,
    pub days: i64,
    /// `pending`, `approved` or `denied`.
    pub state: String,
    pub approvals: Vec<serde_json::Value>,
    /// How many distinct approvers it needs.
    pub needed: i64,
    /// What governance said about it.
    pub policy: serde_json::Value,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The grant an approval made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantView>,
}

/// A grant as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub id: String,
    pub request: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    pub grantee: String,
    /// Empty: all columns.
    pub columns: Vec<String>,
    pub granted_by: String,
    pub granted_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it grants access now (not revoked, not expired).
    pub active: bool,
}

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Whether something that ends at `expires_at` (RFC 3339) and may be revoked holds at `now`: a
/// grant, a credential. An end that does not parse holds nothing.
pub(crate) fn active_at(expires_at: &str, revoked: bool, now: DateTime<Utc>) -> bool {
    !revoked && DateTime::parse_from_rfc3339(expires_at).is_ok_and(|at| at > now)
}

fn grant_view(row: GrantRow, now: DateTime<Utc>) -> GrantView {
    let active = active_at(&row.expires_at, row.revoked_at.is_some(), now);
    GrantView {
        columns: list(&row.columns),
        id: row.id,
        request: row.request,
        product: row.product,
        port: row.port,
        major: row.major,
        grantee: row.grantee,
        granted_by: row.granted_by,
        granted_at: row.granted_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        revoked_by: row.revoked_by,
        reason: row.reason,
        active,
    }
}

fn request_view(row: RequestRow, grant: Option<GrantView>) -> RequestView {
    RequestView {
        columns: list(&row.columns),
        approvals: serde_json::from_str(&row.approvals).unwrap_or_default(),
        policy: serde_json::from_str(&row.policy).unwrap_or_default(),
        id: row.id,
        product: row.product,
        port: row.port,
        major: row.major,
        requester: row.requester,
        consumer: row.consumer,
        purpose: row.purpose,
        days: row.days,
        state: row.state,
        needed: row.needed,
        created_at: row.created_at,
        decided_at: row.decided_at,
        reason: row.reason,
        grant,
    }
}

/// What the port's contract says about who may approve and what is sensitive.
struct PortFacts {
    domain: String,
    major: i64,
    /// Each column with its classification: the strictest of its own and its nested fields'
    /// (lower case; `public` when none says).
    columns: Vec<(String, String)>,
    /// The product's `dataClassification`.
    product_class: Option<String>,
    first: Vec<String>,
    second: Vec<String>,
}

fn names(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Catalog {
    async fn port_facts(
        &self,
        tx: &mut dyn Tx,
        product: &str,
        port: &str,
        major: Option<i64>,
    ) -> Result<PortFacts, AccessError> {
        let row = tx.product(product).await?.ok_or_else(|| Missing::Product {
            product: product.to_owned(),
        })?;
        let versions = tx.versions(product).await?;
        let version = versions
            .iter()
            .filter(|v| {
                major.is_none_or(|m| v.major == m)
                    && VersionStatus::parse(&v.status).is_ok_and(VersionStatus::is_served)
            })
            .max_by(|a, b| mesh_model::names::by_semver(&a.version, &b.version))
            .ok_or_else(|| Missing::ServedVersion {
                product: product.to_owned(),
                major,
            })?;
        let ports = tx.ports(product, &version.version).await?;
        let found = ports
            .iter()
            .find(|p| p.port == port)
            .ok_or_else(|| Missing::Port {
                product: product.to_owned(),
                version: version.version.clone(),
                port: port.to_owned(),
            })?;
        let contract: serde_json::Value = serde_json::from_str(&found.contract).unwrap_or_default();
        let descriptor: serde_json::Value =
            serde_json::from_str(&version.descriptor).unwrap_or_default();
        // Columns carry what they say (their nested fields' included); the product's
        // classification covers the rest when deciding how many approvals a request needs.
        let product_class = product_classification(&descriptor);
        let columns = classified_columns(&contract, None);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for role in contract["roles"].as_array().into_iter().flatten() {
            first.extend(names(role["firstLevelApprovers"].as_str()));
            second.extend(names(role["secondLevelApprovers"].as_str()));
        }
        Ok(PortFacts {
            domain: row.domain,
            major: version.major,
            columns,
            product_class,
            first,
            second,
        })
    }

    /// Asks for access to an output port; the owning domain is notified through the event log.
    pub async fn request_access(
        &self,
        who: &crate::Principal,
        ask: &AccessAsk,
    ) -> Result<RequestView, AccessError> {
        Self::allow(who, Action::Read)?;
        if ask.purpose.trim().is_empty() {
            return Err(AccessError::NoPurpose);
        }
        if !(1..=365).contains(&ask.days) {
            return Err(AccessError::BadDuration { days: ask.days });
        }
        let mut tx = self.store.write().await?;
        let facts = self
            .port_facts(tx.as_mut(), &ask.product, &ask.port, ask.major)
            .await?;
        let unknown: Vec<String> = ask
            .columns
            .iter()
            .filter(|c| !facts.columns.iter().any(|(n, _)| n == *c))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(AccessError::UnknownColumns {
                product: ask.product.clone(),
                port: ask.port.clone(),
                columns: unknown,
            });
        }
        // Governance on the request: what the columns asked for need.
        let asked: Vec<(&str, Sensitivity)> = facts
            .columns
            .iter()
            .filter(|(n, _)| ask.columns.is_empty() || ask.columns.contains(n))
            .map(|(n, c)| (n.as_str(), Sensitivity::of(Some(c))))
            .collect();
        let sensitive: Vec<&str> = asked
            .iter()
            .filter(|(_, s)| s.is_sensitive())
            .map(|(n, _)| *n)
            .collect();
        // The strictest of the product's classification and every column asked for decides.
        let restricted = asked.iter().any(|(_, s)| *s == Sensitivity::Restricted)
            || Sensitivity::of(facts.product_class.as_deref()) == Sensitivity::Restricted;
        if let Some(consumer) = &ask.consumer {
            let domain = domain_of(consumer);
            if !who.may(Action::Publish { domain }) {
                return Err(AccessError::NotForConsumer {
                    principal: who.name.clone(),
                    consumer: consumer.clone(),
                    domain: domain.to_owned(),
                });
            }
        }
        // The owning domain's policies (and the global ones) judge the request: a blocking
        // violation refuses it; the others are stored with it for the owners to see.
        let mut reasons = Vec::new();
        let mut judged = serde_json::Value::Null;
        if let Some((policies, bundles)) = self.policy_set(tx.as_mut(), &facts.domain).await? {
            let input = mesh_policy::access_input(
                serde_json::json!({
                    "requester": who.name, "consumer": ask.consumer, "product": ask.product,
                    "port": ask.port, "major": facts.major, "purpose": ask.purpose.trim(),
                    "columns": ask.columns, "days": ask.days,
                }),
                serde_json::json!({
                    "domain": facts.domain,
                    "columns": facts.columns.iter()
                        .map(|(n, c)| serde_json::json!({ "name": n, "classification": c }))
                        .collect::<Vec<_>>(),
                    "asked": asked.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                    "sensitive": sensitive,
                    "approvers": facts.first, "second_approvers": facts.second,
                }),
            );
            let decision = policies.evaluate_access(&input)?;
            if decision.blocked() {
                return Err(AccessError::PolicyViolation(PolicyRefusal {
                    subject: format!("the request for {}.{}", ask.product, ask.port),
                    version: format!("v{}", facts.major),
                    violations: decision.violations,
                    bundles,
                }));
            }
            judged = serde_json::json!({
                "evaluated": decision.evaluated, "violations": decision.violations,
                "bundles": bundles,
            });
        }
        if !sensitive.is_empty() {
            reasons.push(format!(
                "sensitive columns asked for: {}",
                sensitive.join(", ")
            ));
        }
        let needed = if restricted || !facts.second.is_empty() {
            2
        } else {
            1
        };
        if restricted {
            reasons.push("restricted data needs two approvers".into());
        }
        let now = stamp(self.clock.now());
        let row = RequestRow {
            id: uuid::Uuid::new_v4().to_string(),
            product: ask.product.clone(),
            port: ask.port.clone(),
            major: facts.major,
            requester: who.name.clone(),
            consumer: ask.consumer.clone(),
            purpose: ask.purpose.trim().to_owned(),
            columns: serde_json::to_string(&ask.columns).unwrap_or_else(|_| "[]".into()),
            days: ask.days,
            state: "pending".into(),
            approvals: "[]".into(),
            needed,
            policy: serde_json::json!({
                "needed_approvals": needed, "sensitive": sensitive, "reasons": reasons,
                "approvers": facts.first, "second_approvers": facts.second,
                "policies": judged,
            })
            .to_string(),
            created_at: now.clone(),
            decided_at: None,
            reason: None,
            revision: 1,
        };
        tx.insert_request(&row).await?;
        tx.append_event(&NewEvent {
            at: now,
            kind: "access.requested".into(),
            subject: ask.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "request": row.id, "port": ask.port, "major": facts.major,
                "domain": facts.domain, "purpose": row.purpose, "columns": ask.columns,
                "days": ask.days, "needed_approvals": needed,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(request_view(row, None))
    }

    /// Approves (perhaps narrower) or denies a pending request. The last approval it needs makes
    /// the grant.
    pub async fn decide_access(
        &self,
        who: &crate::Principal,
        id: &str,
        decision: &AccessDecision,
    ) -> Result<RequestView, AccessError> {
        let mut tx = self.store.write().await?;
        let mut row = tx.request(id).await?.ok_or_else(|| Missing::Request {
            request: id.to_owned(),
        })?;
        let facts = self
            .port_facts(tx.as_mut(), &row.product, &row.port, Some(row.major))
            .await?;
        Self::allow(
            who,
            Action::Lifecycle {
                domain: &facts.domain,
            },
        )?;
        if row.requester.eq_ignore_ascii_case(&who.name) {
            return Err(AccessError::OwnRequest {
                principal: who.name.clone(),
            });
        }
        if row.state != "pending" {
            return Err(AccessError::Decided {
                request: id.to_owned(),
                state: row.state,
            });
        }
        let mut approvals: Vec<serde_json::Value> =
            serde_json::from_str(&row.approvals).unwrap_or_default();
        let me = who.name.to_ascii_lowercase();
        let now = self.clock.now();
        let at = stamp(now);
        let expected = row.revision;
        row.revision += 1;
        let mut grant = None;
        match decision {
            AccessDecision::Deny { reason } => {
                if reason.trim().is_empty() {
                    return Err(AccessError::NoReason);
                }
                row.state = "denied".into();
                row.decided_at = Some(at.clone());
                row.reason = Some(reason.trim().to_owned());
            }
            AccessDecision::Approve { columns, days } => {
                // The approvers a level names (none named: the domain's owners). The first
                // approval is the first level's; later ones the second level's, or the first
                // level's again when the contract names no second level.
                let level = approvals.len();
                let names = if level == 0 || facts.second.is_empty() {
                    &facts.first
                } else {
                    &facts.second
                };
                if !names.is_empty() && !names.contains(&me) {
                    return Err(AccessError::NotAnApprover {
                        product: row.product,
                        port: row.port,
                        approvers: names.clone(),
                        principal: who.name.clone(),
                    });
                }
                if approvals.iter().any(|a| {
                    a["by"]
                        .as_str()
                        .is_some_and(|by| by.eq_ignore_ascii_case(&who.name))
                }) {
                    return Err(AccessError::ApprovedAlready {
                        principal: who.name.clone(),
                    });
                }
                let asked = list(&row.columns);
                let narrowed = match columns {
                    Some(cols) => {
                        let outside: Vec<String> = cols
                            .iter()
                            .filter(|c| {
                                !(if asked.is_empty() {
                                    facts.columns.iter().any(|(n, _)| n == *c)
                                } else {
                                    asked.contains(c)
                                })
                            })
                            .cloned()
                            .collect();
                        if !outside.is_empty() || cols.is_empty() {
                            return Err(AccessError::NotNarrower { columns: outside });
                        }
                        cols.clone()
                    }
                    None => asked.clone(),
                };
                let granted_days = days.unwrap_or(row.days);
                if !(1..=row.days).contains(&granted_days) {
                    return Err(AccessError::BadApprovalDays {
                        asked: row.days,
                        days: granted_days,
                    });
                }
                approvals.push(serde_json::json!({
                    "by": who.name, "at": at, "columns": narrowed, "days": granted_days,
                }));
                // What every approver so far agreed to: the intersection of their columns (an
                // approval of every column leaves the others' as they are). Nothing in common
                // is no approval at all.
                let agreed = agreed_columns(&approvals);
                if agreed.as_ref().is_some_and(Vec::is_empty) {
                    return Err(AccessError::NothingInCommon {
                        request: row.id.clone(),
                        principal: who.name.clone(),
                    });
                }
                if approvals.len() as i64 >= row.needed {
                    let cols = agreed.unwrap_or_default();
                    let span = approvals
                        .iter()
                        .filter_map(|a| a["days"].as_i64())
                        .fold(granted_days, i64::min);
                    let g = GrantRow {
                        id: uuid::Uuid::new_v4().to_string(),
                        request: row.id.clone(),
                        product: row.product.clone(),
                        port: row.port.clone(),
                        major: row.major,
                        grantee: row
                            .consumer
                            .clone()
                            .unwrap_or_else(|| row.requester.clone()),
                        columns: serde_json::to_string(&cols).unwrap_or_else(|_| "[]".into()),
                        granted_by: who.name.clone(),
                        granted_at: at.clone(),
                        expires_at: stamp(now + Duration::days(span)),
                        revoked_at: None,
                        revoked_by: None,
                        reason: None,
                    };
                    tx.insert_grant(&g).await?;
                    row.state = "approved".into();
                    row.decided_at = Some(at.clone());
                    grant = Some(grant_view(g, now));
                }
            }
        }
        row.approvals = serde_json::to_string(&approvals).unwrap_or_else(|_| "[]".into());
        tx.update_request(&row, expected).await?;
        let kind = decision_event(&row.state, grant.is_some());
        tx.append_event(&NewEvent {
            at,
            kind: kind.into(),
            subject: row.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "request": row.id, "port": row.port, "requester": row.requester,
                "reason": row.reason, "approvals": approvals.len(), "needed": row.needed,
                "grant": grant,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(request_view(row, grant))
    }

    /// Revokes a grant at once: the owning domain may, and so may the grantee (giving it up) —
    /// for a consuming product's service identity, the members of its domain.
    pub async fn revoke_access(
        &self,
        who: &crate::Principal,
        grant: &str,
        reason: &str,
    ) -> Result<GrantView, AccessError> {
        let mut tx = self.store.write().await?;
        let row = tx.grant(grant).await?.ok_or_else(|| Missing::Grant {
            grant: grant.to_owned(),
        })?;
        if !row.grantee.eq_ignore_ascii_case(&who.name) && !acts_for(who, &row.grantee) {
            let domain = tx
                .product(&row.product)
                .await?
                .map(|p| p.domain)
                .unwrap_or_default();
            Self::allow(who, Action::Lifecycle { domain: &domain })?;
        }
        let now = self.clock.now();
        let at = stamp(now);
        let reason = if reason.trim().is_empty() {
            "revoked"
        } else {
            reason.trim()
        };
        if !tx.revoke_grant(grant, &at, &who.name, reason).await? {
            return Err(AccessError::Revoked {
                grant: grant.to_owned(),
            });
        }
        // Its credentials die with it (they are checked against the grant on every request
        // anyway; this shows it in their listing).
        let credentials = tx.revoke_credentials_of(grant, &at).await?;
        tx.append_event(&NewEvent {
            at: at.clone(),
            kind: "access.revoked".into(),
            subject: row.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "grant": grant, "port": row.port, "grantee": row.grantee, "reason": reason,
                "credentials": credentials,
            }),
        })
        .await?;
        tx.commit().await?;
        let mut revoked = row;
        revoked.revoked_at = Some(at);
        revoked.revoked_by = Some(who.name.clone());
        revoked.reason = Some(reason.to_owned());
        Ok(grant_view(revoked, now))
    }

    /// Requests: everyone sees their own; a product's owners and admins see its requests; the
    /// members of a consuming product's domain see the requests of a product made for it (they
    /// run it, and a domain's CI files and follows them as any teammate would).
    pub async fn access_requests(
        &self,
        who: &crate::Principal,
        product: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, AccessError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let rows = match product {
            Some(p) => {
                let domain = tx.product(p).await?.map(|p| p.domain).unwrap_or_default();
                let all = tx.requests(product, None, state, 500).await?;
                if who.may(Action::Lifecycle { domain: &domain }) {
                    all
                } else {
                    // Their own (however many the product has), and those for their products.
                    let mut rows = tx.requests(product, Some(&who.name), state, 500).await?;
                    for r in all {
                        let theirs = r.consumer.as_deref().is_some_and(|c| acts_for(who, c));
                        if theirs && !rows.iter().any(|x| x.id == r.id) {
                            rows.push(r);
                        }
                    }
                    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at));
                    rows
                }
            }
            None => {
                let requester = (!who.may(Action::Administer)).then_some(who.name.as_str());
                tx.requests(None, requester, state, 500).await?
            }
        };
        Ok(rows.into_iter().map(|r| request_view(r, None)).collect())
    }

    /// Grants: a grantee sees theirs; a product's owners and admins see its grants; the members
    /// of a consuming product's domain see a product's grants to it.
    pub async fn access_grants(
        &self,
        who: &crate::Principal,
        product: Option<&str>,
    ) -> Result<Vec<GrantView>, AccessError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let rows = match product {
            Some(p) => {
                let domain = tx.product(p).await?.map(|p| p.domain).unwrap_or_default();
                let all = tx.grants(product, None, 500).await?;
                if who.may(Action::Lifecycle { domain: &domain }) {
                    all
                } else {
                    let mut rows = tx.grants(product, Some(&who.name), 500).await?;
                    for g in all {
                        if acts_for(who, &g.grantee) && !rows.iter().any(|x| x.id == g.id) {
                            rows.push(g);
                        }
                    }
                    rows.sort_by(|a, b| b.granted_at.cmp(&a.granted_at));
                    rows
                }
            }
            None => {
                let grantee = (!who.may(Action::Administer)).then_some(who.name.as_str());
                tx.grants(None, grantee, 500).await?
            }
        };
        let now = self.clock.now();
        Ok(rows.into_iter().map(|g| grant_view(g, now)).collect())
    }

    /// The grants of a consuming product's service identity (`domain.product`): what its
    /// pipeline may read. Its domain's members and owners may list them (they run it), as may
    /// admins and the identity itself.
    pub async fn consumer_grants(
        &self,
        who: &crate::Principal,
        consumer: &str,
    ) -> Result<Vec<GrantView>, AccessError> {
        Self::allow(who, Action::Read)?;
        let domain = domain_of(consumer);
        if !who.name.eq_ignore_ascii_case(consumer) && !who.may(Action::Publish { domain }) {
            return Err(AccessError::ConsumerGrants {
                principal: who.name.clone(),
                consumer: consumer.to_owned(),
                domain: domain.to_owned(),
            });
        }
        let mut tx = self.store.read().await?;
        let now = self.clock.now();
        Ok(tx
            .grants(None, Some(consumer), 500)
            .await?
            .into_iter()
            .map(|g| grant_view(g, now))
            .collect())
    }

    /// The grant that lets `grantee` read a port now, if any: the read-time check.
    pub async fn active_grant(
        &self,
        grantee: &str,
        product: &str,
        port: &str,
        major: i64,
    ) -> Result<Option<GrantView>, AccessError> {
        let mut tx = self.store.read().await?;
        let now = self.clock.now();
        Ok(tx
            .grants(Some(product), Some(grantee), i64::MAX)
            .await?
            .into_iter()
            .map(|g| grant_view(g, now))
            .find(|g| g.active && g.port == port && g.major == major))
    }
}

/// An output port a reader may read now, and which columns of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadablePort {
    pub product: String,
    pub domain: String,
    pub port: String,
    pub major: i64,
    /// The table name in the domain's schema: the product's name for its port of the same
    /// name, `<name>__<port>` for others (and `<name>__<port>__v<major>` for older majors).
    pub table: String,
    pub location: String,
    pub delta_version: i64,
    /// The columns shown; absent: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// How the contract says a column is masked when it is not shown (`null`, `hash`,
    /// `redacted`; its `mask` custom property, per column or for the whole port as `*`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub masks: std::collections::BTreeMap<String, String>,
    /// Why: `owner` (the reader's own domain), `admin`, or the grant id.
    pub through: String,
}

/// Who reads: a person or service with a token, or a product's pipeline (its service identity,
/// `domain.product`, run by someone of its domain).
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    Principal(&'a Principal),
    Product {
        id: &'a ProductId,
        run_by: &'a Principal,
    },
}

impl Reader<'_> {
    /// The name grants are made out to, and the audit log records.
    pub fn name(&self) -> &str {
        match self {
            Reader::Principal(p) => &p.name,
            Reader::Product { id, .. } => id.as_str(),
        }
    }

    /// The principal acting (the one running a pipeline).
    pub fn principal(&self) -> &Principal {
        match self {
            Reader::Principal(p) | Reader::Product { run_by: p, .. } => p,
        }
    }
}

/// Why a reader may read a port whole: it is an admin (a person, never a pipeline), or the port is
/// its own domain's. `None`: only through a grant.
fn whole(reader: &Reader<'_>, domain: &str) -> Option<&'static str> {
    match reader {
        Reader::Principal(p) if p.may(Action::Administer) => Some("admin"),
        Reader::Principal(p) if p.may(Action::Publish { domain }) => Some("owner"),
        Reader::Product { id, .. } if id.domain() == domain => Some("owner"),
        _ => None,
    }
}

/// The columns a grant shows: those it names; for a grant of every column, all but the ones the
/// port masks for readers outside its domain (its `masked` custom property). `None`: all.
fn granted_columns(
    grant: &GrantView,
    contract: &serde_json::Value,
    masked: &[String],
) -> Option<Vec<String>> {
    if !grant.columns.is_empty() {
        return Some(grant.columns.clone());
    }
    (!masked.is_empty()).then(|| {
        contract_columns(contract)
            .into_iter()
            .map(|(name, _)| name)
            .filter(|c| !masked.contains(c))
            .collect()
    })
}

/// The event a decision is: `access.denied`, `access.granted` (the last approval it needed), or
/// `access.approved` (a first of two).
pub fn decision_event(state: &str, granted: bool) -> &'static str {
    match (state, granted) {
        ("denied", _) => "access.denied",
        (_, true) => "access.granted",
        _ => "access.approved",
    }
}

/// The columns (at most one `None`, "every column") every approval agreed to: the intersection
/// of their column lists, an empty list standing for every column.
fn agreed_columns(approvals: &[serde_json::Value]) -> Option<Vec<String>> {
    let mut agreed: Option<Vec<String>> = None;
    for a in approvals {
        let theirs: Vec<String> = serde_json::from_value(a["columns"].clone()).unwrap_or_default();
        if theirs.is_empty() {
            continue;
        }
        agreed = Some(match agreed {
            None => theirs,
            Some(cols) => cols.into_iter().filter(|c| theirs.contains(c)).collect(),
        });
    }
    agreed
}

/// The product's `dataClassification` custom property, lower case.
fn product_classification(descriptor: &serde_json::Value) -> Option<String> {
    descriptor["customProperties"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|cp| cp["property"] == props::DATA_CLASSIFICATION)
        .and_then(|cp| cp["value"].as_str())
        .map(str::to_ascii_lowercase)
}

/// Each top-level column of a contract with the classification access decisions use: the
/// strictest of its own and its nested fields' (`properties`, `items`), or, where none of them
/// says, the product's (`public` when the product says nothing either).
fn classified_columns(
    contract: &serde_json::Value,
    product: Option<String>,
) -> Vec<(String, String)> {
    fn strictest(node: &serde_json::Value, found: &mut Option<String>) {
        if let Some(c) = node["classification"].as_str() {
            let c = c.to_ascii_lowercase();
            let stricter = found
                .as_deref()
                .is_none_or(|f| Sensitivity::of(Some(&c)) > Sensitivity::of(Some(f)));
            if stricter {
                *found = Some(c);
            }
        }
        for child in node["properties"].as_array().into_iter().flatten() {
            strictest(child, found);
        }
        if !node["items"].is_null() {
            strictest(&node["items"], found);
        }
    }
    let mut columns = Vec::new();
    for table in contract["schema"].as_array().into_iter().flatten() {
        for prop in table["properties"].as_array().into_iter().flatten() {
            if let Some(name) = prop["name"].as_str() {
                let mut found = None;
                strictest(prop, &mut found);
                let class = found
                    .or_else(|| product.clone())
                    .unwrap_or_else(|| "public".to_owned());
                columns.push((name.to_owned(), class));
            }
        }
    }
    columns
}

/// Each column of a contract, with its classification (lower case; `public` when none).
fn contract_columns(contract: &serde_json::Value) -> Vec<(String, String)> {
    let mut columns = Vec::new();
    for table in contract["schema"].as_array().into_iter().flatten() {
        for prop in table["properties"].as_array().into_iter().flatten() {
            if let Some(name) = prop["name"].as_str() {
                let class = prop["classification"]
                    .as_str()
                    .unwrap_or("public")
                    .to_ascii_lowercase();
                columns.push((name.to_owned(), class));
            }
        }
    }
    columns
}

/// A port's contract as published with `version` (`null` when there is none).
async fn port_contract(
    tx: &mut dyn Tx,
    product: &str,
    version: &str,
    port: &str,
) -> Result<serde_json::Value, AccessError> {
    Ok(tx
        .ports(product, version)
        .await?
        .into_iter()
        .find(|p| p.port == port)
        .and_then(|p| serde_json::from_str(&p.contract).ok())
        .unwrap_or_default())
}

/// The columns a port masks for readers outside its domain: the output port's `masked` custom
/// property in the product descriptor.
async fn port_masked(
    tx: &mut dyn Tx,
    product: &str,
    version: &str,
    port: &str,
) -> Result<Vec<String>, AccessError> {
    let mut hidden = Vec::new();
    if let Some(row) = tx.version(product, version).await? {
        let descriptor: serde_json::Value =
            serde_json::from_str(&row.descriptor).unwrap_or_default();
        for p in descriptor["outputPorts"].as_array().into_iter().flatten() {
            if p["name"] != port {
                continue;
            }
            for cp in p["customProperties"].as_array().into_iter().flatten() {
                if cp["property"] == props::MASKED {
                    hidden.extend(
                        cp["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_str().map(str::to_owned)),
                    );
                }
            }
        }
    }
    Ok(hidden)
}

/// The `mask` custom properties of a contract: per column, and `*` for the whole contract.
fn masks_of(contract: &serde_json::Value) -> BTreeMap<String, String> {
    let mask = |node: &serde_json::Value| {
        node["customProperties"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|cp| cp["property"] == props::MASK)
            .and_then(|cp| cp["value"].as_str())
            .map(str::to_owned)
    };
    let mut out = BTreeMap::new();
    if let Some(m) = mask(contract) {
        out.insert("*".to_owned(), m);
    }
    for table in contract["schema"].as_array().into_iter().flatten() {
        for prop in table["properties"].as_array().into_iter().flatten() {
            if let (Some(name), Some(m)) = (prop["name"].as_str(), mask(prop)) {
                out.insert(name.to_owned(), m);
            }
        }
    }
    out
}

impl Catalog {
    /// Every output port snapshot `reader` may read now, and which columns: the one decision on
    /// reads, for queries (HTTP, Flight SQL, the CLI) and pipelines alike. A person reads their
    /// own domain's ports whole (owners, members), admins everything; a pipeline its own domain's;
    /// anything else only through an active grant made out to the reader, showing the grant's
    /// columns (a grant of all still hides what the port masks), the rest masked as the contract
    /// says.
    pub async fn readable_ports(
        &self,
        reader: Reader<'_>,
    ) -> Result<Vec<ReadablePort>, AccessError> {
        Self::allow(reader.principal(), Action::ReadData)?;
        if let Reader::Product { id, run_by } = reader {
            // A pipeline is run by people of its domain.
            Self::allow(
                run_by,
                Action::Publish {
                    domain: id.domain(),
                },
            )?;
        }
        let mut tx = self.store.read().await?;
        let now = self.clock.now();
        // Every grant the reader holds: a cap here would drop rights silently.
        let grants: Vec<GrantView> = tx
            .grants(None, Some(reader.name()), i64::MAX)
            .await?
            .into_iter()
            .map(|g| grant_view(g, now))
            .filter(|g| g.active)
            // A credential reads through its own grant only.
            .filter(|g| match &reader.principal().grant {
                Some(only) => *only == g.id,
                None => true,
            })
            .collect();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = tx
                .products(&crate::store::ProductQuery {
                    domain: None,
                    after: after.clone(),
                    limit: 500,
                })
                .await?;
            let Some(last) = page.last().map(|p| p.id.clone()) else {
                break;
            };
            for product in &page {
                // Rows whose id does not parse were never published by this catalog's rules.
                let Ok(id) = ProductId::parse(&product.id) else {
                    continue;
                };
                let snapshots = tx.snapshots(&product.id).await?;
                // Each port's newest major keeps the plain table name.
                let mut newest: HashMap<String, i64> = HashMap::new();
                for s in &snapshots {
                    let m = newest.entry(s.port.clone()).or_insert(s.major);
                    *m = (*m).max(s.major);
                }
                for s in snapshots {
                    let (columns, masks, through) = match whole(&reader, &product.domain) {
                        Some(why) => (None, BTreeMap::new(), why.to_owned()),
                        None => {
                            let Some(g) = grants.iter().find(|g| {
                                g.product == s.product && g.port == s.port && g.major == s.major
                            }) else {
                                continue;
                            };
                            let contract =
                                port_contract(tx.as_mut(), &s.product, &s.version, &s.port).await?;
                            let masked =
                                port_masked(tx.as_mut(), &s.product, &s.version, &s.port).await?;
                            let columns = granted_columns(g, &contract, &masked);
                            // Masking methods matter only where something is masked.
                            let masks = if columns.is_some() {
                                masks_of(&contract)
                            } else {
                                BTreeMap::new()
                            };
                            (columns, masks, g.id.clone())
                        }
                    };
                    let name = TableName::of(
                        &id,
                        &s.port,
                        u64::try_from(s.major).unwrap_or_default(),
                        newest.get(&s.port) == Some(&s.major),
                    );
                    out.push(ReadablePort {
                        product: s.product.clone(),
                        domain: product.domain.clone(),
                        port: s.port.clone(),
                        major: s.major,
                        table: name.table,
                        location: s.location.clone(),
                        delta_version: s.delta_version,
                        columns,
                        masks,
                        through,
                    });
                }
            }
            after = Some(last);
        }
        Ok(out)
    }
}

/// What a port's contract says of it and its columns, for the catalogs SQL tools browse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDescription {
    pub domain: String,
    /// The table name readers use (as in [`ReadablePort::table`]).
    pub table: String,
    /// The contract's description of the port's table (its first schema object), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Each top-level column's description, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

/// A description as one line of text (ODCS descriptions may be a string or `{purpose, usage}`).
fn description_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Object(o) => {
            let parts: Vec<String> = ["purpose", "usage", "limitations"]
                .iter()
                .filter_map(|k| o.get(*k).and_then(|v| v.as_str()))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

impl Catalog {
    /// The contract descriptions of `ports`, as a reader was given them by
    /// [`Catalog::readable_ports`] (so nothing here is shown that the reader may not read):
    /// the contract of the version each snapshot was written by.
    pub async fn port_descriptions(
        &self,
        ports: &[ReadablePort],
    ) -> Result<Vec<PortDescription>, AccessError> {
        let mut tx = self.store.read().await?;
        let mut out = Vec::with_capacity(ports.len());
        let mut snapshots: HashMap<String, Vec<crate::store::SnapshotRow>> = HashMap::new();
        for p in ports {
            if !snapshots.contains_key(&p.product) {
                let rows = tx.snapshots(&p.product).await?;
                snapshots.insert(p.product.clone(), rows);
            }
            let Some(version) = snapshots[&p.product]
                .iter()
                .find(|s| s.port == p.port && s.major == p.major)
                .map(|s| s.version.clone())
            else {
                continue;
            };
            let contract = port_contract(tx.as_mut(), &p.product, &version, &p.port).await?;
            let table = &contract["schema"][0];
            let mut columns = BTreeMap::new();
            for prop in table["properties"].as_array().into_iter().flatten() {
                if let (Some(name), Some(text)) = (
                    prop["name"].as_str(),
                    description_text(&prop["description"]),
                ) {
                    columns.insert(name.to_owned(), text);
                }
            }
            out.push(PortDescription {
                domain: p.domain.clone(),
                table: p.table.clone(),
                description: description_text(&table["description"])
                    .or_else(|| description_text(&contract["description"])),
                columns,
            });
        }
        Ok(out)
    }
}

/// Whether `who` acts for `grantee` as a consuming product's service identity: the grantee is a
/// product id (`domain.product`, each snake_case — never a person's name such as
/// `sales.ops@corp.com`) and `who` is a member or owner of its domain (who run its pipeline), or
/// an admin.
pub(crate) fn acts_for(who: &crate::Principal, grantee: &str) -> bool {
    ProductId::parse(grantee).is_ok()
        && who.may(Action::Publish {
            domain: domain_of(grantee),
        })
}
