//! Running a model's checks on DataFusion in as few scans as possible.
//!
//! - Schema checks (presence, Arrow type) read only the table's schema.
//! - Every row count a check needs — nulls, lengths, patterns, bounds, valid values, castability,
//!   plus the row count and the min/max of SLA columns — becomes one `count(*) FILTER (WHERE ...)`
//!   (or `min`/`max`) in a single aggregate over the table: one scan, projection pushed down to the
//!   columns involved, constant memory.
//! - Duplicates need one grouped pass per distinct key set (several checks on the same key share
//!   it); only that pass holds state proportional to the distinct keys.
//! - SQL rules run as written, read-only.
//!
//! When the fused aggregate fails (a value that breaks one expression), each expression is rerun
//! alone so that one bad check reports an error without taking the others down.

use std::collections::HashMap;
use std::ops::Not;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{character_length, get_field, regexp_like};
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::functions_nested::expr_fn::{array_distinct, cardinality};
use datafusion::logical_expr::{ExprFunctionExt, col, ident, lit};
use datafusion::prelude::{DataFrame, Expr, SessionContext, try_cast};
use datafusion::sql::sqlparser::ast::Ident;
use mesh_model::odcs::{Bound, LogicalType};

use crate::checks::{Check, FieldPath, Measure, OnFail, Predicate, fmt_number};
use crate::dup;
use crate::report::{CheckResult, Outcome};
use crate::source::TextRead;

/// What the engine needs to know about a registered table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The model's table name (what SQL rules call `{object}`).
    pub name: String,
    /// CSV and JSON: the data is registered under [`TableInfo::text_table`], and the engine
    /// registers `name` as a view that reads text columns as their contract types.
    pub text: Option<TextRead>,
}

impl TableInfo {
    /// Where the text of a text-format model is registered.
    pub fn text_table(name: &str) -> String {
        format!("{name}__text")
    }
}

/// Prefix of the text twin of a typed column in the scan of a text format.
const TEXT_TWIN: &str = "__text__";

/// How to run a model's checks.
#[derive(Debug, Clone, Default)]
pub struct RunOptions<'a> {
    /// A SQL predicate restricting the rows checked.
    pub filter: Option<&'a str>,
    /// Up to this many offending rows per failed check.
    pub failed_samples: usize,
    /// Columns never shown in samples (classified as sensitive).
    pub hidden: &'a [String],
    /// Primary-key columns: when there are some, a sample shows them and the checked field only.
    pub keys: &'a [String],
}

/// Runs `checks` on table `table`.
pub async fn run_model(
    ctx: &SessionContext,
    table: &TableInfo,
    checks: &[Check],
    options: &RunOptions<'_>,
) -> Vec<CheckResult> {
    match run_model_inner(ctx, table, checks, options).await {
        Ok(results) => results,
        // The table itself cannot be read: every check reports that.
        Err(e) => checks
            .iter()
            .map(|c| CheckResult::new(c.clone(), Outcome::Error, Some(format!("{e}"))))
            .collect(),
    }
}

async fn run_model_inner(
    ctx: &SessionContext,
    table: &TableInfo,
    checks: &[Check],
    options: &RunOptions<'_>,
) -> Result<Vec<CheckResult>, datafusion::error::DataFusionError> {
    let mut df = if let Some(text) = table.text {
        // Read text as the contract's types (so filters, SQL rules and bounds compare numbers as
        // numbers), keeping each text value beside its typed value for the type check.
        let raw = ctx
            .table(TableInfo::text_table(&table.name).as_str())
            .await?;
        let (with_text, typed) = typed_projection(raw, checks, text)?;
        ctx.register_table(table.name.as_str(), typed.into_view())?;
        with_text
    } else {
        ctx.table(table.name.as_str()).await?
    };
    if let Some(filter) = options.filter {
        let predicate = df.parse_sql_expr(filter)?;
        df = df.filter(predicate)?;
    }
    let schema: Arc<Schema> = Arc::new(df.schema().as_arrow().clone());
    // SQL rules see the checked rows (filtered, typed) as `{object}`.
    let object = format!("{}__checked", table.name);
    if checks.iter().any(|c| matches!(c.measure, Measure::Sql(_))) {
        let visible: Vec<Expr> = schema
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with(TEXT_TWIN))
            .map(|f| ident(f.name().clone()))
            .collect();
        ctx.register_table(object.as_str(), df.clone().select(visible)?.into_view())?;
    }

    // Plan: one aggregate for all counts, one grouped pass per key set, SQL alone.
    let mut aggregates: Vec<Expr> = vec![count(lit(1)).alias("__rows")];
    let mut slots: HashMap<usize, Slot> = HashMap::new();
    // Each distinct key set: its columns and the position of its hash aggregate.
    let mut key_sets: Vec<(Vec<String>, usize)> = Vec::new();
    let mut results: Vec<Option<CheckResult>> = vec![None; checks.len()];
    // The rows each check counts, for failed samples.
    let mut offending: HashMap<usize, Expr> = HashMap::new();

    for (i, check) in checks.iter().enumerate() {
        let done =
            |outcome, reason: String| Some(CheckResult::new(check.clone(), outcome, Some(reason)));
        match &check.measure {
            Measure::Skip(reason) => results[i] = done(Outcome::Skipped, reason.clone()),
            Measure::Invalid(reason) => results[i] = done(Outcome::Error, reason.clone()),
            Measure::Present(path) => {
                results[i] = Some(match resolve(&schema, path) {
                    Some(_) => CheckResult::new(check.clone(), Outcome::Passed, None),
                    None => fail(check, format!("field `{path}` is not in the data")),
                });
            }
            Measure::Type {
                field,
                logical,
                physical,
            } => match resolve(&schema, field) {
                None => {
                    results[i] = done(
                        Outcome::Skipped,
                        format!("field `{field}` is not in the data"),
                    )
                }
                Some(r) => match twin_of(&schema, &r).filter(|_| field.0.len() == 1) {
                    // Text read as the contract's type: count the set, non-blank values that do
                    // not parse.
                    Some(text) => {
                        let expr = text
                            .expr
                            .clone()
                            .is_not_null()
                            .and(text.expr.eq(lit("")).not())
                            .and(r.expr.is_null());
                        slots.insert(i, Slot::Count(aggregates.len()));
                        offending.insert(i, expr.clone());
                        aggregates
                            .push(count(lit(1)).filter(expr).build()?.alias(format!("__c{i}")));
                    }
                    None => {
                        results[i] = Some(
                            match type_mismatch(*logical, physical.as_deref(), &r.data_type) {
                                None => CheckResult::new(check.clone(), Outcome::Passed, None),
                                Some(reason) => fail(check, format!("field '{field}': {reason}")),
                            },
                        );
                    }
                },
            },
            Measure::RowCount => {
                slots.insert(i, Slot::Count(0));
            }
            Measure::Count(predicate) => match resolve(&schema, predicate.field()) {
                // An absent field reads as all nulls (files written before a column existed).
                None => {
                    slots.insert(
                        i,
                        if matches!(predicate, Predicate::Null(_) | Predicate::Missing(..)) {
                            Slot::Count(0)
                        } else {
                            Slot::Zero
                        },
                    );
                }
                Some(r) => match violation(predicate, &r, table.text == Some(TextRead::AllColumns))
                {
                    Ok(expr) => {
                        slots.insert(i, Slot::Count(aggregates.len()));
                        offending.insert(i, expr.clone());
                        aggregates
                            .push(count(lit(1)).filter(expr).build()?.alias(format!("__c{i}")));
                    }
                    Err(reason) => results[i] = done(Outcome::Error, reason),
                },
            },
            Measure::NewestAge(field) | Measure::OldestAge(field) => {
                match resolve(&schema, field) {
                    None => {
                        results[i] = done(
                            Outcome::Error,
                            format!("SLA element field `{field}` is not in the data"),
                        )
                    }
                    Some(r) => {
                        // Text formats: the text itself, not its reading as the contract's type.
                        let r = twin_of(&schema, &r)
                            .filter(|_| field.0.len() == 1)
                            .unwrap_or(r);
                        let ts = try_cast(
                            r.expr.clone(),
                            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        );
                        let agg = if matches!(check.measure, Measure::NewestAge(_)) {
                            max(ts)
                        } else {
                            min(ts)
                        };
                        slots.insert(i, Slot::Instant(aggregates.len()));
                        aggregates.push(agg.alias(format!("__t{i}")));
                    }
                }
            }
            Measure::Duplicates(fields) => {
                let mut cols = Vec::new();
                for f in fields {
                    match resolve(&schema, f) {
                        Some(r) if f.0.len() == 1 => cols.push(r.name),
                        Some(_) => {
                            results[i] = done(
                                Outcome::Error,
                                format!("uniqueness of nested field `{f}` is not checked yet"),
                            );
                        }
                        None => {}
                    }
                }
                if results[i].is_some() {
                    continue;
                }
                if cols.len() < fields.len() {
                    // Absent columns are all null, and null keys are never duplicates.
                    slots.insert(i, Slot::Zero);
                    continue;
                }
                let set = match key_sets.iter().position(|(k, _)| *k == cols) {
                    Some(s) => s,
                    None => {
                        let keys: Vec<Expr> = cols.iter().map(|c| ident(c.clone())).collect();
                        key_sets.push((cols, aggregates.len()));
                        aggregates.push(dup::dup_hashes().call(keys).alias(format!("__d{i}")));
                        key_sets.len() - 1
                    }
                };
                slots.insert(i, Slot::Duplicates(set));
            }
            Measure::Sql(_) => {
                slots.insert(i, Slot::Sql);
            }
        }
    }

    let row = fused(&df, &aggregates).await;
    let rows = match &row {
        Ok(values) => values
            .first()
            .and_then(|v| v.as_ref().ok())
            .and_then(Cell::as_f64)
            .unwrap_or(0.0),
        Err(_) => 0.0,
    };
    // Verify each key set's candidate hashes on the real keys (no pass when there are none).
    let mut duplicates: Vec<Result<Duplicates, String>> = Vec::with_capacity(key_sets.len());
    for (cols, at) in &key_sets {
        let candidates = match &row {
            Err(e) => Err(e.clone()),
            Ok(values) => match &values[*at] {
                Ok(Cell::Hashes(h)) => Ok(h.clone()),
                Ok(_) => Err("the duplicate aggregate returned no hashes".to_owned()),
                Err(e) => Err(e.clone()),
            },
        };
        duplicates.push(match candidates {
            Ok(c) if c.is_empty() => Ok(Duplicates::default()),
            Ok(c) => verify_duplicates(&df, cols, c)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        });
    }
    let now = chrono_now_micros();

    for (i, check) in checks.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        let Some(slot) = slots.get(&i) else { continue };
        let result = match slot {
            Slot::Zero => judge(check, 0.0, rows, None),
            Slot::Count(at) => match &row {
                Err(e) => error(check, e),
                Ok(values) => match &values[*at] {
                    Ok(cell) => judge(check, cell.as_f64().unwrap_or(0.0), rows, None),
                    Err(e) => error(check, e),
                },
            },
            Slot::Instant(at) => match &row {
                Err(e) => error(check, e),
                Ok(values) => match &values[*at] {
                    Ok(Cell::Micros(t)) => judge_age(check, *t, rows, now),
                    Ok(_) => judge_age(check, None, rows, now),
                    Err(e) => error(check, e),
                },
            },
            Slot::Duplicates(set) => match &duplicates[*set] {
                Ok(d) => judge(check, d.keys, rows, Some(d.rows)),
                Err(e) => error(check, e),
            },
            Slot::Sql => match &check.measure {
                Measure::Sql(query) => match sql_value(ctx, &object, check, query).await {
                    Ok(v) => judge(check, v, rows, None),
                    Err(e) => error(check, &e),
                },
                _ => unreachable_result(check),
            },
        };
        results[i] = Some(result);
    }
    let mut results: Vec<CheckResult> = results
        .into_iter()
        .zip(checks)
        .map(|(r, c)| r.unwrap_or_else(|| unreachable_result(c)))
        .collect();
    if options.failed_samples > 0 {
        for (i, result) in results.iter_mut().enumerate() {
            if !matches!(result.outcome, Outcome::Failed | Outcome::Warning) {
                continue;
            }
            let focus: Vec<String> = checks[i]
                .field
                .iter()
                .map(|f| f.split(['.', '[']).next().unwrap_or(f).to_owned())
                .collect();
            let samples = match (&checks[i].measure, offending.get(&i)) {
                (Measure::Duplicates(_), _) => {
                    duplicate_samples(&df, &key_sets, &duplicates, slots.get(&i), options).await
                }
                (_, Some(predicate)) => {
                    samples(df.clone().filter(predicate.clone()), &focus, options).await
                }
                (_, None) => continue,
            };
            if let Ok(rows) = samples {
                result.failed_samples = Some(rows);
            }
        }
    }
    Ok(results)
}

/// Up to `options.failed_samples` rows of `df` as JSON objects: the primary key and the `focus`
/// columns when the model has a key, else every column — never hidden ones.
async fn samples(
    df: Result<DataFrame, datafusion::error::DataFusionError>,
    focus: &[String],
    options: &RunOptions<'_>,
) -> Result<Vec<serde_json::Value>, datafusion::error::DataFusionError> {
    let df = df?;
    let is = |list: &[String], name: &str| list.iter().any(|h| h.eq_ignore_ascii_case(name));
    let shown: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .filter(|f| !f.name().starts_with(TEXT_TWIN))
        .filter(|f| !is(options.hidden, f.name()))
        .filter(|f| options.keys.is_empty() || is(options.keys, f.name()) || is(focus, f.name()))
        .map(|f| ident(f.name().clone()))
        .collect();
    let batches = df
        .select(shown)?
        .limit(0, Some(options.failed_samples))?
        .collect()
        .await?;
    // Explicit nulls: a sample of a `required` failure must show the missing value.
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let parsed: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    Ok(parsed.as_array().cloned().unwrap_or_default())
}

/// Rows whose key is duplicated: the candidates' rows, semi-joined with their verified keys.
async fn duplicate_samples(
    df: &DataFrame,
    key_sets: &[(Vec<String>, usize)],
    duplicates: &[Result<Duplicates, String>],
    slot: Option<&Slot>,
    options: &RunOptions<'_>,
) -> Result<Vec<serde_json::Value>, datafusion::error::DataFusionError> {
    let Some(Slot::Duplicates(set)) = slot else {
        return Ok(Vec::new());
    };
    let (cols, _) = &key_sets[*set];
    let Some(Ok(found)) = duplicates.get(*set) else {
        return Ok(Vec::new());
    };
    let rows = candidate_rows(df, cols, &found.candidates)?;
    let keys: Vec<Expr> = cols.iter().map(|c| ident(c.clone())).collect();
    let renamed: Vec<String> = (0..cols.len()).map(|i| format!("__k{i}")).collect();
    let dup_keys = rows
        .clone()
        .aggregate(keys.clone(), vec![count(lit(1)).alias("__n")])?
        .filter(col("__n").gt(lit(1i64)))?
        .select(
            keys.iter()
                .zip(&renamed)
                .map(|(k, n)| k.clone().alias(n))
                .collect::<Vec<_>>(),
        )?;
    let left: Vec<&str> = cols.iter().map(String::as_str).collect();
    let right: Vec<&str> = renamed.iter().map(String::as_str).collect();
    let joined = rows.join(
        dup_keys,
        datafusion::logical_expr::JoinType::LeftSemi,
        &left,
        &right,
        None,
    );
    samples(joined, cols, options).await
}

/// Where a check's measure comes from.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The aggregate at this position of the fused row (0 = the row count).
    Count(usize),
    /// A min/max timestamp at this position.
    Instant(usize),
    /// Known to be zero without scanning (a rule on an absent column).
    Zero,
    /// The grouped pass of this key set.
    Duplicates(usize),
    Sql,
}

/// One value of the fused aggregate row.
#[derive(Debug, Clone)]
enum Cell {
    Number(Option<f64>),
    Micros(Option<i64>),
    /// Candidate hashes of duplicated keys.
    Hashes(Vec<u64>),
}

impl Cell {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Number(v) => *v,
            Cell::Micros(v) => v.map(|t| t as f64),
            Cell::Hashes(h) => Some(h.len() as f64),
        }
    }
}

type CellResult = Result<Cell, String>;

/// Runs all aggregates in one pass; when that fails, each alone, so errors stay with their check.
async fn fused(df: &DataFrame, aggregates: &[Expr]) -> Result<Vec<CellResult>, String> {
    match aggregate_row(df, aggregates.to_vec()).await {
        Ok(cells) => Ok(cells.into_iter().map(Ok).collect()),
        Err(all) => {
            let mut out = Vec::with_capacity(aggregates.len());
            for expr in aggregates {
                out.push(match aggregate_row(df, vec![expr.clone()]).await {
                    Ok(mut cells) => cells.pop().ok_or_else(|| "no value".to_owned()),
                    Err(e) => Err(e.to_string()),
                });
            }
            // The row count itself failing means the data cannot be read at all.
            if matches!(out.first(), Some(Err(_))) {
                Err(all.to_string())
            } else {
                Ok(out)
            }
        }
    }
}

async fn aggregate_row(
    df: &DataFrame,
    aggregates: Vec<Expr>,
) -> Result<Vec<Cell>, datafusion::error::DataFusionError> {
    let batches = df.clone().aggregate(vec![], aggregates)?.collect().await?;
    let batch = batches.into_iter().find(|b| b.num_rows() > 0);
    let Some(batch) = batch else {
        return Err(datafusion::error::DataFusionError::Execution(
            "the aggregate returned no row".into(),
        ));
    };
    (0..batch.num_columns())
        .map(|c| cell(batch.column(c)))
        .collect()
}

fn cell(array: &ArrayRef) -> Result<Cell, datafusion::error::DataFusionError> {
    if let Some(lists) = array.as_list_opt::<i32>() {
        let hashes = if lists.is_empty() || lists.is_null(0) {
            Vec::new()
        } else {
            lists
                .value(0)
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec()
        };
        return Ok(Cell::Hashes(hashes));
    }
    let value = ScalarValue::try_from_array(array, 0)?;
    Ok(match value {
        ScalarValue::TimestampMicrosecond(v, _) => Cell::Micros(v),
        v if v.is_null() => Cell::Number(None),
        v => {
            let f = v.cast_to(&DataType::Float64)?;
            match f {
                ScalarValue::Float64(x) => Cell::Number(x),
                _ => Cell::Number(None),
            }
        }
    })
}

/// Duplicated keys of one key set, verified on the real key values.
#[derive(Debug, Clone, Default)]
struct Duplicates {
    /// Key values that occur more than once.
    keys: f64,
    /// Rows those keys span.
    rows: f64,
    /// The candidate hashes the verification started from.
    candidates: Vec<u64>,
}

/// Above this many candidates, their rows are found by a join instead of an IN list.
const IN_LIST_LIMIT: usize = 4096;

/// The rows (with every key column set) whose key hash is one of `candidates`.
fn candidate_rows(
    df: &DataFrame,
    cols: &[String],
    candidates: &[u64],
) -> Result<DataFrame, datafusion::error::DataFusionError> {
    let keys: Vec<Expr> = cols.iter().map(|c| ident(c.clone())).collect();
    let hash = dup::key_hash().call(keys.clone());
    let not_null = keys
        .iter()
        .cloned()
        .map(Expr::is_not_null)
        .reduce(Expr::and)
        .unwrap_or(lit(true));
    if candidates.len() <= IN_LIST_LIMIT {
        let list: Vec<Expr> = candidates.iter().map(|h| lit(*h)).collect();
        return df.clone().filter(not_null.and(hash.in_list(list, false)));
    }
    let batch = RecordBatch::try_from_iter([(
        "__candidate",
        Arc::new(datafusion::arrow::array::UInt64Array::from(
            candidates.to_vec(),
        )) as ArrayRef,
    )])?;
    let table = df.clone().filter(not_null)?.with_column("__hash", hash)?;
    let fields: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| ident(f.name().clone()))
        .collect();
    let ctx = SessionContext::new();
    let candidates = ctx.read_batch(batch)?;
    table
        .join(
            candidates,
            datafusion::logical_expr::JoinType::LeftSemi,
            &["__hash"],
            &["__candidate"],
            None,
        )?
        .select(fields)
}

/// Groups only the candidates' rows by their real key: exact counts, small state.
async fn verify_duplicates(
    df: &DataFrame,
    cols: &[String],
    candidates: Vec<u64>,
) -> Result<Duplicates, datafusion::error::DataFusionError> {
    let keys: Vec<Expr> = cols.iter().map(|c| ident(c.clone())).collect();
    let grouped = candidate_rows(df, cols, &candidates)?
        .aggregate(keys, vec![count(lit(1)).alias("__n")])?
        .filter(col("__n").gt(lit(1i64)))?
        .aggregate(
            vec![],
            vec![
                count(lit(1)).alias("__keys"),
                sum(col("__n")).alias("__dup_rows"),
            ],
        )?;
    let batches = grouped.collect().await?;
    let cells = match batches.into_iter().find(|b| b.num_rows() > 0) {
        Some(b) => (0..b.num_columns())
            .map(|c| cell(b.column(c)))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![],
    };
    let get = |i: usize| cells.get(i).and_then(Cell::as_f64).unwrap_or(0.0);
    Ok(Duplicates {
        keys: get(0),
        rows: get(1),
        candidates,
    })
}

/// Runs a SQL rule read-only; its first value is the measure.
async fn sql_value(
    ctx: &SessionContext,
    object: &str,
    check: &Check,
    query: &str,
) -> Result<f64, String> {
    let quoted = |name: &str| Ident::with_quote('"', name).to_string();
    let mut sql = query
        .replace("{object}", &quoted(object))
        .replace("{model}", &quoted(object));
    if let Some(field) = &check.field {
        sql = sql
            .replace("{property}", &quoted(field))
            .replace("{field}", &quoted(field));
    }
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(&sql, options)
        .await
        .map_err(|e| format!("{e}"))?;
    let batches = df.collect().await.map_err(|e| format!("{e}"))?;
    let batch = batches
        .into_iter()
        .find(|b| b.num_rows() > 0)
        .ok_or("the query returned no rows")?;
    if batch.num_columns() == 0 {
        return Err("the query returned no columns".to_owned());
    }
    match cell(batch.column(0)).map_err(|e| e.to_string())? {
        Cell::Number(Some(v)) => Ok(v),
        _ => Err("the query's first value is not a number".to_owned()),
    }
}

/// The text twin of a top-level column, when the scan has one.
fn twin_of(schema: &Schema, r: &Resolved) -> Option<Resolved> {
    resolve(schema, &FieldPath::top(&format!("{TEXT_TWIN}{}", r.name)))
}

/// A field found in the data.
#[derive(Debug, Clone)]
struct Resolved {
    expr: Expr,
    data_type: DataType,
    /// The top-level column's actual name.
    name: String,
    /// For nested fields: the parent value (a child is only missing where its parent is set).
    parent: Option<Expr>,
}

/// Finds a field, by exact name and else case-insensitively (as datacontract-cli does). `[]`
/// segments step into array items (type checks only).
fn resolve(schema: &Schema, path: &FieldPath) -> Option<Resolved> {
    let first = path.0.first()?;
    let field = find(schema.fields().iter().map(|f| f.as_ref()), first)?;
    let mut r = Resolved {
        expr: ident(field.name().clone()),
        data_type: field.data_type().clone(),
        name: field.name().clone(),
        parent: None,
    };
    for seg in &path.0[1..] {
        if seg == "[]" {
            let item = match &r.data_type {
                DataType::List(f)
                | DataType::LargeList(f)
                | DataType::FixedSizeList(f, _)
                | DataType::ListView(f) => f.clone(),
                _ => return None,
            };
            r = Resolved {
                expr: r.expr.clone(),
                data_type: item.data_type().clone(),
                name: r.name,
                parent: None,
            };
            continue;
        }
        let DataType::Struct(children) = &r.data_type else {
            return None;
        };
        let child = find(children.iter().map(|f| f.as_ref()), seg)?;
        r = Resolved {
            expr: get_field(r.expr.clone(), child.name().as_str()),
            data_type: child.data_type().clone(),
            name: r.name,
            parent: Some(r.expr),
        };
    }
    Some(r)
}

fn find<'a>(
    mut fields: impl Iterator<Item = &'a datafusion::arrow::datatypes::Field> + Clone,
    name: &str,
) -> Option<&'a datafusion::arrow::datatypes::Field> {
    fields.clone().find(|f| f.name() == name).or_else(|| {
        let lower = name.to_lowercase();
        let mut matches = fields.by_ref().filter(|f| f.name().to_lowercase() == lower);
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    })
}

/// The Arrow type values are cast to for a logical type.
fn target_type(lt: LogicalType) -> Option<DataType> {
    Some(match lt {
        LogicalType::String => DataType::Utf8,
        LogicalType::Integer => DataType::Int64,
        LogicalType::Number => DataType::Float64,
        LogicalType::Boolean => DataType::Boolean,
        LogicalType::Date => DataType::Date32,
        LogicalType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        LogicalType::Time => DataType::Time64(TimeUnit::Microsecond),
        LogicalType::Object | LogicalType::Array | LogicalType::Map | LogicalType::Vector => {
            return None;
        }
    })
}

/// For a text format: `(scan, typed)` — `typed` reads every column the contract types as that type
/// (text that does not parse reads as null); `scan` adds the text of those columns as twins.
fn typed_projection(
    raw: DataFrame,
    checks: &[Check],
    text: TextRead,
) -> Result<(DataFrame, DataFrame), datafusion::error::DataFusionError> {
    let declared: HashMap<String, LogicalType> = checks
        .iter()
        .filter_map(|c| match &c.measure {
            Measure::Type { field, logical, .. } if field.0.len() == 1 => {
                Some((field.0[0].to_lowercase(), *logical))
            }
            _ => None,
        })
        .collect();
    let mut scan = Vec::new();
    let mut typed = Vec::new();
    for f in raw.schema().fields() {
        let name = f.name();
        let target = declared
            .get(&name.to_lowercase())
            .filter(|lt| {
                text == TextRead::AllColumns
                    || matches!(
                        lt,
                        LogicalType::Date | LogicalType::Timestamp | LogicalType::Time
                    )
            })
            .and_then(|lt| target_type(*lt))
            .filter(|t| *t != DataType::Utf8 && is_string(f.data_type()));
        match target {
            Some(target) => {
                let value = try_cast(ident(name.clone()), target).alias(name);
                typed.push(value.clone());
                scan.push(value);
                scan.push(ident(name.clone()).alias(format!("{TEXT_TWIN}{name}")));
            }
            None => {
                typed.push(ident(name.clone()));
                scan.push(ident(name.clone()));
            }
        }
    }
    Ok((raw.clone().select(scan)?, raw.select(typed)?))
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || matches!(dt, DataType::Dictionary(_, v) if is_string(v))
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

/// Why `dt` does not fit the contract's types, if it does not.
pub(crate) fn type_mismatch(
    lt: LogicalType,
    physical: Option<&str>,
    dt: &DataType,
) -> Option<String> {
    let ok = match lt {
        _ if *dt == DataType::Null => true,
        LogicalType::String => is_string(dt),
        LogicalType::Integer => dt.is_integer(),
        LogicalType::Number => is_numeric(dt),
        LogicalType::Boolean => *dt == DataType::Boolean,
        LogicalType::Date => matches!(dt, DataType::Date32 | DataType::Date64),
        LogicalType::Timestamp => matches!(dt, DataType::Timestamp(..) | DataType::Date64),
        LogicalType::Time => matches!(dt, DataType::Time32(_) | DataType::Time64(_)),
        LogicalType::Object => matches!(dt, DataType::Struct(_) | DataType::Map(..)),
        LogicalType::Map => matches!(dt, DataType::Map(..) | DataType::Struct(_)),
        // A vector is a list of numbers (a fixed-size list in Arrow, but any list reads as one).
        LogicalType::Vector => matches!(
            dt,
            DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_)
        ),
        LogicalType::Array => matches!(
            dt,
            DataType::List(_)
                | DataType::LargeList(_)
                | DataType::FixedSizeList(..)
                | DataType::ListView(_)
                | DataType::LargeListView(_)
        ),
    };
    if !ok {
        return Some(format!(
            "expected type '{lt}' but got '{}'",
            arrow_type_name(dt)
        ));
    }
    let physical = physical?;
    match physical_fits(physical, dt) {
        Some(false) => Some(format!(
            "expected physical type '{physical}' but got '{}'",
            arrow_type_name(dt)
        )),
        _ => None,
    }
}

/// How users read an Arrow type: `string`, `int64`, `decimal(12,2)`, ...
pub fn arrow_type_name(dt: &DataType) -> String {
    match dt {
        d if is_string(d) => "string".to_owned(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            format!("decimal({p},{s})")
        }
        DataType::Timestamp(..) => "timestamp".to_owned(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("array<{}>", arrow_type_name(f.data_type()))
        }
        DataType::Struct(_) => "struct".to_owned(),
        other => other.to_string().to_lowercase(),
    }
}

/// Whether a recognised `physicalType` matches the Arrow type; `None` when the name is not one
/// we can compare (e.g. `table`, vendor types).
fn physical_fits(physical: &str, dt: &DataType) -> Option<bool> {
    let p = physical.trim().to_ascii_lowercase();
    let base = p.split(['(', ' ']).next().unwrap_or("");
    Some(match base {
        "varchar" | "string" | "text" | "char" | "nvarchar" | "character" | "utf8" | "clob" => {
            is_string(dt)
        }
        "tinyint" | "int8" | "byte" => matches!(dt, DataType::Int8 | DataType::UInt8),
        "smallint" | "int16" | "short" => matches!(dt, DataType::Int16 | DataType::UInt16),
        "int" | "integer" | "int32" => matches!(dt, DataType::Int32 | DataType::UInt32),
        "bigint" | "long" | "int64" => matches!(dt, DataType::Int64 | DataType::UInt64),
        "float" | "real" | "float32" => matches!(dt, DataType::Float32),
        "double" | "float64" => matches!(dt, DataType::Float64),
        "decimal" | "numeric" | "number" => {
            let digits: Vec<u8> = p
                .trim_start_matches(base)
                .trim_matches(|c| c == '(' || c == ')' || c == ' ')
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            match (dt, digits.as_slice()) {
                (
                    DataType::Decimal128(dp, ds)
                    | DataType::Decimal256(dp, ds)
                    | DataType::Decimal64(dp, ds)
                    | DataType::Decimal32(dp, ds),
                    [p, s],
                ) => dp == p && *ds as i64 == i64::from(*s),
                (
                    DataType::Decimal128(dp, _)
                    | DataType::Decimal256(dp, _)
                    | DataType::Decimal64(dp, _)
                    | DataType::Decimal32(dp, _),
                    [p],
                ) => dp == p,
                (d, _) => matches!(
                    d,
                    DataType::Decimal32(..)
                        | DataType::Decimal64(..)
                        | DataType::Decimal128(..)
                        | DataType::Decimal256(..)
                ),
            }
        }
        "boolean" | "bool" => *dt == DataType::Boolean,
        "date" => matches!(dt, DataType::Date32 | DataType::Date64),
        "timestamp" | "datetime" | "timestamp_ntz" | "timestamp_ltz" | "timestamptz" => {
            matches!(dt, DataType::Timestamp(..))
        }
        "struct" | "record" => matches!(dt, DataType::Struct(_)),
        "list" | "array" => matches!(
            dt,
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
        ),
        _ => return None,
    })
}

/// The value of a field as the predicate needs it: text for string rules, numbers for numeric
/// bounds (text formats cast; casts that fail read as null and are caught by the type check).
fn as_text(r: &Resolved) -> Expr {
    if is_string(&r.data_type) {
        r.expr.clone()
    } else {
        try_cast(r.expr.clone(), DataType::Utf8)
    }
}

fn as_number(r: &Resolved) -> Expr {
    if is_numeric(&r.data_type) {
        r.expr.clone()
    } else {
        try_cast(r.expr.clone(), DataType::Float64)
    }
}

/// The rows violating a predicate (nulls never violate value rules).
fn violation(predicate: &Predicate, r: &Resolved, text: bool) -> Result<Expr, String> {
    let value = r.expr.clone();
    let set = value.clone().is_not_null();
    let scalar = |v: &serde_json::Value| -> Option<Expr> {
        match v {
            serde_json::Value::String(s) => Some(lit(s.clone())),
            serde_json::Value::Number(n) if is_string(&r.data_type) => Some(lit(n.to_string())),
            serde_json::Value::Number(n) => n.as_i64().map(lit).or_else(|| n.as_f64().map(lit)),
            serde_json::Value::Bool(b) if is_string(&r.data_type) => Some(lit(b.to_string())),
            serde_json::Value::Bool(b) => Some(lit(*b)),
            _ => None,
        }
    };
    let regex = |p: &str| -> Result<Expr, String> {
        regex::Regex::new(p)
            .map_err(|e| format!("pattern `{p}` is not a valid regular expression: {e}"))?;
        Ok(regexp_like(as_text(r), lit(p.to_owned()), None))
    };
    Ok(match predicate {
        Predicate::Null(_) => match &r.parent {
            Some(parent) => parent.clone().is_not_null().and(value.is_null()),
            None => value.is_null(),
        },
        Predicate::Missing(_, values) => {
            let listed: Vec<Expr> = values.iter().filter_map(scalar).collect();
            if listed.is_empty() {
                value.is_null()
            } else {
                value.clone().is_null().or(value.in_list(listed, false))
            }
        }
        Predicate::Invalid {
            valid_values,
            pattern,
            ..
        } => {
            let mut valid: Option<Expr> = None;
            if let Some(values) = valid_values {
                let listed: Vec<Expr> = values.iter().filter_map(scalar).collect();
                valid = Some(value.clone().in_list(listed, false));
            }
            if let Some(p) = pattern {
                let m = regex(p)?;
                valid = Some(match valid {
                    Some(v) => v.and(m),
                    None => m,
                });
            }
            let valid = valid.ok_or("invalidValues needs validValues or pattern")?;
            set.and(valid.not())
        }
        Predicate::MinLength(_, n) => set.and(character_length(as_text(r)).lt(lit(*n as i64))),
        Predicate::MaxLength(_, n) => set.and(character_length(as_text(r)).gt(lit(*n as i64))),
        Predicate::Pattern(_, p) => set.and(regex(p)?.not()),
        Predicate::Format(_, f) => set.and(regex(f.pattern())?.not()),
        Predicate::Below {
            bound, exclusive, ..
        }
        | Predicate::Above {
            bound, exclusive, ..
        } => {
            let below = matches!(predicate, Predicate::Below { .. });
            let (v, b) = match bound {
                Bound::Number(n) => (
                    as_number(r),
                    lit(n.as_f64().ok_or("bound is not a number")?),
                ),
                Bound::Text(t) if is_string(&r.data_type) || text => (as_text(r), lit(t.clone())),
                Bound::Text(t) => (value.clone(), lit(t.clone())),
            };
            let out = match (below, exclusive) {
                (true, false) => v.clone().lt(b),
                (true, true) => v.clone().lt_eq(b),
                (false, false) => v.clone().gt(b),
                (false, true) => v.clone().gt_eq(b),
            };
            v.is_not_null().and(out)
        }
        Predicate::NotMultipleOf(_, m) => {
            use datafusion::functions::expr_fn::{abs, round};
            let v = as_number(r);
            let ratio = v.clone() / lit(*m);
            let off = abs(ratio.clone() - round(vec![ratio]));
            v.is_not_null().and(off.gt(lit(1e-9)))
        }
        Predicate::MinItems(_, n) => set.and(cardinality(value).lt(lit(*n))),
        Predicate::MaxItems(_, n) => set.and(cardinality(value).gt(lit(*n))),
        Predicate::RepeatedItems(_) => {
            set.and(cardinality(array_distinct(value.clone())).lt(cardinality(value)))
        }
    })
}

pub(crate) fn judge(check: &Check, value: f64, rows: f64, failed_rows: Option<f64>) -> CheckResult {
    let measured = if check.threshold.percent {
        if rows > 0.0 {
            100.0 * value / rows
        } else {
            0.0
        }
    } else {
        value
    };
    let passed = check.threshold.op.accepts(measured);
    let outcome = match (passed, check.on_fail) {
        (true, _) => Outcome::Passed,
        (false, OnFail::Fail) => Outcome::Failed,
        (false, OnFail::Warn) => Outcome::Warning,
    };
    let metric = metric_name(check);
    let field = check.field.as_deref();
    let shown_field = field.map(|f| format!("({f})")).unwrap_or_default();
    let reason = (!passed).then(|| {
        if check.threshold.percent {
            format!(
                "Actual {metric}{shown_field} was {}% ({} of {} rows), expected {}%",
                fmt_number(round2(measured)),
                fmt_number(value),
                fmt_number(rows),
                check.threshold.op
            )
        } else if check.threshold.seconds {
            format!(
                "Actual age was {}, expected at most {}",
                human_age(value),
                human_age(threshold_seconds(check))
            )
        } else {
            format!(
                "Actual {metric}{shown_field} was {}, expected {}",
                fmt_number(value),
                check.threshold.op
            )
        }
    });
    let mut result = CheckResult::new(check.clone(), outcome, reason);
    let mut d = serde_json::Map::new();
    d.insert("metric".into(), metric.into());
    if let Some(f) = field {
        d.insert("field".into(), f.into());
    }
    d.insert("value".into(), number_json(value));
    if check.threshold.percent {
        d.insert("unit".into(), "percent".into());
    }
    d.insert("threshold".into(), format!("{}", check.threshold.op).into());
    d.insert("row_count".into(), number_json(rows));
    if check.threshold.percent {
        d.insert("percent".into(), number_json(round2(measured)));
    }
    if !check.threshold.seconds
        && check.check_type != "row_count"
        && !check.check_type.contains("sql")
        && rows > 0.0
        && let Some(fraction) = serde_json::Number::from_f64(failed_rows.unwrap_or(value) / rows)
    {
        d.insert(
            "failed_fraction".into(),
            serde_json::Value::Number(fraction),
        );
    }
    if let Some(n) = failed_rows {
        d.insert("failed_rows".into(), number_json(n));
    }
    result.value = Some(value);
    result.diagnostics = Some(serde_json::Value::Object(d));
    result
}

/// An age check (freshness, retention) on the newest or oldest instant, in microseconds since
/// the epoch; `None` when the field has no instant.
pub(crate) fn judge_age(check: &Check, instant: Option<i64>, rows: f64, now: i64) -> CheckResult {
    let Some(t) = instant else {
        let field = check.field.as_deref().unwrap_or_default();
        return fail(
            check,
            format!("field `{field}` has no timestamp values to measure"),
        );
    };
    let mut result = judge(check, (now - t) as f64 / 1e6, rows, None);
    // The instant itself, so a monitor can age it later (`newest` for freshness, `oldest` for
    // retention).
    let key = match check.measure {
        Measure::NewestAge(_) => "newest",
        _ => "oldest",
    };
    if let (Some(serde_json::Value::Object(d)), Some(at)) = (
        result.diagnostics.as_mut(),
        chrono::DateTime::<chrono::Utc>::from_timestamp_micros(t),
    ) {
        d.insert(
            key.into(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
    }
    result
}

fn threshold_seconds(check: &Check) -> f64 {
    match check.threshold.op {
        crate::checks::Op::Le(s) | crate::checks::Op::Lt(s) => s,
        _ => 0.0,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn number_json(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn human_age(seconds: f64) -> String {
    let s = seconds.abs();
    let (n, unit) = if s >= 86_400.0 {
        (seconds / 86_400.0, "d")
    } else if s >= 3600.0 {
        (seconds / 3600.0, "h")
    } else if s >= 60.0 {
        (seconds / 60.0, "m")
    } else {
        (seconds, "s")
    };
    format!("{}{unit}", fmt_number((n * 10.0).round() / 10.0))
}

/// The metric name in diagnostics (datacontract-cli's / Soda's vocabulary).
fn metric_name(check: &Check) -> &'static str {
    match check.check_type {
        "row_count" => "row_count",
        "field_null_values" | "field_required" | "field_missing_values" => "missing_count",
        "field_unique"
        | "field_duplicate_values"
        | "model_duplicate_values"
        | "field_primary_key_unique"
        | "model_primary_key_unique" => "duplicate_count",
        "field_quality_sql" | "model_quality_sql" => "sql_value",
        "servicelevel_freshness" => "freshness_seconds",
        "servicelevel_retention" => "retention_seconds",
        _ => "invalid_count",
    }
}

pub(crate) fn fail(check: &Check, reason: String) -> CheckResult {
    let outcome = match check.on_fail {
        OnFail::Fail => Outcome::Failed,
        OnFail::Warn => Outcome::Warning,
    };
    CheckResult::new(check.clone(), outcome, Some(reason))
}

pub(crate) fn error(check: &Check, e: &str) -> CheckResult {
    CheckResult::new(check.clone(), Outcome::Error, Some(e.to_owned()))
}

pub(crate) fn unreachable_result(check: &Check) -> CheckResult {
    CheckResult::new(
        check.clone(),
        Outcome::Error,
        Some("the check was not evaluated".to_owned()),
    )
}

pub(crate) fn chrono_now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
