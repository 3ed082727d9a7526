//! Subscriptions: who hears of what. A domain's, a team's or a product's people subscribe a
//! webhook, a Slack-compatible incoming webhook or an e-mail address to kinds of notifications;
//! the servers' dispatcher turns the catalog's events into notifications and finds their
//! recipients here ([`Catalog::recipients`]). A notice about a product goes to its own
//! subscribers and, for deprecations, retirements and grants, to those of its consumers.

use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::store::{NewEvent, StoreError, SubscriptionRow, Tx};

/// What one can subscribe to.
pub const KINDS: [&str; 10] = [
    "run.failed",
    "run.recovered",
    "sla.violated",
    "sla.recovered",
    "access.requested",
    "access.decided",
    "access.revoked",
    "grant.expiring",
    "product.deprecated",
    "product.retired",
];

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for SubscriptionError {
    fn code(&self) -> ErrorCode {
        match self {
            SubscriptionError::Denied(_) => ErrorCode::Forbidden,
            SubscriptionError::NotFound(_) => ErrorCode::NotFound,
            SubscriptionError::Invalid(_) => ErrorCode::BadRequest,
            SubscriptionError::Store(e) => e.code(),
        }
    }
}

/// A new subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// `domain`, `team` or `product`.
    pub scope: String,
    /// The domain, the team or the product id (`domain.product`).
    pub subject: String,
    /// `webhook` (the event as JSON), `slack` (`{"text": ...}`, for Slack, Mattermost, Teams
    /// workflows) or `email` (through the server's SMTP relay).
    pub channel: String,
    /// An http(s) URL, or an e-mail address.
    pub target: String,
    /// The kinds to send; empty: all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A subscription as the catalog has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    pub id: String,
    pub scope: String,
    pub subject: String,
    pub channel: String,
    pub target: String,
    /// The kinds sent; `["*"]`: all.
    pub events: Vec<String>,
    pub created_by: String,
    pub created_at: String,
}

impl Subscription {
    fn from_row(row: SubscriptionRow) -> Subscription {
        Subscription {
            events: row.events.split(',').map(str::to_owned).collect(),
            id: row.id,
            scope: row.scope,
            subject: row.subject,
            channel: row.channel,
            target: row.target,
            created_by: row.created_by,
            created_at: row.created_at,
        }
    }

    /// Whether it wants notifications of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind)
    }
}

fn invalid(message: impl Into<String>) -> SubscriptionError {
    SubscriptionError::Invalid(message.into())
}

/// A target's problem for its channel, if it has one.
fn check_target(channel: &str, target: &str) -> Result<(), SubscriptionError> {
    if target.len() > 2048 || target.chars().any(char::is_control) {
        return Err(invalid(
            "the target is at most 2048 characters, without control characters",
        ));
    }
    match channel {
        "webhook" | "slack" => {
            let rest = target
                .strip_prefix("https://")
                .or_else(|| target.strip_prefix("http://"))
                .ok_or_else(|| {
                    invalid(format!(
                        "a {channel} target is an http(s) URL, not `{target}`"
                    ))
                })?;
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.is_empty() || host.contains('@') || target.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "`{target}` is not an http(s) URL with a host (and no user:password@)"
                )));
            }
            Ok(())
        }
        "email" => {
            let (local, domain) = target
                .split_once('@')
                .ok_or_else(|| invalid(format!("`{target}` is not an e-mail address")))?;
            let bad = |c: char| c.is_whitespace() || "<>,;:\"()[]\\@".contains(c);
            if local.is_empty()
                || domain.is_empty()
                || target.len() > 254
                || local.chars().any(bad)
                || domain.chars().any(bad)
                || !domain.contains('.')
            {
                return Err(invalid(format!("`{target}` is not an e-mail address")));
            }
            Ok(())
        }
        other => Err(invalid(format!(
            "channel `{other}`: one of webhook, slack, email"
        ))),
    }
}

impl Catalog {
    /// The domain that decides on subscriptions to `scope`/`subject` (for a product, its
    /// domain; for a team, the team's).
    async fn subscription_domain(
        tx: &mut dyn Tx,
        scope: &str,
        subject: &str,
    ) -> Result<String, SubscriptionError> {
        match scope {
            "domain" => tx
                .domain(subject)
                .await?
                .map(|d| d.name)
                .ok_or_else(|| invalid(format!("no domain `{subject}`"))),
            "team" => tx
                .team(subject)
                .await?
                .map(|t| t.domain)
                .ok_or_else(|| invalid(format!("no team `{subject}`"))),
            "product" => tx.product(subject).await?.map(|p| p.domain).ok_or_else(|| {
                Missing::Product {
                    product: subject.to_owned(),
                }
                .into()
            }),
            other => Err(invalid(format!(
                "scope `{other}`: one of domain, team, product"
            ))),
        }
    }

    /// Subscribes a target to a domain's, a team's or a product's notifications: for the
    /// people of the domain (owners and members) and admins. Audited.
    pub async fn subscribe(
        &self,
        who: &Principal,
        new: &NewSubscription,
    ) -> Result<Subscription, SubscriptionError> {
        check_target(&new.channel, &new.target)?;
        if new.events.len() > KINDS.len() {
            return Err(invalid("at most one of each kind of event"));
        }
        for e in &new.events {
            if e != "*" && !KINDS.contains(&e.as_str()) {
                return Err(invalid(format!("event `{e}`: one of {}", KINDS.join(", "))));
            }
        }
        let mut tx = self.store.write().await?;
        let domain = Self::subscription_domain(tx.as_mut(), &new.scope, &new.subject).await?;
        Self::allow(who, Action::Publish { domain: &domain })?;
        let mut events: Vec<String> = new.events.clone();
        events.sort();
        events.dedup();
        if events.is_empty() || events.iter().any(|e| e == "*") {
            events = vec!["*".to_owned()];
        }
        let row = SubscriptionRow {
            id: uuid::Uuid::new_v4().to_string(),
            scope: new.scope.clone(),
            subject: new.subject.clone(),
            channel: new.channel.clone(),
            target: new.target.clone(),
            events: events.join(","),
            created_by: who.name.clone(),
            created_at: stamp(self.clock.now()),
        };
        tx.insert_subscription(&row).await?;
        tx.append_event(&NewEvent {
            at: row.created_at.clone(),
            kind: "subscription.added".into(),
            subject: format!("{}:{}", row.scope, row.subject),
            actor: who.name.clone(),
            // The target may carry a secret (a Slack URL does): the log names the channel.
            payload: serde_json::json!({ "id": row.id, "channel": row.channel, "events": events }),
        })
        .await?;
        tx.commit().await?;
        Ok(Subscription::from_row(row))
    }

    /// Removes a subscription (the people of its domain, admins); the one removed. Audited.
    pub async fn unsubscribe(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Subscription, SubscriptionError> {
        let mut tx = self.store.write().await?;
        let missing = || Missing::Subscription {
            subscription: id.to_owned(),
        };
        let row = tx.subscription(id).await?.ok_or_else(missing)?;
        let domain = Self::subscription_domain(tx.as_mut(), &row.scope, &row.subject)
            .await
            .unwrap_or_default();
        Self::allow(who, Action::Publish { domain: &domain })?;
        if !tx.delete_subscription(id).await? {
            return Err(missing().into());
        }
        tx.append_event(&NewEvent {
            at: stamp(self.clock.now()),
            kind: "subscription.removed".into(),
            subject: format!("{}:{}", row.scope, row.subject),
            actor: who.name.clone(),
            payload: serde_json::json!({ "id": row.id, "channel": row.channel }),
        })
        .await?;
        tx.commit().await?;
        Ok(Subscription::from_row(row))
    }

    /// The subscriptions `who` may see (their targets can be secrets): admins all, others those
    /// of their domains' subjects.
    pub async fn subscriptions(
        &self,
        who: &Principal,
    ) -> Result<Vec<Subscription>, SubscriptionError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let rows = tx.subscriptions(None).await?;
        let mut out = Vec::new();
        for row in rows {
            let domain = Self::subscription_domain(tx.as_mut(), &row.scope, &row.subject)
                .await
                .unwrap_or_default();
            if who.may(Action::Publish { domain: &domain }) {
                out.push(Subscription::from_row(row));
            }
        }
        Ok(out)
    }

    /// Who hears of a `kind` notification about `products`: the subscriptions to each product,
    /// its domain and its team that want `kind`, once each. For the dispatcher (no principal).
    pub async fn recipients(
        &self,
        kind: &str,
        products: &[String],
    ) -> Result<Vec<Subscription>, StoreError> {
        let mut tx = self.store.read().await?;
        let mut subjects = Vec::new();
        for id in products {
            let Some(row) = tx.product(id).await? else {
                continue;
            };
            subjects.push(("product".to_owned(), row.id.clone()));
            subjects.push(("domain".to_owned(), row.domain.clone()));
            if let Some(team) = row.team {
                subjects.push(("team".to_owned(), team));
            }
        }
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<Subscription> = tx
            .subscriptions(Some(&subjects))
            .await?
            .into_iter()
            .map(Subscription::from_row)
            .filter(|s| s.wants(kind))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    /// The products holding a live grant to read `product` (grantees that are products).
    pub async fn grantee_products(&self, product: &str) -> Result<Vec<String>, StoreError> {
        let now = stamp(self.clock.now());
        let mut tx = self.store.read().await?;
        let grants = tx.grants(Some(product), None, 10_000).await?;
        let mut out = Vec::new();
        for g in grants {
            if g.revoked_at.is_none()
                && g.expires_at > now
                && !out.contains(&g.grantee)
                && tx.product(&g.grantee).await?.is_some()
            {
                out.push(g.grantee);
            }
        }
        Ok(out)
    }
}

impl Catalog {
    /// The sequence number of the latest event (0 when there is none): where a dispatcher that
    /// starts begins.
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let mut tx = self.store.read().await?;
        tx.max_event_seq().await
    }

    /// Appends a `grant.expiring` event for each live grant that ends within `within`, once per
    /// grant across the servers of the catalog (`server` claims it). How many it appended.
    pub async fn warn_expiring_grants(
        &self,
        server: &str,
        within: chrono::Duration,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let (from, until) = (stamp(now), stamp(now + within));
        let grants = {
            let mut tx = self.store.read().await?;
            tx.grants(None, None, 100_000).await?
        };
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let mut warned = 0;
        for g in grants {
            if g.revoked_at.is_some() || g.expires_at <= from || g.expires_at > until {
                continue;
            }
            if !self
                .claim_slot(
                    &format!("mesh:grant-expiring:{}", g.id),
                    epoch,
                    server,
                    "notify",
                )
                .await?
            {
                continue;
            }
            let mut tx = self.store.write().await?;
            tx.append_event(&NewEvent {
                at: stamp(now),
                kind: "grant.expiring".into(),
                subject: g.product.clone(),
                actor: server.to_owned(),
                payload: serde_json::json!({
                    "grant": g.id, "grantee": g.grantee, "port": g.port, "major": g.major,
                    "expires_at": g.expires_at,
                }),
            })
            .await?;
            tx.commit().await?;
            warned += 1;
        }
        Ok(warned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert!(check_target("webhook", "https://hooks.example.com/x?y=1").is_ok());
        assert!(check_target("slack", "http://127.0.0.1:9/hook").is_ok());
        assert!(check_target("email", "data-team@example.com").is_ok());
        for (channel, target) in [
            ("webhook", "ftp://example.com"),
            ("webhook", "https://"),
            ("webhook", "https://user:pw@example.com/"),
            ("webhook", "https://example.com/a b"),
            ("email", "nobody"),
            ("email", "a@b"),
            ("email", "a@example.com\r\nBcc: x@example.com"),
            ("email", "a,b@example.com"),
            ("pager", "https://example.com"),
        ] {
            assert!(check_target(channel, target).is_err(), "{channel} {target}");
        }
        assert!(check_target("webhook", &format!("https://e.com/{}", "a".repeat(3000))).is_err());
    }
}
