//! The contract's rules for the data-quality tools teams already run: a Great Expectations
//! expectation suite (GX 1.x JSON) and SodaCL checks.

use mesh_model::odcs::{Bound, Contract, DataQuality, Metric, Operator, SchemaObject};
use serde_json::{Map, Value, json};

use crate::{Exported, place};

/// `(min, max, strict_min, strict_max)` of a rule's operator, where it is a range.
fn range(op: &Operator) -> Option<(Option<f64>, Option<f64>, bool, bool)> {
    let f = |n: &serde_json::Number| n.as_f64();
    Some(match op {
        Operator::MustBe(v) => {
            let x = v.as_f64()?;
            (Some(x), Some(x), false, false)
        }
        Operator::MustBeGreaterThan(n) => (f(n), None, true, false),
        Operator::MustBeGreaterOrEqualTo(n) => (f(n), None, false, false),
        Operator::MustBeLessThan(n) => (None, f(n), false, true),
        Operator::MustBeLessOrEqualTo(n) => (None, f(n), false, false),
        Operator::MustBeBetween(b) => (f(&b.low), f(&b.high), false, false),
        _ => return None,
    })
}

fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = x as i64;
        json!(whole)
    } else {
        json!(x)
    }
}

fn bound_value(b: &Bound) -> Value {
    match b {
        Bound::Number(n) => json!(n),
        Bound::Text(t) => json!(t),
    }
}

fn expectation(ty: &str, kwargs: Value) -> Value {
    json!({ "type": ty, "kwargs": kwargs, "meta": {} })
}

pub(crate) fn great_expectations(contract: &Contract) -> Exported {
    let mut lost = Vec::new();
    let suites: Vec<Value> = contract
        .schema
        .iter()
        .map(|o| suite(o, contract, &mut lost))
        .collect();
    crate::sql::lost_common(contract, &mut lost);
    let doc = if suites.len() == 1 {
        suites.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(suites)
    };
    Exported {
        text: serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
        lost,
    }
}

fn suite(o: &SchemaObject, contract: &Contract, lost: &mut Vec<String>) -> Value {
    let mut ex = Vec::new();
    let mut keys: Vec<(i64, &str)> = Vec::new();
    for p in &o.properties {
        let column = p.name();
        let here = place(&o.name, column);
        ex.push(expectation(
            "expect_column_to_exist",
            json!({ "column": column }),
        ));
        if p.is_required() || p.is_primary_key() {
            ex.push(expectation(
                "expect_column_values_to_not_be_null",
                json!({ "column": column }),
            ));
        }
        if p.is_unique() {
            ex.push(expectation(
                "expect_column_values_to_be_unique",
                json!({ "column": column }),
            ));
        }
        if p.is_primary_key() {
            keys.push((p.primary_key_position.unwrap_or(i64::MAX), column));
        }
        if !p.enum_values.is_empty() {
            let values: Vec<Value> = p.allowed_values().cloned().collect();
            ex.push(expectation(
                "expect_column_values_to_be_in_set",
                json!({ "column": column, "value_set": values }),
            ));
        }
        if let Some(opt) = &p.logical_type_options {
            if opt.min_length.is_some() || opt.max_length.is_some() {
                let mut k = json!({ "column": column });
                if let Some(n) = opt.min_length {
                    k["min_value"] = json!(n);
                }
                if let Some(n) = opt.max_length {
                    k["max_value"] = json!(n);
                }
                ex.push(expectation("expect_column_value_lengths_to_be_between", k));
            }
            if let Some(pattern) = &opt.pattern {
                ex.push(expectation(
                    "expect_column_values_to_match_regex",
                    json!({ "column": column, "regex": pattern }),
                ));
            }
            let lower = opt
                .minimum
                .as_ref()
                .map(|b| (b, false))
                .or(opt.exclusive_minimum.as_ref().map(|b| (b, true)));
            let upper = opt
                .maximum
                .as_ref()
                .map(|b| (b, false))
                .or(opt.exclusive_maximum.as_ref().map(|b| (b, true)));
            if lower.is_some() || upper.is_some() {
                let mut k = json!({ "column": column });
                if let Some((b, strict)) = lower {
                    k["min_value"] = bound_value(b);
                    k["strict_min"] = json!(strict);
                }
                if let Some((b, strict)) = upper {
                    k["max_value"] = bound_value(b);
                    k["strict_max"] = json!(strict);
                }
                ex.push(expectation("expect_column_values_to_be_between", k));
            }
            if opt.format.is_some() && p.logical_type == Some(mesh_model::odcs::LogicalType::String)
            {
                lost.push(format!(
                    "{here}: format {} (no GX core expectation)",
                    opt.format.as_deref().unwrap_or_default()
                ));
            }
        }
        for rule in &p.quality {
            match rule_expectation(rule, Some(column)) {
                Some(e) => ex.push(e),
                None => lost.push(format!(
                    "{here}: quality rule {} (no GX core expectation)",
                    crate::sql::describe_rule(rule)
                )),
            }
        }
    }
    keys.sort();
    if keys.len() > 1 {
        let cols: Vec<&str> = keys.iter().map(|(_, c)| *c).collect();
        ex.push(expectation(
            "expect_compound_columns_to_be_unique",
            json!({ "column_list": cols }),
        ));
    } else if let [(_, one)] = keys.as_slice()
        && !o.property(one).is_some_and(|p| p.is_unique())
    {
        ex.push(expectation(
            "expect_column_values_to_be_unique",
            json!({ "column": one }),
        ));
    }
    for rule in &o.quality {
        match rule_expectation(rule, None) {
            Some(e) => ex.push(e),
            None => lost.push(format!(
                "{}: quality rule {} (no GX core expectation)",
                o.name,
                crate::sql::describe_rule(rule)
            )),
        }
    }
    lost.push(format!(
        "{}: column types (GX type names depend on the backend it runs on)",
        o.name
    ));
    json!({
        "name": o.physical_name.clone().unwrap_or_else(|| o.name.clone()),
        "expectations": ex,
        "meta": {
            "generated_by": "mesh export --to great-expectations",
            "contract": contract.id,
            "contract_version": contract.version,
        },
    })
}

fn rule_expectation(rule: &DataQuality, column: Option<&str>) -> Option<Value> {
    let op = rule.operator()?;
    let zero = matches!(&op, Operator::MustBe(v) if v.as_f64() == Some(0.0));
    match (rule.metric?, column) {
        (Metric::RowCount, _) => {
            let (min, max, strict_min, strict_max) = range(&op)?;
            let mut k = Map::new();
            // GX's bounds are inclusive: a strict integer bound moves by one.
            if let Some(m) = min {
                k.insert(
                    "min_value".into(),
                    num(if strict_min { m + 1.0 } else { m }),
                );
            }
            if let Some(m) = max {
                k.insert(
                    "max_value".into(),
                    num(if strict_max { m - 1.0 } else { m }),
                );
            }
            Some(expectation(
                "expect_table_row_count_to_be_between",
                Value::Object(k),
            ))
        }
        (Metric::NullValues, Some(c)) if zero => Some(expectation(
            "expect_column_values_to_not_be_null",
            json!({ "column": c }),
        )),
        (Metric::DuplicateValues, Some(c)) if zero => Some(expectation(
            "expect_column_values_to_be_unique",
            json!({ "column": c }),
        )),
        (Metric::DuplicateValues, None) if zero => {
            let cols = rule.arguments.as_ref()?.0.get("properties")?.clone();
            Some(expectation(
                "expect_compound_columns_to_be_unique",
                json!({ "column_list": cols }),
            ))
        }
        (Metric::InvalidValues, Some(c)) if zero => {
            let values = rule.arguments.as_ref()?.0.get("validValues")?.clone();
            Some(expectation(
                "expect_column_values_to_be_in_set",
                json!({ "column": c, "value_set": values }),
            ))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// SodaCL

fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn yaml_value(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_string(s),
        other => other.to_string(),
    }
}

fn soda_threshold(op: &Operator) -> Option<String> {
    let v = |n: &serde_json::Number| n.to_string();
    Some(match op {
        Operator::MustBe(x) => format!("= {}", x.as_f64().map(|f| num(f).to_string())?),
        Operator::MustNotBe(x) => format!("!= {}", x.as_f64().map(|f| num(f).to_string())?),
        Operator::MustBeGreaterThan(n) => format!("> {}", v(n)),
        Operator::MustBeGreaterOrEqualTo(n) => format!(">= {}", v(n)),
        Operator::MustBeLessThan(n) => format!("< {}", v(n)),
        Operator::MustBeLessOrEqualTo(n) => format!("<= {}", v(n)),
        Operator::MustBeBetween(b) => format!("between {} and {}", v(&b.low), v(&b.high)),
        Operator::MustNotBeBetween(b) => format!("not between {} and {}", v(&b.low), v(&b.high)),
    })
}

pub(crate) fn sodacl(contract: &Contract) -> Exported {
    let mut lost = Vec::new();
    let mut out = format!(
        "# Written by `mesh export --to sodacl` from contract {} {}.\n",
        contract.id.as_deref().unwrap_or_default(),
        contract.version.as_deref().unwrap_or_default()
    );
    for o in &contract.schema {
        let table = o.physical_name.clone().unwrap_or_else(|| o.name.clone());
        out.push_str(&format!("checks for {table}:\n"));
        let required: Vec<String> = o.properties.iter().map(|p| yaml_string(p.name())).collect();
        out.push_str("  - schema:\n      name: the contract's columns are present\n      fail:\n");
        out.push_str(&format!(
            "        when required column missing: [{}]\n",
            required.join(", ")
        ));
        let mut user_metrics = 0;
        let start = out.len();
        for p in &o.properties {
            let c = p.name();
            let here = place(&o.name, c);
            if p.is_required() || p.is_primary_key() {
                out.push_str(&format!("  - missing_count({c}) = 0\n"));
            }
            if p.is_unique()
                || (p.is_primary_key()
                    && o.properties.iter().filter(|q| q.is_primary_key()).count() == 1)
            {
                out.push_str(&format!("  - duplicate_count({c}) = 0\n"));
            }
            let mut valid = Vec::new();
            if !p.enum_values.is_empty() {
                let values: Vec<String> = p.allowed_values().map(yaml_value).collect();
                valid.push(format!("valid values: [{}]", values.join(", ")));
            }
            if let Some(opt) = &p.logical_type_options {
                if let Some(n) = opt.min_length {
                    valid.push(format!("valid min length: {n}"));
                }
                if let Some(n) = opt.max_length {
                    valid.push(format!("valid max length: {n}"));
                }
                if let Some(pattern) = &opt.pattern {
                    valid.push(format!("valid regex: {}", yaml_string(pattern)));
                }
                for (bound, key) in [(&opt.minimum, "valid min"), (&opt.maximum, "valid max")] {
                    match bound {
                        Some(Bound::Number(n)) => valid.push(format!("{key}: {n}")),
                        Some(Bound::Text(t)) => {
                            lost.push(format!("{here}: {key} {t} (SodaCL bounds numbers)"))
                        }
                        None => {}
                    }
                }
                if opt.exclusive_minimum.is_some() || opt.exclusive_maximum.is_some() {
                    lost.push(format!(
                        "{here}: an exclusive bound (SodaCL's valid min/max are inclusive)"
                    ));
                }
            }
            if !valid.is_empty() {
                out.push_str(&format!("  - invalid_count({c}) = 0:\n"));
                for v in valid {
                    out.push_str(&format!("      {v}\n"));
                }
            }
            for rule in &p.quality {
                match soda_rule(rule, Some(c), &table, &mut user_metrics) {
                    Some(text) => out.push_str(&text),
                    None => lost.push(format!(
                        "{here}: quality rule {} (no SodaCL check)",
                        crate::sql::describe_rule(rule)
                    )),
                }
            }
        }
        let keys: Vec<&str> = o
            .properties
            .iter()
            .filter(|p| p.is_primary_key())
            .map(|p| p.name())
            .collect();
        if keys.len() > 1 {
            out.push_str(&format!("  - duplicate_count({}) = 0\n", keys.join(", ")));
        }
        for rule in &o.quality {
            match soda_rule(rule, None, &table, &mut user_metrics) {
                Some(text) => out.push_str(&text),
                None => lost.push(format!(
                    "{}: quality rule {} (no SodaCL check)",
                    o.name,
                    crate::sql::describe_rule(rule)
                )),
            }
        }
        // The same check twice (a `required` column with a nullValues rule) is written once.
        let mut seen = std::collections::HashSet::new();
        let body: String = out[start..]
            .split_inclusive('\n')
            .filter(|line| {
                !line.starts_with("  - ") || line.ends_with(":\n") || seen.insert(line.to_string())
            })
            .collect();
        out.truncate(start);
        out.push_str(&body);
        // Freshness: an SLA latency on one of this table's timestamp columns.
        for sla in &contract.sla_properties {
            let element = sla.element.as_deref().unwrap_or_default();
            let Some((t, column)) = element.split_once('.') else {
                continue;
            };
            if t != o.name || !matches!(sla.property.as_str(), "latency" | "freshness") {
                continue;
            }
            let unit = match sla.unit.as_deref().unwrap_or("d") {
                "d" | "day" | "days" => "d",
                "h" | "hour" | "hours" => "h",
                "m" | "minute" | "minutes" => "m",
                _ => continue,
            };
            if let Some(v) = sla.value.0.as_f64() {
                out.push_str(&format!("  - freshness({column}) < {}{unit}\n", num(v)));
            }
        }
    }
    for sla in &contract.sla_properties {
        let kept = matches!(sla.property.as_str(), "latency" | "freshness")
            && sla.element.as_deref().is_some_and(|e| e.contains('.'));
        if !kept {
            lost.push(format!("slaProperties.{}: no SodaCL check", sla.property));
        }
    }
    Exported { text: out, lost }
}

fn soda_rule(
    rule: &DataQuality,
    column: Option<&str>,
    table: &str,
    user_metrics: &mut usize,
) -> Option<String> {
    let op = rule.operator()?;
    let threshold = soda_threshold(&op)?;
    if let Some(query) = &rule.query {
        *user_metrics += 1;
        let metric = format!("mesh_rule_{user_metrics}");
        let query = query.replace("{object}", table).replace("{model}", table);
        return Some(format!(
            "  - {metric} {threshold}:\n      {metric} query: {}\n",
            yaml_string(&query)
        ));
    }
    Some(match (rule.metric?, column) {
        (Metric::RowCount, _) => format!("  - row_count {threshold}\n"),
        (Metric::NullValues, Some(c)) => format!("  - missing_count({c}) {threshold}\n"),
        (Metric::DuplicateValues, Some(c)) => format!("  - duplicate_count({c}) {threshold}\n"),
        (Metric::DuplicateValues, None) => {
            let cols = rule.arguments.as_ref()?.0.get("properties")?.as_array()?;
            let cols: Vec<&str> = cols.iter().filter_map(Value::as_str).collect();
            format!("  - duplicate_count({}) {threshold}\n", cols.join(", "))
        }
        (Metric::InvalidValues, Some(c)) => {
            let values = rule.arguments.as_ref()?.0.get("validValues")?.as_array()?;
            let values: Vec<String> = values.iter().map(yaml_value).collect();
            format!(
                "  - invalid_count({c}) {threshold}:\n      valid values: [{}]\n",
                values.join(", ")
            )
        }
        _ => return None,
    })
}
