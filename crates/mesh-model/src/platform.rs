//! The platform's own state as files in the repository (`platform/`), which `mesh plan` compares
//! with the catalog and `mesh apply` carries out.
//!
//! - `platform/global.yaml` (`kind: Platform`): the admins. (The identity provider's groups map to
//!   roles in `mesh.toml` `[identity]`, which is in the repository already.)
//! - `platform/domains/<domain>.yaml` (`kind: Domain`): a domain's description, its members and
//!   their roles, its external locations, its subscriptions, the output ports it reads from other
//!   domains (`reads`) and the requests for its own ports it approves (`approves`).
//! - `platform/policies/global/` and `platform/policies/<domain>/`: policy bundles (`*.rego`,
//!   `overrides.yaml`), as `mesh policy publish` takes them.
//!
//! A key that is absent leaves that kind of state alone (a domain file without `reads` manages
//! none of its grants); a key that is present, even empty, is the whole truth for its domain.

use mesh_model_derive::Model;

use crate::de::{Cx, Extra};
use crate::diag::Code;
use crate::source::Node;
use crate::string_enum;

string_enum! {
    /// The `kind` of `platform/global.yaml`.
    pub enum PlatformKind ("platform file kind") {
        Platform = "Platform",
    }
}

string_enum! {
    /// The `kind` of a domain file.
    pub enum DomainKind ("domain file kind") {
        Domain = "Domain",
    }
}

string_enum! {
    /// A role a principal holds in a domain (or, for admins, everywhere).
    pub enum MemberRole ("role") {
        Owner = "owner",
        Member = "member",
        Consumer = "consumer",
    }
}

/// `platform/global.yaml`.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "platform file")]
pub struct PlatformFile {
    #[model(required)]
    pub kind: Option<PlatformKind>,
    /// Principals with every right in every domain; present means managed.
    pub admins: Option<Vec<String>>,
    #[model(extra)]
    pub extra: Extra,
}

/// `platform/domains/<domain>.yaml`.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "domain file", check = check_domain)]
pub struct DomainFile {
    #[model(required)]
    pub kind: Option<DomainKind>,
    #[model(required)]
    pub name: Option<String>,
    pub description: Option<String>,
    pub members: Option<Vec<Member>>,
    pub locations: Option<Vec<LocationDecl>>,
    pub subscriptions: Option<Vec<SubscriptionDecl>>,
    pub reads: Option<Vec<ReadDecl>>,
    pub approves: Option<Vec<ApprovalDecl>>,
    #[model(extra)]
    pub extra: Extra,
}

fn check_domain(node: &Node, cx: &mut Cx) {
    if let Some(name) = node.get("name")
        && let Some(text) = name.as_str()
        && let Err(e) = crate::names::DomainName::parse(text)
    {
        cx.at("name", |cx| {
            cx.error(Code::Format, name.span, e.to_string());
        });
    }
}

/// A principal's role in the domain.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "member")]
pub struct Member {
    pub principal: String,
    pub role: MemberRole,
    #[model(extra)]
    pub extra: Extra,
}

/// An external location the domain's sources may read from.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "location")]
pub struct LocationDecl {
    pub name: String,
    pub url: String,
    #[model(extra)]
    pub extra: Extra,
}

/// Where the catalog sends events about a product, this domain or a team of it. Exactly one of
/// `product`, `team` (or neither: the domain) and one of `webhook`, `slack`, `email`.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "subscription")]
pub struct SubscriptionDecl {
    pub product: Option<String>,
    pub team: Option<String>,
    pub webhook: Option<String>,
    pub slack: Option<String>,
    pub email: Option<String>,
    pub events: Vec<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// An output port of another domain that one of this domain's products reads.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "read")]
pub struct ReadDecl {
    /// `domain.product`.
    pub product: String,
    pub port: String,
    /// The consuming product of this domain (`domain.product`).
    #[model(rename = "for")]
    pub consumer: String,
    pub purpose: String,
    pub columns: Vec<String>,
    pub days: Option<i64>,
    pub major: Option<i64>,
    #[model(extra)]
    pub extra: Extra,
}

/// A request for one of this domain's ports that the domain approves.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "approval")]
pub struct ApprovalDecl {
    pub product: String,
    pub port: String,
    #[model(rename = "for")]
    pub consumer: String,
    #[model(extra)]
    pub extra: Extra,
}
