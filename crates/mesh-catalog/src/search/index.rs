//! Product search: an in-memory BM25 index over the latest version of every product, with field
//! weights, typo tolerance (edit distance 1, 2 for long words), prefixes, facets and filters.
//!
//! The index is derived state: [`crate::Catalog`] keeps it in step with the database by applying
//! the event log before every query, so a product is findable (or gone) as soon as its publish or
//! deprecation commits — in every `mesh serve` instance, because each one reads the same log.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Where a word was found; each field has its own weight in the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    /// Product id, name, port names.
    Name,
    /// Tags of the product, its ports and contracts.
    Tag,
    /// Column (property) and table (schema object) names.
    Column,
    /// Domain, team, owners.
    Owner,
    /// Descriptions, purposes, column descriptions, classifications.
    Text,
}

impl Field {
    fn weight(self) -> f32 {
        match self {
            Field::Name => 3.0,
            Field::Tag => 2.0,
            Field::Column => 1.5,
            Field::Owner => 1.2,
            Field::Text => 1.0,
        }
    }
}

/// What the index knows of one product (its latest version).
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchDoc {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) domain: String,
    pub(crate) version: Option<String>,
    pub(crate) status: String,
    pub(crate) product_type: Option<String>,
    pub(crate) classification: Option<String>,
    pub(crate) tags: Vec<String>,
    /// Column names (lower case), for "shared columns".
    pub(crate) columns: Vec<String>,
    pub(crate) purpose: Option<String>,
    /// (field, text) pairs to index.
    pub(crate) texts: Vec<(Field, String)>,
}

/// A search request.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SearchQuery {
    /// Words to look for (typos and prefixes are tolerated).
    #[serde(default)]
    pub q: String,
    pub domain: Option<String>,
    pub tag: Option<String>,
    /// Product type: source, aggregate, consumer-aligned, derived.
    #[serde(rename = "type")]
    pub product_type: Option<String>,
    pub classification: Option<String>,
    /// Lifecycle status; retired products only show when asked for.
    pub status: Option<String>,
    /// At most this many hits (default 20, at most 100).
    pub limit: Option<usize>,
}

/// One found product.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub id: String,
    pub name: Option<String>,
    pub domain: String,
    pub version: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    pub score: f32,
    /// The indexed words that matched (after typo and prefix expansion).
    pub matched: Vec<String>,
}

/// Hits, best first, and counts per facet value over every match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// How many products matched (before `limit`).
    pub total: usize,
    pub hits: Vec<SearchHit>,
    /// facet name (`domain`, `tag`, `type`, `classification`, `status`) → value → count.
    pub facets: BTreeMap<String, BTreeMap<String, usize>>,
}

type DocId = u32;
type TermId = u32;

/// One product in the index.
#[derive(Debug)]
struct Entry {
    doc: SearchDoc,
    /// Weighted length, for BM25's length normalisation.
    length: f32,
    terms: Vec<TermId>,
    /// Interned (facet, value) pairs, for counting.
    facets: Vec<u32>,
}

/// The index. Documents are replaced whole when their product changes.
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {
    entries: Vec<Option<Entry>>,
    free: Vec<DocId>,
    by_id: HashMap<String, DocId>,
    vocabulary: BTreeMap<String, TermId>,
    words: Vec<String>,
    /// term → (doc, weighted term frequency), sorted by doc.
    postings: Vec<Vec<(DocId, f32)>>,
    /// One-letter deletions of every word → the words (typo candidates).
    deletions: HashMap<String, Vec<TermId>>,
    total_length: f64,
    live: usize,
    /// Interned (facet name, value) pairs.
    facet_ids: HashMap<(&'static str, String), u32>,
    facet_names: Vec<(&'static str, String)>,
}

/// Splits text into lower-case words; `customer_id` and `customerId` also give `customer` and
/// `id`, so a column is found by its whole name and by its parts.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if token.is_empty() {
            continue;
        }
        let lower = token.to_lowercase();
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut prev_lower = false;
        for c in token.chars() {
            if c == '_' {
                if !current.is_empty() {
                    parts.push(std::mem::take(&mut current));
                }
                prev_lower = false;
                continue;
            }
            if c.is_uppercase() && prev_lower && !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            current.extend(c.to_lowercase());
        }
        if !current.is_empty() {
            parts.push(current);
        }
        let whole = lower.trim_matches('_').to_owned();
        if parts.len() > 1 || parts.first().is_some_and(|p| *p != whole) {
            out.extend(parts);
        }
        if !whole.is_empty() {
            out.push(whole);
        }
    }
    out
}

/// The different words of a search, in order.
pub(crate) fn distinct_words(q: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(q)
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// The longest word typos are looked for in: a word has `n·(n-1)/2` double deletions, so a long
/// one would cost quadratic time and memory (no product's words are that long anyway; longer
/// words still match exactly and as prefixes).
const MAX_FUZZY_CHARS: usize = 32;

fn one_deletions(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    (0..chars.len())
        .map(|i| chars[..i].iter().chain(&chars[i + 1..]).collect())
        .collect()
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

impl SearchIndex {
    /// How many products are indexed.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn term(&mut self, word: &str) -> TermId {
        if let Some(&t) = self.vocabulary.get(word) {
            return t;
        }
        let t = self.words.len() as TermId;
        self.vocabulary.insert(word.to_owned(), t);
        self.words.push(word.to_owned());
        self.postings.push(Vec::new());
        if (4..=MAX_FUZZY_CHARS).contains(&word.chars().count()) {
            for variant in one_deletions(word) {
                self.deletions.entry(variant).or_default().push(t);
            }
        }
        t
    }

    /// Adds or replaces a product.
    pub(crate) fn upsert(&mut self, doc: SearchDoc) {
        self.remove(&doc.id);
        let mut weights: HashMap<TermId, f32> = HashMap::new();
        let mut length = 0.0;
        for (field, text) in &doc.texts {
            for word in words(text) {
                let t = self.term(&word);
                *weights.entry(t).or_default() += field.weight();
                length += field.weight();
            }
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as DocId
            }
        };
        let mut terms: Vec<TermId> = weights.keys().copied().collect();
        terms.sort_unstable();
        for (&t, &w) in &weights {
            let list = &mut self.postings[t as usize];
            let at = list.partition_point(|(d, _)| *d < id);
            list.insert(at, (id, w));
        }
        let mut pairs: Vec<(&'static str, String)> = vec![
            ("domain", doc.domain.clone()),
            ("status", doc.status.clone()),
        ];
        pairs.extend(doc.product_type.clone().map(|t| ("type", t)));
        pairs.extend(doc.classification.clone().map(|c| ("classification", c)));
        pairs.extend(doc.tags.iter().map(|t| ("tag", t.clone())));
        let mut facets = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let next = self.facet_names.len() as u32;
            let fid = *self.facet_ids.entry(pair.clone()).or_insert_with(|| next);
            if fid == next {
                self.facet_names.push(pair);
            }
            facets.push(fid);
        }
        self.by_id.insert(doc.id.clone(), id);
        self.total_length += f64::from(length);
        self.live += 1;
        self.entries[id as usize] = Some(Entry {
            doc,
            length,
            terms,
            facets,
        });
    }

    /// Removes a product (no-op when absent).
    pub(crate) fn remove(&mut self, product: &str) {
        let Some(id) = self.by_id.remove(product) else {
            return;
        };
        if let Some(entry) = self.entries[id as usize].take() {
            for t in entry.terms {
                let list = &mut self.postings[t as usize];
                if let Ok(at) = list.binary_search_by_key(&id, |(d, _)| *d) {
                    list.remove(at);
                }
            }
            self.total_length -= f64::from(entry.length);
            self.live -= 1;
            self.free.push(id);
        }
    }

    /// Products like `product`: same domain, shared tags, shared (not generic) columns; with the
    /// reasons. Does not include `product` itself.
    pub(crate) fn related(&self, product: &str) -> Vec<(String, f32, Vec<String>)> {
        const GENERIC: [&str; 6] = [
            "id",
            "created_at",
            "updated_at",
            "name",
            "value",
            "description",
        ];
        let Some(me) = self
            .by_id
            .get(product)
            .and_then(|&d| self.entries[d as usize].as_ref())
        else {
            return Vec::new();
        };
        let mine = &me.doc;
        let mut out = Vec::new();
        for entry in self.entries.iter().flatten() {
            let doc = &entry.doc;
            if doc.id == mine.id || doc.status == "retired" {
                continue;
            }
            let mut score = 0.0;
            let mut why = Vec::new();
            if doc.domain == mine.domain {
                score += 1.0;
                why.push(format!("same domain {}", doc.domain));
            }
            for tag in doc.tags.iter().filter(|t| mine.tags.contains(t)) {
                score += 1.0;
                why.push(format!("tag {tag}"));
            }
            let shared: Vec<&String> = doc
                .columns
                .iter()
                .filter(|c| !GENERIC.contains(&c.as_str()) && mine.columns.binary_search(c).is_ok())
                .collect();
            if !shared.is_empty() {
                score += 0.5 * shared.len() as f32;
                let names: Vec<&str> = shared.iter().map(|c| c.as_str()).collect();
                why.push(format!("columns {}", names.join(", ")));
            }
            if score > 0.0 {
                out.push((doc.id.clone(), score, why));
            }
        }
        out
    }

    /// Index words a query word stands for, each with how much a match counts: the word itself
    /// (1.0), a longer word it starts (0.8), a word one or two edits away (0.7 / 0.5).
    fn expand(&self, word: &str) -> Vec<(TermId, f32)> {
        let mut out: HashMap<TermId, f32> = HashMap::new();
        let mut add = |t: TermId, w: f32| {
            let slot = out.entry(t).or_default();
            *slot = slot.max(w);
        };
        if let Some(&t) = self.vocabulary.get(word) {
            add(t, 1.0);
        }
        let len = word.chars().count();
        if len >= 3 {
            for (other, &t) in self.vocabulary.range(word.to_owned()..).take(64) {
                if !other.starts_with(word) {
                    break;
                }
                add(t, 0.8);
            }
        }
        if (4..=MAX_FUZZY_CHARS).contains(&len) {
            let max = if len >= 8 { 2 } else { 1 };
            let mut variants: HashSet<String> = HashSet::from([word.to_owned()]);
            for d in one_deletions(word) {
                if max == 2 {
                    variants.extend(one_deletions(&d));
                }
                variants.insert(d);
            }
            let mut candidates: HashSet<TermId> = HashSet::new();
            for v in &variants {
                if let Some(ts) = self.deletions.get(v) {
                    candidates.extend(ts);
                }
                if let Some(&t) = self.vocabulary.get(v) {
                    candidates.insert(t);
                }
            }
            for t in candidates {
                let distance = strsim::osa_distance(word, &self.words[t as usize]);
                match distance {
                    0 => add(t, 1.0),
                    1 => add(t, 0.7),
                    2 if max == 2 => add(t, 0.5),
                    _ => {}
                }
            }
        }
        out.into_iter().collect()
    }

    fn admits(doc: &SearchDoc, q: &SearchQuery) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        let status_ok = match &q.status {
            Some(s) => doc.status.eq_ignore_ascii_case(s),
            None => doc.status != "retired",
        };
        status_ok
            && eq(&q.domain, Some(&doc.domain))
            && eq(&q.product_type, doc.product_type.as_deref())
            && eq(&q.classification, doc.classification.as_deref())
            && q.tag
                .as_deref()
                .is_none_or(|t| doc.tags.iter().any(|d| d.eq_ignore_ascii_case(t)))
    }

    /// Runs a query: BM25 over the expanded words, deprecated products ranked down, facets over
    /// every match. Scores accumulate in dense arrays, so the cost is that of the postings read.
    pub(crate) fn search(&self, q: &SearchQuery) -> SearchResults {
        let limit = q.limit.unwrap_or(20).clamp(1, 100);
        let distinct = distinct_words(&q.q);
        let slots = self.entries.len();
        let n = self.live.max(1) as f32;
        let avg = ((self.total_length / self.live.max(1) as f64) as f32).max(1.0);
        let mut score = vec![0f32; slots];
        let mut covered = vec![0u16; slots];
        let mut touched: Vec<DocId> = Vec::new();
        let mut best = vec![0f32; slots];
        let mut best_touched: Vec<DocId> = Vec::new();
        let mut expansions: Vec<Vec<TermId>> = Vec::with_capacity(distinct.len());
        for word in &distinct {
            let expanded = self.expand(word);
            for &(t, weight) in &expanded {
                let list = &self.postings[t as usize];
                if list.is_empty() {
                    continue;
                }
                let df = list.len() as f32;
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                for &(d, tf) in list {
                    let Some(entry) = &self.entries[d as usize] else {
                        continue;
                    };
                    let norm = K1 * (1.0 - B + B * entry.length / avg);
                    let s = weight * idf * tf * (K1 + 1.0) / (tf + norm);
                    let slot = &mut best[d as usize];
                    if *slot == 0.0 {
                        best_touched.push(d);
                    }
                    if s > *slot {
                        *slot = s;
                    }
                }
            }
            for d in best_touched.drain(..) {
                let i = d as usize;
                if covered[i] == 0 {
                    touched.push(d);
                }
                score[i] += best[i];
                covered[i] += 1;
                best[i] = 0.0;
            }
            expansions.push(expanded.into_iter().map(|(t, _)| t).collect());
        }
        let browsing = distinct.is_empty();
        let candidates: Vec<DocId> = if browsing {
            (0..slots as DocId)
                .filter(|&d| self.entries[d as usize].is_some())
                .collect()
        } else {
            touched
        };
        let words_asked = distinct.len().max(1) as f32;
        let mut matches: Vec<(DocId, f32)> = Vec::with_capacity(candidates.len());
        let mut counts = vec![0usize; self.facet_names.len()];
        for d in candidates {
            let Some(entry) = &self.entries[d as usize] else {
                continue;
            };
            if !Self::admits(&entry.doc, q) {
                continue;
            }
            // Products matching every word of the query come first.
            let coverage = f32::from(covered[d as usize]) / words_asked;
            let mut s = score[d as usize] * coverage * coverage;
            if entry.doc.status == "deprecated" {
                s *= 0.5;
            }
            for &f in &entry.facets {
                counts[f as usize] += 1;
            }
            matches.push((d, s));
        }
        let mut results = SearchResults {
            total: matches.len(),
            ..SearchResults::default()
        };
        for (f, count) in counts.into_iter().enumerate() {
            if count > 0 {
                let (facet, value) = &self.facet_names[f];
                results
                    .facets
                    .entry((*facet).to_owned())
                    .or_default()
                    .insert(value.clone(), count);
            }
        }
        let id_of = |d: DocId| self.entries[d as usize].as_ref().map(|e| e.doc.id.as_str());
        let by_rank = |a: &(DocId, f32), b: &(DocId, f32)| {
            b.1.total_cmp(&a.1)
                .then_with(|| id_of(a.0).cmp(&id_of(b.0)))
        };
        if matches.len() > limit {
            matches.select_nth_unstable_by(limit, by_rank);
            matches.truncate(limit);
        }
        matches.sort_by(by_rank);
        results.hits = matches
            .into_iter()
            .filter_map(|(d, score)| {
                let entry = self.entries[d as usize].as_ref()?;
                // Which indexed words matched, for the few hits shown.
                let matched = expansions
                    .iter()
                    .filter_map(|terms| {
                        terms
                            .iter()
                            .find(|&&t| {
                                self.postings[t as usize]
                                    .binary_search_by_key(&d, |(x, _)| *x)
                                    .is_ok()
                            })
                            .map(|&t| self.words[t as usize].clone())
                    })
                    .collect();
                let doc = &entry.doc;
                Some(SearchHit {
                    id: doc.id.clone(),
                    name: doc.name.clone(),
                    domain: doc.domain.clone(),
                    version: doc.version.clone(),
                    status: doc.status.clone(),
                    purpose: doc.purpose.clone(),
                    score,
                    matched,
                })
            })
            .collect();
        results
    }
}

/// The search document of a product: its row, its latest version's descriptor and port contracts.
pub(crate) fn document(
    product: &crate::store::ProductRow,
    descriptor: Option<&serde_json::Value>,
    contracts: &[(String, serde_json::Value)],
) -> SearchDoc {
    let null = serde_json::Value::Null;
    let d = descriptor.unwrap_or(&null);
    let mut doc = SearchDoc {
        id: product.id.clone(),
        name: product.name.clone(),
        domain: product.domain.clone(),
        version: product.latest.clone(),
        status: product.status.clone(),
        purpose: d["description"]["purpose"].as_str().map(str::to_owned),
        ..SearchDoc::default()
    };
    let custom = |node: &serde_json::Value, name: &str| {
        node["customProperties"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["property"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_owned))
    };
    doc.product_type = custom(d, mesh_model::names::props::PRODUCT_TYPE);
    doc.classification = custom(d, mesh_model::names::props::DATA_CLASSIFICATION);
    let mut push = |field: Field, value: &serde_json::Value| {
        if let Some(text) = value.as_str() {
            doc.texts.push((field, text.to_owned()));
        }
    };
    push(Field::Name, &serde_json::Value::String(product.id.clone()));
    push(Field::Name, &d["name"]);
    push(
        Field::Owner,
        &serde_json::Value::String(product.domain.clone()),
    );
    push(Field::Owner, &d["team"]["name"]);
    for member in d["team"]["members"].as_array().into_iter().flatten() {
        push(Field::Owner, &member["username"]);
    }
    for key in ["purpose", "usage", "limitations"] {
        push(Field::Text, &d["description"][key]);
    }
    let mut tags: Vec<String> = Vec::new();
    let mut add_tags = |node: &serde_json::Value| {
        for t in node["tags"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str()
                && !tags.iter().any(|x| x == t)
            {
                tags.push(t.to_owned());
            }
        }
    };
    add_tags(d);
    for port in d["outputPorts"].as_array().into_iter().flatten() {
        push(Field::Name, &port["name"]);
        push(Field::Text, &port["description"]);
        add_tags(port);
    }
    for (_, contract) in contracts {
        add_tags(contract);
        push(Field::Text, &contract["description"]["purpose"]);
        for object in contract["schema"].as_array().into_iter().flatten() {
            add_tags(object);
            push(Field::Column, &object["name"]);
            push(Field::Text, &object["description"]);
            properties(object, &mut push, &mut add_tags);
        }
    }
    for tag in &tags {
        doc.texts.push((Field::Tag, tag.clone()));
    }
    let mut columns: Vec<String> = doc
        .texts
        .iter()
        .filter(|(f, _)| *f == Field::Column)
        .map(|(_, t)| t.to_lowercase())
        .collect();
    columns.sort();
    columns.dedup();
    doc.columns = columns;
    if let Some(c) = &doc.classification {
        doc.texts.push((Field::Text, c.clone()));
    }
    doc.tags = tags;
    doc
}

/// Column names, descriptions and classifications, nested ones included.
fn properties(
    node: &serde_json::Value,
    push: &mut impl FnMut(Field, &serde_json::Value),
    add_tags: &mut impl FnMut(&serde_json::Value),
) {
    let nested = node["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(node["items"]["properties"].as_array().into_iter().flatten());
    for prop in nested {
        push(Field::Column, &prop["name"]);
        push(Field::Text, &prop["description"]);
        push(Field::Text, &prop["businessName"]);
        push(Field::Text, &prop["classification"]);
        add_tags(prop);
        properties(prop, push, add_tags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, texts: &[(Field, &str)]) -> SearchDoc {
        SearchDoc {
            id: id.into(),
            domain: id.split('.').next().unwrap_or_default().into(),
            status: "active".into(),
            texts: texts.iter().map(|(f, t)| (*f, (*t).to_owned())).collect(),
            ..SearchDoc::default()
        }
    }

    #[test]
    fn words_split_identifiers() {
        assert_eq!(words("customer_id"), ["customer", "id", "customer_id"]);
        assert_eq!(
            words("customerId Orders"),
            ["customer", "id", "customerid", "orders"]
        );
        assert_eq!(words("ecommerce.orders"), ["ecommerce", "orders"]);
    }

    #[test]
    fn ranks_names_over_text_and_tolerates_typos_and_prefixes() {
        let mut index = SearchIndex::default();
        index.upsert(doc("sales.orders", &[(Field::Name, "sales.orders Orders")]));
        index.upsert(doc(
            "sales.returns",
            &[
                (Field::Name, "sales.returns"),
                (Field::Text, "returned orders"),
            ],
        ));
        index.upsert(doc("hr.people", &[(Field::Column, "employee_id salary")]));
        fn top(index: &SearchIndex, q: &str) -> Option<String> {
            index
                .search(&SearchQuery {
                    q: q.into(),
                    ..SearchQuery::default()
                })
                .hits
                .first()
                .map(|h| h.id.clone())
        }
        assert_eq!(top(&index, "orders").as_deref(), Some("sales.orders"));
        assert_eq!(top(&index, "ordres").as_deref(), Some("sales.orders"));
        assert_eq!(top(&index, "salar").as_deref(), Some("hr.people"));
        assert_eq!(top(&index, "employee").as_deref(), Some("hr.people"));
        assert_eq!(top(&index, "zzzz"), None);
        // Replacing and removing keep the postings right.
        index.upsert(doc("sales.orders", &[(Field::Name, "sales.bookings")]));
        assert_eq!(top(&index, "bookings").as_deref(), Some("sales.orders"));
        index.remove("sales.orders");
        assert_eq!(top(&index, "bookings"), None);
        assert_eq!(index.len(), 2);
    }
}
