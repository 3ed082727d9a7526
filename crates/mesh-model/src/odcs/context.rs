//! `context` (ODCS v3.2.0): guidance for AI agents, BI tools and semantic layers — instructions,
//! canonical questions with verified answers, and what not to do — on a contract or a schema object.

use mesh_model_derive::Model;

use crate::de::{Cx, Extra, FromNode};
use crate::source::{Node, Value};

use super::{AuthoritativeDefinition, CustomProperty};

/// A `context` block: plain instructions (the shorthand), or the detailed object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Context {
    Instructions(String),
    Detail(Box<ContextDetail>),
}

impl Context {
    /// The instructions, whichever form the block uses.
    pub fn instructions(&self) -> Option<&str> {
        match self {
            Context::Instructions(text) => Some(text),
            Context::Detail(detail) => detail.instructions.as_deref(),
        }
    }
}

impl FromNode for Context {
    const EXPECTED: &'static str = "a string (instructions) or an object";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::String(text) => Some(Context::Instructions(text.clone())),
            Value::Map(_) => {
                ContextDetail::from_node(node, cx).map(|d| Context::Detail(Box::new(d)))
            }
            _ => {
                cx.type_error(node, Self::EXPECTED);
                None
            }
        }
    }
}

/// The detailed form of `context`.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "context")]
pub struct ContextDetail {
    pub instructions: Option<String>,
    pub verified_statements: Vec<VerifiedStatement>,
    pub constraints: Vec<ContextConstraint>,
    #[model(extra)]
    pub extra: Extra,
}

/// A canonical question, with its verified answer when it has one.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "verified statement")]
pub struct VerifiedStatement {
    pub id: Option<String>,
    pub question: String,
    pub answer: Option<String>,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}

/// Something AI agents must not do with the data.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "context constraint")]
pub struct ContextConstraint {
    pub id: Option<String>,
    pub constraint: String,
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<CustomProperty>,
    #[model(extra)]
    pub extra: Extra,
}
