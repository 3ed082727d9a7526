//! `mesh plan --import`: drift brought back into the files. What the catalog has in a kind a file
//! manages and the file lacks — a role given with `mesh token create`, a location added by hand,
//! a grant approved outside the files, a subscription made with `mesh subscribe` — is written
//! into that file as one more list entry, where the others are and in their style (block or
//! flow), leaving every other line, comment and blank as it was. The next plan then has nothing
//! to undo.
//!
//! What the files declare and the catalog lacks is not drift this can import: it is either a
//! change not applied yet or something removed by hand, and only a person knows which (apply it,
//! or delete it from the file). Policies changed in the catalog are left as well: their files are
//! Rego, written by people.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::{Change, DomainFile, FileOf, Plan, Repo};
use crate::client::CatalogApi;
use mesh_model::source::{Node, Value};

/// One entry written into a file.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Imported {
    /// `file:line` where it went.
    pub(crate) at: String,
    /// What it is, as plans describe it.
    pub(crate) what: String,
}

/// A list entry: a plain value (an admin) or keys and values, in order.
enum Item {
    Scalar(String),
    Map(Vec<(&'static str, ItemValue)>),
}

enum ItemValue {
    Text(String),
    Number(i64),
    List(Vec<String>),
}

/// Writes the plan's drift into the repository's files and says what went where. The files are
/// read back afterwards; if they no longer read, they are restored and the reason returned.
pub(crate) async fn import(
    client: &dyn CatalogApi,
    root: &Path,
    repo: &Repo,
    plan: &Plan,
) -> anyhow::Result<Vec<Imported>> {
    // Per file: (key, item, description).
    let mut edits: BTreeMap<String, Vec<(&'static str, Item, String)>> = BTreeMap::new();
    let domain_file = |domain: &str| -> Option<&FileOf<DomainFile>> {
        repo.domains
            .iter()
            .find(|f| f.model.name.as_deref() == Some(domain))
    };
    let mut subscriptions = None;
    // What could not be imported, said rather than dropped.
    let mut skipped: Vec<Imported> = Vec::new();
    for step in plan.steps.iter().filter(|s| s.source.is_none()) {
        let what = step.change.describe();
        match &step.change {
            Change::Unbind(b) if b.role == "admin" => {
                if let Some(g) = &repo.global {
                    edits.entry(g.path.clone()).or_default().push((
                        "admins",
                        Item::Scalar(b.principal.clone()),
                        what,
                    ));
                }
            }
            Change::Unbind(b) => {
                if let Some(f) = domain_file(&b.domain) {
                    edits.entry(f.path.clone()).or_default().push((
                        "members",
                        Item::Map(vec![
                            ("principal", ItemValue::Text(b.principal.clone())),
                            ("role", ItemValue::Text(b.role.clone())),
                        ]),
                        what,
                    ));
                }
            }
            Change::RemoveLocation { name, url, domain } => {
                if let Some(f) = domain_file(domain) {
                    edits.entry(f.path.clone()).or_default().push((
                        "locations",
                        Item::Map(vec![
                            ("name", ItemValue::Text(name.clone())),
                            ("url", ItemValue::Text(url.clone())),
                        ]),
                        what,
                    ));
                }
            }
            Change::Revoke {
                grant,
                product,
                port,
                consumer,
            } => {
                let Some(f) = domain_file(mesh_model::names::domain_of(consumer)) else {
                    continue;
                };
                // The purpose, columns and days are those its request asked for.
                let grants = client
                    .access_grants(Some(product))
                    .await
                    .map_err(anyhow::Error::from)?;
                let Some(asked) = grants.iter().find(|g| &g.id == grant).map(|g| &g.request) else {
                    skipped.push(Imported {
                        at: String::new(),
                        what: format!("not imported: {what} (the grant is no longer listed)"),
                    });
                    continue;
                };
                let requests = client
                    .access_requests(Some(product), None)
                    .await
                    .map_err(anyhow::Error::from)?;
                let Some(request) = requests.iter().find(|q| &q.id == asked) else {
                    skipped.push(Imported {
                        at: String::new(),
                        what: format!("not imported: {what} (its request is not among the product's latest 500)"),
                    });
                    continue;
                };
                let mut item = vec![
                    ("product", ItemValue::Text(product.clone())),
                    ("port", ItemValue::Text(port.clone())),
                    ("for", ItemValue::Text(consumer.clone())),
                    ("purpose", ItemValue::Text(request.purpose.clone())),
                ];
                if !request.columns.is_empty() {
                    item.push(("columns", ItemValue::List(request.columns.clone())));
                }
                item.push(("days", ItemValue::Number(request.days)));
                edits
                    .entry(f.path.clone())
                    .or_default()
                    .push(("reads", Item::Map(item), what));
            }
            Change::Unsubscribe {
                id,
                scope,
                subject,
                channel,
                target,
            } => {
                if subscriptions.is_none() {
                    subscriptions =
                        Some(client.subscriptions().await.map_err(anyhow::Error::from)?);
                }
                let events: Vec<String> = subscriptions
                    .iter()
                    .flatten()
                    .find(|s| &s.id == id)
                    .map(|s| s.events.iter().filter(|e| *e != "*").cloned().collect())
                    .unwrap_or_default();
                let domain = match scope.as_str() {
                    "domain" => subject.as_str(),
                    _ => mesh_model::names::domain_of(subject),
                };
                let Some(f) = domain_file(domain) else {
                    continue;
                };
                let mut item = Vec::new();
                match scope.as_str() {
                    "product" => item.push(("product", ItemValue::Text(subject.clone()))),
                    "team" => item.push(("team", ItemValue::Text(subject.clone()))),
                    _ => {}
                }
                let key: &'static str = match channel.as_str() {
                    "slack" => "slack",
                    "email" => "email",
                    _ => "webhook",
                };
                item.push((key, ItemValue::Text(target.clone())));
                if !events.is_empty() {
                    item.push(("events", ItemValue::List(events)));
                }
                edits.entry(f.path.clone()).or_default().push((
                    "subscriptions",
                    Item::Map(item),
                    what,
                ));
            }
            _ => {}
        }
    }

    let mut originals = Vec::new();
    let written = write_all(root, edits, &mut originals);
    // The files must still read as they did, with the entries in; else they are put back.
    let checked = written.and_then(|imported| super::load(root).map(|_| imported));
    match checked {
        Ok(mut imported) => {
            imported.extend(skipped);
            Ok(imported)
        }
        Err(e) => {
            for (full, text) in &originals {
                let _ = std::fs::write(full, text);
            }
            Err(e.context("the drift could not be imported; the files are as they were"))
        }
    }
}

type Edits = BTreeMap<String, Vec<(&'static str, Item, String)>>;

/// Writes each file's entries; `originals` gets every file's text before it was written.
fn write_all(
    root: &Path,
    edits: Edits,
    originals: &mut Vec<(std::path::PathBuf, String)>,
) -> anyhow::Result<Vec<Imported>> {
    let mut imported = Vec::new();
    for (path, items) in edits {
        let full = root.join(&path);
        let text = std::fs::read_to_string(&full)
            .with_context(|| format!("cannot read {}", full.display()))?;
        let parsed = mesh_model::yaml::parse(&text);
        let tree = parsed
            .root
            .with_context(|| format!("{path}: does not read as YAML"))?;
        // Lines as they end: a file written with CRLF stays CRLF.
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut lines: Vec<String> = text
            .strip_suffix(newline)
            .unwrap_or(&text)
            .split(newline)
            .map(str::to_owned)
            .collect();
        if text.is_empty() {
            lines.clear();
        }
        // Each key's entries together, the keys from the bottom of the file up, so that the
        // lines of one insertion do not move another's.
        let mut by_key: Vec<(&'static str, Vec<(Item, String)>)> = Vec::new();
        for (key, item, what) in items {
            match by_key.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push((item, what)),
                None => by_key.push((key, vec![(item, what)])),
            }
        }
        by_key.sort_by_key(|(key, _)| std::cmp::Reverse(tree.key_span(key).start.line));
        // (line, what) of this file's entries; an insertion above one moves it down.
        let mut placed: Vec<(usize, String)> = Vec::new();
        for (key, list) in by_key {
            let (first, at, count) =
                insert(&mut lines, &tree, key, &list).with_context(|| path.clone())?;
            for entry in &mut placed {
                if entry.0 > at {
                    entry.0 += count;
                }
            }
            let mut line = first;
            for (item, what) in list {
                placed.push((line, what));
                if count > 0 {
                    line += match &item {
                        Item::Scalar(_) => 1,
                        Item::Map(pairs) => pairs.len(),
                    };
                }
            }
        }
        imported.extend(placed.into_iter().map(|(line, what)| Imported {
            at: format!("{path}:{line}"),
            what,
        }));
        let mut new_text = lines.join(newline);
        if text.ends_with(newline) {
            new_text.push_str(newline);
        }
        originals.push((full.clone(), text));
        std::fs::write(&full, new_text)
            .with_context(|| format!("cannot write {}", full.display()))?;
    }
    Ok(imported)
}

/// Inserts `items` into the list under the top-level `key` of the file's `lines`; returns the
/// (1-based) line of the first item (of the list, for a flow list), the (0-based) index the new
/// lines went in at, and how many.
fn insert(
    lines: &mut Vec<String>,
    tree: &Node,
    key: &str,
    items: &[(Item, String)],
) -> anyhow::Result<(usize, usize, usize)> {
    let key_line = tree.key_span(key).start.line as usize;
    let key_col = tree.key_span(key).start.col as usize;
    let node = tree
        .get(key)
        .with_context(|| format!("no `{key}:` in the file"))?;
    match &node.value {
        Value::Seq(seq) if seq.is_empty() && is_flow(lines, node) => {
            // `key: []`: the `[]` goes, the entries go under the key as a block.
            let row = node.span.start.line as usize - 1;
            let line = &mut lines[row];
            let open = byte_at(line, node.span.start.col as usize - 1);
            let close = line[open..].find(']').map(|i| open + i).with_context(|| {
                format!("line {}: a list that does not close on its line", row + 1)
            })?;
            line.replace_range(open..=close, "");
            if !line.contains('#') {
                line.truncate(line.trim_end().len());
            }
            let block = block_items(items, key_col + 1);
            let count = block.len();
            for (n, l) in block.into_iter().enumerate() {
                lines.insert(row + 1 + n, l);
            }
            Ok((row + 2, row + 1, count))
        }
        Value::Seq(seq) if is_flow(lines, node) => {
            // `[a, b]`: the entries go before the `]` the list ends with.
            let (row, close) = flow_end(lines, node).with_context(|| {
                format!("line {key_line}: cannot find where the `{key}:` list ends")
            })?;
            let line = &mut lines[row];
            let flow: Vec<String> = items.iter().map(|(i, _)| flow_item(i)).collect();
            let sep = if seq.is_empty() { "" } else { ", " };
            line.insert_str(close, &format!("{sep}{}", flow.join(", ")));
            Ok((node.span.start.line as usize, row, 0))
        }
        Value::Seq(seq) if !seq.is_empty() => {
            // A block list: after the last line of its last entry, at its entries' indent.
            let last = &seq[seq.len() - 1];
            let first_row = seq[0].span.start.line as usize - 1;
            let first = lines.get(first_row).map_or("", String::as_str);
            let before = &first[..byte_at(first, seq[0].span.start.col as usize - 1)];
            // The `- ` of the first entry (its column in characters).
            let dash = before
                .rfind('-')
                .map_or(key_col + 1, |b| before[..b].chars().count());
            let mut end = last.span.start.line as usize - 1;
            for (i, line) in lines.iter().enumerate().skip(end + 1) {
                let indent = line.len() - line.trim_start().len();
                if line.trim().is_empty() {
                    continue;
                }
                if indent > dash {
                    end = i;
                } else {
                    break;
                }
            }
            let block = block_items(items, dash);
            let (at, count) = (end + 1, block.len());
            for (n, l) in block.into_iter().enumerate() {
                lines.insert(at + n, l);
            }
            Ok((at + 1, at, count))
        }
        Value::Null | Value::Seq(_) => {
            // `key:` with nothing under it (or an empty block list): the entries under the key.
            let row = key_line - 1;
            if matches!(node.value, Value::Seq(_)) {
                anyhow::bail!("line {key_line}: `{key}:` holds a list this cannot add to");
            }
            // `key: null` or `key: ~`: the value goes, the entries come under the key.
            if let Some(line) = lines.get_mut(row) {
                let start = byte_at(line, key_col - 1);
                if let Some(colon) = line[start..].find(':').map(|c| start + c)
                    && line[colon + 1..]
                        .split('#')
                        .next()
                        .is_some_and(|v| !v.trim().is_empty())
                {
                    line.truncate(colon + 1);
                }
            }
            let block = block_items(items, key_col + 1);
            let count = block.len();
            for (n, l) in block.into_iter().enumerate() {
                lines.insert(row + 1 + n, l);
            }
            Ok((row + 2, row + 1, count))
        }
        _ => anyhow::bail!("line {key_line}: `{key}:` is not a list"),
    }
}

/// Where the flow list starting at `node` ends: (row, byte offset of its `]`), found by reading
/// from its `[` — past quoted text, nested lists and maps, and comments.
fn flow_end(lines: &[String], node: &Node) -> Option<(usize, usize)> {
    let mut row = node.span.start.line as usize - 1;
    let mut from = byte_at(lines.get(row)?, node.span.start.col as usize - 1);
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    loop {
        let line = lines.get(row)?;
        let mut prev = ' ';
        for (i, c) in line[from..].char_indices() {
            match (quote, c) {
                (Some('\''), '\'') | (Some('"'), '"') if prev != '\\' || quote == Some('\'') => {
                    quote = None
                }
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some((row, from + i));
                    }
                }
                _ => {}
            }
            prev = c;
        }
        row += 1;
        from = 0;
    }
}

/// The byte offset of the `chars`-th character of `line` (its length past the end).
fn byte_at(line: &str, chars: usize) -> usize {
    line.char_indices()
        .nth(chars)
        .map_or(line.len(), |(i, _)| i)
}

fn is_flow(lines: &[String], node: &Node) -> bool {
    let row = node.span.start.line as usize;
    let col = node.span.start.col as usize;
    row >= 1
        && lines
            .get(row - 1)
            .and_then(|l| l.chars().nth(col.saturating_sub(1)))
            == Some('[')
}

/// The entries as block lines, each `- ` at column `dash` (0-based).
fn block_items(items: &[(Item, String)], dash: usize) -> Vec<String> {
    let pad = " ".repeat(dash);
    let mut out = Vec::new();
    for (item, _) in items {
        match item {
            Item::Scalar(s) => out.push(format!("{pad}- {}", scalar(s))),
            Item::Map(pairs) => {
                for (n, (k, v)) in pairs.iter().enumerate() {
                    let lead = if n == 0 {
                        format!("{pad}- ")
                    } else {
                        format!("{pad}  ")
                    };
                    let value = match v {
                        ItemValue::Text(s) => scalar(s),
                        ItemValue::Number(n) => n.to_string(),
                        ItemValue::List(l) => format!("[{}]", quoted(l).join(", ")),
                    };
                    out.push(format!("{lead}{k}: {value}"));
                }
            }
        }
    }
    out
}

/// A text as a YAML scalar that reads back as the same text: plain when it can be, else
/// double-quoted (a number, `true`, `null`, a line break, a `: `...).
fn scalar(text: &str) -> String {
    let plain = crate::files::yaml_text(text);
    let stays_text = mesh_model::yaml::parse(&format!("v: {plain}\n"))
        .root
        .is_some_and(|r| r.get("v").and_then(Node::as_str) == Some(text));
    if plain == text && stays_text && !text.contains(['\n', '\r', '\t']) {
        plain
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}

/// An entry in flow style: `"x"` or `{k: "v", ...}`.
fn flow_item(item: &Item) -> String {
    match item {
        Item::Scalar(s) => quoted(std::slice::from_ref(s)).remove(0),
        Item::Map(pairs) => {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        ItemValue::Text(s) => quoted(std::slice::from_ref(s)).remove(0),
                        ItemValue::Number(n) => n.to_string(),
                        ItemValue::List(l) => format!("[{}]", quoted(l).join(", ")),
                    };
                    format!("{k}: {value}")
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Double-quoted YAML scalars (JSON strings are).
fn quoted(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` with `items` added under `key`, as `write_all` does it.
    fn added(text: &str, key: &str, items: Vec<Item>) -> String {
        let tree = mesh_model::yaml::parse(text).root.unwrap();
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut lines: Vec<String> = text
            .strip_suffix(newline)
            .unwrap_or(text)
            .split(newline)
            .map(str::to_owned)
            .collect();
        let items: Vec<(Item, String)> = items.into_iter().map(|i| (i, String::new())).collect();
        insert(&mut lines, &tree, key, &items).unwrap();
        let mut out = lines.join(newline);
        if text.ends_with(newline) {
            out.push_str(newline);
        }
        // What was written reads back as YAML.
        assert!(
            mesh_model::yaml::parse(&out).diagnostics.is_empty(),
            "{out}"
        );
        out
    }

    fn member(p: &str) -> Item {
        Item::Map(vec![
            ("principal", ItemValue::Text(p.into())),
            ("role", ItemValue::Text("member".into())),
        ])
    }

    #[test]
    fn a_flow_list_ends_at_its_own_bracket_not_a_comments() {
        assert_eq!(
            added(
                "admins: [a] # see [1]\n",
                "admins",
                vec![Item::Scalar("b".into())]
            ),
            "admins: [a, \"b\"] # see [1]\n"
        );
        assert_eq!(
            added(
                "admins: [\n  a,\n  b\n]\nx: 1\n",
                "admins",
                vec![Item::Scalar("c".into())]
            ),
            "admins: [\n  a,\n  b\n, \"c\"]\nx: 1\n"
        );
    }

    #[test]
    fn line_ends_unindented_lists_and_null_values_are_kept_right() {
        assert_eq!(
            added(
                "members:\r\n- principal: a\r\n  role: owner\r\n",
                "members",
                vec![member("b")]
            ),
            "members:\r\n- principal: a\r\n  role: owner\r\n- principal: b\r\n  role: member\r\n"
        );
        assert_eq!(
            added(
                "members: ~  # none yet\nname: x",
                "members",
                vec![member("b")]
            ),
            "members:\n  - principal: b\n    role: member\nname: x"
        );
        // Café before the list: columns are characters, not bytes.
        assert_eq!(
            added(
                "é: 1\nmembers:\n  - {principal: é, role: owner}\n",
                "members",
                vec![member("b")]
            ),
            "é: 1\nmembers:\n  - {principal: é, role: owner}\n  - principal: b\n    role: member\n"
        );
    }

    #[test]
    fn texts_that_would_read_back_as_something_else_are_quoted() {
        for (text, written) in [
            ("plain words", "plain words"),
            ("123", "\"123\""),
            ("true", "\"true\""),
            ("null", "\"null\""),
            ("a: b", "\"a: b\""),
            ("two\nlines", "\"two\\nlines\""),
            ("#hash", "\"#hash\""),
        ] {
            assert_eq!(scalar(text), written, "{text:?}");
        }
    }
}
