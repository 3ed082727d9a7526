//! Column-level lineage from a DataFusion logical plan: for each output column, the columns of
//! the scanned tables it is computed from — through projections and aliases, filters, joins,
//! aggregates, CASE, window functions, unions and subquery aliases.
//!
//! Lineage is conservative: an expression depends on every column it references, so
//! `CASE WHEN a > 0 THEN b ELSE c END` comes from `a`, `b` and `c`, and `count(*)` from nothing.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// A column of a scanned table: (table name as registered, column).
pub type Source = (String, String);

/// Output column → the scanned columns it comes from, in the plan's output order.
pub fn column_lineage(plan: &LogicalPlan) -> Vec<(String, BTreeSet<Source>)> {
    let sources = per_field(plan);
    plan.schema()
        .fields()
        .iter()
        .zip(sources)
        .map(|(f, s)| (f.name().clone(), s))
        .collect()
}

/// The sources of each output field of `plan`, by position.
fn per_field(plan: &LogicalPlan) -> Vec<BTreeSet<Source>> {
    let width = plan.schema().fields().len();
    match plan {
        LogicalPlan::TableScan(scan) => {
            let table = scan.table_name.table().to_owned();
            scan.projected_schema
                .fields()
                .iter()
                .map(|f| BTreeSet::from([(table.clone(), f.name().clone())]))
                .collect()
        }
        LogicalPlan::Projection(p) => {
            let input = per_field(&p.input);
            p.expr
                .iter()
                .map(|e| from_expr(e, &p.input, &input))
                .collect()
        }
        LogicalPlan::Aggregate(a) => {
            let input = per_field(&a.input);
            a.group_expr
                .iter()
                .chain(a.aggr_expr.iter())
                .map(|e| from_expr(e, &a.input, &input))
                .collect()
        }
        LogicalPlan::Window(w) => {
            let input = per_field(&w.input);
            let mut out = input.clone();
            out.extend(w.window_expr.iter().map(|e| from_expr(e, &w.input, &input)));
            out
        }
        LogicalPlan::Join(j) => {
            let (left, right) = (per_field(&j.left), per_field(&j.right));
            plan.schema()
                .iter()
                .map(|(qualifier, field)| {
                    let column = Column::new(qualifier.cloned(), field.name());
                    if let Some(i) = j.left.schema().maybe_index_of_column(&column) {
                        left[i].clone()
                    } else if let Some(i) = j.right.schema().maybe_index_of_column(&column) {
                        right[i].clone()
                    } else {
                        BTreeSet::new()
                    }
                })
                .collect()
        }
        LogicalPlan::Union(u) => {
            let mut out = vec![BTreeSet::new(); width];
            for input in &u.inputs {
                for (i, sources) in per_field(input).into_iter().enumerate().take(width) {
                    out[i].extend(sources);
                }
            }
            out
        }
        _ => {
            // Filters, sorts, limits, distinct, subquery aliases, repartitions: the same fields
            // as their one input. Anything else reads nothing we can name.
            match plan.inputs().as_slice() {
                [input] if input.schema().fields().len() == width => per_field(input),
                _ => vec![BTreeSet::new(); width],
            }
        }
    }
}

/// The sources of the columns an expression references in `input`.
fn from_expr(expr: &Expr, input: &LogicalPlan, sources: &[BTreeSet<Source>]) -> BTreeSet<Source> {
    let mut out = BTreeSet::new();
    for column in expr.column_refs() {
        if let Some(i) = input.schema().maybe_index_of_column(column)
            && let Some(s) = sources.get(i)
        {
            out.extend(s.iter().cloned());
        }
    }
    out
}

/// The lineage as a map for JSON: output column → `[table.column, ...]`.
pub fn to_map(lineage: &[(String, BTreeSet<Source>)]) -> BTreeMap<String, Vec<String>> {
    lineage
        .iter()
        .map(|(column, sources)| {
            (
                column.clone(),
                sources.iter().map(|(t, c)| format!("{t}.{c}")).collect(),
            )
        })
        .collect()
}
