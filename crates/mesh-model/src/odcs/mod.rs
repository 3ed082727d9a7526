//! ODCS — the Open Data Contract Standard (Bitol), v3.0.x to v3.2.0, as typed Rust.
//!
//! One set of types reads every 3.x document. v3.1.0 is a superset of 3.0.x (the official 3.1.0
//! JSON schema accepts `apiVersion: v3.0.x`), and several 3.0-labelled documents in the wild use 3.1
//! features, so 3.0.x and 3.1.0 are judged alike, by v3.1.0's rules. v3.2.0 adds keys (`context`,
//! `enum`, `map`, `synonyms`, ...) and relaxes a few requirements; a document declaring it is judged
//! by its rules, every other one by v3.1.0's ([`crate::de::Edition`]), so a v3.1.0 contract using a
//! v3.2.0 key is told which version has it. The types encode the official JSON schema's
//! rules — required keys, types, enums, patterns, and the conditional ones (per server type, per
//! logical type, per quality rule type) in `check` functions — so that strict parsing agrees with
//! the schema while naming the field, the position and the fix. Field names follow the standard
//! (`slaProperties`, `logicalType`), so the JSON we write is ODCS.
//!
//! Not here: checks the schema cannot express (unique names, resolvable references) live in
//! [`crate::lint`].

mod context;
mod quality;
mod schema;
mod server;
pub mod sla;

pub use context::{Context, ContextConstraint, ContextDetail, VerifiedStatement};
pub use quality::{
    Between, DataQuality, Dimension, Implementation, Metric, OPERATORS, Operator, QualityType,
};
pub use schema::{
    Bound, DistanceMetric, EnumValue, LogicalType, LogicalTypeOptions, MapType, ObjectLogicalType,
    RefList, RefTarget, Reference, Relationship, RelationshipType, SchemaObject, SchemaProperty,
    SemanticType, Synonym, VectorElementType,
};
pub use server::{Port, Server, ServerType};

use mesh_model_derive::Model;

use crate::de::{Cx, Edition, Extra, FromNode, Scalar};
use crate::diag::Code;
use crate::formats;
use crate::source::{Node, Value};
use crate::string_enum;

string_enum! {
    /// The only valid `kind` of a data contract.
    pub enum ContractKind ("data contract kind") {
        DataContract = "DataContract",
    }
}

string_enum! {
    /// `apiVersion` values the ODCS 3.2.0 schema accepts.
    pub enum OdcsApiVersion ("ODCS apiVersion") {
        V3_2_0 = "v3.2.0",
        V3_1_0 = "v3.1.0",
        V3_0_2 = "v3.0.2",
        V3_0_1 = "v3.0.1",
        V3_0_0 = "v3.0.0",
        V2_2_2 = "v2.2.2",
        V2_2_1 = "v2.2.1",
        V2_2_0 = "v2.2.0",
    }
}

/// An ODCS data contract: the schema, quality rules, SLA and terms of one dataset.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "data contract", check = check_contract)]
pub struct Contract {
    #[model(required)]
    pub version: Option<String>,
    #[model(required)]
    pub kind: Option<ContractKind>,
    #[model(required)]
    pub api_version: Option<OdcsApiVersion>,
    #[model(required)]
    pub id: Option<String>,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub tags: Vec<String>,
    /// Required up to v3.1.0; optional since v3.2.0 (checked in [`check_contract`]).
    pub status: Option<String>,
    pub servers: Vec<Server>,
    #[model(
        deprecated = "removed in ODCS v3.1.0; a data product now lists its contracts in its ODPS descriptor"
    )]
    pub data_product: Option<String>,
    pub description: Option<Description>,
    pub domain: Option<String>,
    pub schema: Vec<SchemaObject>,
    pub support: Vec<SupportItem>,
    pub price: Option<Pricing>,
    pub team: Option<TeamSpec>,
    pub roles: Vec<Role>,
    #[model(deprecated = "since ODCS v3.1.0 each SLA property names its own `element`")]
    pub sla_default_element: Option<String>,
    pub sla_properties: Vec<SlaProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub custom_properties: Vec<CustomProperty>,
    pub contract_created_ts: Option<String>,
    /// Guidance for AI agents and semantic tools (v3.2.0).
    #[model(since_3_2)]
    pub context: Option<Context>,
    #[model(extra)]
    pub extra: Extra,
}

fn check_contract(node: &Node, cx: &mut Cx) {
    formats::check_date_time(node, "contractCreatedTs", cx);
    if cx.edition() < Edition::V3_2 && node.entry("status").is_none() {
        cx.error(
            Code::Required,
            crate::source::Span::point(node.span.start),
            "data contract is missing required key `status`",
        )
        .hint = Some(
            "add `status:` (e.g. `active`); only v3.2.0 contracts may leave it out".to_owned(),
        );
    }
}

impl Contract {
    /// The schema object called `name`.
    pub fn schema_object(&self, name: &str) -> Option<&SchemaObject> {
        self.schema.iter().find(|o| o.name == name)
    }

    /// Team members, whichever form (v3.1 object or deprecated list) the contract uses.
    pub fn team_members(&self) -> &[TeamMember] {
        match &self.team {
            Some(TeamSpec::Team(team)) => &team.members,
            Some(TeamSpec::Members(members)) => members,
            None => &[],
        }
    }

    /// The SLA property called `property` (e.g. `latency`, `retention`, `availability`).
    pub fn sla(&self, property: &str) -> Option<&SlaProperty> {
        self.sla_properties.iter().find(|p| p.property == property)
    }
}

/// High-level description of the dataset. The standard leaves this object open.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "description", open)]
pub struct Description {
    pub usage: Option<String>,
    pub purpose: Option<String>,
    pub limitations: Option<String>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// A stable technical identifier (`^[A-Za-z0-9_-]+$`), used by references such as
/// `/schema/<id>/properties/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct StableId(String);

impl StableId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_valid(text: &str) -> bool {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

impl std::fmt::Display for StableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromNode for StableId {
    const EXPECTED: &'static str = "a string";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let text = String::from_node(node, cx)?;
        if !Self::is_valid(&text) {
            cx.error(
                Code::Pattern,
                node.span,
                format!("`{text}` is not a valid id"),
            )
            .hint = Some("ids use only letters, digits, `_` and `-`".to_owned());
            return None;
        }
        Some(StableId(text))
    }
}

/// A link to the authoritative source of a definition (business glossary, implementation, ...).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "authoritative definition")]
pub struct AuthoritativeDefinition {
    pub id: Option<StableId>,
    pub url: String,
    #[model(rename = "type")]
    pub definition_type: String,
    pub description: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// A `property`/`value` pair for anything the standard does not define.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "custom property")]
pub struct CustomProperty {
    pub id: Option<StableId>,
    pub property: String,
    pub value: serde_json::Value,
    pub description: Option<String>,
    /// The vendor or system the property belongs to (v3.2.0).
    #[model(since_3_2)]
    pub vendor: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// Where consumers get help (a Slack channel, an email list, a ticket queue).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "support channel")]
pub struct SupportItem {
    pub id: Option<StableId>,
    pub channel: String,
    pub url: Option<String>,
    pub description: Option<String>,
    pub tool: Option<String>,
    pub scope: Option<String>,
    pub invitation_url: Option<String>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// What consuming the data costs.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "price")]
pub struct Pricing {
    pub id: Option<StableId>,
    pub price_amount: Option<serde_json::Number>,
    pub price_currency: Option<String>,
    pub price_unit: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

/// `team`: an object with members (v3.1), or the deprecated plain list of members (v3.0).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum TeamSpec {
    Team(Box<Team>),
    Members(Vec<TeamMember>),
}

impl FromNode for TeamSpec {
    const EXPECTED: &'static str = "an object (team) or a list of team members";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::Map(_) => Team::from_node(node, cx).map(|t| TeamSpec::Team(Box::new(t))),
            Value::Seq(_) => {
                cx.warning(
                    Code::Deprecated,
                    node.span,
                    "a list of team members is deprecated since ODCS v3.1.0",
                )
                .hint = Some("write `team:` as an object with `name` and `members:`".to_owned());
                Vec::<TeamMember>::from_node(node, cx).map(TeamSpec::Members)
            }
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

/// The team that owns the contract.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "team")]
pub struct Team {
    pub id: Option<StableId>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub members: Vec<TeamMember>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}

/// One member of a team, with the dates of their membership.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "team member", check = formats::check_membership_dates)]
pub struct TeamMember {
    pub id: Option<StableId>,
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

/// An access role consumers can request, and who approves it.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "role")]
pub struct Role {
    pub id: Option<StableId>,
    pub role: String,
    pub description: Option<String>,
    pub access: Option<String>,
    pub first_level_approvers: Option<String>,
    pub second_level_approvers: Option<String>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// One service-level property (`latency`, `retention`, `availability`, `frequency`, ...).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "SLA property")]
pub struct SlaProperty {
    pub id: Option<StableId>,
    pub property: String,
    pub value: Scalar,
    pub value_ext: Option<Scalar>,
    pub unit: Option<String>,
    pub element: Option<String>,
    pub driver: Option<String>,
    pub description: Option<String>,
    pub scheduler: Option<String>,
    pub schedule: Option<String>,
    #[model(since_3_2)]
    pub custom_properties: Vec<CustomProperty>,
    #[model(since_3_2)]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[model(extra)]
    pub extra: Extra,
}
