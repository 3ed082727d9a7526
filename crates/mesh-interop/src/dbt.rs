//! dbt in and out. In: a `target/manifest.json` — every model (or those `--model` names) with its
//! columns, data types, descriptions, constraints and data tests (`not_null`, `unique`,
//! `accepted_values`, `relationships`, `dbt_utils.accepted_range`, `dbt_utils.expression_is_true`
//! become ODCS fields and rules). Out: a models YAML (`schema.yml`) with `contract: enforced: true`,
//! column data types, constraints and data tests, which keeps a dbt project's contracts in step
//! with the product's.

use std::collections::BTreeMap;

use mesh_model::odcs::{Bound, Contract, LogicalType, RefTarget, SchemaObject};
use serde_json::{Map, Value, json};

use crate::sql::{Dialect, literal_sql, sql_rule, sql_type};
use crate::table::{Column, Imported, Table};
use crate::{Exported, Problem, place};

/// Manifests are big, but not this big.
const MAX_MANIFEST_BYTES: usize = 512 << 20;

pub(crate) fn import(file: &str, text: &str, only: &[String]) -> Result<Imported, Problem> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(Problem::new(
            file,
            None,
            "dbt manifest: the file is over 512 MiB",
        ));
    }
    let manifest: Value = serde_json::from_str(text).map_err(|e| {
        let line = u32::try_from(e.line()).unwrap_or(u32::MAX);
        let col = u32::try_from(e.column()).unwrap_or(u32::MAX);
        Problem::new(file, Some((line, col)), format!("dbt manifest: {e}"))
            .hint("give the manifest.json that `dbt parse` or `dbt compile` writes to target/")
    })?;
    let Some(nodes) = manifest.get("nodes").and_then(Value::as_object) else {
        return Err(Problem::new(
            file,
            None,
            "dbt manifest: no `nodes` object; is this a dbt target/manifest.json?",
        ));
    };
    let project = manifest
        .pointer("/metadata/project_name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let models: Vec<(&String, &Value)> = nodes
        .iter()
        .filter(|(_, n)| n.get("resource_type").and_then(Value::as_str) == Some("model"))
        .filter(|(_, n)| {
            only.is_empty()
                || only
                    .iter()
                    .any(|m| Some(m.as_str()) == n.get("name").and_then(Value::as_str))
        })
        .collect();
    if models.is_empty() {
        let names: Vec<&str> = nodes
            .values()
            .filter(|n| n.get("resource_type").and_then(Value::as_str) == Some("model"))
            .filter_map(|n| n.get("name").and_then(Value::as_str))
            .collect();
        let mut p = Problem::new(
            file,
            None,
            if only.is_empty() {
                "dbt manifest: the project has no models".to_owned()
            } else {
                format!("dbt manifest: no model called {}", only.join(", "))
            },
        );
        if !names.is_empty() {
            p = p.hint(format!("its models: {}", names.join(", ")));
        }
        return Err(p);
    }
    let mut out = Imported::new(file, format!("the dbt manifest {}", crate::file_name(file)));
    let project = project.or_else(|| models[0].0.split('.').nth(1).map(str::to_owned));
    out.id = match (&project, models.as_slice()) {
        (Some(p), [(_, one)]) => format!(
            "{p}.{}",
            one.get("name").and_then(Value::as_str).unwrap_or_default()
        ),
        (Some(p), _) => p.clone(),
        (None, _) => out.id.clone(),
    };
    out.name = match models.as_slice() {
        [(_, one)] => one
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => project.clone().unwrap_or_else(|| out.name.clone()),
    };
    // Tests by the model they are attached to.
    let mut tests: BTreeMap<&str, Vec<(&String, &Value)>> = BTreeMap::new();
    for (id, node) in nodes {
        if node.get("resource_type").and_then(Value::as_str) != Some("test") {
            continue;
        }
        let attached = node
            .get("attached_node")
            .and_then(Value::as_str)
            .or_else(|| node.pointer("/depends_on/nodes/0").and_then(Value::as_str));
        if let Some(model) = attached {
            tests.entry(model).or_default().push((id, node));
        }
    }
    for (id, model) in &models {
        let mut table = table(id, model, &mut out);
        for (test_id, test) in tests.get(id.as_str()).into_iter().flatten() {
            apply_test(test_id, test, &mut table, &mut out);
        }
        // A one-column primary key is unique by being the key: its `unique` test says no more.
        if table
            .columns
            .iter()
            .filter(|c| c.primary_key.is_some())
            .count()
            == 1
        {
            for c in table.columns.iter_mut().filter(|c| c.primary_key.is_some()) {
                c.unique = false;
            }
        }
        out.tables.push(table);
    }
    if let [one] = out.tables.as_slice() {
        out.description.clone_from(&one.description);
    }
    Ok(out)
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn table(id: &str, model: &Value, out: &mut Imported) -> Table {
    let name = string(model, "name").unwrap_or_else(|| id.to_owned());
    let mut table = Table::new(name.clone());
    table.physical_type = Some(
        model
            .pointer("/config/materialized")
            .and_then(Value::as_str)
            .unwrap_or("table")
            .to_owned(),
    );
    table.physical_name = string(model, "alias").filter(|a| *a != name);
    table.description = string(model, "description");
    table.tags = model
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let dialect = Dialect::Generic;
    if let Some(columns) = model.get("columns").and_then(Value::as_object) {
        for (key, col) in columns {
            let col_name = string(col, "name").unwrap_or_else(|| key.clone());
            let mut c = match string(col, "data_type") {
                Some(ty) => crate::sql::column_of_type(&col_name, &ty, dialect, out).unwrap_or_else(|| {
                    out.note(None, format!("{}: data type `{ty}` is not a SQL type mesh reads: imported as a string", place(&name, &col_name)));
                    let mut c = Column::new(&col_name, LogicalType::String);
                    c.physical = Some(ty.clone());
                    c
                }),
                None => {
                    out.note(None, format!("{}: no data_type in the dbt project: imported as a string (set data_type, as an enforced dbt contract needs anyway)", place(&name, &col_name)));
                    Column::new(&col_name, LogicalType::String)
                }
            };
            c.description = string(col, "description");
            c.tags = col
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            for constraint in col
                .get("constraints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                column_constraint(constraint, &name, &mut c, out);
            }
            table.columns.push(c);
        }
    }
    for constraint in model
        .get("constraints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        model_constraint(constraint, &mut table, out);
    }
    if table.columns.is_empty() {
        out.note(None, format!("{name}: the dbt model documents no columns; its schema object is empty (document them in the model's YAML)"));
    }
    table
}

fn column_constraint(constraint: &Value, table: &str, c: &mut Column, out: &mut Imported) {
    match constraint.get("type").and_then(Value::as_str) {
        Some("not_null") => c.required = true,
        Some("unique") => c.unique = true,
        Some("primary_key") => {
            c.primary_key = Some(1);
            c.required = true;
        }
        Some("check") => {
            let rest = string(constraint, "expression")
                .and_then(|expr| crate::sql::check_text_into(&expr, Dialect::Generic, c));
            if let Some(expr) = rest {
                c.quality.push(sql_rule(
                    table,
                    &expr,
                    format!("dbt constraint check ({expr})"),
                ));
            }
        }
        Some("foreign_key") => {
            if let Some(to) = foreign_target(constraint) {
                c.references = Some(to);
            }
        }
        Some(other) => out.note(
            None,
            format!(
                "{}: dbt constraint `{other}` is not imported",
                place(table, &c.name)
            ),
        ),
        None => {}
    }
}

/// `to: ref('customers')` + `to_columns: [id]` (dbt ≥ 1.9), or `expression: "customers (id)"`.
fn foreign_target(constraint: &Value) -> Option<String> {
    if let Some(to) = string(constraint, "to") {
        let table = ref_name(&to);
        let column = constraint
            .pointer("/to_columns/0")
            .and_then(Value::as_str)?;
        return Some(format!("{table}.{column}"));
    }
    let expr = string(constraint, "expression")?;
    let (table, rest) = expr.split_once('(')?;
    let column = rest.split(')').next()?.split(',').next()?.trim();
    let table = table.trim().rsplit('.').next()?.trim_matches('"');
    Some(format!("{table}.{column}"))
}

/// `ref('customers')` → `customers`; `source('shop', 'orders')` → `orders`.
fn ref_name(text: &str) -> String {
    let inner = text
        .trim()
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim();
    let args = inner
        .split_once('(')
        .map_or(inner, |(_, a)| a.trim_end_matches(')'));
    args.rsplit(',')
        .next()
        .unwrap_or(args)
        .trim()
        .trim_matches(['\'', '"'])
        .to_owned()
}

fn model_constraint(constraint: &Value, table: &mut Table, out: &mut Imported) {
    let columns: Vec<String> = constraint
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    match constraint.get("type").and_then(Value::as_str) {
        Some("primary_key") => {
            for (i, name) in columns.iter().enumerate() {
                if let Some(c) = table.column_mut(name) {
                    c.primary_key = Some(u32::try_from(i + 1).unwrap_or(u32::MAX));
                    c.required = true;
                }
            }
        }
        Some("unique") if columns.len() > 1 => table.quality.push(json!({
            "type": "library",
            "metric": "duplicateValues",
            "description": format!("dbt unique constraint on ({})", columns.join(", ")),
            "arguments": { "properties": columns },
            "mustBe": 0,
        })),
        Some("unique") => {
            if let Some(c) = columns.first().and_then(|n| table.column_mut(n)) {
                c.unique = true;
            }
        }
        Some("check") => {
            if let Some(expr) = string(constraint, "expression") {
                let rule = sql_rule(&table.name, &expr, format!("dbt constraint check ({expr})"));
                table.quality.push(rule);
            }
        }
        Some("foreign_key") => {
            if let Some(to) = foreign_target(constraint)
                && let Some((to_table, to_col)) = to.split_once('.')
            {
                if let [one] = columns.as_slice()
                    && let Some(c) = table.column_mut(one)
                {
                    c.references = Some(to.clone());
                } else {
                    table.foreign_keys.push((
                        columns,
                        to_table.to_owned(),
                        vec![to_col.to_owned()],
                    ));
                }
            }
        }
        Some(other) => out.note(
            None,
            format!(
                "{}: dbt model constraint `{other}` is not imported",
                table.name
            ),
        ),
        None => {}
    }
}

fn apply_test(id: &str, test: &Value, table: &mut Table, out: &mut Imported) {
    let Some(meta) = test.get("test_metadata") else {
        out.note(None, format!("{}: singular test {id} is SQL of its own: not imported (add it as a `type: sql` quality rule)", table.name));
        return;
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let namespace = meta.get("namespace").and_then(Value::as_str);
    let kwargs = meta.get("kwargs").cloned().unwrap_or(Value::Null);
    let column_name = string(test, "column_name").or_else(|| string(&kwargs, "column_name"));
    let severity = test
        .pointer("/config/severity")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let table_name = table.name.clone();
    let column = column_name
        .as_deref()
        .and_then(|c| table.column_mut(c.trim_matches('"')));
    let Some(c) = column else {
        if let (Some("dbt_utils"), "expression_is_true") = (namespace, name)
            && let Some(expr) = string(&kwargs, "expression")
        {
            table.quality.push(sql_rule(
                &table_name,
                &expr,
                format!("dbt test dbt_utils.expression_is_true ({expr})"),
            ));
            return;
        }
        out.note(None, format!("{table_name}: dbt test {id} ({name}) is not imported (not about a documented column)"));
        return;
    };
    if severity.as_deref() == Some("warn") {
        c.tags.push(format!("dbt-warn-{name}"));
    }
    match (namespace, name) {
        (None, "not_null") => c.required = true,
        (None, "unique") => c.unique = true,
        (None, "accepted_values") => {
            let values = kwargs
                .get("values")
                .or_else(|| kwargs.pointer("/arguments/values"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            c.enum_values = values;
        }
        (None, "relationships") => {
            let to = string(&kwargs, "to").map(|t| ref_name(&t));
            let field = string(&kwargs, "field");
            if let (Some(to), Some(field)) = (to, field) {
                c.references = Some(format!("{to}.{field}"));
            }
        }
        (Some("dbt_utils"), "accepted_range") => {
            let inclusive = kwargs
                .get("inclusive")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if let Some(v) = kwargs.get("min_value").filter(|v| v.is_number()) {
                c.options.insert(
                    if inclusive {
                        "minimum"
                    } else {
                        "exclusiveMinimum"
                    }
                    .into(),
                    v.clone(),
                );
            }
            if let Some(v) = kwargs.get("max_value").filter(|v| v.is_number()) {
                c.options.insert(
                    if inclusive {
                        "maximum"
                    } else {
                        "exclusiveMaximum"
                    }
                    .into(),
                    v.clone(),
                );
            }
        }
        (Some("dbt_utils"), "expression_is_true") => {
            if let Some(expr) = string(&kwargs, "expression") {
                let condition = format!("{} {expr}", c.name);
                c.quality.push(sql_rule(
                    &table_name,
                    &condition,
                    format!("dbt test dbt_utils.expression_is_true ({condition})"),
                ));
            }
        }
        (ns, name) => {
            let full = ns.map_or_else(|| name.to_owned(), |ns| format!("{ns}.{name}"));
            out.note(
                None,
                format!(
                    "{}: dbt test {full} has no ODCS equivalent: not imported",
                    place(&table_name, &c.name)
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Export

pub(crate) fn export(contract: &Contract, dialect: Dialect) -> Exported {
    let mut lost = Vec::new();
    let models: Vec<Value> = contract
        .schema
        .iter()
        .map(|o| model(o, contract, dialect, &mut lost))
        .collect();
    crate::sql::lost_common(contract, &mut lost);
    let doc = json!({ "version": 2, "models": models });
    let header = format!(
        "# Written by `mesh export --to dbt` from contract {} {}: the models' enforced dbt contract.\n# Regenerate it when the ODCS contract changes; do not edit by hand.\n",
        contract.id.as_deref().unwrap_or_default(),
        contract.version.as_deref().unwrap_or_default()
    );
    Exported {
        text: header + &yaml_serde::to_string(&doc).unwrap_or_default(),
        lost,
    }
}

fn model(o: &SchemaObject, contract: &Contract, dialect: Dialect, lost: &mut Vec<String>) -> Value {
    let mut m = Map::new();
    m.insert(
        "name".into(),
        json!(o.physical_name.clone().unwrap_or_else(|| o.name.clone())),
    );
    if let Some(d) = &o.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("config".into(), json!({ "contract": { "enforced": true } }));
    let keys: Vec<&str> = {
        let mut k: Vec<_> = o.properties.iter().filter(|p| p.is_primary_key()).collect();
        k.sort_by_key(|p| p.primary_key_position.unwrap_or(i64::MAX));
        k.iter().map(|p| p.name()).collect()
    };
    if keys.len() > 1 {
        m.insert(
            "constraints".into(),
            json!([{ "type": "primary_key", "columns": keys }]),
        );
    }
    let mut columns = Vec::new();
    for p in &o.properties {
        let here = place(&o.name, p.name());
        let mut c = Map::new();
        c.insert("name".into(), json!(p.name()));
        if let Some(d) = &p.description {
            c.insert("description".into(), json!(d));
        }
        c.insert(
            "data_type".into(),
            json!(sql_type(p, dialect, p.is_primary_key() || p.is_unique()).to_ascii_lowercase()),
        );
        let mut constraints = Vec::new();
        let mut tests: Vec<Value> = Vec::new();
        if p.is_required() || p.is_primary_key() {
            constraints.push(json!({ "type": "not_null" }));
            tests.push(json!("not_null"));
        }
        if p.is_primary_key() && keys.len() == 1 {
            constraints.push(json!({ "type": "primary_key" }));
            if !p.is_unique() {
                tests.push(json!("unique"));
            }
        }
        if p.is_unique() {
            constraints.push(json!({ "type": "unique" }));
            tests.push(json!("unique"));
        }
        if !p.enum_values.is_empty() {
            let values: Vec<Value> = p.allowed_values().cloned().collect();
            let quote = values.iter().all(Value::is_string);
            let mut args = json!({ "values": values });
            if !quote {
                args["quote"] = json!(false);
            }
            tests.push(json!({ "accepted_values": args }));
            if let Some(list) = values.iter().map(literal_sql).collect::<Option<Vec<_>>>() {
                constraints.push(json!({ "type": "check", "expression": format!("{} in ({})", p.name(), list.join(", ")) }));
            }
        }
        if let Some(o) = &p.logical_type_options {
            let mut checks = Vec::new();
            for (bound, op) in [
                (&o.minimum, ">="),
                (&o.exclusive_minimum, ">"),
                (&o.maximum, "<="),
                (&o.exclusive_maximum, "<"),
            ] {
                if let Some(Bound::Number(n)) = bound {
                    checks.push(format!("{} {op} {n}", p.name()));
                } else if let Some(Bound::Text(t)) = bound {
                    checks.push(format!("{} {op} '{}'", p.name(), t.replace('\'', "''")));
                }
            }
            if !checks.is_empty() {
                constraints.push(json!({ "type": "check", "expression": checks.join(" and ") }));
            }
            for (key, set) in [
                ("pattern", o.pattern.is_some()),
                ("minLength", o.min_length.is_some()),
                (
                    "format",
                    o.format.is_some() && p.logical_type == Some(LogicalType::String),
                ),
            ] {
                if set {
                    lost.push(format!("{here}: {key} (dbt core has no test for it)"));
                }
            }
        }
        for rel in &p.relationships {
            if let Some(to) = rel.to.as_ref().and_then(|t| t.as_slice().first())
                && let RefTarget::Shorthand { object, property } = to.target()
            {
                let target = contract
                    .schema_object(object)
                    .and_then(|t| t.physical_name.clone())
                    .unwrap_or_else(|| object.to_owned());
                tests.push(json!({ "relationships": { "to": format!("ref('{target}')"), "field": property } }));
            }
        }
        for rule in &p.quality {
            lost.push(format!(
                "{here}: quality rule {} (no dbt core test)",
                crate::sql::describe_rule(rule)
            ));
        }
        if !constraints.is_empty() {
            c.insert("constraints".into(), Value::Array(constraints));
        }
        if !tests.is_empty() {
            c.insert("data_tests".into(), Value::Array(tests));
        }
        columns.push(Value::Object(c));
    }
    m.insert("columns".into(), Value::Array(columns));
    for rule in &o.quality {
        lost.push(format!(
            "{}: quality rule {} (no dbt core test)",
            o.name,
            crate::sql::describe_rule(rule)
        ));
    }
    Value::Object(m)
}
