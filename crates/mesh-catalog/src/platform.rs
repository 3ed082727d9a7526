//! The platform's own state that no product carries: domains as such (created before their
//! first product, with a description) and who holds which role where (role bindings, given
//! without minting a token: a principal signed in through the company's identity provider, or
//! holding any token, gets them). `mesh plan` / `mesh apply` manage both from the repository.
//!
//! Every change is an admin's, one transaction and one event (`domain.created`,
//! `domain.updated`, `role.bound`, `role.unbound`). The last global admin binding cannot be
//! removed: nobody could give it back through the API.

use serde::{Deserialize, Serialize};

use crate::auth::{ANY_DOMAIN, Action, Principal, Role};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Problem, ToProblem};
use crate::products::Domain;
use crate::store::{DomainRow, NewEvent, RoleBinding, StoreError};

/// Why a platform change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{principal} is the last global admin; bind another principal as admin before removing this one"
    )]
    LastAdmin { principal: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for PlatformError {
    fn code(&self) -> ErrorCode {
        match self {
            PlatformError::Denied(_) => ErrorCode::Forbidden,
            PlatformError::Invalid(_) => ErrorCode::BadRequest,
            PlatformError::LastAdmin { .. } => ErrorCode::Lifecycle,
            PlatformError::Store(e) => e.code(),
        }
    }

    fn extend(&self, _problem: &mut Problem) {}
}

/// A role held by a principal, everywhere (`domain` = `*`) or in one domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub principal: String,
    /// `admin` (with domain `*`), `owner`, `member` or `consumer`.
    pub role: String,
    pub domain: String,
}

impl Binding {
    fn row(&self) -> RoleBinding {
        RoleBinding {
            principal: self.principal.clone(),
            role: self.role.clone(),
            domain: self.domain.clone(),
        }
    }

    fn of(row: RoleBinding) -> Binding {
        Binding {
            principal: row.principal,
            role: row.role,
            domain: row.domain,
        }
    }

    /// The binding in its stored form (principal in lower case), or why it is not one.
    fn checked(&self) -> Result<Binding, PlatformError> {
        let principal = self.principal.trim().to_lowercase();
        if principal.is_empty() || principal.len() > 256 || principal.chars().any(char::is_control)
        {
            return Err(PlatformError::Invalid(format!(
                "principal `{}`: 1 to 256 characters, no control characters",
                self.principal
            )));
        }
        let Some(role) = Role::parse(&self.role) else {
            return Err(PlatformError::Invalid(format!(
                "role `{}`: one of admin, owner, member, consumer",
                self.role
            )));
        };
        match (role, self.domain.as_str()) {
            (Role::Admin, ANY_DOMAIN) => {}
            (Role::Admin, d) => {
                return Err(PlatformError::Invalid(format!(
                    "admin is held everywhere (domain `*`), not in domain `{d}`"
                )));
            }
            (_, d) => {
                if d != ANY_DOMAIN {
                    mesh_model::names::DomainName::parse(d)
                        .map_err(|e| PlatformError::Invalid(e.to_string()))?;
                }
            }
        }
        Ok(Binding {
            principal,
            role: role.as_str().to_owned(),
            domain: self.domain.clone(),
        })
    }
}

/// Who the caller is, as the catalog sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    pub principal: String,
    pub bindings: Vec<Binding>,
    /// The grant a credential is limited to, if it is one.
    pub grant: Option<String>,
}

impl Catalog {
    /// The caller's name and roles.
    pub fn whoami(&self, who: &Principal) -> WhoAmI {
        WhoAmI {
            principal: who.name.clone(),
            bindings: who.bindings.iter().cloned().map(Binding::of).collect(),
            grant: who.grant.clone(),
        }
    }

    /// Every role binding (admins only).
    pub async fn role_bindings(&self, who: &Principal) -> Result<Vec<Binding>, PlatformError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .all_bindings()
            .await?
            .into_iter()
            .map(Binding::of)
            .collect())
    }

    /// Gives a role (admins only); `false` when the principal held it already.
    pub async fn bind(&self, who: &Principal, binding: &Binding) -> Result<bool, PlatformError> {
        Self::allow(who, Action::Administer)?;
        let binding = binding.checked()?;
        let mut tx = self.store.write().await?;
        let held = tx.bindings(&binding.principal).await?;
        if held.contains(&binding.row()) {
            return Ok(false);
        }
        tx.insert_binding(&binding.row()).await?;
        self.record_role(tx, who, "role.bound", &binding).await?;
        Ok(true)
    }

    /// Takes a role back (admins only); `false` when the principal did not hold it. Tokens the
    /// principal holds stay valid, with the roles left.
    pub async fn unbind(&self, who: &Principal, binding: &Binding) -> Result<bool, PlatformError> {
        Self::allow(who, Action::Administer)?;
        let binding = binding.checked()?;
        let mut tx = self.store.write().await?;
        if binding.role == Role::Admin.as_str() {
            let admins: Vec<RoleBinding> = tx
                .all_bindings()
                .await?
                .into_iter()
                .filter(|b| b.role == Role::Admin.as_str())
                .collect();
            if admins == [binding.row()] {
                return Err(PlatformError::LastAdmin {
                    principal: binding.principal,
                });
            }
        }
        if tx.delete_binding(&binding.row()).await? == 0 {
            return Ok(false);
        }
        self.record_role(tx, who, "role.unbound", &binding).await?;
        Ok(true)
    }

    /// Records a role change as `kind` and commits it.
    async fn record_role(
        &self,
        mut tx: Box<dyn crate::store::Tx>,
        who: &Principal,
        kind: &str,
        binding: &Binding,
    ) -> Result<(), PlatformError> {
        tx.append_event(&NewEvent {
            at: stamp(self.clock.now()),
            kind: kind.into(),
            subject: binding.principal.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "role": binding.role, "domain": binding.domain }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a domain, or sets its description (admins only); `None` when nothing changed.
    pub async fn put_domain(
        &self,
        who: &Principal,
        name: &str,
        description: Option<&str>,
    ) -> Result<Option<Domain>, PlatformError> {
        Self::allow(who, Action::Administer)?;
        mesh_model::names::DomainName::parse(name)
            .map_err(|e| PlatformError::Invalid(e.to_string()))?;
        let description = description.map(str::trim).filter(|d| !d.is_empty());
        if description.is_some_and(|d| d.len() > 4096) {
            return Err(PlatformError::Invalid(
                "a domain's description is at most 4096 bytes".to_owned(),
            ));
        }
        let now = stamp(self.clock.now());
        let mut tx = self.store.write().await?;
        let kind = match tx.domain(name).await? {
            Some(row) if row.description.as_deref() == description => return Ok(None),
            Some(_) => {
                tx.set_domain_description(name, description).await?;
                "domain.updated"
            }
            None => {
                tx.insert_domain(&DomainRow {
                    name: name.to_owned(),
                    description: description.map(str::to_owned),
                    created_at: now.clone(),
                })
                .await?;
                "domain.created"
            }
        };
        tx.append_event(&NewEvent {
            at: now,
            kind: kind.into(),
            subject: name.to_owned(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "description": description }),
        })
        .await?;
        let row = tx.domain(name).await?;
        tx.commit().await?;
        Ok(row.map(Domain::from))
    }
}
