//! Duplicate keys, counted in the database on connections of their own, while the fused
//! aggregate runs on the caller's.
//!
//! Grouping every key of a large table is the most expensive check by far (10M text keys: about
//! 5 s of one PostgreSQL core, four times the fused aggregate). So, in order:
//!
//! 1. A primary key or unique constraint on a subset of the key columns answers at once: no
//!    duplicates, no scan. A constraint's equality is never finer than the grouping's (MySQL's
//!    case-insensitive collations included), so keys unique under it are unique here too.
//! 2. PostgreSQL: the keys' hashes are grouped instead of the keys, split by hash into one part
//!    per connection, each part on its own connection and so its own core of the server. Equal
//!    keys have equal hashes, so no hash group with more than one row means no duplicates. When
//!    some hash groups repeat (at most [`CANDIDATES`] per part), one scan restricted to those
//!    hashes groups the keys themselves: the answer is exact, hash collisions included. With more
//!    repeated hashes than that, each part groups its keys exactly.
//! 3. MySQL and SQLite: the exact grouping on one extra connection.
//!
//! `MESH_DB_PARALLEL` (default 2) is how many connections PostgreSQL's split uses. Those
//! connections sort their part's hashes in memory (`work_mem` of `MESH_DB_WORK_MEM`, default
//! 128MB, and a sort rather than a hash table, which PostgreSQL spills sooner).

use super::{Column, Conn, Key, Kind, Target};

/// Keys that occur more than once and the rows they span, or why they could not be counted.
pub(super) type Duplicated = Result<(f64, f64), String>;

/// Repeated hashes per part that are checked key by key; past it, each part groups exactly.
const CANDIDATES: usize = 1000;

/// How many connections PostgreSQL's split uses: `MESH_DB_PARALLEL`, 1 to 16, default 2.
pub(super) fn parallel() -> usize {
    std::env::var("MESH_DB_PARALLEL")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(2)
        .clamp(1, 16)
}

/// The session settings of the connections that group hashes.
pub(super) fn sorting() -> [(&'static str, String); 2] {
    let work_mem = std::env::var("MESH_DB_WORK_MEM")
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "128MB".to_owned());
    [("work_mem", work_mem), ("enable_hashagg", "off".to_owned())]
}

/// What [`count_apart`] reads: the table and the rows checked.
pub(super) struct Scope<'a> {
    pub columns: &'a [Column],
    /// The table's name in the catalog, for its constraints.
    pub name: &'a str,
    /// The quoted, qualified table.
    pub table: &'a str,
    /// A condition in the server's dialect restricting the rows checked.
    pub filter: Option<&'a str>,
}

/// Counts the duplicates of each key set (the table's column names) on connections of its own.
/// `None` for a set means no connection could be opened: count it with [`exact`] on the
/// caller's connection.
pub(super) async fn count_apart(
    target: &Target,
    scope: &Scope<'_>,
    key_sets: &[Vec<String>],
) -> Vec<Option<Duplicated>> {
    if key_sets.is_empty() {
        return Vec::new();
    }
    let settings = sorting();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Ok(first) = target.connect_with(&settings).await else {
        return vec![None; key_sets.len()];
    };
    let mut conns = vec![first];
    // An unreadable catalog only costs the shortcut.
    let constraints = target
        .keys(&mut conns[0], scope.name)
        .await
        .unwrap_or_default();
    let mut out = Vec::with_capacity(key_sets.len());
    for keys in key_sets {
        out.push(Some(if covered(&constraints, keys) {
            Ok((0.0, 0.0))
        } else {
            match hash_of(target.kind, scope.columns, keys) {
                Some(hash) => {
                    while conns.len() < parallel() {
                        match target.connect_with(&settings).await {
                            Ok(c) => conns.push(c),
                            Err(_) => break,
                        }
                    }
                    split(target, &mut conns, scope, keys, &hash).await
                }
                None => exact(target, &mut conns[0], scope, keys, None).await,
            }
        }));
    }
    for conn in conns {
        conn.close().await;
    }
    out
}

/// Whether a primary key or unique constraint on a subset of `keys` makes them unique already
/// (step 1 above).
pub(super) fn covered(constraints: &[Key], keys: &[String]) -> bool {
    constraints
        .iter()
        .any(|c| !c.columns.is_empty() && c.columns.iter().all(|k| keys.contains(k)))
}

/// `hash IN (...)` of the repeated hashes: the rows that hold every duplicate.
pub(super) fn among(hash: &str, hashes: &[i64]) -> String {
    let list = hashes
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!("{hash} IN ({list})")
}

/// The keys' exact duplicates and the rows they span, over rows where every key is set and, when
/// given, `restrict` holds too.
pub(super) async fn exact(
    target: &Target,
    conn: &mut Conn,
    scope: &Scope<'_>,
    keys: &[String],
    restrict: Option<&str>,
) -> Duplicated {
    let kind = target.kind;
    let listed = listed(kind, keys);
    let sql = format!(
        "SELECT {}, {} FROM (SELECT COUNT(*) AS n FROM {} WHERE {}{}{} \
         GROUP BY {listed} HAVING COUNT(*) > 1) AS duplicated",
        kind.double("COUNT(*)"),
        kind.double("COALESCE(SUM(n), 0)"),
        scope.table,
        not_null(kind, keys),
        and(scope.filter),
        and(restrict),
    );
    match conn.numbers(&sql).await {
        Ok(values) => Ok((
            values.first().copied().flatten().unwrap_or(0.0),
            values.get(1).copied().flatten().unwrap_or(0.0),
        )),
        Err(e) => Err(target.query_error(&e).to_string()),
    }
}

/// The grouped key expressions, compared exactly.
pub(super) fn listed(kind: Kind, keys: &[String]) -> String {
    keys.iter()
        .map(|k| kind.exact(&kind.quote(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every key is set, in the server's dialect.
pub(super) fn not_null(kind: Kind, keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("{} IS NOT NULL", kind.quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

pub(super) fn and(condition: Option<&str>) -> String {
    condition.map(|c| format!(" AND ({c})")).unwrap_or_default()
}

/// A 64-bit hash of the keys that is equal whenever the keys are (PostgreSQL only): the text
/// hash for one text column (its collation's equality), else the row hash, which uses each
/// type's own hash (so `1.0` and `1.00` hash alike). `citext` and other types are left to the
/// row hash, which fails for types without one — and then the exact grouping answers.
pub(super) fn hash_of(kind: Kind, columns: &[Column], keys: &[String]) -> Option<String> {
    if kind != Kind::Postgres {
        return None;
    }
    let quoted: Vec<String> = keys.iter().map(|k| kind.quote(k)).collect();
    let texty = |name: &str| {
        columns.iter().any(|c| {
            c.name == name
                && (c.db_type == "text"
                    || c.db_type.starts_with("character varying")
                    || c.db_type.starts_with("character("))
        })
    };
    Some(match keys {
        [one] if texty(one) => format!("hashtextextended({}, 0)", quoted[0]),
        _ => format!("hash_record_extended(ROW({}), 0)", quoted.join(", ")),
    })
}

/// What grouping the keys' hashes found.
pub(super) enum Repeated {
    /// The duplicates, counted already: no hash repeated, or too many did and each part grouped
    /// its keys exactly, or the keys have no hash and were grouped exactly.
    Counted(Duplicated),
    /// These hashes repeated: the rows whose keys hash to them (`rows` in all) hold every
    /// duplicate.
    Hashes { hashes: Vec<i64>, rows: f64 },
}

/// PostgreSQL: the keys' hashes grouped, one part of them per connection (equal keys have equal
/// hashes, so they meet in one part).
pub(super) async fn repeated(
    target: &Target,
    conns: &mut [Conn],
    scope: &Scope<'_>,
    keys: &[String],
    hash: &str,
) -> Repeated {
    let kind = target.kind;
    let parts = conns.len();
    let part = |i: usize| format!("abs({hash} % {parts}) = {i}");
    let repeated = |i: usize| {
        format!(
            "SELECT CAST(h AS text), CAST(COUNT(*) AS text) \
             FROM (SELECT {hash} AS h FROM {} WHERE {}{} OFFSET 0) AS s \
             WHERE abs(h % {parts}) = {i} GROUP BY h HAVING COUNT(*) > 1 LIMIT {}",
            scope.table,
            not_null(kind, keys),
            and(scope.filter),
            CANDIDATES + 1
        )
    };
    let found = futures::future::join_all(
        conns
            .iter_mut()
            .enumerate()
            .map(|(i, c)| async move { c.texts(&repeated(i), CANDIDATES + 1).await }),
    )
    .await;
    let mut hashes: Vec<i64> = Vec::new();
    let mut rows = 0.0;
    let mut overflow = false;
    for found in found {
        let Ok(found) = found else {
            // No hash for these types (json, point...): group the keys themselves.
            return Repeated::Counted(exact(target, &mut conns[0], scope, keys, None).await);
        };
        overflow |= found.len() > CANDIDATES;
        for row in &found {
            let cell = |at: usize| row.get(at).cloned().flatten();
            if let Some(h) = cell(0).and_then(|h| h.parse::<i64>().ok()) {
                hashes.push(h);
                rows += cell(1).and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0);
            }
        }
    }
    if overflow {
        // Many duplicates: each part groups its own keys exactly; equal keys share a part.
        let counted = futures::future::join_all(conns.iter_mut().enumerate().map(|(i, c)| {
            let restrict = part(i);
            async move { exact(target, c, scope, keys, Some(&restrict)).await }
        }))
        .await;
        let mut total = (0.0, 0.0);
        for c in counted {
            match c {
                Ok((k, r)) => {
                    total.0 += k;
                    total.1 += r;
                }
                Err(e) => return Repeated::Counted(Err(e)),
            }
        }
        return Repeated::Counted(Ok(total));
    }
    if hashes.is_empty() {
        return Repeated::Counted(Ok((0.0, 0.0)));
    }
    Repeated::Hashes { hashes, rows }
}

/// PostgreSQL: hash groups per part, one part per connection, then one scan restricted to the
/// repeated hashes groups their keys.
async fn split(
    target: &Target,
    conns: &mut [Conn],
    scope: &Scope<'_>,
    keys: &[String],
    hash: &str,
) -> Duplicated {
    match repeated(target, conns, scope, keys, hash).await {
        Repeated::Counted(found) => found,
        Repeated::Hashes { hashes, .. } => {
            exact(
                target,
                &mut conns[0],
                scope,
                keys,
                Some(&among(hash, &hashes)),
            )
            .await
        }
    }
}
