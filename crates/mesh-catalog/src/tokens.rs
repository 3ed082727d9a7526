//! API tokens: issued to a principal with its roles (shown once, stored as SHA-256), revoked at
//! once, and turned back into the principal on every request ([`Catalog::authenticate`]).
//!
//! A token holds the roles it was issued with and no more: a request made with it holds those of
//! its principal's roles (its *scope*), so a consumer token made for a member reads, and does not
//! publish. Principal names are one name whatever their case (stored lower case). Revoking a
//! principal ([`Catalog::revoke_principal`]) revokes what it held — its tokens, roles and grants
//! — so a fresh token under the same name starts with nothing; its identity provider's tokens
//! issued before then are refused.

use chrono::{DateTime, Utc};

use crate::auth::{self, ANY_DOMAIN, Action, Principal, Role};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::store::{MaskingKeyRow, NewEvent, RoleBinding, StoreError, TokenRow};

/// Why a token operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown, expired and revoked tokens are refused alike.
    #[error("not authenticated: unknown, expired or revoked token")]
    Unauthenticated,
    /// An identity provider's token older than the principal's revocation.
    #[error(
        "not authenticated: {principal} was revoked at {revoked_at}, after this token was issued: sign in again"
    )]
    IssuedBeforeRevocation {
        principal: String,
        revoked_at: String,
    },
    /// A credential whose grant was revoked or ran out: useless from that moment on.
    #[error("not authenticated: the grant {grant} behind this credential {why}")]
    GrantEnded { grant: String, why: &'static str },
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("a token needs a principal name")]
    NoPrincipal,
    #[error("the {role} role is held in a domain")]
    DomainRole { role: Role },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for TokenError {
    fn code(&self) -> ErrorCode {
        match self {
            TokenError::Unauthenticated
            | TokenError::GrantEnded { .. }
            | TokenError::IssuedBeforeRevocation { .. } => ErrorCode::Unauthenticated,
            TokenError::Denied(_) => ErrorCode::Forbidden,
            TokenError::NotFound(_) => ErrorCode::NotFound,
            TokenError::NoPrincipal | TokenError::DomainRole { .. } => ErrorCode::BadRequest,
            TokenError::Store(e) => e.code(),
        }
    }
}

impl Catalog {
    /// Issues a token for `principal` (shown once) and binds it the given roles.
    pub async fn issue_token(
        &self,
        who: &Principal,
        principal: &str,
        roles: &[(Role, Option<String>)],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String, TokenError> {
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
    ) -> Result<String, TokenError> {
        let principal = principal.trim().to_lowercase();
        let principal = principal.as_str();
        if principal.is_empty() {
            return Err(TokenError::NoPrincipal);
        }
        if let Some((role, _)) = roles
            .iter()
            .find(|(r, d)| matches!(r, Role::Owner | Role::Member) && d.is_none())
        {
            return Err(TokenError::DomainRole { role: *role });
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
            scope: Some(scope_json(roles)),
            grant: None,
            label: None,
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
    pub async fn revoke_token(&self, who: &Principal, id: &str) -> Result<(), TokenError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.write().await?;
        let now = self.now();
        if !tx.revoke_token(id, &now).await? {
            return Err(Missing::Token {
                token: id.to_owned(),
            }
            .into());
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
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        let refused = || TokenError::Unauthenticated;
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
        if let Some(grant) = row.grant {
            // A credential: its grant must still hold, checked now and on every request.
            let g = tx.grant(&grant).await?.ok_or_else(refused)?;
            let why = if g.revoked_at.is_some() {
                Some("was revoked")
            } else if !crate::access::active_at(&g.expires_at, false, self.clock.now()) {
                Some("has expired")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(TokenError::GrantEnded { grant, why });
            }
            return Ok(Principal {
                name: row.principal,
                bindings: Vec::new(),
                grant: Some(grant),
            });
        }
        let mut bindings = tx.bindings(&row.principal).await?;
        if let Some(scope) = &row.scope {
            // Only the roles the token was issued with (a token's scope that no longer parses
            // grants nothing).
            let scope: Vec<(String, String)> = serde_json::from_str(scope).unwrap_or_default();
            bindings.retain(|b| scope.iter().any(|(r, d)| *r == b.role && *d == b.domain));
        }
        Ok(Principal {
            name: row.principal,
            bindings,
            grant: None,
        })
    }

    /// A principal the company's identity provider vouched for (its token verified by the
    /// server): the roles its claims map to, with any role the catalog binds to the same name.
    /// With `record`, an `auth.idp_roles` event names the principal, the claims
    /// that decided and the roles they gave (the server records it when they change).
    ///
    /// `issued_at` is the token's `iat` (seconds since the epoch): a token issued before the
    /// principal was last revoked ([`Catalog::revoke_principal`]) is refused, so a revocation
    /// holds against the tokens the provider had already handed out.
    pub async fn federated(
        &self,
        name: &str,
        mapped: Vec<RoleBinding>,
        claims: serde_json::Value,
        issued_at: Option<i64>,
        record: bool,
    ) -> Result<Principal, TokenError> {
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(TokenError::Unauthenticated);
        }
        let mut bindings = {
            let mut tx = self.store.read().await?;
            if let Some(revoked) = tx.principal_revoked_at(&name).await? {
                let revoked_at = DateTime::parse_from_rfc3339(&revoked)
                    .map(|t| t.timestamp())
                    .unwrap_or(i64::MAX);
                if issued_at.is_none_or(|iat| iat <= revoked_at) {
                    return Err(TokenError::IssuedBeforeRevocation {
                        principal: name,
                        revoked_at: revoked,
                    });
                }
            }
            tx.bindings(&name).await?
        };
        for b in mapped {
            if !bindings
                .iter()
                .any(|c| c.role == b.role && c.domain == b.domain)
            {
                bindings.push(RoleBinding {
                    principal: name.clone(),
                    ..b
                });
            }
        }
        if record {
            let roles: Vec<serde_json::Value> = bindings
                .iter()
                .map(|b| serde_json::json!({ "role": b.role, "domain": b.domain }))
                .collect();
            let mut tx = self.store.write().await?;
            tx.append_event(&NewEvent {
                at: self.now(),
                kind: "auth.idp_roles".into(),
                subject: name.clone(),
                actor: name.clone(),
                payload: serde_json::json!({ "claims": claims, "roles": roles }),
            })
            .await?;
            tx.commit().await?;
        }
        Ok(Principal {
            name,
            bindings,
            grant: None,
        })
    }

    /// Revokes a principal and what it held: every token (credentials too), every role binding,
    /// every grant made out to it, and its pending access requests (denied); and, for a principal
    /// an identity provider vouches for, every token the provider issued it until now (the
    /// catalog may hold nothing else for it). Admins.
    pub async fn revoke_principal(
        &self,
        who: &Principal,
        principal: &str,
    ) -> Result<PrincipalRevocation, TokenError> {
        Self::allow(who, Action::Administer)?;
        let principal = principal.trim().to_lowercase();
        let mut tx = self.store.write().await?;
        let now = self.now();
        let tokens = tx.revoke_tokens_of(&principal, &now).await?;
        let roles = tx.delete_bindings(&principal).await?;
        let mut grants = Vec::new();
        for g in tx.grants(None, Some(&principal), i64::MAX).await? {
            if g.revoked_at.is_none()
                && tx
                    .revoke_grant(&g.id, &now, &who.name, "the principal was revoked")
                    .await?
            {
                grants.push(g.id);
            }
        }
        let mut requests = Vec::new();
        for mut r in tx
            .requests(None, Some(&principal), Some("pending"), i64::MAX)
            .await?
        {
            let expected = r.revision;
            r.state = "denied".into();
            r.reason = Some("the requester was revoked".into());
            r.decided_at = Some(now.clone());
            r.revision += 1;
            tx.update_request(&r, expected).await?;
            requests.push(r.id);
        }
        // Whatever it held here, its identity provider's tokens issued until now are void.
        tx.put_principal_revocation(&principal, &now).await?;
        let revocation = PrincipalRevocation {
            principal: principal.clone(),
            tokens,
            roles,
            grants,
            requests,
        };
        tx.append_event(&NewEvent {
            at: now,
            kind: "principal.revoked".into(),
            subject: principal,
            actor: who.name.clone(),
            payload: serde_json::to_value(&revocation).unwrap_or_default(),
        })
        .await?;
        tx.commit().await?;
        Ok(revocation)
    }
}

/// What revoking a principal took away.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrincipalRevocation {
    pub principal: String,
    /// Live tokens revoked.
    pub tokens: u64,
    /// Role bindings removed.
    pub roles: u64,
    /// Grants revoked, by id.
    pub grants: Vec<String>,
    /// Pending access requests denied, by id.
    pub requests: Vec<String>,
}

/// A token's scope as stored: `[["role", "domain"], ...]`.
fn scope_json(roles: &[(Role, Option<String>)]) -> String {
    let scope: Vec<(&str, String)> = roles
        .iter()
        .map(|(r, d)| {
            (
                r.as_str(),
                d.clone().unwrap_or_else(|| ANY_DOMAIN.to_owned()),
            )
        })
        .collect();
    serde_json::to_string(&scope).unwrap_or_else(|_| "[]".into())
}

/// What an admin sees of the deployment's masking key: a fingerprint to tell keys apart, when
/// and by whom it was made; never the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaskingKeyInfo {
    pub fingerprint: String,
    pub created_at: String,
    pub created_by: String,
}

impl MaskingKeyInfo {
    fn of(row: &MaskingKeyRow) -> MaskingKeyInfo {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("mesh masking key fingerprint {}", row.key));
        MaskingKeyInfo {
            fingerprint: auth::hex(&digest)[..16].to_owned(),
            created_at: row.created_at.clone(),
            created_by: row.created_by.clone(),
        }
    }
}

/// A new random masking key: 64 hex digits.
fn new_masking_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    auth::hex(&bytes)
}

impl Catalog {
    /// The deployment's masking key (64 hex digits), made on first use: every reader's session
    /// hashes masked values with it. For the service that builds reads, never for a client.
    pub async fn masking_key(&self) -> Result<String, StoreError> {
        let mut tx = self.store.read().await?;
        if let Some(row) = tx.masking_key().await? {
            return Ok(row.key);
        }
        drop(tx);
        Ok(self.ensure_masking_key().await?.key)
    }

    /// Makes the masking key when there is none (what `mesh init` does); the one there is.
    async fn ensure_masking_key(&self) -> Result<MaskingKeyRow, StoreError> {
        let mut tx = self.store.write().await?;
        let row = MaskingKeyRow {
            key: new_masking_key(),
            created_at: self.now(),
            created_by: "mesh".into(),
        };
        // Two processes may race to make it: the first one's stands.
        tx.put_masking_key(&row, false).await?;
        let row = tx
            .masking_key()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the masking key was not stored".into()))?;
        tx.commit().await?;
        Ok(row)
    }

    /// The masking key's fingerprint and age (made now when there is none). Admins only.
    pub async fn masking_key_info(&self, who: &Principal) -> Result<MaskingKeyInfo, TokenError> {
        Self::allow(who, Action::Administer)?;
        Ok(MaskingKeyInfo::of(&self.ensure_masking_key().await?))
    }

    /// Replaces the masking key with a new random one: every hash readers see changes (and no
    /// longer joins with hashes taken before). The old key is not kept. Admins only; audited.
    pub async fn rotate_masking_key(&self, who: &Principal) -> Result<MaskingKeyInfo, TokenError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.write().await?;
        let row = MaskingKeyRow {
            key: new_masking_key(),
            created_at: self.now(),
            created_by: who.name.clone(),
        };
        tx.put_masking_key(&row, true).await?;
        let info = MaskingKeyInfo::of(&row);
        tx.append_event(&NewEvent {
            at: row.created_at.clone(),
            kind: "masking_key.rotated".into(),
            subject: "masking_key".into(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "fingerprint": info.fingerprint }),
        })
        .await?;
        tx.commit().await?;
        Ok(info)
    }
}
