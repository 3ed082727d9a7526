//! Scoped credentials: a secret minted for one grant, for the service (or person) the grant was
//! made out to. It reads exactly what the grant reads — its port, its columns — and does nothing
//! else; it is shown once, stored as SHA-256 like every token, revocable on its own, and useless
//! from the moment its grant is revoked or expires (checked on every request, not at minting).
//!
//! Who mints: the grantee itself, or — for a product's service identity (`domain.product`) — the
//! people of that domain, who run it. The secret is shown only to whoever mints it, never to the
//! approver. Who sees and revokes: the same, the port's owners and admins.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{AccessError, active_at};
use crate::auth::{self, Action, Principal};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, Missing};
use crate::store::{GrantRow, NewEvent, TokenRow, Tx};

/// At most this many live credentials per grant: enough for every environment of a service,
/// not a way to fill the catalog.
pub const MAX_LIVE_PER_GRANT: usize = 20;

/// What a minter asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CredentialAsk {
    /// What holds it (`orders-dashboard-prod`): 1 to 64 letters, digits, `.`, `_` or `-`.
    #[serde(default)]
    pub label: Option<String>,
    /// How long it lives, in days (never past the grant's end; default: until the grant ends).
    #[serde(default)]
    pub days: Option<i64>,
}

/// A credential as the catalog shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialView {
    pub id: String,
    pub grant: String,
    /// Who it reads as: the grantee.
    pub principal: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    /// The grant's columns (empty: all the grant shows).
    pub columns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: String,
    /// The earlier of its own end and its grant's.
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Whether it reads now: neither it nor its grant revoked or expired.
    pub active: bool,
}

/// A credential just minted: the secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MintedCredential {
    /// The bearer secret for HTTP and Flight SQL (`Authorization: Bearer ...`). Not shown again.
    pub secret: String,
    pub credential: CredentialView,
}

fn view(row: TokenRow, grant: &GrantRow, now: DateTime<Utc>) -> CredentialView {
    let own_end = row
        .expires_at
        .clone()
        .unwrap_or_else(|| grant.expires_at.clone());
    // Both are RFC 3339 stamps in UTC written by this catalog: they order as text.
    let expires_at = own_end.min(grant.expires_at.clone());
    let active = active_at(
        &expires_at,
        row.revoked_at.is_some() || grant.revoked_at.is_some(),
        now,
    );
    CredentialView {
        id: row.id,
        grant: grant.id.clone(),
        principal: row.principal,
        product: grant.product.clone(),
        port: grant.port.clone(),
        major: grant.major,
        columns: serde_json::from_str(&grant.columns).unwrap_or_default(),
        label: row.label,
        created_at: row.created_at,
        expires_at,
        revoked_at: row.revoked_at,
        active,
    }
}

fn check_label(label: Option<&str>) -> Result<Option<String>, AccessError> {
    let Some(label) = label.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let ok = label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(AccessError::BadLabel {
            label: label.chars().take(80).collect(),
        });
    }
    Ok(Some(label.to_owned()))
}

impl Catalog {
    /// Whether `who` speaks for the grantee of a grant: it is the grantee (a person, not one of
    /// its credentials), or the grantee is a product's service identity (`domain.product`) and
    /// `who` publishes in its domain (runs it), or is an admin.
    fn speaks_for(who: &Principal, grantee: &str) -> bool {
        if who.grant.is_some() {
            return false;
        }
        who.name.eq_ignore_ascii_case(grantee) || crate::access::acts_for(who, grantee)
    }

    /// Whether `who` may see and revoke the credentials of `grant`: whoever speaks for its
    /// grantee, the owners of its product's domain, admins.
    async fn oversees(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        grant: &GrantRow,
    ) -> Result<bool, AccessError> {
        if Self::speaks_for(who, &grant.grantee) {
            return Ok(true);
        }
        let domain = tx
            .product(&grant.product)
            .await?
            .map(|p| p.domain)
            .unwrap_or_default();
        Ok(who.may(Action::Lifecycle { domain: &domain }))
    }

    /// Mints a credential for an active grant (shown once). The grantee, or the people of a
    /// service identity's domain, may.
    pub async fn mint_credential(
        &self,
        who: &Principal,
        grant: &str,
        ask: &CredentialAsk,
    ) -> Result<MintedCredential, AccessError> {
        Self::allow(who, Action::Read)?;
        let label = check_label(ask.label.as_deref())?;
        if let Some(days) = ask.days
            && !(1..=365).contains(&days)
        {
            return Err(AccessError::BadDuration { days });
        }
        let mut tx = self.store.write().await?;
        let g = tx.grant(grant).await?.ok_or_else(|| Missing::Grant {
            grant: grant.to_owned(),
        })?;
        if !Self::speaks_for(who, &g.grantee) {
            return Err(AccessError::NotGrantee {
                principal: who.name.clone(),
                grant: g.id,
                grantee: g.grantee,
            });
        }
        let now = self.clock.now();
        if !active_at(&g.expires_at, g.revoked_at.is_some(), now) {
            return Err(AccessError::Revoked { grant: g.id });
        }
        let live = tx
            .credentials(Some(&g.id), None)
            .await?
            .into_iter()
            .filter(|c| view(c.clone(), &g, now).active)
            .count();
        if live >= MAX_LIVE_PER_GRANT {
            return Err(AccessError::TooManyCredentials {
                grant: g.id,
                max: MAX_LIVE_PER_GRANT,
            });
        }
        let expires_at = ask.days.map(|d| stamp(now + Duration::days(d)));
        let (secret, hash) = auth::new_token();
        let row = TokenRow {
            id: hash[..16].to_owned(),
            hash,
            principal: g.grantee.to_lowercase(),
            created_at: stamp(now),
            expires_at,
            revoked_at: None,
            scope: Some("[]".into()),
            grant: Some(g.id.clone()),
            label,
        };
        tx.insert_token(&row).await?;
        let credential = view(row, &g, now);
        tx.append_event(&NewEvent {
            at: credential.created_at.clone(),
            kind: "credential.minted".into(),
            subject: g.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "credential": credential.id, "grant": g.id, "principal": credential.principal,
                "port": g.port, "label": credential.label, "expires_at": credential.expires_at,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(MintedCredential { secret, credential })
    }

    /// Credentials (never their secrets): of one grant, or every one `who` may see — those it
    /// speaks for, those on its domains' products, all for admins.
    pub async fn credentials(
        &self,
        who: &Principal,
        grant: Option<&str>,
    ) -> Result<Vec<CredentialView>, AccessError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let now = self.clock.now();
        if let Some(id) = grant {
            let g = tx.grant(id).await?.ok_or_else(|| Missing::Grant {
                grant: id.to_owned(),
            })?;
            if !self.oversees(tx.as_mut(), who, &g).await? {
                return Err(Denied {
                    principal: who.name.clone(),
                    action: format!("see the credentials of grant {id}"),
                }
                .into());
            }
            let rows = tx.credentials(Some(id), None).await?;
            return Ok(rows.into_iter().map(|r| view(r, &g, now)).collect());
        }
        let mut seen: std::collections::HashMap<String, Option<GrantRow>> =
            std::collections::HashMap::new();
        let mut out = Vec::new();
        for row in tx.credentials(None, None).await? {
            let id = row.grant.clone().unwrap_or_default();
            if !seen.contains_key(&id) {
                let g = match tx.grant(&id).await? {
                    Some(g) if self.oversees(tx.as_mut(), who, &g).await? => Some(g),
                    _ => None,
                };
                seen.insert(id.clone(), g);
            }
            if let Some(Some(g)) = seen.get(&id) {
                out.push(view(row, g, now));
            }
        }
        Ok(out)
    }

    /// Revokes one credential at once (its grant stays). Whoever may see it may.
    pub async fn revoke_credential(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<CredentialView, AccessError> {
        Self::allow(who, Action::Read)?;
        let missing = || Missing::Credential {
            credential: id.to_owned(),
        };
        let mut tx = self.store.write().await?;
        let row = tx.credential(id).await?.ok_or_else(missing)?;
        let g = tx
            .grant(row.grant.as_deref().unwrap_or_default())
            .await?
            .ok_or_else(missing)?;
        if !self.oversees(tx.as_mut(), who, &g).await? {
            return Err(Denied {
                principal: who.name.clone(),
                action: format!("revoke credential {id}"),
            }
            .into());
        }
        let now = self.clock.now();
        let at = stamp(now);
        if !tx.revoke_token(id, &at).await? {
            return Err(AccessError::CredentialRevoked {
                credential: id.to_owned(),
            });
        }
        tx.append_event(&NewEvent {
            at: at.clone(),
            kind: "credential.revoked".into(),
            subject: g.product.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "credential": id, "grant": g.id, "principal": row.principal }),
        })
        .await?;
        tx.commit().await?;
        let mut revoked = row;
        revoked.revoked_at = Some(at);
        Ok(view(revoked, &g, now))
    }
}
