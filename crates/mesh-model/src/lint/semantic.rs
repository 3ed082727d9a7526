//! Rules the JSON schemas cannot express, checked on the located tree so every finding points at
//! the exact key even when other parts of the file are malformed.
//!
//! - identity: names and ids unique within their list (schema objects, properties, servers, roles,
//!   custom properties, team members, ports);
//! - references: relationships resolve to a property of this contract;
//! - ranges: `mustBeBetween` bounds ordered, min ≤ max in `logicalTypeOptions`.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, closest};
use crate::source::{Node, Value, push_pointer};

/// Semantic findings for a contract's tree.
pub(crate) fn contract(root: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let index = SchemaIndex::new(root);
    for (list, what, key) in [
        ("/schema", "schema object", "name"),
        ("/servers", "server", "server"),
        ("/roles", "role", "role"),
        ("/team/members", "team member", "username"),
        // the deprecated list form of `team`
        ("/team", "team member", "username"),
    ] {
        unique_by(root.pointer(list), list, &[key], what, &mut out);
    }
    for (i, server) in items(root, "servers") {
        unique_by(
            server.get("roles"),
            &format!("/servers/{i}/roles"),
            &["role"],
            "role",
            &mut out,
        );
    }
    for (i, object) in items(root, "schema") {
        let pointer = format!("/schema/{i}");
        properties(object, &pointer, &index, &mut out);
        for (j, rel) in items(object, "relationships") {
            let rp = format!("{pointer}/relationships/{j}");
            relationship(rel, &rp, true, &index, &mut out);
        }
    }
    walk(root, &mut String::new(), &mut out);
    out
}

/// Semantic findings for a product's tree.
pub(crate) fn product(root: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (list, what, keys) in [
        ("/inputPorts", "input port", &["name", "version"][..]),
        ("/outputPorts", "output port", &["name", "version"]),
        ("/managementPorts", "management port", &["name"]),
        ("/team/members", "team member", &["username"]),
    ] {
        unique_by(root.pointer(list), list, keys, what, &mut out);
    }
    walk(root, &mut String::new(), &mut out);
    out
}

/// The items of the list under `key`, with their indices.
fn items<'a>(node: &'a Node, key: &str) -> impl Iterator<Item = (usize, &'a Node)> + Clone {
    node.get(key)
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
}

/// Reports items of `list` (at `pointer`) whose values for `keys` repeat an earlier item's.
fn unique_by(
    list: Option<&Node>,
    pointer: &str,
    keys: &[&str],
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    let Some(list) = list.and_then(Node::as_seq) else {
        return;
    };
    let mut seen: HashMap<Vec<&str>, &Node> = HashMap::new();
    for (i, item) in list.iter().enumerate() {
        let Some(values) = keys
            .iter()
            .map(|k| item.get(k).and_then(Node::as_str))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let this = item.get(keys[0]).unwrap_or(item);
        let Some(first) = seen.get(&values) else {
            seen.insert(values, this);
            continue;
        };
        // "duplicate server `prod`", "duplicate output port `orders` version `1.0.0`"
        let mut shown = format!("`{}`", values[0]);
        for (k, v) in keys.iter().zip(&values).skip(1) {
            shown.push_str(&format!(" {k} `{v}`"));
        }
        let unique: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        let hint = if keys.len() == 1 {
            format!("{} must be unique in this list", unique[0])
        } else {
            format!(
                "{} together must be unique in this list",
                unique.join(" and ")
            )
        };
        out.push(
            Diagnostic::error(
                Code::Duplicate,
                this.span,
                format!("{pointer}/{i}/{}", keys[0]),
                format!("duplicate {what} {shown} (first at {})", first.span.start),
            )
            .with_hint(hint),
        );
    }
}

/// Checks the `properties` of a schema object or object property (recursively), and the
/// relationships declared on them.
fn properties(owner: &Node, pointer: &str, index: &SchemaIndex<'_>, out: &mut Vec<Diagnostic>) {
    unique_by(
        owner.get("properties"),
        &format!("{pointer}/properties"),
        &["name"],
        "property",
        out,
    );
    for (j, prop) in items(owner, "properties") {
        let pp = format!("{pointer}/properties/{j}");
        property(prop, &pp, index, out);
    }
}

fn property(prop: &Node, pointer: &str, index: &SchemaIndex<'_>, out: &mut Vec<Diagnostic>) {
    for (k, rel) in items(prop, "relationships") {
        let rp = format!("{pointer}/relationships/{k}");
        relationship(rel, &rp, false, index, out);
    }
    properties(prop, pointer, index, out);
    if let Some(item) = prop.get("items") {
        property(item, &format!("{pointer}/items"), index, out);
    }
}

/// What references can point at: schema objects and their properties, by name and by id.
struct SchemaIndex<'a> {
    objects: Vec<(&'a Node, Option<&'a str>, Option<&'a str>)>,
}

impl<'a> SchemaIndex<'a> {
    fn new(root: &'a Node) -> Self {
        let objects = items(root, "schema")
            .map(|(_, o)| {
                (
                    o,
                    o.get("name").and_then(Node::as_str),
                    o.get("id").and_then(Node::as_str),
                )
            })
            .collect();
        Self { objects }
    }

    fn object_by_name(&self, name: &str) -> Option<&'a Node> {
        self.objects
            .iter()
            .find(|(_, n, _)| *n == Some(name))
            .map(|(o, _, _)| *o)
    }

    fn object_by_id(&self, id: &str) -> Option<&'a Node> {
        by_id(self.objects.iter().map(|(o, _, _)| *o), id)
    }

    fn object_names(&self) -> Vec<&'a str> {
        self.objects.iter().filter_map(|(_, n, _)| *n).collect()
    }
}

fn child_names(owner: &Node) -> Vec<&str> {
    items(owner, "properties")
        .filter_map(|(_, p)| p.get("name").and_then(Node::as_str))
        .collect()
}

fn child_by_id<'a>(owner: &'a Node, id: &str) -> Option<&'a Node> {
    by_id(items(owner, "properties").map(|(_, p)| p), id)
}

/// The node whose `id` is `id`, or else whose `name` is (path references may use either).
fn by_id<'a>(nodes: impl Iterator<Item = &'a Node> + Clone, id: &str) -> Option<&'a Node> {
    let has = |key: &str, n: &&Node| n.get(key).and_then(Node::as_str) == Some(id);
    nodes
        .clone()
        .find(|n| has("id", n))
        .or_else(|| nodes.clone().find(|n| has("name", n)))
}

fn relationship(
    rel: &Node,
    pointer: &str,
    schema_level: bool,
    index: &SchemaIndex<'_>,
    out: &mut Vec<Diagnostic>,
) {
    // The references under `key` with their pointers: one string, or a list of them.
    let refs = |key: &str| -> Vec<(String, &Node)> {
        match rel.get(key) {
            Some(n) if n.as_str().is_some() => vec![(format!("{pointer}/{key}"), n)],
            Some(n) => n
                .as_seq()
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{pointer}/{key}/{i}"), item))
                .collect(),
            None => Vec::new(),
        }
    };
    let mut targets = refs("to");
    if schema_level {
        if let (Some(f), Some(t)) = (
            rel.get("from").and_then(Node::as_seq),
            rel.get("to").and_then(Node::as_seq),
        ) && f.len() != t.len()
        {
            out.push(
                Diagnostic::error(
                    Code::Reference,
                    rel.span,
                    pointer.to_owned(),
                    format!("`from` lists {} columns but `to` lists {}", f.len(), t.len()),
                )
                .with_hint("a composite key pairs each `from` column with the `to` column at the same position"),
            );
        }
        targets.splice(0..0, refs("from"));
    }
    for (p, node) in targets {
        resolve(node, &p, index, out);
    }
}

/// Resolves one reference. A missing property of a known object is an error; an object that is not
/// in this contract is a warning, because references may point at another contract's tables.
fn resolve(node: &Node, pointer: &str, index: &SchemaIndex<'_>, out: &mut Vec<Diagnostic>) {
    use crate::odcs::{RefTarget, Reference};
    let Some(text) = node.as_str() else { return };
    if !Reference::is_valid(text) {
        return; // reported by the typed parse
    }
    let reference = Reference::from_valid(text);
    match reference.target() {
        RefTarget::External => {}
        RefTarget::Shorthand { object, property } => match index.object_by_name(object) {
            // `table.column`, or (v3.2.0) `table.column.field` into nested properties.
            Some(mut owner) => {
                let mut path = object.to_owned();
                for part in property.split('.') {
                    let found = items(owner, "properties")
                        .map(|(_, p)| p)
                        .find(|p| p.get("name").and_then(Node::as_str) == Some(part));
                    let Some(next) = found else {
                        let names = child_names(owner);
                        out.push(
                            Diagnostic::error(
                                Code::Reference,
                                node.span,
                                pointer.to_owned(),
                                if path == object {
                                    format!("`{text}`: schema object `{object}` has no property `{part}`")
                                } else {
                                    format!("`{text}`: `{path}` has no property `{part}`")
                                },
                            )
                            .with_hint_opt(
                                closest(part, names.iter().copied())
                                    .map(|c| format!("did you mean `{path}.{c}`?")),
                            ),
                        );
                        return;
                    };
                    path.push('.');
                    path.push_str(part);
                    owner = next;
                }
            }
            None => out.push(missing_object(node, pointer, text, object, index)),
        },
        RefTarget::Path(segments) => {
            let mut owner: Option<&Node> = None;
            for (n, (section, id)) in segments.iter().enumerate() {
                let found = match (n, *section) {
                    (0, "schema") => index.object_by_id(id),
                    (_, "properties") if n > 0 => owner.and_then(|o| child_by_id(o, id)),
                    _ => {
                        out.push(Diagnostic::error(
                            Code::Reference,
                            node.span,
                            pointer.to_owned(),
                            format!("`{text}`: expected `/schema/<id>/properties/<id>`, found `{section}`"),
                        ));
                        return;
                    }
                };
                match found {
                    Some(next) => owner = Some(next),
                    None if n == 0 => {
                        out.push(missing_object(node, pointer, text, id, index));
                        return;
                    }
                    None => {
                        out.push(Diagnostic::error(
                            Code::Reference,
                            node.span,
                            pointer.to_owned(),
                            format!("`{text}`: no property with id `{id}`"),
                        ));
                        return;
                    }
                }
            }
        }
    }
}

fn missing_object(
    node: &Node,
    pointer: &str,
    text: &str,
    object: &str,
    index: &SchemaIndex<'_>,
) -> Diagnostic {
    let names = index.object_names();
    let hint = match closest(object, names.iter().copied()) {
        Some(c) => format!("did you mean `{c}`? references to another contract use `<file>.yaml#/schema/...`"),
        None => "if it is in another contract, reference it as `<file>.yaml#/schema/<id>/properties/<id>`".to_owned(),
    };
    Diagnostic::warning(
        Code::Reference,
        node.span,
        pointer.to_owned(),
        format!("`{text}`: schema object `{object}` is not in this contract"),
    )
    .with_hint(hint)
}

/// Walks the whole tree for rules that apply wherever their keys appear: ids and custom
/// properties unique per list, operator bounds and option bounds ordered.
fn walk(node: &Node, pointer: &mut String, out: &mut Vec<Diagnostic>) {
    match &node.value {
        Value::Seq(list) => {
            if list.iter().any(|i| i.get("id").is_some()) {
                unique_by(Some(node), pointer, &["id"], "id", out);
            }
            for (i, item) in list.iter().enumerate() {
                let len = pointer.len();
                push_pointer(pointer, &i.to_string());
                walk(item, pointer, out);
                pointer.truncate(len);
            }
        }
        Value::Map(entries) => {
            if let Some(list) = node.get("customProperties") {
                let mut base = pointer.clone();
                push_pointer(&mut base, "customProperties");
                unique_by(Some(list), &base, &["property"], "custom property", out);
            }
            for key in ["mustBeBetween", "mustNotBeBetween"] {
                if let Some(bounds) = node.get(key) {
                    ordered_pair(bounds, key, pointer, out);
                }
            }
            if let Some(options) = node.get("logicalTypeOptions") {
                let mut base = pointer.clone();
                push_pointer(&mut base, "logicalTypeOptions");
                for (low, high) in [
                    ("minLength", "maxLength"),
                    ("minimum", "maximum"),
                    ("exclusiveMinimum", "exclusiveMaximum"),
                    ("minItems", "maxItems"),
                    ("minProperties", "maxProperties"),
                ] {
                    min_max(options, low, high, &base, out);
                }
            }
            for entry in entries {
                if FREE_FORM.contains(&entry.key.text.as_str()) {
                    continue;
                }
                let len = pointer.len();
                push_pointer(pointer, &entry.key.text);
                walk(&entry.value, pointer, out);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// Keys whose values are the user's own data, where our rules do not apply.
const FREE_FORM: &[&str] = &[
    "value",
    "valueExt",
    "examples",
    "arguments",
    "implementation",
    "mustBe",
    "mustNotBe",
];

fn number(node: &Node) -> Option<f64> {
    match node.value {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => None,
    }
}

fn ordered_pair(bounds: &Node, key: &str, pointer: &str, out: &mut Vec<Diagnostic>) {
    let Some([low, high]) = bounds.as_seq() else {
        return;
    };
    let (Some(a), Some(b)) = (number(low), number(high)) else {
        return;
    };
    if a > b {
        let mut p = pointer.to_owned();
        push_pointer(&mut p, key);
        out.push(
            Diagnostic::error(
                Code::Order,
                bounds.span,
                p,
                format!("`{key}` bounds are reversed: {a} is greater than {b}"),
            )
            .with_hint(format!("write `{key}: [{b}, {a}]`")),
        );
    }
}

fn min_max(options: &Node, low: &str, high: &str, pointer: &str, out: &mut Vec<Diagnostic>) {
    let (Some(l), Some(h)) = (options.get(low), options.get(high)) else {
        return;
    };
    let reversed = match (&l.value, &h.value) {
        (Value::String(a), Value::String(b)) => a > b && a.len() == b.len(),
        _ => matches!((number(l), number(h)), (Some(a), Some(b)) if a > b),
    };
    if reversed {
        let mut p = pointer.to_owned();
        push_pointer(&mut p, low);
        out.push(Diagnostic::error(
            Code::Order,
            l.span,
            p,
            format!("`{low}` is greater than `{high}`: no value can satisfy both"),
        ));
    }
}
