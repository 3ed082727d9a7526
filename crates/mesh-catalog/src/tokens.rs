//! API tokens: issued to a principal with its roles (shown once, stored as SHA-256), revoked at
//! once, and turned back into the principal on every request ([`Catalog::authenticate`]).

use chrono::{DateTime, Utc};

use crate::auth::{self, ANY_DOMAIN, Action, Principal, Role};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::store::{NewEvent, RoleBinding, StoreError, TokenRow};

/// Why a token operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown, expired and revoked tokens are refused alike.
    #[error("not authenticated: unknown, expired or revoked token")]
    Unauthenticated,
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
            TokenError::Unauthenticated => ErrorCode::Unauthenticated,
            TokenError::Denied(_) => ErrorCode::Forbidden,
            TokenError::NotFound(_) => ErrorCode::NotFound,
            TokenError::NoPrincipal | TokenError::DomainRole { .. } => ErrorCode::BadRequest,
            TokenError::Store(_) => ErrorCode::Internal,
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
        if principal.trim().is_empty() {
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
        let bindings = tx.bindings(&row.principal).await?;
        Ok(Principal {
            name: row.principal,
            bindings,
        })
    }
}
