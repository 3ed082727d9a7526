//! Reading YAML 1.2 (and therefore JSON) text into a located [`Node`] tree.
//!
//! Built on `saphyr-parser`'s event stream, which gives a span for every event; this module resolves
//! plain scalars with the YAML 1.2 core schema (so `yes` stays a string and `1.10` is a number, as in
//! every JSON-schema toolchain that reads YAML 1.2), expands anchors and aliases, applies `<<` merge
//! keys (a YAML 1.1 convenience many contract authors use), and reports duplicate keys.
//!
//! Limits protect the process from hostile input: nesting depth and the number of nodes after
//! alias expansion are capped ("billion laughs"), and every failure becomes a [`Diagnostic`], never
//! a panic.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan, Tag};

use crate::diag::{Code, Diagnostic};
use crate::source::{Entry, Key, Node, Pos, Span, Value};

/// Deeper nesting than this is refused (real contracts nest a handful of levels).
const MAX_DEPTH: usize = 128;
/// A document may expand (counting alias copies) to this many values...
const MAX_NODES: usize = 1_000_000;
/// ...and this many bytes of text; the largest real contracts are a few hundred kilobytes.
const MAX_BYTES: usize = 64 << 20;

/// The result of reading text: the tree when the text is well-formed, and every problem found.
#[derive(Debug, Clone)]
pub struct ParsedText {
    pub root: Option<Node>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads one YAML or JSON document. A syntax error stops reading (the rest of the text cannot be
/// trusted); duplicate keys and bad merge keys are reported and reading goes on.
pub fn parse(text: &str) -> ParsedText {
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        lines: Lines::new(text),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        diagnostics: Vec::new(),
    };
    let root = match reader.document() {
        Ok(root) => Some(root),
        Err(diag) => {
            reader.diagnostics.push(*diag);
            None
        }
    };
    ParsedText {
        root,
        diagnostics: reader.diagnostics,
    }
}

/// Line lengths (in characters) of a text, to keep every reported position inside it: the scanner
/// places empty values and end-of-input errors one line past the last.
#[derive(Debug)]
struct Lines(Vec<u32>);

impl Lines {
    /// Lines split at CR, LF or CRLF, as YAML does.
    fn new(text: &str) -> Self {
        let normalized = text.replace("\r\n", "\n");
        let lens = normalized
            .split(['\n', '\r'])
            .map(|l| u32::try_from(l.chars().count()).unwrap_or(u32::MAX))
            .collect();
        Lines(lens)
    }

    fn clamp(&self, pos: Pos) -> Pos {
        let last = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        let line = pos.line.clamp(1, last);
        let len = self.0.get(line as usize - 1).copied().unwrap_or(0);
        Pos::new(line, pos.col.clamp(1, len.saturating_add(1)))
    }
}

struct Reader<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    lines: Lines,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    bytes: usize,
    diagnostics: Vec<Diagnostic>,
}

type Step<T> = Result<T, Box<Diagnostic>>;

fn pos(marker: &saphyr_parser::Marker) -> Pos {
    let line = u32::try_from(marker.line()).unwrap_or(u32::MAX);
    let col = u32::try_from(marker.col() + 1).unwrap_or(u32::MAX);
    Pos::new(line, col)
}

fn fatal(code: Code, at: Span, message: impl Into<String>) -> Box<Diagnostic> {
    Box::new(Diagnostic::error(code, at, "", message))
}

impl<'a> Reader<'a> {
    fn span(&self, span: &YSpan) -> Span {
        Span::new(
            self.lines.clamp(pos(&span.start)),
            self.lines.clamp(pos(&span.end)),
        )
    }

    fn next(&mut self) -> Step<(Event<'a>, Span)> {
        match self.events.next() {
            Some(Ok((event, s))) => Ok((event, self.span(&s))),
            Some(Err(err)) => {
                let at = Span::point(self.lines.clamp(pos(err.marker())));
                Err(fatal(
                    Code::Syntax,
                    at,
                    format!("invalid YAML: {}", err.info()),
                ))
            }
            None => Err(fatal(
                Code::Syntax,
                Span::default(),
                "unexpected end of input",
            )),
        }
    }

    fn document(&mut self) -> Step<Node> {
        let mut root = None;
        loop {
            let (event, at) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(fatal(
                            Code::Document,
                            at,
                            "the file holds more than one YAML document; put each contract or product in its own file",
                        ));
                    }
                    let (first, first_at) = self.next()?;
                    root = Some(self.node(first, first_at, 0)?);
                }
                Event::StreamEnd => {
                    return root.ok_or_else(|| {
                        fatal(
                            Code::Document,
                            Span::point(Pos::new(1, 1)),
                            "the file is empty",
                        )
                    });
                }
                _ => {
                    return Err(fatal(
                        Code::Syntax,
                        at,
                        "unexpected YAML event outside a document",
                    ));
                }
            }
        }
    }

    /// Charges `weight` against the limits, so that aliases cannot expand a small file into
    /// gigabytes ("billion laughs").
    fn count(&mut self, at: Span, weight: Weight) -> Step<()> {
        self.nodes += weight.nodes;
        self.bytes += weight.bytes;
        if self.nodes > MAX_NODES || self.bytes > MAX_BYTES {
            return Err(fatal(
                Code::Document,
                at,
                format!(
                    "the document expands to more than {MAX_NODES} values or {} MiB (check anchors and aliases)",
                    MAX_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, at: Span, depth: usize) -> Step<Node> {
        if depth > MAX_DEPTH {
            return Err(fatal(
                Code::Document,
                at,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let own_bytes = match &event {
            Event::Scalar(text, ..) => text.len(),
            _ => 0,
        };
        self.count(
            at,
            Weight {
                nodes: 1,
                bytes: own_bytes,
            },
        )?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                (self.scalar(&text, style, tag.as_deref(), at), anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let end = loop {
                    let (event, item_at) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break item_at;
                    }
                    items.push(self.node(event, item_at, depth + 1)?);
                };
                (
                    Node::new(Value::Seq(items), Span::new(at.start, end.end.max(at.end))),
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut map = MapBuilder::default();
                let mut merges = Vec::new();
                let end = loop {
                    let (event, key_at) = self.next()?;
                    if let Event::MappingEnd = event {
                        break key_at;
                    }
                    let merge = matches!(&event, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
                    let key = self.key(event, key_at, depth + 1)?;
                    let (value_event, value_at) = self.next()?;
                    let value = self.node(value_event, value_at, depth + 1)?;
                    if merge {
                        merges.push(value);
                        continue;
                    }
                    if let Some(first) = map.insert(Entry { key, value }) {
                        let key = map.last_key();
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::DuplicateKey,
                                key.span,
                                "",
                                format!("duplicate key `{}` (first defined at {first})", key.text),
                            )
                            .with_hint(
                                "YAML keys must be unique; the last value wins, remove the other",
                            ),
                        );
                    }
                };
                for merge in merges {
                    self.merge(&mut map, merge);
                }
                (
                    Node::new(
                        Value::Map(map.finish()),
                        Span::new(at.start, end.end.max(at.end)),
                    ),
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(fatal(Code::Syntax, at, "alias to an unknown anchor"));
                };
                self.count(at, weight(&target))?;
                return Ok(target);
            }
            _ => return Err(fatal(Code::Syntax, at, "unexpected YAML event")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn key(&mut self, event: Event<'a>, at: Span, depth: usize) -> Step<Key> {
        let node = self.node(event, at, depth)?;
        let text = match &node.value {
            Value::String(s) => s.clone(),
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => {
                return Err(fatal(
                    Code::Syntax,
                    node.span,
                    "a list or mapping cannot be used as a key (JSON objects have string keys)",
                ));
            }
        };
        Ok(Key {
            text,
            span: node.span,
        })
    }

    /// `<<: *base` (or a list of them): copies keys the mapping does not define itself.
    fn merge(&mut self, map: &mut MapBuilder, merge: Node) {
        let sources = match merge.value {
            Value::Map(_) => vec![merge],
            Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::Map(_))) => items,
            _ => {
                self.diagnostics.push(Diagnostic::error(
                    Code::Syntax,
                    merge.span,
                    "",
                    "the value of a `<<` merge key must be a mapping or a list of mappings",
                ));
                return;
            }
        };
        for source in sources {
            if let Value::Map(entries) = source.value {
                for entry in entries {
                    map.insert_if_absent(entry);
                }
            }
        }
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, tag: Option<&Tag>, at: Span) -> Node {
        let value = match tag {
            Some(tag) if tag.is_yaml_core_schema() => match tag.suffix.as_str() {
                "str" => Value::String(text.to_string()),
                suffix @ ("int" | "float" | "bool" | "null") => {
                    let resolved = resolve_plain(text);
                    let ok = matches!(
                        (suffix, &resolved),
                        ("int", Value::Int(_))
                            | ("float", Value::Float(_) | Value::Int(_))
                            | ("bool", Value::Bool(_))
                            | ("null", Value::Null)
                    );
                    if !ok {
                        self.diagnostics.push(Diagnostic::error(
                            Code::Type,
                            at,
                            "",
                            format!("`{text}` is not a valid !!{suffix}"),
                        ));
                    }
                    match (suffix, resolved) {
                        ("float", Value::Int(i)) => Value::Float(i as f64),
                        (_, v) => v,
                    }
                }
                other => {
                    self.diagnostics.push(Diagnostic::warning(
                        Code::Type,
                        at,
                        "",
                        format!(
                            "YAML tag `!!{other}` is not part of the core schema and is ignored"
                        ),
                    ));
                    plain_or_string(text, style)
                }
            },
            // The non-specific tag `!` forces a string.
            Some(tag) if tag.handle == "!" && tag.suffix.is_empty() => {
                Value::String(text.to_string())
            }
            Some(tag) => {
                self.diagnostics.push(Diagnostic::warning(
                    Code::Type,
                    at,
                    "",
                    format!("YAML tag `{tag}` is ignored"),
                ));
                plain_or_string(text, style)
            }
            None => plain_or_string(text, style),
        };
        Node::new(value, at)
    }
}

/// The entries of one mapping, with a key index so duplicate checks stay linear in the number of
/// keys (a file with 100,000 keys must not take minutes).
#[derive(Default)]
struct MapBuilder {
    /// `None` marks an entry replaced by a later duplicate.
    entries: Vec<Option<Entry>>,
    index: HashMap<String, usize>,
}

impl MapBuilder {
    /// Adds an entry; on a duplicate key the later value wins and the first position is returned.
    fn insert(&mut self, entry: Entry) -> Option<Pos> {
        let previous = self
            .index
            .insert(entry.key.text.clone(), self.entries.len());
        self.entries.push(Some(entry));
        let old = previous.and_then(|i| self.entries[i].take())?;
        Some(old.key.span.start)
    }

    fn insert_if_absent(&mut self, entry: Entry) {
        if !self.index.contains_key(&entry.key.text) {
            self.insert(entry);
        }
    }

    fn last_key(&self) -> &Key {
        &self
            .entries
            .last()
            .and_then(Option::as_ref)
            .expect("an entry was just inserted")
            .key
    }

    fn finish(self) -> Vec<Entry> {
        self.entries.into_iter().flatten().collect()
    }
}

fn plain_or_string(text: &str, style: ScalarStyle) -> Value {
    if style == ScalarStyle::Plain {
        resolve_plain(text)
    } else {
        Value::String(text.to_owned())
    }
}

/// What a node costs against the limits: values and bytes of text.
#[derive(Debug, Clone, Copy, Default)]
struct Weight {
    nodes: usize,
    bytes: usize,
}

fn weight(node: &Node) -> Weight {
    let mut w = Weight { nodes: 1, bytes: 0 };
    match &node.value {
        Value::String(s) => w.bytes += s.len(),
        Value::Seq(items) => items.iter().map(weight).for_each(|c| w.add(c)),
        Value::Map(entries) => {
            for e in entries {
                w.bytes += e.key.text.len();
                w.add(weight(&e.value));
            }
        }
        _ => {}
    }
    w
}

impl Weight {
    fn add(&mut self, other: Weight) {
        self.nodes += other.nodes;
        self.bytes += other.bytes;
    }
}

/// YAML 1.2 core schema resolution of a plain scalar (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            // Beyond 64 bits: keep the magnitude as a float, as JSON parsers do.
            Err(_) => text
                .parse::<f64>()
                .map_or_else(|_| Value::String(text.to_owned()), Value::Float),
        };
    }
    for (prefix, radix) in [("0o", 8), ("0x", 16)] {
        if let Some(digits) = text.strip_prefix(prefix)
            && !digits.is_empty()
            && digits.chars().all(|c| c.is_digit(radix))
            && let Ok(i) = i64::from_str_radix(digits, radix)
        {
            return Value::Int(i);
        }
    }
    if is_core_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::String(text.to_owned())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp_digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let parsed = parse(text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        parsed.root.expect("parses")
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(resolve_plain("yes"), Value::String("yes".into()));
        assert_eq!(resolve_plain("1.10"), Value::Float(1.1));
        assert_eq!(resolve_plain("1.0.0"), Value::String("1.0.0".into()));
        assert_eq!(resolve_plain("-12"), Value::Int(-12));
        assert_eq!(resolve_plain("0x1F"), Value::Int(31));
        assert_eq!(resolve_plain("1e3"), Value::Float(1000.0));
        assert_eq!(resolve_plain("."), Value::String(".".into()));
        assert_eq!(resolve_plain("~"), Value::Null);
        assert_eq!(
            resolve_plain("2023-01-01"),
            Value::String("2023-01-01".into())
        );
    }

    #[test]
    fn positions_are_one_based() {
        let node = root("a: 1\nb:\n  - x\n  - 'y'\n");
        let b = node.entry("b").expect("b");
        assert_eq!(b.key.span.start, Pos::new(2, 1));
        let y = &b.value.as_seq().expect("seq")[1];
        assert_eq!(y.span.start, Pos::new(4, 5));
        assert_eq!(y.value, Value::String("y".into()));
    }

    #[test]
    fn json_is_read_with_positions() {
        let node = root("{\n  \"a\": [1, 2.5, true, null],\n\t\"b\": {\"c\": \"d\"}\n}\n");
        assert_eq!(
            node.pointer("/a/1").map(|n| &n.value),
            Some(&Value::Float(2.5))
        );
        assert_eq!(
            node.pointer("/b/c").map(|n| n.span.start),
            Some(Pos::new(3, 13))
        );
    }

    #[test]
    fn duplicate_keys_are_reported_and_last_wins() {
        let parsed = parse("a: 1\na: 2\n");
        assert_eq!(parsed.diagnostics.len(), 1);
        assert_eq!(parsed.diagnostics[0].code, Code::DuplicateKey);
        assert_eq!(
            parsed
                .root
                .and_then(|r| r.get("a").cloned())
                .map(|n| n.value),
            Some(Value::Int(2))
        );
    }

    #[test]
    fn merge_keys_and_aliases() {
        let node = root("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n");
        assert_eq!(
            node.pointer("/item/x").map(|n| &n.value),
            Some(&Value::Int(1))
        );
        assert_eq!(
            node.pointer("/item/y").map(|n| &n.value),
            Some(&Value::Int(3))
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            text.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let parsed = parse(&text);
        assert!(parsed.root.is_none());
        assert_eq!(parsed.diagnostics[0].code, Code::Document);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        for text in [
            "[".repeat(100_000),
            "a:\n".to_owned() + &"  - ".repeat(5_000),
            "{a: ".repeat(50_000),
        ] {
            let parsed = parse(&text);
            assert!(parsed.root.is_none());
            assert!(!parsed.diagnostics.is_empty());
        }
    }

    #[test]
    fn alias_bombs_of_long_strings_are_refused() {
        let mut text = format!("a: &a \"{}\"\n", "x".repeat(100_000));
        text.push_str("l0: &l0 [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n");
        for i in 1..5 {
            let p = format!("*l{}", i - 1);
            text.push_str(&format!("l{i}: &l{i} [{}]\n", [p.as_str(); 10].join(", ")));
        }
        let parsed = parse(&text);
        assert!(parsed.root.is_none());
        assert_eq!(parsed.diagnostics[0].code, Code::Document);
    }

    #[test]
    fn wide_mappings_with_duplicates() {
        // 100,000 keys and 50,000 duplicates: a quadratic duplicate check would take minutes.
        let text: String = (0..150_000)
            .map(|i| format!("k{}: {i}\n", i % 100_000))
            .collect();
        let parsed = parse(&text);
        assert_eq!(parsed.diagnostics.len(), 50_000);
        let root = parsed.root.expect("parses");
        assert_eq!(root.as_map().map(<[Entry]>::len), Some(100_000));
        assert_eq!(root.get("k7").map(|n| &n.value), Some(&Value::Int(100_007)));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let parsed = parse("a: [1, 2\nb: 3\n");
        assert!(parsed.root.is_none());
        let d = &parsed.diagnostics[0];
        assert_eq!(d.code, Code::Syntax);
        assert!(d.span.start.is_known());
    }

    #[test]
    fn empty_and_multi_document_files() {
        assert_eq!(parse("").diagnostics[0].message, "the file is empty");
        assert_eq!(
            parse("# only a comment\n").diagnostics[0].message,
            "the file is empty"
        );
        assert_eq!(
            parse("a: 1\n---\nb: 2\n").diagnostics[0].code,
            Code::Document
        );
    }
}
