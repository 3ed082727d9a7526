//! Updating an existing contract from an import (the dbt bridge: `mesh import --from dbt
//! manifest.json --into contracts/orders.odcs.yaml`). What the source owns — columns, their types,
//! nullability, keys, descriptions, allowed values — comes from the import; everything the source
//! does not know — quality rules, classifications, SLAs, servers, team — stays as it was.

use serde_json::{Map, Value, json};

use crate::table::Imported;

/// The keys of a property the import owns.
const OWNED: &[&str] = &[
    "logicalType",
    "physicalType",
    "required",
    "unique",
    "primaryKey",
    "primaryKeyPosition",
    "items",
    "properties",
    "map",
];

/// Rules an earlier merge added for allowed values, recognised to be replaced, not repeated.
const VALUES_RULE: &str = "The allowed values (accepted_values in the source).";

/// The merged contract (as JSON) and one line per change.
pub fn merge(existing: &Value, imported: &Imported) -> Result<(Value, Vec<String>), String> {
    let Value::Object(top) = existing else {
        return Err("the existing contract is not an object".into());
    };
    let mut top = top.clone();
    let v3_2 = top.get("apiVersion").and_then(Value::as_str) == Some("v3.2.0");
    let new = imported.contract_json();
    let new_schema = new
        .get("schema")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut changes = Vec::new();
    let schema = top.entry("schema").or_insert_with(|| json!([]));
    let Value::Array(objects) = schema else {
        return Err("`schema` of the existing contract is not a list".into());
    };
    for new_object in new_schema {
        let name = new_object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let found = objects.iter_mut().find(|o| {
            o.get("name").and_then(Value::as_str) == Some(&name)
                || o.get("physicalName").and_then(Value::as_str) == Some(&name)
        });
        let Some(old_object) = found else {
            let mut o = new_object.clone();
            if !v3_2 {
                downgrade_values(&mut o);
            }
            objects.push(o);
            changes.push(format!("added schema object {name}"));
            continue;
        };
        let label = old_object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_owned();
        if let Some(d) = new_object.get("description") {
            old_object["description"] = d.clone();
        }
        let old_props: Vec<Value> = old_object
            .get("properties")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut merged = Vec::new();
        for new_prop in new_object
            .get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let pname = new_prop
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let old = old_props
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(pname));
            let mut prop = match old {
                Some(old) => merge_property(old, new_prop),
                None => new_prop.clone(),
            };
            if !v3_2 {
                downgrade_property_values(&mut prop);
            }
            match old {
                Some(old) if prop != *old => changes.push(format!("updated {label}.{pname}")),
                Some(_) => {}
                None => changes.push(format!("added column {label}.{pname}")),
            }
            merged.push(prop);
        }
        for old in &old_props {
            let pname = old.get("name").and_then(Value::as_str).unwrap_or_default();
            if !merged
                .iter()
                .any(|p| p.get("name").and_then(Value::as_str) == Some(pname))
            {
                changes.push(format!(
                    "removed column {label}.{pname} (not in the source any more)"
                ));
            }
        }
        old_object["properties"] = Value::Array(merged);
        // Schema-level rules from the source replace the ones it wrote before (same description).
        if let Some(Value::Array(rules)) = new_object.get("quality") {
            let list = old_object
                .as_object_mut()
                .map(|o| o.entry("quality").or_insert_with(|| json!([])));
            if let Some(Value::Array(existing)) = list {
                for rule in rules {
                    if !existing.contains(rule) {
                        existing.push(rule.clone());
                    }
                }
            }
        }
    }
    Ok((Value::Object(top), changes))
}

fn merge_property(old: &Value, new: &Value) -> Value {
    let mut out: Map<String, Value> = old.as_object().cloned().unwrap_or_default();
    for key in OWNED {
        match new.get(*key) {
            Some(v) => {
                out.insert((*key).to_owned(), v.clone());
            }
            None => {
                out.remove(*key);
            }
        }
    }
    for key in ["description", "relationships"] {
        if let Some(v) = new.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    match new.get("enum") {
        Some(v) => {
            out.insert("enum".into(), v.clone());
        }
        None => {
            out.remove("enum");
        }
    }
    // Options that no longer apply to the (possibly changed) type are dropped.
    if let (Some(lt), Some(Value::Object(options))) = (
        out.get("logicalType")
            .and_then(Value::as_str)
            .and_then(mesh_model::odcs::LogicalType::parse),
        out.get("logicalTypeOptions").cloned(),
    ) {
        let keys = mesh_model::odcs::LogicalTypeOptions::keys_for(lt);
        let mut kept: Map<String, Value> = options
            .into_iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .collect();
        if let Some(Value::Object(new_options)) = new.get("logicalTypeOptions") {
            for (k, v) in new_options {
                kept.insert(k.clone(), v.clone());
            }
        }
        if kept.is_empty() {
            out.remove("logicalTypeOptions");
        } else {
            out.insert("logicalTypeOptions".into(), Value::Object(kept));
        }
    } else if let Some(options) = new.get("logicalTypeOptions") {
        out.insert("logicalTypeOptions".into(), options.clone());
    }
    // Quality rules: the existing ones stay; the source's are added once.
    let mut rules: Vec<Value> = out
        .get("quality")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.get("description").and_then(Value::as_str) != Some(VALUES_RULE))
        .collect();
    for rule in new
        .get("quality")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    if rules.is_empty() {
        out.remove("quality");
    } else {
        out.insert("quality".into(), Value::Array(rules));
    }
    Value::Object(out)
}

/// A contract older than v3.2.0 has no `enum`: the values become an `invalidValues` rule.
fn downgrade_values(object: &mut Value) {
    if let Some(Value::Array(props)) = object.get_mut("properties") {
        for p in props {
            downgrade_property_values(p);
        }
    }
}

fn downgrade_property_values(p: &mut Value) {
    if let Some(obj) = p.as_object_mut() {
        crate::odcs::enum_as_rule(obj, VALUES_RULE);
    }
}
