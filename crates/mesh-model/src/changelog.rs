//! What changed between two versions of a data contract, and whom it can hurt.
//!
//! [`diff`] walks two ODCS documents the way datacontract-cli's `changelog` does: lists whose items
//! have a natural key (`schema[].name`, `properties[].name`, `slaProperties[].property`,
//! `servers[].server`, ...) are matched by that key, every other list is compared as a multiset,
//! and each difference gets a dotted path (`schema.orders.properties.order_date.logicalType`) and
//! a type (added, removed, updated). On top of that, every change is classified by its [`Impact`]
//! on a reader of the old version — breaking, potentially breaking, or information — with the
//! legacy datacontract-cli rules re-expressed on ODCS paths (see `docs/data-product-standard.md`).
//!
//! [`check`] applies a port's [`Compatibility`] mode (Confluent Schema Registry's modes) to a new
//! contract and the history it must stay compatible with.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::source::{Node, Span, Value};

/// What happened at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChangeType {
    Added,
    Removed,
    Updated,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "added",
            ChangeType::Removed => "removed",
            ChangeType::Updated => "updated",
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a change means for a consumer that reads the port under the old contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Impact {
    /// Documentation and additions nobody relies on yet.
    Info,
    /// Potentially breaking: some readers may depend on it (a quality rule removed, a server moved).
    Warning,
    /// Breaking: a reader of the old version can fail (a column removed, a type changed).
    Breaking,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Info => "info",
            Impact::Warning => "warning",
            Impact::Breaking => "breaking",
        }
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between two contracts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Dotted ODCS path: list items appear under their natural key.
    pub path: String,
    #[serde(rename = "type")]
    pub change: ChangeType,
    /// The old value of a leaf; absent for added entries and for objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    /// The new value of a leaf; absent for removed entries and for objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
    pub impact: Impact,
    /// Why it has this impact, for people.
    pub reason: String,
    /// Where the change is: in the new document, or in the old one for removals.
    #[serde(skip)]
    pub span: Span,
    /// Whether `span` points into the old document.
    #[serde(skip)]
    pub in_old: bool,
    /// The nearest enclosing node that exists in the new document: where a removal shows when
    /// the old document has no positions (e.g. it came from the catalog).
    #[serde(skip)]
    pub anchor: Span,
    /// The summary line this change rolls up to; `None` for the entries listed under an added or
    /// removed object (the object's own entry stands for them).
    #[serde(skip)]
    summary: Option<String>,
}

impl Change {
    /// A breaking change found outside a contract diff (e.g. an output port removed from a
    /// product), reported in the same shape.
    pub fn breaking(
        path: impl Into<String>,
        change: ChangeType,
        reason: impl Into<String>,
    ) -> Change {
        let path = path.into();
        Change {
            summary: Some(path.clone()),
            path,
            change,
            old: None,
            new: None,
            impact: Impact::Breaking,
            reason: reason.into(),
            span: Span::default(),
            in_old: false,
            anchor: Span::default(),
        }
    }
}

/// A rolled-up line of the summary: one per schema object, property, keyed item or top-level key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SummaryLine {
    pub path: String,
    #[serde(rename = "type")]
    pub change: ChangeType,
    pub impact: Impact,
}

/// Every difference between two contracts, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Changelog {
    pub changes: Vec<Change>,
}

impl Changelog {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The worst impact of any change (info for no change at all).
    pub fn impact(&self) -> Impact {
        self.changes
            .iter()
            .map(|c| c.impact)
            .max()
            .unwrap_or(Impact::Info)
    }

    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.impact == Impact::Breaking)
    }

    /// Count of changes per impact: (breaking, warning, info).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |i| self.changes.iter().filter(|c| c.impact == i).count();
        (n(Impact::Breaking), n(Impact::Warning), n(Impact::Info))
    }

    /// datacontract-cli's summary: each change rolled up to the thing it belongs to (a leaf value
    /// to its parent, a string list item to its list); an entity both added to and removed from,
    /// or otherwise touched in more than one way, is "updated". Sorted by path.
    pub fn summary(&self) -> Vec<SummaryLine> {
        let mut lines: BTreeMap<String, SummaryLine> = BTreeMap::new();
        for change in &self.changes {
            let Some(path) = change.summary.clone() else {
                continue;
            };
            match lines.get_mut(&path) {
                Some(line) => {
                    if line.change != change.change {
                        line.change = ChangeType::Updated;
                    }
                    line.impact = line.impact.max(change.impact);
                }
                None => {
                    lines.insert(
                        path.clone(),
                        SummaryLine {
                            path,
                            change: change.change,
                            impact: change.impact,
                        },
                    );
                }
            }
        }
        lines.into_values().collect()
    }
}

/// Compares two contracts (old, then new). Both trees are taken as they are; `null` values count
/// as absent, like datacontract-cli's `exclude_none`.
pub fn diff(old: &Node, new: &Node) -> Changelog {
    let mut walker = Walker::default();
    walker.value(&mut Vec::new(), old, new);
    let mut changes = walker.changes;
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Changelog { changes }
}

/// One step of a path: a mapping key, or the natural key of a list item.
#[derive(Debug, Clone)]
struct Seg {
    text: String,
    item: bool,
}

fn join(segs: &[Seg]) -> String {
    let mut path = String::new();
    for (i, seg) in segs.iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        path.push_str(&seg.text);
    }
    path
}

/// How the items of a list are matched between versions.
#[derive(Debug, Clone, Copy)]
struct ListKey {
    /// The fields tried in order for an item's key.
    fields: &'static [&'static str],
    /// Whether the key field stays in the item (datacontract-cli keeps URLs and relationships).
    keep: bool,
    /// Items without a key are dropped (servers without a `server` name).
    drop_unkeyed: bool,
    /// Relationships on a schema object are keyed by `from:to`.
    from_to: bool,
}

const fn key(fields: &'static [&'static str]) -> ListKey {
    ListKey {
        fields,
        keep: false,
        drop_unkeyed: false,
        from_to: false,
    }
}

/// The natural key of the list at `field` under `parent` (datacontract-cli's table), if any.
fn list_key(parent: &[Seg], field: &str) -> Option<ListKey> {
    let top = parent.is_empty();
    let under_schema = parent
        .first()
        .is_some_and(|s| s.text == "schema" && !s.item);
    Some(match field {
        "schema" if top => key(&["name", "id"]),
        "properties" if under_schema => key(&["name", "id"]),
        "slaProperties" => key(&["property"]),
        "servers" if top => ListKey {
            drop_unkeyed: true,
            ..key(&["server"])
        },
        "roles" => key(&["role"]),
        "customProperties" => key(&["property"]),
        "support" if top => key(&["channel"]),
        "team" if top => key(&["username"]),
        "members" if parent.len() == 1 && parent[0].text == "team" => key(&["username"]),
        "authoritativeDefinitions" => ListKey {
            keep: true,
            ..key(&["url", "id"])
        },
        "quality" => key(&["name"]),
        // ODCS v3.2.0: allowed values and synonyms are matched by what they say.
        "enum" if under_schema => key(&["value"]),
        "synonyms" => key(&["synonym"]),
        "relationships" if under_schema => ListKey {
            keep: true,
            from_to: parent.len() == 2,
            ..key(&["to"])
        },
        _ => return None,
    })
}

/// The key of one list item, or `None` when it has none.
fn item_key(rule: ListKey, item: &Node) -> Option<String> {
    let text = |node: &Node| match &node.value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        _ => serde_json::to_string(&node.to_json()).unwrap_or_default(),
    };
    if rule.from_to {
        let from = item.get("from").map(text).unwrap_or_default();
        let to = item.get("to").map(text).unwrap_or_default();
        return Some(format!("{from}:{to}"));
    }
    rule.fields
        .iter()
        .find_map(|f| item.get(f).filter(|n| n.value != Value::Null).map(text))
}

fn is_null(node: &Node) -> bool {
    node.value == Value::Null
}

#[derive(Default)]
struct Walker {
    changes: Vec<Change>,
    /// Spans of the new-document nodes on the current path.
    anchors: Vec<Span>,
}

/// The children of a map-like node: a mapping's entries (without nulls and the key field of a
/// keyed item), or a keyed list's items under their keys.
fn children<'a>(node: &'a Node, skip: Option<&str>) -> Option<Vec<(Seg, &'a Node)>> {
    let entries = node.as_map()?;
    Some(
        entries
            .iter()
            .filter(|e| !is_null(&e.value) && Some(e.key.text.as_str()) != skip)
            .map(|e| {
                let seg = Seg {
                    text: e.key.text.clone(),
                    item: false,
                };
                (seg, &e.value)
            })
            .collect(),
    )
}

impl Walker {
    fn value(&mut self, segs: &mut Vec<Seg>, old: &Node, new: &Node) {
        self.anchors.push(new.span);
        self.compare(segs, old, new);
        self.anchors.pop();
    }

    fn compare(&mut self, segs: &mut Vec<Seg>, old: &Node, new: &Node) {
        match (&old.value, &new.value) {
            (Value::Map(_), Value::Map(_)) => self.map(segs, old, new, None),
            (Value::Seq(a), Value::Seq(b)) => match self.keyed(segs) {
                Some(rule) => {
                    let a = keyed_items(rule, a);
                    let b = keyed_items(rule, b);
                    self.pairs(segs, &a, &b, rule);
                }
                None => self.multiset(segs, old, new),
            },
            _ => {
                if old.to_json() != new.to_json() {
                    self.push(segs, ChangeType::Updated, Some(old), Some(new), false);
                }
            }
        }
    }

    /// The natural key of the list at the end of `segs`, if it has one.
    fn keyed(&self, segs: &[Seg]) -> Option<ListKey> {
        let (last, parent) = segs.split_last()?;
        if last.item {
            return None;
        }
        list_key(parent, &last.text)
    }

    fn map(&mut self, segs: &mut Vec<Seg>, old: &Node, new: &Node, skip: Option<&str>) {
        let a = children(old, skip).unwrap_or_default();
        let b = children(new, skip).unwrap_or_default();
        let in_a: HashSet<&str> = a.iter().map(|(s, _)| s.text.as_str()).collect();
        let in_b: HashMap<&str, &Node> = b.iter().map(|(s, n)| (s.text.as_str(), *n)).collect();
        for (seg, node) in &a {
            segs.push(seg.clone());
            match in_b.get(seg.text.as_str()) {
                Some(other) => self.value(segs, node, other),
                None => self.whole(segs, ChangeType::Removed, node, true),
            }
            segs.pop();
        }
        for (seg, node) in &b {
            if !in_a.contains(seg.text.as_str()) {
                segs.push(seg.clone());
                self.whole(segs, ChangeType::Added, node, true);
                segs.pop();
            }
        }
    }

    /// Keyed list items on both sides, matched by key.
    fn pairs(
        &mut self,
        segs: &mut Vec<Seg>,
        old: &[(String, &Node)],
        new: &[(String, &Node)],
        rule: ListKey,
    ) {
        let skip = |node: &Node| -> Option<String> {
            if rule.keep || rule.from_to {
                return None;
            }
            rule.fields
                .iter()
                .find(|f| node.get(f).is_some_and(|n| !is_null(n)))
                .map(|f| (*f).to_owned())
        };
        let new_keys: HashMap<&str, usize> = new
            .iter()
            .enumerate()
            .map(|(j, (k, _))| (k.as_str(), j))
            .collect();
        let old_keys: HashSet<&str> = old.iter().map(|(k, _)| k.as_str()).collect();
        for (k, node) in old {
            segs.push(Seg {
                text: k.clone(),
                item: true,
            });
            match new_keys.get(k.as_str()).map(|&j| &new[j]) {
                Some((_, other)) => {
                    if node.as_map().is_some() && other.as_map().is_some() {
                        let (sa, sb) = (skip(node), skip(other));
                        // Both sides are keyed by the same field in practice; when they are not
                        // (name on one side, id on the other) the other key shows as a change.
                        let field = if sa == sb { sa } else { None };
                        self.anchors.push(other.span);
                        self.map(segs, node, other, field.as_deref());
                        self.anchors.pop();
                    } else {
                        self.value(segs, node, other);
                    }
                }
                None => self.whole(segs, ChangeType::Removed, node, true),
            }
            segs.pop();
        }
        for (k, node) in new {
            if !old_keys.contains(k.as_str()) {
                segs.push(Seg {
                    text: k.clone(),
                    item: true,
                });
                self.whole(segs, ChangeType::Added, node, true);
                segs.pop();
            }
        }
    }

    /// A list without natural keys, compared as a multiset: reordering is no change; leftover
    /// scalars at the same index are an update; string items show as `list.<item>`.
    fn multiset(&mut self, segs: &mut Vec<Seg>, old: &Node, new: &Node) {
        let (Some(a), Some(b)) = (old.as_seq(), new.as_seq()) else {
            return;
        };
        // Items by their JSON text: equal values pair up in linear time.
        let mut unmatched: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, item) in b.iter().enumerate().rev() {
            unmatched
                .entry(item.to_json().to_string())
                .or_default()
                .push(j);
        }
        let mut matched = vec![false; b.len()];
        let mut removed = Vec::new();
        for (i, item) in a.iter().enumerate() {
            match unmatched
                .get_mut(&item.to_json().to_string())
                .and_then(Vec::pop)
            {
                Some(j) => matched[j] = true,
                None => removed.push(i),
            }
        }
        let mut added: Vec<usize> = (0..b.len()).filter(|&j| !matched[j]).collect();
        let scalar = |n: &Node| !matches!(n.value, Value::Map(_) | Value::Seq(_));
        let mut pending_added: HashSet<usize> = added.iter().copied().collect();
        removed.retain(|&i| {
            if !(pending_added.contains(&i) && scalar(&a[i]) && scalar(&b[i])) {
                return true;
            }
            pending_added.remove(&i);
            self.push(segs, ChangeType::Updated, Some(&a[i]), Some(&b[i]), false);
            false
        });
        added.retain(|j| pending_added.contains(j));
        for (change, items, indexes) in [
            (ChangeType::Removed, a, removed),
            (ChangeType::Added, b, added),
        ] {
            for i in indexes {
                let item = &items[i];
                match item.as_str() {
                    Some(text) => {
                        let list = join(segs);
                        segs.push(Seg {
                            text: text.to_owned(),
                            item: true,
                        });
                        self.push_item(segs, change, item, list);
                        segs.pop();
                    }
                    None => {
                        let (o, n) = match change {
                            ChangeType::Removed => (Some(item), None),
                            _ => (None, Some(item)),
                        };
                        self.push(segs, change, o, n, false);
                    }
                }
            }
        }
    }

    /// An added or removed subtree: its own entry, then (for objects) every entry below it.
    fn whole(&mut self, segs: &mut Vec<Seg>, change: ChangeType, node: &Node, root: bool) {
        let (old, new) = match change {
            ChangeType::Removed => (Some(node), None),
            _ => (None, Some(node)),
        };
        let kids: Option<Vec<(Seg, &Node)>> = match &node.value {
            Value::Map(_) => {
                let skip = self.item_skip(segs, node);
                children(node, skip.as_deref())
            }
            Value::Seq(items) => self.keyed(segs).map(|rule| {
                keyed_items(rule, items)
                    .into_iter()
                    .map(|(k, n)| {
                        (
                            Seg {
                                text: k,
                                item: true,
                            },
                            n,
                        )
                    })
                    .collect()
            }),
            _ => None,
        };
        match kids {
            Some(kids) => {
                self.push_container(segs, change, node, root);
                for (seg, kid) in kids {
                    segs.push(seg);
                    self.whole(segs, change, kid, false);
                    segs.pop();
                }
            }
            None => self.push(segs, change, old, new, !root),
        }
    }

    fn anchor(&self) -> Span {
        self.anchors.last().copied().unwrap_or_default()
    }

    /// The key field to leave out of a keyed item's entries.
    fn item_skip(&self, segs: &[Seg], node: &Node) -> Option<String> {
        let (last, parent) = segs.split_last()?;
        if !last.item || parent.is_empty() {
            return None;
        }
        let (list, above) = parent.split_last()?;
        let rule = list_key(above, &list.text)?;
        if rule.keep || rule.from_to {
            return None;
        }
        rule.fields
            .iter()
            .find(|f| node.get(f).is_some_and(|n| !is_null(n)))
            .map(|f| (*f).to_owned())
    }

    fn push_container(&mut self, segs: &[Seg], change: ChangeType, node: &Node, root: bool) {
        let path = join(segs);
        let (impact, reason) = if root {
            classify(segs, change, None, Some(node))
        } else {
            (Impact::Info, NESTED)
        };
        self.changes.push(Change {
            summary: root.then(|| path.clone()),
            path,
            change,
            old: None,
            new: None,
            impact,
            reason: reason.to_owned(),
            span: node.span,
            in_old: change == ChangeType::Removed,
            anchor: self.anchor(),
        });
    }

    /// A string item of a plain list (`tags.pii`): no values, summarised under the list.
    fn push_item(&mut self, segs: &[Seg], change: ChangeType, node: &Node, list: String) {
        let (impact, reason) = classify(segs, change, None, Some(node));
        self.changes.push(Change {
            path: join(segs),
            change,
            old: None,
            new: None,
            impact,
            reason: reason.to_owned(),
            span: node.span,
            in_old: change == ChangeType::Removed,
            anchor: self.anchor(),
            summary: Some(list),
        });
    }

    /// A leaf change with its value(s).
    fn push(
        &mut self,
        segs: &[Seg],
        change: ChangeType,
        old: Option<&Node>,
        new: Option<&Node>,
        nested: bool,
    ) {
        let path = join(segs);
        let (impact, reason) = if nested {
            (Impact::Info, NESTED)
        } else {
            classify(segs, change, old, new)
        };
        // A leaf rolls up to its parent; an object or list value stands for itself.
        let plain = |n: Option<&Node>| n.is_none_or(|n| n.as_map().is_none());
        let leaf = match change {
            ChangeType::Updated => plain(old) && plain(new),
            _ => old
                .or(new)
                .is_some_and(|n| !matches!(n.value, Value::Map(_) | Value::Seq(_))),
        };
        let summary = if nested {
            None
        } else if leaf && segs.len() > 1 {
            Some(join(&segs[..segs.len() - 1]))
        } else {
            Some(path.clone())
        };
        let (span, in_old) = match (new, old) {
            (Some(n), _) => (n.span, false),
            (None, Some(o)) => (o.span, true),
            (None, None) => (Span::default(), false),
        };
        self.changes.push(Change {
            path,
            change,
            old: old.map(Node::to_json),
            new: new.map(Node::to_json),
            impact,
            reason: reason.to_owned(),
            span,
            in_old,
            anchor: self.anchor(),
            summary,
        });
    }
}

/// The items of a keyed list under their keys; a missing key becomes the item's position
/// (`[2]`), and a repeated key keeps the last item, as datacontract-cli does.
fn keyed_items(rule: ListKey, items: &[Node]) -> Vec<(String, &Node)> {
    let mut out: Vec<(String, &Node)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let key = match item_key(rule, item) {
            Some(k) => k,
            None if rule.drop_unkeyed => continue,
            None => format!("[{i}]"),
        };
        match at.get(&key) {
            Some(&slot) => out[slot].1 = item,
            None => {
                at.insert(key.clone(), out.len());
                out.push((key, item));
            }
        }
    }
    out
}

const NESTED: &str = "part of an added or removed entry";

/// What the path of a change is about: a schema object, a property (possibly nested), or a
/// top-level part of the contract; with the attribute path below it.
enum Owner {
    Object,
    Property,
    Contract,
}

fn owner(segs: &[Seg]) -> (Owner, &[Seg]) {
    if segs.len() < 2 || segs[0].text != "schema" || !segs[1].item {
        return (Owner::Contract, segs);
    }
    let mut owner = Owner::Object;
    let mut i = 2;
    loop {
        match segs.get(i) {
            Some(s) if !s.item && s.text == "items" => i += 1,
            Some(s) if !s.item && s.text == "properties" && segs.get(i + 1).is_some() => {
                owner = Owner::Property;
                i += 2;
            }
            _ => break,
        }
    }
    (owner, &segs[i..])
}

/// `true` when the node is the boolean `true`.
fn is_true(node: Option<&Node>) -> bool {
    node.is_some_and(|n| n.value == Value::Bool(true))
}

/// The impact of one change on a reader of the old version, and why.
fn classify(
    segs: &[Seg],
    change: ChangeType,
    old: Option<&Node>,
    new: Option<&Node>,
) -> (Impact, &'static str) {
    use ChangeType::{Added, Removed, Updated};
    use Impact::{Breaking, Info, Warning};
    let (owner, rest) = owner(segs);
    let attr = rest.first().map(|s| s.text.as_str());
    match owner {
        Owner::Object | Owner::Property if rest.is_empty() => match (owner, change) {
            (Owner::Object, Removed) => (Breaking, "a schema object was removed"),
            (Owner::Object, _) => (Info, "a schema object was added"),
            (_, Removed) => (Breaking, "a property was removed"),
            (_, Added) if is_true(new.and_then(|n| n.get("required"))) => (
                Warning,
                "a required property was added: data written under the old version lacks it",
            ),
            _ => (Info, "an optional property was added"),
        },
        Owner::Object | Owner::Property => {
            let option = (attr == Some("logicalTypeOptions"))
                .then(|| rest.get(1).map(|s| s.text.as_str()))
                .flatten();
            match (attr, option, change) {
                // `properties:` (or `items:`) itself removed or replaced: every column under it.
                (Some("properties" | "items"), _, Removed | Updated) if rest.len() == 1 => {
                    (Breaking, "the nested properties were removed or replaced")
                }
                (Some("logicalType" | "physicalType"), _, Updated)
                | (Some("logicalTypeOptions"), Some("format"), Updated) => {
                    (Breaking, "the type changed")
                }
                (Some("logicalType" | "physicalType"), _, _)
                | (Some("logicalTypeOptions"), Some("format"), _) => {
                    (Warning, "a type or format was added or removed")
                }
                (Some("required" | "unique"), _, _) => flag(change, old, new),
                (Some("logicalTypeOptions"), Some("pattern"), Added) => {
                    (Warning, "a pattern was added")
                }
                (Some("logicalTypeOptions"), Some(_), Updated) => {
                    (Breaking, "a value constraint changed")
                }
                (Some("logicalTypeOptions"), Some("pattern"), Removed) => {
                    (Breaking, "a pattern was removed")
                }
                (Some("logicalTypeOptions"), _, _) => {
                    (Warning, "a value constraint was added or removed")
                }
                (Some("classification"), _, Added) => (Warning, "a classification was added"),
                (Some("classification"), _, _) => {
                    (Breaking, "the classification changed or was removed")
                }
                (
                    Some(
                        "primaryKey"
                        | "primaryKeyPosition"
                        | "relationships"
                        | "physicalName"
                        | "encryptedName"
                        | "partitioned"
                        | "partitionKeyPosition",
                    ),
                    _,
                    _,
                ) => (Warning, "keys, physical names or partitioning changed"),
                (Some("deprecated"), _, Added | Updated) if is_true(new) => (
                    Warning,
                    "deprecated: readers should move off it before a later major version removes it",
                ),
                (Some("deprecated"), _, _) => (Info, "no longer deprecated"),
                (Some("enum"), _, Added) if rest.len() == 1 => {
                    (Warning, "the values were restricted to a list")
                }
                (Some("enum"), _, Removed) if rest.len() == 1 => (
                    Breaking,
                    "the list of allowed values was removed: any value may now appear",
                ),
                (Some("enum"), _, Added) if rest.len() == 2 => (
                    Breaking,
                    "a new allowed value: readers that handle only the listed ones may meet it",
                ),
                (Some("enum"), _, Removed) if rest.len() == 2 => {
                    (Warning, "an allowed value was removed")
                }
                (Some("enum"), _, _) if rest.get(2).is_some_and(|s| s.text == "value") => {
                    (Breaking, "an allowed value changed")
                }
                (Some("map"), _, Added) => (Warning, "a map's key or value type was added"),
                (Some("map"), _, _) => (Breaking, "a map's key or value type changed"),
                (Some("quality"), _, Added) => (Info, "a quality rule was added"),
                (Some("quality"), _, _) => (
                    Warning,
                    "a quality rule was removed or its definition changed",
                ),
                _ => (Info, "documentation or metadata changed"),
            }
        }
        Owner::Contract => match (attr, change) {
            (Some("schema"), Removed | Updated) if rest.len() == 1 => {
                (Breaking, "the schema was removed or replaced")
            }
            (Some("servers"), Added) if rest.len() == 2 => (Info, "a server was added"),
            (Some("servers"), _) => (Warning, "a server was removed or changed"),
            (Some("slaProperties"), Added) if rest.len() == 2 => {
                (Info, "a service-level property was added")
            }
            (Some("slaProperties"), _) => (Warning, "a service level changed"),
            (Some("id"), Updated) => (Warning, "the contract id changed"),
            _ => (Info, "documentation or metadata changed"),
        },
    }
}

/// `required` and `unique` are absent = false; any change of the effective value is breaking.
fn flag(change: ChangeType, old: Option<&Node>, new: Option<&Node>) -> (Impact, &'static str) {
    let before = change != ChangeType::Added && is_true(old);
    let after = change != ChangeType::Removed && is_true(new);
    if before == after {
        (
            Impact::Info,
            "the flag was spelled out or dropped without changing its value",
        )
    } else if after {
        (
            Impact::Breaking,
            "a constraint was switched on (required or unique)",
        )
    } else {
        (
            Impact::Breaking,
            "a constraint was switched off (required or unique)",
        )
    }
}

/// A port's compatibility mode, with Confluent Schema Registry's names and semantics. Version B
/// is *compatible with* version A when the change A → B has no breaking change for a reader of A.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Compatibility {
    /// No check.
    None,
    /// The new version is compatible with the latest one (readers of the latest keep working).
    #[default]
    Backward,
    /// The new version is compatible with every earlier one of its major version.
    BackwardTransitive,
    /// The latest version is compatible with the new one (the change can be rolled back).
    Forward,
    /// Every earlier version is compatible with the new one.
    ForwardTransitive,
    /// Both backward and forward against the latest version.
    Full,
    /// Both backward and forward against every earlier version.
    FullTransitive,
}

impl Compatibility {
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a mode name, case-insensitively.
    pub fn parse(text: &str) -> Option<Compatibility> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether every earlier version counts, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a compatibility check compared two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Direction {
    /// earlier → new: would readers of the earlier version break?
    Backward,
    /// new → earlier: would rolling back break readers of the new version?
    Forward,
}

/// One failed comparison: the new version against an earlier one, in one direction.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incompatibility {
    /// The earlier version it was compared with.
    pub against: String,
    pub direction: Direction,
    /// The breaking changes in that direction.
    pub changes: Vec<Change>,
}

/// Checks `new` against `history` (earlier versions of the same major version, oldest first, each
/// with its version string) under `mode`. Empty = compatible.
pub fn check(mode: Compatibility, new: &Node, history: &[(String, Node)]) -> Vec<Incompatibility> {
    let against: &[(String, Node)] = match (mode, history.split_last()) {
        (Compatibility::None, _) | (_, None) => return Vec::new(),
        (m, Some((latest, _))) if !m.transitive() => std::slice::from_ref(latest),
        _ => history,
    };
    let mut found = Vec::new();
    for (version, earlier) in against.iter().rev() {
        let mut compare = |direction, log: Changelog| {
            let changes: Vec<Change> = log.breaking().cloned().collect();
            if !changes.is_empty() {
                found.push(Incompatibility {
                    against: version.clone(),
                    direction,
                    changes,
                });
            }
        };
        if mode.backward() {
            compare(Direction::Backward, diff(earlier, new));
        }
        if mode.forward() {
            compare(Direction::Forward, diff(new, earlier));
        }
    }
    found
}
