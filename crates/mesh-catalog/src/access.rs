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

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Action;
use crate::catalog::{Catalog, CatalogError, stamp};
use crate::store::{GrantRow, NewEvent, RequestRow, Tx};

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

fn grant_view(row: GrantRow, now: DateTime<Utc>) -> GrantView {
    let active = row.revoked_at.is_none()
        && DateTime::parse_from_rfc3339(&row.expires_at).is_ok_and(|at| at > now);
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
    columns: Vec<(String, String)>,
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
    ) -> Result<PortFacts, CatalogError> {
        let row = tx
            .product(product)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("product {product}")))?;
        let versions = tx.versions(product).await?;
        let version = versions
            .iter()
            .filter(|v| major.is_none_or(|m| v.major == m) && v.status != "retired")
            .max_by(|a, b| {
                let parse = |v: &str| semver::Version::parse(v).ok();
                parse(&a.version).cmp(&parse(&b.version))
            })
            .ok_or_else(|| {
                CatalogError::NotFound(format!(
                    "a served version of {product}{}",
                    major.map(|m| format!(" in major {m}")).unwrap_or_default()
                ))
            })?;
        let ports = tx.ports(product, &version.version).await?;
        let found = ports.iter().find(|p| p.port == port).ok_or_else(|| {
            CatalogError::NotFound(format!(
                "output port `{port}` of {product}@{}",
                version.version
            ))
        })?;
        let contract: serde_json::Value = serde_json::from_str(&found.contract).unwrap_or_default();
        let columns = contract_columns(&contract);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for role in contract["roles"].as_array().into_iter().flatten() {
            first.extend(names(role["firstLevelApprovers"].as_str()));
            second.extend(names(role["secondLevelApprovers"].as_str()));
        }
        Ok(PortFacts {
            domain: row.domain,
            major: version.major,
            columns,
            first,
            second,
        })
    }

    /// Asks for access to an output port; the owning domain is notified through the event log.
    pub async fn request_access(
        &self,
        who: &crate::Principal,
        ask: &AccessAsk,
    ) -> Result<RequestView, CatalogError> {
        Self::allow(who, Action::Read)?;
        if ask.purpose.trim().is_empty() {
            return Err(CatalogError::BadRequest(
                "say what the data is for (purpose)".into(),
            ));
        }
        if !(1..=365).contains(&ask.days) {
            return Err(CatalogError::BadRequest(format!(
                "access lasts 1 to 365 days, not {}",
                ask.days
            )));
        }
        let mut tx = self.store.write().await?;
        let facts = self
            .port_facts(tx.as_mut(), &ask.product, &ask.port, ask.major)
            .await?;
        let unknown: Vec<&String> = ask
            .columns
            .iter()
            .filter(|c| !facts.columns.iter().any(|(n, _)| n == *c))
            .collect();
        if !unknown.is_empty() {
            return Err(CatalogError::BadRequest(format!(
                "{}.{} has no column {}",
                ask.product,
                ask.port,
                unknown
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // Governance on the request: what the columns asked for need.
        let asked: Vec<&(String, String)> = facts
            .columns
            .iter()
            .filter(|(n, _)| ask.columns.is_empty() || ask.columns.contains(n))
            .collect();
        let sensitive: Vec<&str> = asked
            .iter()
            .filter(|(_, c)| matches!(c.as_str(), "confidential" | "restricted"))
            .map(|(n, _)| n.as_str())
            .collect();
        let restricted = asked.iter().any(|(_, c)| c == "restricted");
        if let Some(consumer) = &ask.consumer {
            let domain = consumer.split('.').next().unwrap_or_default();
            if !who.may(Action::Publish { domain }) {
                return Err(CatalogError::Forbidden(format!(
                    "{} may not ask for {consumer}: only people of its domain `{domain}` may",
                    who.name
                )));
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
            let decision = policies
                .evaluate_access(&input)
                .map_err(|e| CatalogError::BadRequest(e.to_string()))?;
            if decision.blocked() {
                return Err(CatalogError::PolicyViolation {
                    product: format!("the request for {}.{}", ask.product, ask.port),
                    version: format!("v{}", facts.major),
                    violations: decision.violations,
                    bundles,
                });
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
    ) -> Result<RequestView, CatalogError> {
        let mut tx = self.store.write().await?;
        let mut row = tx
            .request(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("access request {id}")))?;
        let facts = self
            .port_facts(tx.as_mut(), &row.product, &row.port, Some(row.major))
            .await?;
        Self::allow(
            who,
            Action::Lifecycle {
                domain: &facts.domain,
            },
        )?;
        if row.requester == who.name {
            return Err(CatalogError::Forbidden(format!(
                "{} asked for this access and may not decide on it",
                who.name
            )));
        }
        if row.state != "pending" {
            return Err(CatalogError::Lifecycle(format!(
                "access request {id} is already {}",
                row.state
            )));
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
                    return Err(CatalogError::BadRequest("say why access is denied".into()));
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
                    return Err(CatalogError::Forbidden(format!(
                        "the contract of {}.{} names its approvers ({}); {} is not one of them",
                        row.product,
                        row.port,
                        names.join(", "),
                        who.name
                    )));
                }
                if approvals.iter().any(|a| a["by"] == who.name) {
                    return Err(CatalogError::Lifecycle(format!(
                        "{} has approved this request already; it needs another approver",
                        who.name
                    )));
                }
                let asked = list(&row.columns);
                let narrowed = match columns {
                    Some(cols) => {
                        let outside: Vec<&String> = cols
                            .iter()
                            .filter(|c| {
                                !(if asked.is_empty() {
                                    facts.columns.iter().any(|(n, _)| n == *c)
                                } else {
                                    asked.contains(c)
                                })
                            })
                            .collect();
                        if !outside.is_empty() || cols.is_empty() {
                            return Err(CatalogError::BadRequest(format!(
                                "an approval can only narrow what was asked for; not asked for: {}",
                                outside
                                    .iter()
                                    .map(|c| format!("`{c}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )));
                        }
                        cols.clone()
                    }
                    None => asked.clone(),
                };
                let granted_days = days.unwrap_or(row.days);
                if !(1..=row.days).contains(&granted_days) {
                    return Err(CatalogError::BadRequest(format!(
                        "an approval lasts 1 to {} days (what was asked for), not {granted_days}",
                        row.days
                    )));
                }
                approvals.push(serde_json::json!({
                    "by": who.name, "at": at, "columns": narrowed, "days": granted_days,
                }));
                if approvals.len() as i64 >= row.needed {
                    // The grant is what every approver agreed to: the narrowest of them.
                    let mut cols = narrowed;
                    let mut span = granted_days;
                    for a in &approvals {
                        let theirs: Vec<String> =
                            serde_json::from_value(a["columns"].clone()).unwrap_or_default();
                        if !theirs.is_empty() {
                            cols = if cols.is_empty() {
                                theirs
                            } else {
                                cols.into_iter().filter(|c| theirs.contains(c)).collect()
                            };
                        }
                        span = span.min(a["days"].as_i64().unwrap_or(span));
                    }
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

    /// Revokes a grant at once: the owning domain may, and so may the grantee (giving it up).
    pub async fn revoke_access(
        &self,
        who: &crate::Principal,
        grant: &str,
        reason: &str,
    ) -> Result<GrantView, CatalogError> {
        let mut tx = self.store.write().await?;
        let row = tx
            .grant(grant)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("grant {grant}")))?;
        if row.grantee != who.name {
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
            return Err(CatalogError::Lifecycle(format!(
                "grant {grant} is already revoked"
            )));
        }
        tx.append_event(&NewEvent {
            at: at.clone(),
            kind: "access.revoked".into(),
            subject: row.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "grant": grant, "port": row.port, "grantee": row.grantee, "reason": reason,
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

    /// Requests: everyone sees their own; a product's owners and admins see its requests.
    pub async fn access_requests(
        &self,
        who: &crate::Principal,
        product: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let mine_only = match product {
            Some(p) => {
                let domain = tx.product(p).await?.map(|p| p.domain).unwrap_or_default();
                !who.may(Action::Lifecycle { domain: &domain })
            }
            None => !who.may(Action::Administer),
        };
        let requester = mine_only.then_some(who.name.as_str());
        let rows = tx.requests(product, requester, state, 500).await?;
        Ok(rows.into_iter().map(|r| request_view(r, None)).collect())
    }

    /// Grants: a grantee sees theirs; a product's owners and admins see its grants.
    pub async fn access_grants(
        &self,
        who: &crate::Principal,
        product: Option<&str>,
    ) -> Result<Vec<GrantView>, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let mine_only = match product {
            Some(p) => {
                let domain = tx.product(p).await?.map(|p| p.domain).unwrap_or_default();
                !who.may(Action::Lifecycle { domain: &domain })
            }
            None => !who.may(Action::Administer),
        };
        let grantee = mine_only.then_some(who.name.as_str());
        let now = self.clock.now();
        Ok(tx
            .grants(product, grantee, 500)
            .await?
            .into_iter()
            .map(|g| grant_view(g, now))
            .collect())
    }

    /// The grants of a consuming product's service identity (`domain.product`): what its
    /// pipeline may read. Its domain's members and owners may list them (they run it), as may
    /// admins and the identity itself.
    pub async fn consumer_grants(
        &self,
        who: &crate::Principal,
        consumer: &str,
    ) -> Result<Vec<GrantView>, CatalogError> {
        Self::allow(who, Action::Read)?;
        let domain = consumer.split('.').next().unwrap_or_default();
        if who.name != consumer && !who.may(Action::Publish { domain }) {
            return Err(CatalogError::Forbidden(format!(
                "{} may not list the grants of {consumer}: only its domain `{domain}` runs it",
                who.name
            )));
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
    ) -> Result<Option<GrantView>, CatalogError> {
        let mut tx = self.store.read().await?;
        let now = self.clock.now();
        Ok(tx
            .grants(Some(product), Some(grantee), 500)
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

/// The event a decision is: `access.denied`, `access.granted` (the last approval it needed), or
/// `access.approved` (a first of two).
pub fn decision_event(state: &str, granted: bool) -> &'static str {
    match (state, granted) {
        ("denied", _) => "access.denied",
        (_, true) => "access.granted",
        _ => "access.approved",
    }
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
) -> Result<serde_json::Value, CatalogError> {
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
) -> Result<Vec<String>, CatalogError> {
    let mut hidden = Vec::new();
    if let Some(row) = tx.version(product, version).await? {
        let descriptor: serde_json::Value =
            serde_json::from_str(&row.descriptor).unwrap_or_default();
        for p in descriptor["outputPorts"].as_array().into_iter().flatten() {
            if p["name"] != port {
                continue;
            }
            for cp in p["customProperties"].as_array().into_iter().flatten() {
                if cp["property"] == "masked" {
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
fn masks_of(contract: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    let mask = |node: &serde_json::Value| {
        node["customProperties"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|cp| cp["property"] == "mask")
            .and_then(|cp| cp["value"].as_str())
            .map(str::to_owned)
    };
    let mut out = std::collections::BTreeMap::new();
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
    /// Every output port snapshot `who` may read now: their own domain's (owners and members),
    /// everything for admins, and what their active grants cover, with the grant's columns.
    pub async fn readable_ports(
        &self,
        who: &crate::Principal,
    ) -> Result<Vec<ReadablePort>, CatalogError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let now = self.clock.now();
        let grants: Vec<GrantView> = tx
            .grants(None, Some(&who.name), 1000)
            .await?
            .into_iter()
            .map(|g| grant_view(g, now))
            .filter(|g| g.active)
            .collect();
        let admin = who.may(Action::Administer);
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
                let name = product
                    .id
                    .rsplit('.')
                    .next()
                    .unwrap_or(&product.id)
                    .to_owned();
                let own = who.may(Action::Publish {
                    domain: &product.domain,
                });
                let snapshots = tx.snapshots(&product.id).await?;
                // Each port's newest major keeps the plain name; older ones get `__v<major>`.
                let mut newest: std::collections::HashMap<String, i64> = Default::default();
                for s in &snapshots {
                    let m = newest.entry(s.port.clone()).or_insert(s.major);
                    *m = (*m).max(s.major);
                }
                for s in snapshots {
                    let grant = grants
                        .iter()
                        .find(|g| g.product == s.product && g.port == s.port && g.major == s.major);
                    let (columns, masks, through) = if admin {
                        (None, Default::default(), "admin".to_owned())
                    } else if own {
                        (None, Default::default(), "owner".to_owned())
                    } else if let Some(g) = grant {
                        let contract =
                            port_contract(tx.as_mut(), &s.product, &s.version, &s.port).await?;
                        // A grant of every column still leaves masked what the port masks
                        // (its `masked` custom property); a grant naming a column shows it.
                        let cols = if g.columns.is_empty() {
                            let hidden =
                                port_masked(tx.as_mut(), &s.product, &s.version, &s.port).await?;
                            (!hidden.is_empty()).then(|| {
                                contract_columns(&contract)
                                    .into_iter()
                                    .map(|(name, _)| name)
                                    .filter(|c| !hidden.contains(c))
                                    .collect()
                            })
                        } else {
                            Some(g.columns.clone())
                        };
                        // Masking methods matter only where something is masked.
                        let masks = if cols.is_some() {
                            masks_of(&contract)
                        } else {
                            Default::default()
                        };
                        (cols, masks, g.id.clone())
                    } else {
                        continue;
                    };
                    let mut table = if s.port == name {
                        name.clone()
                    } else {
                        format!("{name}__{}", s.port)
                    };
                    if newest.get(&s.port) != Some(&s.major) {
                        table.push_str(&format!("__v{}", s.major));
                    }
                    out.push(ReadablePort {
                        product: s.product.clone(),
                        domain: product.domain.clone(),
                        port: s.port.clone(),
                        major: s.major,
                        table,
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

    /// Records a read in the audit log: who read which ports, how many rows, and whether the
    /// reader took the whole result (`complete`) or stopped early.
    pub async fn record_read(
        &self,
        who: &crate::Principal,
        ports: &[ReadablePort],
        read: &ReadOutcome<'_>,
        sql: &str,
    ) -> Result<(), CatalogError> {
        let mut tx = self.store.write().await?;
        let at = stamp(self.clock.now());
        let rows = i64::try_from(read.rows).unwrap_or(i64::MAX);
        let mut observed = Vec::with_capacity(ports.len());
        for p in ports {
            let mut payload = serde_json::json!({
                "port": p.port, "major": p.major, "through": p.through,
                "masked": p.columns.is_some(), "rows": read.rows, "complete": read.complete,
                "query": sql, "latency_ms": read.latency_ms,
            });
            if let Some(e) = read.error {
                payload["error"] = e.into();
            }
            tx.append_event(&NewEvent {
                at: at.clone(),
                kind: "access.read".into(),
                subject: p.product.clone(),
                actor: who.name.clone(),
                payload,
            })
            .await?;
            tx.record_usage(&crate::store::UsageRow {
                reader: who.name.clone(),
                product: p.product.clone(),
                port: p.port.clone(),
                major: p.major,
                reads: 1,
                rows_read: rows,
                first_at: at.clone(),
                last_at: at.clone(),
            })
            .await?;
            observed.push(crate::store::ObservationRow {
                product: p.product.clone(),
                port: p.port.clone(),
                major: p.major,
                at: at.clone(),
                kind: "read".into(),
                latency_ms: read.latency_ms,
                rows_read: Some(rows),
                error: read.error.map(str::to_owned),
            });
        }
        tx.insert_observations(&observed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records reads refused: `tables` were named by `who`'s query but are not theirs to read
    /// (to them they do not exist). The subject is the product the name would be.
    pub async fn record_denied_read(
        &self,
        who: &crate::Principal,
        tables: &[String],
        sql: &str,
    ) -> Result<(), CatalogError> {
        if tables.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write().await?;
        let at = stamp(self.clock.now());
        for table in tables {
            let name = table.strip_prefix("mesh.").unwrap_or(table);
            let product = name.split("__").next().unwrap_or(name).to_owned();
            tx.append_event(&NewEvent {
                at: at.clone(),
                kind: "access.read_denied".into(),
                subject: product,
                actor: who.name.clone(),
                payload: serde_json::json!({ "table": name, "query": sql }),
            })
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Who has read a product's output ports, how often and how much, most recent first: for
    /// the people of its domain (members, owners) and admins.
    pub async fn usage(
        &self,
        who: &crate::Principal,
        product: &str,
    ) -> Result<Vec<crate::store::UsageRow>, CatalogError> {
        let mut tx = self.store.read().await?;
        let row = tx
            .product(product)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("data product `{product}`")))?;
        Self::allow(
            who,
            Action::Publish {
                domain: &row.domain,
            },
        )?;
        Ok(tx.usage(Some(product), None, 1000).await?)
    }
}

/// How a governed read went: for the audit log, usage, and the SLA monitor (availability, error
/// rate and latency of the ports it read).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOutcome<'a> {
    pub rows: u64,
    /// Every row was sent (false when the reader went away, or it failed).
    pub complete: bool,
    /// From the query's arrival to its last row (or failure).
    pub latency_ms: f64,
    /// Why reading the data failed (the ports' fault, not the caller's: a bad query is not
    /// recorded here).
    pub error: Option<&'a str>,
}
