//! Who may do what. Four roles — platform admin, domain owner, domain member, consumer — held
//! globally or per domain; tokens are random, shown once, and stored as SHA-256.

use std::fmt;

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::RoleBinding;

/// A role a principal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the platform: everything, everywhere.
    Admin,
    /// Owns a domain: publishes, deprecates and retires its products.
    Owner,
    /// Works in a domain: publishes its products.
    Member,
    /// Reads the catalog.
    Consumer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Owner, Role::Member, Role::Consumer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Member => "member",
            Role::Consumer => "consumer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `domain` of a binding that holds in every domain.
pub const ANY_DOMAIN: &str = "*";

/// Something a principal asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Read products, versions, contracts, changelogs, domains, teams.
    Read,
    /// Read the data of output ports (each through [`crate::Catalog::readable_ports`]): what a
    /// credential minted for a grant may do, and nothing else.
    ReadData,
    /// Read the event log.
    ReadEvents,
    /// Report lineage (OpenLineage events from pipelines).
    ReportLineage,
    /// Publish (or dry-run) a product version in a domain.
    Publish { domain: &'a str },
    /// Deprecate or retire a version in a domain.
    Lifecycle { domain: &'a str },
    /// Publish a domain's policies.
    Govern { domain: &'a str },
    /// Issue tokens and grant roles; publish the global policies.
    Administer,
}

impl fmt::Display for Action<'_> {
    /// What the action is, as "x may not ..." says it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Read => f.write_str("read the catalog"),
            Action::ReadData => f.write_str("read data"),
            Action::ReadEvents => f.write_str("read the event log"),
            Action::ReportLineage => f.write_str("report lineage"),
            Action::Publish { domain } => write!(f, "publish in domain `{domain}`"),
            Action::Lifecycle { domain } => {
                write!(f, "deprecate or retire versions in domain `{domain}`")
            }
            Action::Govern { domain } => write!(f, "publish the policies of domain `{domain}`"),
            Action::Administer => f.write_str("administer the catalog"),
        }
    }
}

/// An authenticated caller and the roles it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub bindings: Vec<RoleBinding>,
    /// Set for a credential minted for one grant: it reads through that grant and does nothing
    /// else, whatever roles its principal holds.
    pub grant: Option<String>,
}

impl Principal {
    /// The user of a local catalog file: whoever can write the file owns it.
    pub fn local() -> Principal {
        let name = std::env::var("USER").unwrap_or_else(|_| "local".to_owned());
        Principal {
            bindings: vec![RoleBinding {
                principal: name.clone(),
                role: Role::Admin.as_str().to_owned(),
                domain: ANY_DOMAIN.to_owned(),
            }],
            name,
            grant: None,
        }
    }

    /// The platform itself (the SLA monitor): an admin under its own name in the event log.
    pub fn system(name: &str) -> Principal {
        Principal {
            bindings: vec![RoleBinding {
                principal: name.to_owned(),
                role: Role::Admin.as_str().to_owned(),
                domain: ANY_DOMAIN.to_owned(),
            }],
            name: name.to_owned(),
            grant: None,
        }
    }

    /// Whether the principal holds `role` in `domain` (or everywhere).
    pub fn has(&self, role: Role, domain: Option<&str>) -> bool {
        self.bindings.iter().any(|b| {
            b.role == role.as_str()
                && (b.domain == ANY_DOMAIN || domain.is_some_and(|d| d == b.domain))
        })
    }

    /// Whether the principal may do `action`.
    pub fn may(&self, action: Action<'_>) -> bool {
        if self.grant.is_some() {
            return action == Action::ReadData;
        }
        if self.has(Role::Admin, None) {
            return true;
        }
        match action {
            Action::Read | Action::ReadData => !self.bindings.is_empty(),
            Action::ReadEvents | Action::ReportLineage => [Role::Owner, Role::Member]
                .iter()
                .any(|r| self.bindings.iter().any(|b| b.role == r.as_str())),
            Action::Publish { domain } => {
                self.has(Role::Owner, Some(domain)) || self.has(Role::Member, Some(domain))
            }
            Action::Lifecycle { domain } | Action::Govern { domain } => {
                self.has(Role::Owner, Some(domain))
            }
            Action::Administer => false,
        }
    }
}

/// A new random token (`mesh_` + 64 hex digits) and the hash under which it is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("mesh_{}", hex(&bytes));
    let hash = hash_token(&token);
    (token, hash)
}

/// The public id of a token (to revoke it by): the first 16 hex digits of its hash.
pub fn token_id(token: &str) -> String {
    hash_token(token)[..16].to_owned()
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(bindings: &[(&str, &str)]) -> Principal {
        Principal {
            name: "p".into(),
            bindings: bindings
                .iter()
                .map(|(role, domain)| RoleBinding {
                    principal: "p".into(),
                    role: (*role).into(),
                    domain: (*domain).into(),
                })
                .collect(),
            grant: None,
        }
    }

    #[test]
    fn roles_are_scoped_to_domains() {
        let owner = principal(&[("owner", "sales")]);
        assert!(owner.may(Action::Publish { domain: "sales" }));
        assert!(owner.may(Action::Lifecycle { domain: "sales" }));
        assert!(!owner.may(Action::Publish { domain: "hr" }));
        assert!(!owner.may(Action::Administer));
        let member = principal(&[("member", "sales")]);
        assert!(member.may(Action::Publish { domain: "sales" }));
        assert!(!member.may(Action::Lifecycle { domain: "sales" }));
        let consumer = principal(&[("consumer", "*")]);
        assert!(consumer.may(Action::Read));
        assert!(!consumer.may(Action::ReadEvents));
        assert!(!consumer.may(Action::Publish { domain: "sales" }));
        assert!(!principal(&[]).may(Action::Read));
        assert!(principal(&[("admin", "*")]).may(Action::Administer));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_eq!(ha, hash_token(&a));
        assert_ne!(ha, hb);
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a[5..]));
    }
}
