//! ODPS — the Open Data Product Standard (Bitol), v0.9 and v1.0, as typed Rust.
//!
//! A data product's descriptor: identity, domain, status, owning team, input ports (what it
//! consumes) and output ports (what it serves, each linked to an ODCS contract by `contractId`).
//! Strict parsing follows the v1.0.0 JSON schema (which accepts `apiVersion: v0.9.0`); v0.9's list
//! form of `team` is read but reported, with the v1.0 form as the fix.
//!
//! The platform's own product fields live in `customProperties` under documented names — see
//! [`PlatformProperty`] and `docs/data-product-standard.md`.

use mesh_model_derive::Model;

use crate::de::{Cx, Extra, FromNode};
use crate::diag::Code;
use crate::formats;
use crate::source::{Node, Value};
use crate::string_enum;

string_enum! {
    /// The only valid `kind` of a data product.
    pub enum ProductKind ("data product kind") {
        DataProduct = "DataProduct",
    }
}

string_enum! {
    /// `apiVersion` values the ODPS v1.0.0 schema accepts.
    pub enum OdpsApiVersion ("ODPS apiVersion") {
        V1_0_0 = "v1.0.0",
        V0_9_0 = "v0.9.0",
    }
}

/// An ODPS data product descriptor.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "data product", check = check_product)]
pub struct DataProduct {
    #[model(required)]
    pub api_version: Option<OdpsApiVersion>,
    #[model(required)]
    pub kind: Option<ProductKind>,
    #[model(required)]
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    #[model(required)]
    pub status: Option<String>,
    pub domain: Option<String>,
    pub tenant: Option<String>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub description: Option<Description>,
    pub custom_properties: Vec<CustomProperty>,
    pub tags: Vec<String>,
    pub input_ports: Vec<InputPort>,
    pub output_ports: Vec<OutputPort>,
    pub management_ports: Vec<ManagementPort>,
    pub support: Vec<Support>,
    #[model(with = Team::read)]
    pub team: Option<Team>,
    pub product_created_ts: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

fn check_product(node: &Node, cx: &mut Cx) {
    formats::check_date_time(node, "productCreatedTs", cx);
}

impl DataProduct {
    /// A platform property from `customProperties` (e.g. `productType`), if set.
    pub fn platform_property(&self, property: PlatformProperty) -> Option<&serde_json::Value> {
        self.custom_properties
            .iter()
            .find(|p| p.property == property.as_str())
            .map(|p| &p.value)
    }

    /// The product type (`productType` custom property), when set to a valid value.
    pub fn product_type(&self) -> Option<ProductType> {
        self.platform_property(PlatformProperty::ProductType)?
            .as_str()
            .and_then(ProductType::parse)
    }

    /// The data classification (`dataClassification` custom property), when set to a valid value.
    pub fn data_classification(&self) -> Option<DataClassification> {
        self.platform_property(PlatformProperty::DataClassification)?
            .as_str()
            .and_then(DataClassification::parse)
    }

    /// Days data is kept (`retentionDays` custom property), when set to a positive integer.
    pub fn retention_days(&self) -> Option<u64> {
        self.platform_property(PlatformProperty::RetentionDays)?
            .as_u64()
            .filter(|d| *d > 0)
    }

    /// The output port called `name` (the latest listed, when several versions are listed).
    pub fn output_port(&self, name: &str) -> Option<&OutputPort> {
        self.output_ports.iter().rev().find(|p| p.name == name)
    }
}

string_enum! {
    /// Custom properties the platform reads from a product descriptor.
    pub enum PlatformProperty ("platform property") {
        /// `source | aggregate | consumer-aligned | derived`
        ProductType = "productType",
        /// `public | internal | confidential | restricted`
        DataClassification = "dataClassification",
        /// Positive integer: how many days data is kept.
        RetentionDays = "retentionDays",
        /// When the product's pipeline runs: `{cron, timezone, on: upstream, retries}`
        /// ([`crate::schedule`]).
        Schedule = "schedule",
    }
}

string_enum! {
    /// Where a product sits in the mesh.
    pub enum ProductType ("product type") {
        /// Reads an external system (files, a database) and publishes it as a product.
        Source = "source",
        /// Combines several products of one or more domains.
        Aggregate = "aggregate",
        /// Shaped for one consuming use case.
        ConsumerAligned = "consumer-aligned",
        /// Computed from other products (e.g. a model score).
        Derived = "derived",
    }
}

string_enum! {
    /// How sensitive a product's data is, from least to most.
    pub enum DataClassification ("data classification") {
        Public = "public",
        Internal = "internal",
        Confidential = "confidential",
        Restricted = "restricted",
    }
}

/// What the product is for. Closed in ODPS (unlike ODCS's description).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "description")]
pub struct Description {
    pub purpose: Option<String>,
    pub limitations: Option<String>,
    pub usage: Option<String>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// A `property`/`value` pair; the platform's own fields use this (see [`PlatformProperty`]).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "custom property")]
pub struct CustomProperty {
    pub property: String,
    pub value: serde_json::Value,
    pub description: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// A link to where something is defined or implemented.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "authoritative definition")]
pub struct AuthoritativeDefinition {
    #[model(rename = "type")]
    pub definition_type: String,
    pub url: String,
    pub description: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// Data the product consumes: another product's output port, via its contract.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "input port")]
pub struct InputPort {
    pub name: String,
    pub version: String,
    pub contract_id: String,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}

/// Data the product serves, governed by the ODCS contract named by `contractId`.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "output port")]
pub struct OutputPort {
    pub name: String,
    pub description: Option<String>,
    #[model(rename = "type")]
    pub port_type: Option<String>,
    pub version: String,
    pub contract_id: Option<String>,
    pub sbom: Vec<Sbom>,
    pub input_contracts: Vec<InputContract>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}

/// A software bill of materials for an output port.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "SBOM")]
pub struct Sbom {
    #[model(rename = "type")]
    pub sbom_type: Option<String>,
    pub url: String,
    #[model(extra)]
    pub extra: Extra,
}

/// A contract an output port is derived from.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "input contract")]
pub struct InputContract {
    pub id: String,
    pub version: String,
    #[model(extra)]
    pub extra: Extra,
}

/// A port for operating the product (discovery, observability, control).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "management port")]
pub struct ManagementPort {
    pub name: String,
    pub content: String,
    #[model(rename = "type")]
    pub port_type: Option<String>,
    pub url: Option<String>,
    pub channel: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}

/// Where consumers get help. ODPS requires a `url` (ODCS does not).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "support channel")]
pub struct Support {
    pub channel: String,
    pub url: String,
    pub description: Option<String>,
    pub tool: Option<String>,
    pub scope: Option<String>,
    pub invitation_url: Option<String>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}

/// The team that owns the product (its owner in the platform's terms).
#[derive(Debug, Clone, PartialEq, Default, Model)]
#[model(what = "team")]
pub struct Team {
    pub name: Option<String>,
    pub description: Option<String>,
    pub members: Vec<TeamMember>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}

impl Team {
    /// Reads `team`. ODPS v0.9 wrote it as a list of members; v1.0 (whose schema we follow) makes
    /// that an error, but we still read the members so the rest of the file can be checked.
    pub fn read(node: &Node, cx: &mut Cx) -> Option<Self> {
        if let Value::Seq(_) = node.value {
            cx.error(
                Code::Type,
                node.span,
                "`team` must be an object since ODPS v1.0.0 (a list of members is v0.9)",
            )
            .hint = Some("write `team:` with `name:` and the list under `members:`".to_owned());
            let members = Vec::<TeamMember>::from_node(node, cx)?;
            return Some(Team {
                members,
                ..Team::default()
            });
        }
        <Self as FromNode>::from_node(node, cx)
    }
}

/// One member of the owning team.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "team member", check = formats::check_membership_dates)]
pub struct TeamMember {
    pub username: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub role: Option<String>,
    pub date_in: Option<String>,
    pub date_out: Option<String>,
    pub replaced_by_username: Option<String>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}
