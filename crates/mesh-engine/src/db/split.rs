//! PostgreSQL: a large table's checks split over connections of their own, each its own core of
//! the server, in three steps:
//!
//! 1. Duplicate keys: the keys' hashes grouped, one part of the hashes per connection
//!    ([`duplicates::repeated`]).
//! 2. The fused aggregate, one range of the table's blocks per connection (a TID range scan,
//!    PostgreSQL 14+); each part also gathers the addresses (`ctid`) of the rows whose key hash
//!    repeated in step 1.
//! 3. Those rows, fetched by address, grouped by their keys: the exact answer, hash collisions
//!    included, without a third scan of the table.
//!
//! Smaller tables, views, older servers, MySQL and SQLite take [`super::checks`]'s single path:
//! the fused aggregate on the caller's connection beside [`duplicates::count_apart`].
//!
//! The steps are separate statements, each with its own snapshot, as the single path's are: a
//! table written while it is checked is measured as of slightly different moments.

use super::duplicates::{self, Duplicated, Repeated, Scope};
use super::{Conn, Kind, Target};

/// How one part's value of an aggregate combines with the other parts'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Combine {
    Sum,
    Min,
    Max,
}

/// Tables smaller than this many blocks (`MESH_DB_SPLIT_BLOCKS`, default 4096: 32 MiB of 8 KiB
/// pages) are checked on one connection: below it, opening connections costs more than the
/// split saves.
fn min_blocks() -> f64 {
    std::env::var("MESH_DB_SPLIT_BLOCKS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(4096.0)
}

/// Rows gathered by address for the exact grouping; with more rows behind the repeated hashes,
/// one scan restricted to those hashes groups them instead.
const ADDRESSES: f64 = 100_000.0;

/// How many blocks `table` (quoted and qualified) has, when splitting it is possible and worth
/// it: PostgreSQL 14 or later, a table or materialized view, at least [`min_blocks`].
pub(super) async fn blocks(target: &Target, conn: &mut Conn, table: &str) -> Option<u64> {
    if target.kind != Kind::Postgres || duplicates::parallel() < 2 {
        return None;
    }
    let sql = format!(
        "SELECT CASE WHEN CAST(current_setting('server_version_num') AS int) >= 140000 \
         AND c.relkind IN ('r', 'm') THEN CAST(pg_relation_size(c.oid) / \
         CAST(current_setting('block_size') AS int) AS DOUBLE PRECISION) END \
         FROM pg_class c WHERE c.oid = to_regclass({})",
        Kind::Postgres.string(table)
    );
    let blocks = conn.numbers(&sql).await.ok()?.first().copied().flatten()?;
    (blocks >= min_blocks()).then_some(blocks as u64)
}

/// What [`run`] measured.
pub(super) struct Measured {
    /// The fused aggregate's values, or `None` when a part failed: the caller runs it again on
    /// its own connection, which tells which aggregate is at fault.
    pub row: Option<Vec<Option<f64>>>,
    /// Each key set's duplicates, in order.
    pub duplicates: Vec<Duplicated>,
}

/// A key set on its way through the steps.
enum Pending<'k> {
    Counted(Duplicated),
    /// The rows whose keys hash to one of `hashes` hold every duplicate; there are `rows`.
    Candidates {
        keys: &'k [String],
        hash: String,
        hashes: Vec<i64>,
        rows: f64,
    },
}

/// Runs the three steps for `aggregates` (`combine[i]` says how aggregate `i` of each part
/// combines) and `key_sets` over `blocks` blocks of `scope.table`. `None` when fewer than two
/// connections could be opened.
pub(super) async fn run(
    target: &Target,
    scope: &Scope<'_>,
    key_sets: &[Vec<String>],
    aggregates: &[String],
    combine: &[Combine],
    blocks: u64,
) -> Option<Measured> {
    let kind = target.kind;
    let settings = duplicates::sorting();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut conns: Vec<Conn> = Vec::new();
    for _ in 0..duplicates::parallel() {
        match target.connect_with(&settings).await {
            Ok(c) => conns.push(c),
            Err(_) => break,
        }
    }
    if conns.len() < 2 {
        for c in conns {
            c.close().await;
        }
        return None;
    }

    // 1. Hash groups.
    let constraints = if key_sets.is_empty() {
        Vec::new()
    } else {
        // An unreadable catalog only costs the shortcut.
        target
            .keys(&mut conns[0], scope.name)
            .await
            .unwrap_or_default()
    };
    let mut pending = Vec::with_capacity(key_sets.len());
    for keys in key_sets {
        pending.push(if duplicates::covered(&constraints, keys) {
            Pending::Counted(Ok((0.0, 0.0)))
        } else {
            match duplicates::hash_of(kind, scope.columns, keys) {
                None => Pending::Counted(
                    duplicates::exact(target, &mut conns[0], scope, keys, None).await,
                ),
                Some(hash) => {
                    match duplicates::repeated(target, &mut conns, scope, keys, &hash).await {
                        Repeated::Counted(found) => Pending::Counted(found),
                        Repeated::Hashes { hashes, rows } => Pending::Candidates {
                            keys,
                            hash,
                            hashes,
                            rows,
                        },
                    }
                }
            }
        });
    }

    // 2. The fused aggregate by block ranges, gathering the candidates' addresses.
    let gathered: Vec<usize> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p, Pending::Candidates { rows, .. } if *rows <= ADDRESSES))
        .map(|(i, _)| i)
        .collect();
    let mut select: Vec<String> = aggregates.iter().map(|a| kind.text(a)).collect();
    for &i in &gathered {
        if let Pending::Candidates {
            keys, hash, hashes, ..
        } = &pending[i]
        {
            select.push(format!(
                "string_agg(CAST(ctid AS text), ' ') FILTER (WHERE {} AND {})",
                duplicates::not_null(kind, keys),
                duplicates::among(hash, hashes)
            ));
        }
    }
    let parts = conns.len() as u64;
    let range = |i: u64| {
        let (start, end) = (blocks * i / parts, blocks * (i + 1) / parts);
        match (i, i + 1 == parts) {
            (0, _) => format!("ctid < '({end},0)'"),
            // The last part is open-ended: blocks added since they were counted are read too.
            (_, true) => format!("ctid >= '({start},0)'"),
            _ => format!("ctid >= '({start},0)' AND ctid < '({end},0)'"),
        }
    };
    let sql = |i: u64| {
        format!(
            "SELECT {} FROM {} WHERE {}{}",
            select.join(", "),
            scope.table,
            range(i),
            duplicates::and(scope.filter)
        )
    };
    let answers = futures::future::join_all(
        conns
            .iter_mut()
            .enumerate()
            .map(|(i, c)| async move { c.texts(&sql(i as u64), 1).await }),
    )
    .await;
    let mut row: Option<Vec<Option<f64>>> = Some(vec![None; aggregates.len()]);
    let mut addresses: Vec<Vec<String>> = vec![Vec::new(); gathered.len()];
    for answer in answers {
        let Some(values) = row.as_mut() else { break };
        let Some(cells) = answer.ok().and_then(|rows| rows.into_iter().next()) else {
            row = None;
            break;
        };
        for (at, how) in combine.iter().enumerate() {
            let part = cells
                .get(at)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<f64>().ok());
            values[at] = match (values[at], part) {
                (None, v) | (v, None) => v,
                (Some(a), Some(b)) => Some(match how {
                    Combine::Sum => a + b,
                    Combine::Min => a.min(b),
                    Combine::Max => a.max(b),
                }),
            };
        }
        for (g, list) in addresses.iter_mut().enumerate() {
            if let Some(Some(found)) = cells.get(aggregates.len() + g) {
                list.extend(found.split(' ').map(str::to_owned));
            }
        }
    }

    // 3. The candidates' keys, grouped exactly.
    let mut duplicates = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let (keys, hash, hashes) = match p {
            Pending::Counted(found) => {
                duplicates.push(found);
                continue;
            }
            Pending::Candidates {
                keys, hash, hashes, ..
            } => (keys, hash, hashes),
        };
        let restrict = match gathered.iter().position(|&g| g == i) {
            // The repeated hashes' rows are gone since step 1.
            Some(g) if row.is_some() && addresses[g].is_empty() => {
                duplicates.push(Ok((0.0, 0.0)));
                continue;
            }
            Some(g) if row.is_some() => {
                let tids = addresses[g]
                    .iter()
                    .map(|t| Kind::Postgres.string(t))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("ctid = ANY(CAST(ARRAY[{tids}] AS tid[]))")
            }
            _ => duplicates::among(&hash, &hashes),
        };
        duplicates
            .push(duplicates::exact(target, &mut conns[0], scope, keys, Some(&restrict)).await);
    }
    for c in conns {
        c.close().await;
    }
    Some(Measured { row, duplicates })
}
