//! Entry points from text to typed documents: [`parse_contract`], [`parse_product`], and
//! [`parse_document`] when the kind is to be told from the file name or the `kind` key.
//!
//! A parse never fails outright: it returns whatever model could be built plus every diagnostic.
//! Callers that need a clean document check [`Parsed::has_errors`]; tolerant callers (a reader that
//! accepts unknown keys) can filter on [`Code`](crate::diag::Code).

use crate::de::{Cx, Edition, FromNode};
use crate::diag::{Code, Diagnostic};
use crate::odcs::Contract;
use crate::odps::DataProduct;
use crate::source::{Node, Span};
use crate::yaml;

/// The two document kinds the platform reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DocKind {
    /// An ODCS data contract (`kind: DataContract`, `*.odcs.yaml`).
    #[serde(rename = "DataContract")]
    Contract,
    /// An ODPS data product (`kind: DataProduct`, `*.odps.yaml`).
    #[serde(rename = "DataProduct")]
    Product,
}

impl DocKind {
    /// The kind a file name promises (`orders.odcs.yaml`, `product.odps.json`), if any.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        for ext in [".yaml", ".yml", ".json"] {
            if let Some(stem) = lower.strip_suffix(ext) {
                if stem.ends_with(".odcs") {
                    return Some(DocKind::Contract);
                }
                if stem.ends_with(".odps") {
                    return Some(DocKind::Product);
                }
            }
        }
        None
    }

    /// The kind a document's `kind` key names, if it is one we know.
    pub fn from_root(root: &Node) -> Option<Self> {
        match root.get("kind")?.as_str()? {
            "DataContract" => Some(DocKind::Contract),
            "DataProduct" => Some(DocKind::Product),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Contract => "DataContract",
            DocKind::Product => "DataProduct",
        }
    }

    /// "a data contract", "a data product".
    pub fn describe(self) -> &'static str {
        match self {
            DocKind::Contract => "a data contract",
            DocKind::Product => "a data product",
        }
    }

    /// The file-name suffix of the kind: `odcs`, `odps`.
    pub fn suffix(self) -> &'static str {
        match self {
            DocKind::Contract => "odcs",
            DocKind::Product => "odps",
        }
    }
}

/// A typed document together with the located tree it was read from.
#[derive(Debug, Clone)]
pub struct Document<T> {
    pub model: T,
    /// Every node with its position; [`Node::pointer`] finds the node behind a model value.
    pub root: Node,
}

/// The outcome of parsing one text.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// The located tree, when the text is well-formed YAML/JSON.
    pub root: Option<Node>,
    /// The typed model, when the root is an object (possibly with problems, see `diagnostics`).
    pub model: Option<T>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Parsed<T> {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The document, if the text produced one.
    pub fn document(self) -> Option<Document<T>> {
        Some(Document {
            model: self.model?,
            root: self.root?,
        })
    }
}

/// Parses an ODCS data contract from YAML or JSON text.
pub fn parse_contract(text: &str) -> Parsed<Contract> {
    parse_as(text)
}

/// Parses an ODPS data product from YAML or JSON text.
pub fn parse_product(text: &str) -> Parsed<DataProduct> {
    parse_as(text)
}

/// Reads `root` as `T`, with its diagnostics.
/// ODCS documents are judged by the rules of the version they declare (see [`Edition`]).
pub fn from_root<T: FromNode>(root: &Node) -> (Option<T>, Vec<Diagnostic>) {
    let mut cx = Cx::with_edition(Edition::of(root));
    let model = T::from_node(root, &mut cx);
    (model, cx.into_diagnostics())
}

fn parse_as<T: FromNode>(text: &str) -> Parsed<T> {
    let parsed = yaml::parse(text);
    typed(parsed.root, parsed.diagnostics)
}

fn typed<T: FromNode>(root: Option<Node>, mut diagnostics: Vec<Diagnostic>) -> Parsed<T> {
    let model = root.as_ref().and_then(|root| {
        let (model, more) = from_root::<T>(root);
        diagnostics.extend(more);
        model
    });
    Parsed {
        root,
        model,
        diagnostics,
    }
}

/// A document of either kind.
#[derive(Debug, Clone)]
pub enum AnyParsed {
    Contract(Box<Parsed<Contract>>),
    Product(Box<Parsed<DataProduct>>),
    /// Not something we read: the text's own problems, and the located tree when there is one.
    Unknown {
        root: Option<Node>,
        diagnostics: Vec<Diagnostic>,
    },
}

/// Parses text whose kind is told by `file_name` (`*.odcs.yaml`, `*.odps.yaml`) or else by its
/// `kind` key.
pub fn parse_document(file_name: &str, text: &str) -> AnyParsed {
    let mut parsed = yaml::parse(text);
    let by_name = DocKind::from_file_name(file_name);
    let by_kind = parsed.root.as_ref().and_then(DocKind::from_root);
    // The content decides; a file name promising the other kind is reported.
    if let (Some(name), Some(kind), Some(root)) = (by_name, by_kind, &parsed.root)
        && name != kind
    {
        let span = root.get("kind").map_or(root.span, |n| n.span);
        parsed.diagnostics.push(
            Diagnostic::error(
                Code::KindMismatch,
                span,
                "/kind",
                format!(
                    "the file name says {} but `kind` is `{}`",
                    name.describe(),
                    kind.as_str()
                ),
            )
            .with_hint(format!(
                "rename the file to *.{}.yaml, or fix `kind`",
                kind.suffix()
            )),
        );
    }
    match by_kind.or(by_name) {
        Some(DocKind::Contract) => {
            AnyParsed::Contract(Box::new(typed(parsed.root, parsed.diagnostics)))
        }
        Some(DocKind::Product) => {
            AnyParsed::Product(Box::new(typed(parsed.root, parsed.diagnostics)))
        }
        None => AnyParsed::Unknown {
            root: parsed.root,
            diagnostics: parsed.diagnostics,
        },
    }
}

/// The diagnostic for a file whose kind cannot be told.
pub fn unknown_kind(root: Option<&Node>) -> Diagnostic {
    let (span, found) = match root.and_then(|r| r.entry("kind")) {
        Some(entry) => (
            entry.value.span,
            format!(" (`kind` is {})", describe(&entry.value)),
        ),
        None => (Span::default(), String::new()),
    };
    Diagnostic::error(
        Code::UnknownKind,
        span,
        if found.is_empty() { "" } else { "/kind" },
        format!("not a data contract or data product{found}"),
    )
    .with_hint("set `kind: DataContract` or `kind: DataProduct`, or name the file *.odcs.yaml / *.odps.yaml")
}

fn describe(node: &Node) -> String {
    match node.as_str() {
        Some(s) => format!("`{s}`"),
        None => node.kind_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_file_name() {
        assert_eq!(
            DocKind::from_file_name("contracts/orders.odcs.yaml"),
            Some(DocKind::Contract)
        );
        assert_eq!(
            DocKind::from_file_name("product.ODPS.yml"),
            Some(DocKind::Product)
        );
        assert_eq!(
            DocKind::from_file_name("x.odcs.json"),
            Some(DocKind::Contract)
        );
        assert_eq!(DocKind::from_file_name("datacontract.yaml"), None);
    }
}
