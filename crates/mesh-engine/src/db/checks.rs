//! A model's contract checks as queries in its database: the rows stay there, aggregates come
//! back.
//!
//! - Schema checks read the catalog (`pg_attribute`, `information_schema.COLUMNS`,
//!   `pragma_table_info`) and compare the database's own types with the contract's.
//! - Every count a check needs (nulls, lengths, patterns, bounds, valid values) and the instants
//!   of SLA columns become one aggregate: a single scan, one row back.
//! - Duplicate keys are counted on connections of their own while the fused aggregate runs
//!   ([`super::duplicates`]); a large PostgreSQL table is split over connections, each a core of
//!   the server ([`super::split`]).
//! - `sql` rules run as written, in the server's dialect, after a parser has read them as one
//!   query; the connection itself is read-only too.
//!
//! When the fused aggregate fails, each part is rerun alone so an error stays with its check.

use mesh_model::odcs::Bound;

use super::duplicates::{self, Duplicated, Scope};
use super::split::{self, Combine};
use super::{Column, Conn, DbError, Kind, Target};
use crate::checks::{Check, FieldPath, Measure, ModelPlan, Predicate};
use crate::exec::{
    chrono_now_micros, error, fail, judge, judge_age, type_mismatch, unreachable_result,
};
use crate::report::{CheckResult, Outcome};

/// What to run and show, as for files.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// A SQL condition in the server's dialect restricting the rows checked.
    pub filter: Option<&'a str>,
    pub failed_samples: usize,
    pub hidden: &'a [String],
    pub keys: &'a [String],
}

/// Where a check's measure comes from.
#[derive(Debug, Clone)]
enum Slot {
    /// A column of the fused aggregate (0 = the row count).
    Count(usize),
    Instant(usize),
    Zero,
    /// Duplicates of these key columns (the table's names).
    Duplicates(Vec<String>),
    Sql(String),
}

/// Runs `plan`'s checks on its table over `conn`.
pub async fn run_model(
    target: &Target,
    conn: &mut Conn,
    plan: &ModelPlan,
    options: &Options<'_>,
) -> Vec<CheckResult> {
    let everything = |reason: String| -> Vec<CheckResult> {
        plan.checks
            .iter()
            .map(|c| CheckResult::new(c.clone(), Outcome::Error, Some(reason.clone())))
            .collect()
    };
    let kind = target.kind;
    let columns = match target.columns(conn, &plan.physical_name).await {
        Ok(Some(columns)) => columns,
        Ok(None) => {
            let place = match kind {
                Kind::Postgres => format!(" in schema `{}`", target.namespace()),
                Kind::MySql => format!(" in database `{}`", target.namespace()),
                Kind::Sqlite => String::new(),
            };
            return everything(
                target
                    .error(
                        format!(
                            "there is no table `{}`{place} (names are case-sensitive; set the \
                             schema object's `physicalName` to the table's name)",
                            plan.physical_name
                        ),
                        false,
                    )
                    .to_string(),
            );
        }
        Err(e) => return everything(e.to_string()),
    };
    let table = target.table(&plan.physical_name);
    // The filter as the parser read it, not as written: MariaDB runs what `/*M! */` comments
    // hold, which the parser skips.
    let filter = match options.filter.map(|f| read_condition(kind, f)).transpose() {
        Ok(filter) => filter,
        Err(reason) => return everything(reason),
    };
    let options = &Options {
        filter: filter.as_deref(),
        ..*options
    };
    let from = match options.filter {
        Some(filter) => format!("{table} WHERE ({filter})"),
        None => table.clone(),
    };

    let mut aggregates: Vec<String> = vec![kind.double("COUNT(*)")];
    // How each aggregate's values over parts of the table combine.
    let mut combine: Vec<Combine> = vec![Combine::Sum];
    let mut slots: Vec<Option<Slot>> = vec![None; plan.checks.len()];
    let mut results: Vec<Option<CheckResult>> = vec![None; plan.checks.len()];
    // The rows each count check counts, for failed samples.
    let mut offending: Vec<Option<String>> = vec![None; plan.checks.len()];
    for (i, check) in plan.checks.iter().enumerate() {
        let done =
            |outcome, reason: String| Some(CheckResult::new(check.clone(), outcome, Some(reason)));
        let nested = |path: &FieldPath| {
            done(
                Outcome::Skipped,
                format!(
                    "nested field `{path}` is not checked on {} servers",
                    kind.name()
                ),
            )
        };
        match &check.measure {
            Measure::Skip(reason) => results[i] = done(Outcome::Skipped, reason.clone()),
            Measure::Invalid(reason) => results[i] = done(Outcome::Error, reason.clone()),
            Measure::Present(path) if path.0.len() > 1 => results[i] = nested(path),
            Measure::Present(path) => {
                results[i] = Some(match find(&columns, &path.0[0]) {
                    Some(_) => CheckResult::new(check.clone(), Outcome::Passed, None),
                    None => fail(check, format!("field `{path}` is not in the table")),
                });
            }
            Measure::Type { field, .. } if field.0.len() > 1 => results[i] = nested(field),
            Measure::Type {
                field,
                logical,
                physical,
            } => {
                results[i] = Some(match find(&columns, &field.0[0]) {
                    None => CheckResult::new(
                        check.clone(),
                        Outcome::Skipped,
                        Some(format!("field `{field}` is not in the table")),
                    ),
                    Some(column) => match type_mismatch(*logical, None, &column.arrow) {
                        Some(reason) => fail(
                            check,
                            format!(
                                "field '{field}': {} (the column is {})",
                                reason.replace(
                                    &format!("'{}'", crate::exec::arrow_type_name(&column.arrow)),
                                    &format!("'{}'", column.db_type)
                                ),
                                column.db_type
                            ),
                        ),
                        None => match physical
                            .as_deref()
                            .map(|p| (p, same_type(kind, p, &column.db_type)))
                        {
                            Some((p, Some(false))) => fail(
                                check,
                                format!(
                                    "field '{field}': expected physical type '{p}' but got '{}'",
                                    column.db_type
                                ),
                            ),
                            _ => CheckResult::new(check.clone(), Outcome::Passed, None),
                        },
                    },
                });
            }
            Measure::RowCount => slots[i] = Some(Slot::Count(0)),
            Measure::Count(predicate) if predicate.field().0.len() > 1 => {
                results[i] = nested(predicate.field());
            }
            Measure::Count(predicate) => match find(&columns, &predicate.field().0[0]) {
                // An absent column reads as all nulls, as for files.
                None => {
                    slots[i] = Some(
                        if matches!(predicate, Predicate::Null(_) | Predicate::Missing(..)) {
                            Slot::Count(0)
                        } else {
                            Slot::Zero
                        },
                    );
                }
                Some(column) => match violation(kind, predicate, column) {
                    Ok(condition) => {
                        slots[i] = Some(Slot::Count(aggregates.len()));
                        combine.push(Combine::Sum);
                        aggregates.push(kind.double(&kind.count_where(&condition)));
                        offending[i] = Some(condition);
                    }
                    Err(reason) => results[i] = done(Outcome::Skipped, reason),
                },
            },
            Measure::NewestAge(field) | Measure::OldestAge(field) => {
                match find(&columns, &field.0[0]).filter(|_| field.0.len() == 1) {
                    None => {
                        results[i] = done(
                            Outcome::Error,
                            format!("SLA element field `{field}` is not in the table"),
                        );
                    }
                    Some(column) => {
                        let q = kind.quote(&column.name);
                        let (agg, how) = if matches!(check.measure, Measure::NewestAge(_)) {
                            (format!("MAX({q})"), Combine::Max)
                        } else {
                            (format!("MIN({q})"), Combine::Min)
                        };
                        slots[i] = Some(Slot::Instant(aggregates.len()));
                        combine.push(how);
                        aggregates.push(kind.epoch_micros(&agg));
                    }
                }
            }
            Measure::Duplicates(fields) => {
                let mut keys = Vec::new();
                for f in fields {
                    if f.0.len() > 1 {
                        results[i] = nested(f);
                        break;
                    }
                    if let Some(column) = find(&columns, &f.0[0]) {
                        keys.push(column.name.clone());
                    }
                }
                if results[i].is_some() {
                    continue;
                }
                // Absent columns are all null, and null keys are never duplicates.
                slots[i] = Some(if keys.len() < fields.len() {
                    Slot::Zero
                } else {
                    Slot::Duplicates(keys)
                });
            }
            Measure::Sql(query) => match rule_sql(kind, query, &from, &table, check) {
                Ok(sql) => slots[i] = Some(Slot::Sql(sql)),
                Err(reason) => results[i] = done(Outcome::Error, reason),
            },
        }
    }

    // Each key set is grouped once, whichever checks share it, beside the fused aggregate.
    let mut key_sets: Vec<Vec<String>> = Vec::new();
    for slot in slots.iter().flatten() {
        if let Slot::Duplicates(keys) = slot
            && !key_sets.contains(keys)
        {
            key_sets.push(keys.clone());
        }
    }
    let scope = Scope {
        columns: &columns,
        name: &plan.physical_name,
        table: &table,
        filter: options.filter,
    };
    // A large PostgreSQL table is split over connections of its own ([`split`]).
    let measured = match split::blocks(target, conn, &table).await {
        Some(blocks) => split::run(target, &scope, &key_sets, &aggregates, &combine, blocks).await,
        None => None,
    };
    let (row, found) = match measured {
        Some(split::Measured {
            row: Some(row),
            duplicates,
        }) => (
            Ok(row.into_iter().map(Ok).collect()),
            duplicates.into_iter().map(Some).collect(),
        ),
        Some(split::Measured {
            row: None,
            duplicates,
        }) => (
            fused(target, conn, &aggregates, &from).await,
            duplicates.into_iter().map(Some).collect(),
        ),
        None => futures::join!(
            fused(target, conn, &aggregates, &from),
            duplicates::count_apart(target, &scope, &key_sets)
        ),
    };
    let mut duplicates: Vec<(Vec<String>, Duplicated)> = Vec::new();
    for (keys, found) in key_sets.iter().zip(found) {
        let found = match found {
            Some(found) => found,
            None => duplicates::exact(target, conn, &scope, keys, None).await,
        };
        duplicates.push((keys.clone(), found));
    }
    let rows = match &row {
        Ok(values) => values
            .first()
            .and_then(|v| v.as_ref().ok().copied().flatten())
            .unwrap_or(0.0),
        Err(_) => 0.0,
    };
    let now = chrono_now_micros();
    for (i, check) in plan.checks.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        let Some(slot) = &slots[i] else {
            results[i] = Some(unreachable_result(check));
            continue;
        };
        let cell = |at: usize| -> Result<Option<f64>, String> {
            match &row {
                Err(e) => Err(e.clone()),
                Ok(values) => values.get(at).cloned().unwrap_or(Ok(None)),
            }
        };
        results[i] = Some(match slot {
            Slot::Zero => judge(check, 0.0, rows, None),
            Slot::Count(at) => match cell(*at) {
                Ok(v) => judge(check, v.unwrap_or(0.0), rows, None),
                Err(e) => error(check, &e),
            },
            Slot::Instant(at) => match cell(*at) {
                Ok(v) => judge_age(check, v.map(|t| t as i64), rows, now),
                Err(e) => error(check, &e),
            },
            Slot::Duplicates(keys) => {
                let found = duplicates
                    .iter()
                    .find(|(k, _)| k == keys)
                    .map(|(_, found)| found.clone())
                    .unwrap_or_else(|| Err("the keys were not counted".into()));
                match found {
                    Ok((keys, rows_spanned)) => judge(check, keys, rows, Some(rows_spanned)),
                    Err(e) => error(check, &e),
                }
            }
            Slot::Sql(sql) => match conn.numbers(sql).await {
                Ok(values) => match values.first().copied().flatten() {
                    Some(v) => judge(check, v, rows, None),
                    None => error(check, "the query's first value is null or not a number"),
                },
                Err(sqlx::Error::RowNotFound) => error(check, "the query returned no rows"),
                Err(e) => error(check, &target.query_error(&e).to_string()),
            },
        });
    }
    let mut results: Vec<CheckResult> = results
        .into_iter()
        .zip(&plan.checks)
        .map(|(r, c)| r.unwrap_or_else(|| unreachable_result(c)))
        .collect();
    if options.failed_samples > 0 {
        for (i, result) in results.iter_mut().enumerate() {
            if !matches!(result.outcome, Outcome::Failed | Outcome::Warning) {
                continue;
            }
            let check = &plan.checks[i];
            let condition = match (&slots[i], &offending[i]) {
                (Some(Slot::Duplicates(keys)), _) => {
                    let listed = duplicates::listed(kind, keys);
                    let filter = options
                        .filter
                        .map(|f| format!(" AND ({f})"))
                        .unwrap_or_default();
                    format!(
                        "({listed}) IN (SELECT {listed} FROM {table} WHERE {}{filter} \
                         GROUP BY {listed} HAVING COUNT(*) > 1)",
                        duplicates::not_null(kind, keys)
                    )
                }
                (_, Some(condition)) => condition.clone(),
                _ => continue,
            };
            if let Ok(samples) =
                samples(kind, conn, &columns, check, &table, &condition, options).await
            {
                result.failed_samples = Some(samples);
            }
        }
    }
    results
}

/// A column by the contract's name: exactly, else case-insensitively when only one matches.
fn find<'a>(columns: &'a [Column], name: &str) -> Option<&'a Column> {
    columns.iter().find(|c| c.name == name).or_else(|| {
        let mut same = columns.iter().filter(|c| c.name.eq_ignore_ascii_case(name));
        match (same.next(), same.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    })
}

/// The fused aggregate; when it fails, each part alone (the row count failing means the table
/// cannot be read at all).
async fn fused(
    target: &Target,
    conn: &mut Conn,
    aggregates: &[String],
    from: &str,
) -> Result<Vec<Result<Option<f64>, String>>, String> {
    let sql = format!("SELECT {} FROM {from}", aggregates.join(", "));
    match conn.numbers(&sql).await {
        Ok(values) => Ok(values.into_iter().map(Ok).collect()),
        Err(all) => {
            let all = target.query_error(&all);
            if all.connection {
                return Err(all.to_string());
            }
            let mut out = Vec::with_capacity(aggregates.len());
            for agg in aggregates {
                let sql = format!("SELECT {agg} FROM {from}");
                out.push(match conn.numbers(&sql).await {
                    Ok(values) => Ok(values.first().copied().flatten()),
                    Err(e) => Err(target.query_error(&e).to_string()),
                });
            }
            if matches!(out.first(), Some(Err(_))) {
                Err(all.to_string())
            } else {
                Ok(out)
            }
        }
    }
}

/// Up to `failed_samples` rows meeting `condition`, as JSON objects of text values: the key
/// and the checked column when the model has a key, else every column — never hidden ones.
async fn samples(
    kind: Kind,
    conn: &mut Conn,
    columns: &[Column],
    check: &Check,
    table: &str,
    condition: &str,
    options: &Options<'_>,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let is = |list: &[String], name: &str| list.iter().any(|h| h.eq_ignore_ascii_case(name));
    let focus: Vec<String> = check
        .field
        .iter()
        .map(|f| f.split(['.', '[']).next().unwrap_or(f).to_owned())
        .collect();
    let shown: Vec<&Column> = columns
        .iter()
        .filter(|c| !is(options.hidden, &c.name))
        .filter(|c| options.keys.is_empty() || is(options.keys, &c.name) || is(&focus, &c.name))
        .collect();
    if shown.is_empty() {
        return Ok(Vec::new());
    }
    let select: Vec<String> = shown
        .iter()
        .map(|c| kind.text(&kind.quote(&c.name)))
        .collect();
    let filter = options
        .filter
        .map(|f| format!(" AND ({f})"))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM {table} WHERE ({condition}){filter} LIMIT {}",
        select.join(", "),
        options.failed_samples
    );
    let rows = conn.texts(&sql, options.failed_samples).await?;
    Ok(rows
        .into_iter()
        .map(|values| {
            serde_json::Value::Object(
                shown
                    .iter()
                    .zip(values)
                    .map(|(c, v)| {
                        (
                            c.name.clone(),
                            v.map_or(serde_json::Value::Null, Into::into),
                        )
                    })
                    .collect(),
            )
        })
        .collect())
}

/// The rows violating a predicate, as a condition in the server's dialect (nulls never violate
/// value rules).
fn violation(kind: Kind, predicate: &Predicate, column: &Column) -> Result<String, String> {
    use datafusion::arrow::datatypes::DataType;
    let q = kind.quote(&column.name);
    let textual = matches!(column.arrow, DataType::Utf8 | DataType::LargeUtf8);
    let numeric = column.arrow.is_numeric();
    let text = if textual { q.clone() } else { kind.text(&q) };
    let set = format!("{q} IS NOT NULL");
    let literal = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(kind.string(s)),
            serde_json::Value::Number(n) if textual => Some(kind.string(&n.to_string())),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) if textual => Some(kind.string(&b.to_string())),
            serde_json::Value::Bool(b) => Some(if *b { "TRUE" } else { "FALSE" }.to_owned()),
            _ => None,
        }
    };
    let regex = |p: &str| -> Result<String, String> {
        regex::Regex::new(p)
            .map_err(|e| format!("pattern `{p}` is not a valid regular expression: {e}"))?;
        Ok(kind.matches(&text, p))
    };
    let arrays = || {
        Err(format!(
            "array rules are not checked on {} servers",
            kind.name()
        ))
    };
    Ok(match predicate {
        Predicate::Null(_) => format!("{q} IS NULL"),
        Predicate::Missing(_, values) => {
            let listed: Vec<String> = values.iter().filter_map(literal).collect();
            if listed.is_empty() {
                format!("{q} IS NULL")
            } else {
                format!(
                    "({q} IS NULL OR {} IN ({}))",
                    kind.exact(&q),
                    listed.join(", ")
                )
            }
        }
        Predicate::Invalid {
            valid_values,
            pattern,
            ..
        } => {
            let mut valid = Vec::new();
            if let Some(values) = valid_values {
                let listed: Vec<String> = values.iter().filter_map(literal).collect();
                if listed.is_empty() {
                    valid.push("FALSE".to_owned());
                } else {
                    valid.push(format!("{} IN ({})", kind.exact(&q), listed.join(", ")));
                }
            }
            if let Some(p) = pattern {
                valid.push(regex(p)?);
            }
            if valid.is_empty() {
                return Err("invalidValues needs validValues or pattern".to_owned());
            }
            format!("({set} AND NOT ({}))", valid.join(" AND "))
        }
        Predicate::MinLength(_, n) => format!("({set} AND {} < {n})", kind.length(&text)),
        Predicate::MaxLength(_, n) => format!("({set} AND {} > {n})", kind.length(&text)),
        Predicate::Pattern(_, p) => format!("({set} AND NOT {})", regex(p)?),
        Predicate::Format(_, f) => format!("({set} AND NOT {})", regex(f.pattern())?),
        Predicate::Below {
            bound, exclusive, ..
        }
        | Predicate::Above {
            bound, exclusive, ..
        } => {
            let below = matches!(predicate, Predicate::Below { .. });
            let (value, limit) = match bound {
                Bound::Number(n) => {
                    let n = n.as_f64().ok_or("bound is not a number")?;
                    let value = if numeric { q.clone() } else { kind.double(&q) };
                    (value, crate::checks::fmt_number(n))
                }
                Bound::Text(t) => (q.clone(), kind.string(t)),
            };
            let op = match (below, exclusive) {
                (true, false) => "<",
                (true, true) => "<=",
                (false, false) => ">",
                (false, true) => ">=",
            };
            format!("({set} AND {value} {op} {limit})")
        }
        Predicate::NotMultipleOf(_, m) => {
            let v = kind.double(&q);
            let m = crate::checks::fmt_number(*m);
            format!("({set} AND ABS({v} / {m} - ROUND({v} / {m})) > 0.000000001)")
        }
        Predicate::MinItems(..) | Predicate::MaxItems(..) | Predicate::RepeatedItems(_) => {
            return arrays();
        }
    })
}

/// Whether the contract's `physicalType` names the database's type: `varchar(10)` is
/// `character varying(10)`, `timestamptz` is `timestamp with time zone`, `int4` is `integer`.
/// `None` when the contract names a type of another system.
pub fn same_type(kind: Kind, contract: &str, database: &str) -> Option<bool> {
    let (a_base, a_args) = normalize(kind, contract);
    let (b_base, b_args) = normalize(kind, database);
    if a_base.is_empty() {
        return None;
    }
    // `varchar` without a length accepts any length; `numeric(12,2)` must match exactly.
    Some(a_base == b_base && (a_args.is_empty() || a_args == b_args))
}

fn normalize(kind: Kind, name: &str) -> (String, Vec<String>) {
    let lower = name.trim().to_ascii_lowercase();
    let (head, args) = match lower.split_once('(') {
        Some((head, rest)) => {
            let (inside, after) = rest.split_once(')').unwrap_or((rest, ""));
            (
                format!("{} {}", head.trim(), after.trim()),
                inside
                    .split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect(),
            )
        }
        None => (lower.clone(), Vec::new()),
    };
    let head = head.split_whitespace().collect::<Vec<_>>().join(" ");
    let base = match (kind, head.as_str()) {
        (_, "character varying" | "varchar" | "nvarchar" | "varchar2") => "varchar",
        (_, "character" | "char" | "bpchar" | "nchar") => "char",
        (Kind::Postgres, "int" | "integer" | "int4" | "serial" | "serial4") => "int4",
        (Kind::Postgres, "bigint" | "int8" | "bigserial" | "serial8") => "int8",
        (Kind::Postgres, "smallint" | "int2" | "smallserial" | "serial2") => "int2",
        (Kind::Postgres, "real" | "float4") => "float4",
        (Kind::Postgres, "double precision" | "float8" | "double" | "float") => "float8",
        (Kind::Postgres, "timestamp with time zone" | "timestamptz") => "timestamptz",
        (Kind::Postgres, "timestamp without time zone" | "timestamp") => "timestamp",
        (Kind::Postgres, "time without time zone" | "time") => "time",
        (Kind::Postgres, "time with time zone" | "timetz") => "timetz",
        (_, "boolean" | "bool") => "bool",
        (_, "numeric" | "decimal" | "dec") => "numeric",
        (Kind::MySql, "int" | "integer") => "int",
        (Kind::MySql, "double" | "double precision" | "real") => "double",
        (Kind::MySql, h) if h.ends_with(" unsigned") || h.ends_with(" zerofill") => {
            return normalize(
                kind,
                &h.replace(" zerofill", "")
                    .replace(" unsigned", "_unsigned")
                    .replace(' ', ""),
            );
        }
        (Kind::Sqlite, "integer" | "int") => "integer",
        _ => head.as_str(),
    };
    (base.to_owned(), args)
}

/// Reads a `--filter` condition in the server's dialect: one expression, nothing after it.
/// Returns it as the parser read it.
fn read_condition(kind: Kind, filter: &str) -> Result<String, String> {
    use datafusion::sql::sqlparser::parser::Parser;
    let dialect = kind.parser();
    let mut parser = Parser::new(dialect.as_ref())
        .try_with_sql(filter)
        .map_err(|e| format!("--filter is not a {} condition: {e}", kind.name()))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| format!("--filter is not a {} condition: {e}", kind.name()))?;
    if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return Err(format!(
            "--filter must be one {} condition, with nothing after it",
            kind.name()
        ));
    }
    Ok(expr.to_string())
}

/// A `sql` rule ready to run: one read-only query in the server's dialect, `{model}` (or
/// `{object}`) naming the checked rows and `{property}` (or `{field}`) the column, its first
/// value cast to a double.
fn rule_sql(
    kind: Kind,
    query: &str,
    from: &str,
    table: &str,
    check: &Check,
) -> Result<String, String> {
    let rows = if from == table {
        table.to_owned()
    } else {
        format!("(SELECT * FROM {from}) AS {}", kind.quote("checked"))
    };
    let mut sql = query.replace("{object}", &rows).replace("{model}", &rows);
    if let Some(field) = &check.field {
        let column = kind.quote(field);
        sql = sql
            .replace("{property}", &column)
            .replace("{field}", &column);
    }
    let statements = one_read_only_query(kind, &sql, "a sql rule")?;
    // The query as the parser read it, not as written: MariaDB runs what `/*M! ... */`
    // comments hold, which the parser skips.
    let sql = statements[0].to_string();
    Ok(format!("SELECT {}", kind.double(&format!("({sql})"))))
}

/// `sql` read in the server's dialect as exactly one query that only reads — nothing that
/// writes inside either (a data-modifying `WITH`, `SELECT ... INTO`); `what` names it in errors
/// (`a sql rule`, `a source query`).
pub(crate) fn one_read_only_query(
    kind: Kind,
    sql: &str,
    what: &str,
) -> Result<Vec<datafusion::sql::sqlparser::ast::Statement>, String> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::parser::Parser;
    let dialect = kind.parser();
    let statements = Parser::parse_sql(dialect.as_ref(), sql)
        .map_err(|e| format!("{what} is not {} SQL: {e}", kind.name()))?;
    if !matches!(statements.as_slice(), [Statement::Query(_)]) {
        return Err(format!(
            "{what} must be one query (SELECT ...): it may not change anything"
        ));
    }
    if datafusion::sql::sqlparser::ast::Visit::visit(&statements, &mut ReadOnly).is_break() {
        return Err(format!(
            "{what} must only read: it contains a statement that writes (a data-modifying \
             WITH, or SELECT ... INTO)"
        ));
    }
    Ok(statements)
}

/// Stops at anything in a query that is not a plain read.
struct ReadOnly;

impl datafusion::sql::sqlparser::ast::Visitor for ReadOnly {
    type Break = ();

    fn pre_visit_query(
        &mut self,
        query: &datafusion::sql::sqlparser::ast::Query,
    ) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::SetExpr;
        match query.body.as_ref() {
            SetExpr::Select(select) if select.into.is_some() => std::ops::ControlFlow::Break(()),
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                std::ops::ControlFlow::Break(())
            }
            _ => std::ops::ControlFlow::Continue(()),
        }
    }

    fn pre_visit_statement(
        &mut self,
        statement: &datafusion::sql::sqlparser::ast::Statement,
    ) -> std::ops::ControlFlow<()> {
        match statement {
            datafusion::sql::sqlparser::ast::Statement::Query(_) => {
                std::ops::ControlFlow::Continue(())
            }
            _ => std::ops::ControlFlow::Break(()),
        }
    }
}

impl From<DbError> for crate::error::EngineError {
    fn from(e: DbError) -> Self {
        crate::error::EngineError::Database(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_types_compare_by_what_they_mean() {
        assert_eq!(
            same_type(Kind::Postgres, "varchar(10)", "character varying(10)"),
            Some(true)
        );
        assert_eq!(
            same_type(Kind::Postgres, "varchar(20)", "character varying(10)"),
            Some(false)
        );
        assert_eq!(
            same_type(Kind::Postgres, "timestamptz", "timestamp with time zone"),
            Some(true)
        );
        assert_eq!(
            same_type(Kind::Postgres, "NUMERIC(12,2)", "numeric(12,2)"),
            Some(true)
        );
        assert_eq!(same_type(Kind::Postgres, "integer", "bigint"), Some(false));
        assert_eq!(same_type(Kind::MySql, "INT", "int(11)"), Some(true));
        assert_eq!(
            same_type(Kind::MySql, "int unsigned", "int(10) unsigned"),
            Some(true)
        );
        assert_eq!(
            same_type(Kind::MySql, "int", "int(10) unsigned"),
            Some(false)
        );
    }

    #[test]
    fn a_rule_that_writes_is_refused_before_it_runs() {
        let check = |_q: &str| crate::checks::Check {
            key: "k".into(),
            category: crate::checks::Category::Quality,
            check_type: "model_quality_sql",
            name: "n".into(),
            model: "m".into(),
            field: None,
            quality_id: None,
            dimension: None,
            tags: vec![],
            on_fail: crate::checks::OnFail::Fail,
            measure: Measure::RowCount,
            threshold: crate::checks::Threshold::ZERO,
        };
        let c = check("");
        let t = "\"public\".\"t\"";
        assert!(rule_sql(Kind::Postgres, "SELECT COUNT(*) FROM {model}", t, t, &c).is_ok());
        for bad in [
            "DELETE FROM {model}",
            "SELECT 1; DROP TABLE {model}",
            "UPDATE {model} SET a = 1",
            "WITH d AS (DELETE FROM {model} RETURNING *) SELECT COUNT(*) FROM d",
            "SELECT * INTO copied FROM {model}",
        ] {
            assert!(rule_sql(Kind::Postgres, bad, t, t, &c).is_err(), "{bad}");
        }
        assert!(read_condition(Kind::Postgres, "a > 1").is_ok());
        assert!(read_condition(Kind::Postgres, "a > 1; DROP TABLE t").is_err());
    }
}
