//! Platform readiness: what a product needs before `mesh publish` accepts it, beyond what the
//! standards require. The official examples omit some of these (no domain-prefixed ids, contracts
//! kept elsewhere), so they are warnings in `mesh lint` and errors with `--strict` and at publish.
//!
//! Products: an id of the form `domain.product`, a domain, an owning team, at least one output
//! port, each output port's `contractId` resolving to a linted contract that has a schema, a
//! semver `version`, and valid values for the platform's custom properties. Contracts: a semver
//! `version`.

use crate::diag::{Code, Diagnostic, suggest};
use crate::names::is_snake;
use crate::odcs::Contract;
use crate::odps::{DataClassification, DataProduct, PlatformProperty, ProductType};
use crate::source::{Node, Span};

use super::LintedContract;

pub(crate) fn contract(contract: &Contract, root: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // A missing contract version is already a schema error; only its form is checked here.
    if contract.version.is_some() {
        semver(contract.version.as_deref(), root, "contract", &mut out);
    }
    out
}

pub(crate) fn product(
    product: &DataProduct,
    root: &Node,
    contracts: &[LintedContract<'_>],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let warn = |span: Span, pointer: &str, message: String| {
        Diagnostic::warning(Code::Readiness, span, pointer, message)
    };

    if let Some(id) = &product.id {
        let span = root.get("id").map_or(root.span, |n| n.span);
        match id.split_once('.') {
            Some((domain, name)) if is_snake(domain) && is_snake(name) => {
                if let Some(declared) = product.domain.as_deref().filter(|d| *d != domain) {
                    out.push(
                        warn(span, "/id", format!("product id `{id}` is not in its domain `{declared}`"))
                            .with_hint(format!("use `{declared}.{name}`")),
                    );
                }
            }
            _ => out.push(
                warn(span, "/id", format!("product id `{id}` is not of the form `domain.product`"))
                    .with_hint("products are addressed as `<domain>.<product>` in snake_case, e.g. `ecommerce.orders`"),
            ),
        }
    }
    if product.domain.is_none() {
        out.push(
            warn(root.span, "", "product has no `domain`".into())
                .with_hint("add `domain:` with the owning domain"),
        );
    }
    let has_team = product
        .team
        .as_ref()
        .is_some_and(|t| t.name.is_some() || !t.members.is_empty());
    if !has_team {
        let span = root.get("team").map_or(root.span, |n| n.span);
        out.push(
            warn(span, "/team", "product has no owning team".into())
                .with_hint("add `team:` with a `name` and its `members`"),
        );
    }
    semver(product.version.as_deref(), root, "product", &mut out);

    if product.output_ports.is_empty() {
        let span = root.get("outputPorts").map_or(root.span, |n| n.span);
        out.push(
            warn(span, "/outputPorts", "product has no output ports".into())
                .with_hint("declare at least one output port with a `contractId`"),
        );
    }
    let ports = root
        .get("outputPorts")
        .and_then(Node::as_seq)
        .unwrap_or_default();
    for (i, port_node) in ports.iter().enumerate() {
        let Some(name) = port_node.get("name").and_then(Node::as_str) else {
            continue;
        };
        let pointer = format!("/outputPorts/{i}");
        let Some(contract_node) = port_node.get("contractId") else {
            out.push(
                warn(
                    port_node.span,
                    &pointer,
                    format!("output port `{name}` has no `contractId`"),
                )
                .with_hint("every output port is governed by an ODCS contract: add `contractId:`"),
            );
            continue;
        };
        let Some(contract_id) = contract_node.as_str() else {
            continue;
        };
        let pointer = format!("{pointer}/contractId");
        match contracts
            .iter()
            .find(|c| c.model.id.as_deref() == Some(contract_id))
        {
            None => {
                let ids: Vec<&str> = contracts
                    .iter()
                    .filter_map(|c| c.model.id.as_deref())
                    .collect();
                let hint = suggest(contract_id, &ids)
                    .filter(|h| h.starts_with("did"))
                    .unwrap_or_else(|| {
                        "lint the product folder together with its contracts/ folder".to_owned()
                    });
                out.push(
                    warn(
                        contract_node.span,
                        &pointer,
                        format!("contract `{contract_id}` of output port `{name}` is not among the linted files"),
                    )
                    .with_hint(hint),
                );
            }
            Some(found) if found.model.schema.is_empty() => out.push(
                warn(
                    contract_node.span,
                    &pointer,
                    format!("contract `{contract_id}` of output port `{name}` has no schema"),
                )
                .with_hint(format!(
                    "describe the port's data under `schema:` in {}",
                    found.path
                )),
            ),
            Some(_) => {}
        }
    }

    let props = root
        .get("customProperties")
        .and_then(Node::as_seq)
        .unwrap_or_default();
    for (i, prop) in props.iter().enumerate() {
        let Some(name) = prop.get("property").and_then(Node::as_str) else {
            continue;
        };
        let Some(property) = PlatformProperty::parse(name) else {
            continue;
        };
        let Some(value) = prop.get("value") else {
            continue;
        };
        let pointer = format!("/customProperties/{i}/value");
        let (ok, allowed): (bool, &[&str]) = match property {
            PlatformProperty::ProductType => (
                value.as_str().and_then(ProductType::parse).is_some(),
                ProductType::ALL,
            ),
            PlatformProperty::DataClassification => (
                value.as_str().and_then(DataClassification::parse).is_some(),
                DataClassification::ALL,
            ),
            PlatformProperty::Schedule => {
                if let Err(problems) = crate::schedule::Schedule::read(value) {
                    out.extend(problems.into_iter().map(|p| p.diagnostic(&pointer)));
                }
                continue;
            }
            PlatformProperty::RetentionDays => {
                let days = match value.value {
                    crate::source::Value::Int(d) => d > 0,
                    _ => false,
                };
                if !days {
                    out.push(warn(
                        value.span,
                        &pointer,
                        "`retentionDays` must be a positive whole number of days".into(),
                    ));
                }
                continue;
            }
        };
        if !ok {
            let shown = value
                .as_str()
                .map_or_else(|| value.kind_name().to_owned(), |s| format!("`{s}`"));
            let hint = value
                .as_str()
                .and_then(|s| suggest(s, allowed))
                .or_else(|| suggest("", allowed));
            out.push(
                warn(
                    value.span,
                    &pointer,
                    format!("{shown} is not a valid `{name}`"),
                )
                .with_hint_opt(hint),
            );
        }
    }
    out
}

fn semver(version: Option<&str>, root: &Node, what: &str, out: &mut Vec<Diagnostic>) {
    match version {
        None => out.push(
            Diagnostic::warning(
                Code::Readiness,
                root.span,
                "/version",
                format!("{what} has no `version`"),
            )
            .with_hint("add `version:` as a semantic version, e.g. `1.0.0`"),
        ),
        Some(v) if ::semver::Version::parse(v).is_err() => {
            let span = root.get("version").map_or(root.span, |n| n.span);
            out.push(
                Diagnostic::warning(
                    Code::Readiness,
                    span,
                    "/version",
                    format!("version `{v}` is not a semantic version"),
                )
                .with_hint("write MAJOR.MINOR.PATCH, e.g. `1.0.0`; a breaking change bumps MAJOR"),
            );
        }
        Some(_) => {}
    }
}
