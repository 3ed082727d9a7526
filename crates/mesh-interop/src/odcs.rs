//! ODCS out: the contract normalised (the standard's key order, YAML, unknown keys kept) in any
//! version mesh reads. Going down to v3.1.0 or v3.0.x rewrites what v3.2.0 added where an older
//! form says the same (`enum` becomes an `invalidValues` rule, `vector` an array of numbers) and
//! lists the rest as lost; going up to v3.2.0 names what v3.2.0 refuses.

use mesh_model::odcs::{Contract, OdcsApiVersion};
use serde_json::{Map, Value, json};

use crate::Exported;

/// Top-level keys in the order the standard's examples write them.
const ORDER: &[&str] = &[
    "apiVersion",
    "kind",
    "id",
    "name",
    "version",
    "status",
    "domain",
    "dataProduct",
    "tenant",
    "tags",
    "description",
    "context",
    "servers",
    "schema",
    "support",
    "price",
    "team",
    "roles",
    "slaDefaultElement",
    "slaProperties",
    "authoritativeDefinitions",
    "customProperties",
    "contractCreatedTs",
];

pub(crate) fn export(contract: &Contract, version: Option<&str>) -> Result<Exported, String> {
    let value = serde_json::to_value(contract).map_err(|e| e.to_string())?;
    let Value::Object(map) = value else {
        return Err("the contract is not an object".into());
    };
    let mut ordered = Map::new();
    for key in ORDER {
        if let Some(v) = map.get(*key) {
            ordered.insert((*key).to_owned(), v.clone());
        }
    }
    for (k, v) in &map {
        if !ordered.contains_key(k) {
            ordered.insert(k.clone(), v.clone());
        }
    }
    let mut lost = Vec::new();
    let from = contract
        .api_version
        .map_or("v3.1.0", OdcsApiVersion::as_str);
    let to = version.unwrap_or(from);
    if OdcsApiVersion::parse(to).is_none() {
        return Err(format!(
            "`{to}` is not an ODCS version mesh writes (one of {})",
            OdcsApiVersion::ALL.join(", ")
        ));
    }
    ordered.insert("apiVersion".into(), json!(to));
    let down = from == "v3.2.0" && to != "v3.2.0";
    let up = from != "v3.2.0" && to == "v3.2.0";
    if down {
        downgrade(&mut ordered, &mut lost);
    }
    let doc = Value::Object(ordered);
    let text = yaml_serde::to_string(&doc).map_err(|e| e.to_string())?;
    // What we write must read back clean in the version it declares.
    let check = mesh_model::parse_contract(&text);
    if check.has_errors() {
        let problems: Vec<String> = check
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{} ({})", d.message, d.pointer))
            .collect();
        let why = if up {
            "v3.2.0 refuses what this contract has"
        } else {
            "the contract does not lint"
        };
        return Err(format!(
            "cannot write the contract as {to}: {why}: {}",
            problems.join("; ")
        ));
    }
    Ok(Exported { text, lost })
}

/// v3.2.0 → v3.1.0: rewrite or drop what the older schema does not have.
fn downgrade(top: &mut Map<String, Value>, lost: &mut Vec<String>) {
    if !top.contains_key("status") {
        top.insert("status".into(), json!("draft"));
        lost.push("status: v3.1.0 requires one; written as `draft`".into());
    }
    if top.remove("context").is_some() {
        lost.push("context: no v3.1.0 field".into());
    }
    strip_custom_vendor(top, "", lost);
    if let Some(Value::Array(servers)) = top.get_mut("servers") {
        servers.retain_mut(|s| {
            let name = s
                .get("server")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let ty = s
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let new_type = mesh_model::odcs::ServerType::parse(&ty)
                .is_some_and(mesh_model::odcs::ServerType::is_v3_2);
            if new_type {
                lost.push(format!(
                    "servers.{name}: server type {ty} is new in v3.2.0; the server is left out"
                ));
                return false;
            }
            if let Some(obj) = s.as_object_mut() {
                for key in ["encoding", "workgroup"] {
                    if obj.remove(key).is_some() {
                        lost.push(format!("servers.{name}.{key}: no v3.1.0 field"));
                    }
                }
                if let Some(Value::String(port)) = obj.get("port").cloned() {
                    match port.parse::<i64>() {
                        Ok(n) => {
                            obj.insert("port".into(), json!(n));
                        }
                        Err(_) => {
                            obj.remove("port");
                            lost.push(format!(
                                "servers.{name}.port: `{port}` (v3.1.0 ports are numbers)"
                            ));
                        }
                    }
                }
            }
            true
        });
    }
    if let Some(Value::Array(sla)) = top.get_mut("slaProperties") {
        for s in sla {
            let name = s
                .get("property")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(obj) = s.as_object_mut() {
                for key in ["customProperties", "authoritativeDefinitions"] {
                    if obj.remove(key).is_some() {
                        lost.push(format!("slaProperties.{name}.{key}: no v3.1.0 field"));
                    }
                }
            }
        }
    }
    if let Some(Value::Array(schema)) = top.get_mut("schema") {
        for o in schema {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(obj) = o.as_object_mut() {
                for key in ["deprecated", "synonyms", "context"] {
                    if obj.remove(key).is_some() {
                        lost.push(format!("{name}.{key}: no v3.1.0 field"));
                    }
                }
                if let Some(Value::Array(rels)) = obj.get_mut("relationships") {
                    for r in rels.iter_mut().filter_map(Value::as_object_mut) {
                        r.remove("id");
                    }
                }
                if let Some(Value::Array(props)) = obj.get_mut("properties") {
                    for p in props {
                        downgrade_property(p, &name, lost);
                    }
                }
            }
        }
    }
}

fn strip_custom_vendor(top: &mut Map<String, Value>, _path: &str, lost: &mut Vec<String>) {
    if let Some(Value::Array(custom)) = top.get_mut("customProperties") {
        for c in custom.iter_mut().filter_map(Value::as_object_mut) {
            if c.remove("vendor").is_some() {
                lost.push(format!(
                    "customProperties.{}.vendor: no v3.1.0 field",
                    c.get("property")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ));
            }
        }
    }
}

fn downgrade_property(p: &mut Value, path: &str, lost: &mut Vec<String>) {
    let Some(obj) = p.as_object_mut() else { return };
    let here = format!(
        "{path}.{}",
        obj.get("name").and_then(Value::as_str).unwrap_or("[]")
    );
    for key in ["deprecated", "synonyms", "semanticType"] {
        if obj.remove(key).is_some() {
            lost.push(format!("{here}.{key}: no v3.1.0 field"));
        }
    }
    if let Some(Value::Array(rels)) = obj.get_mut("relationships") {
        for r in rels.iter_mut().filter_map(Value::as_object_mut) {
            r.remove("id");
        }
    }
    enum_as_rule(obj, "The allowed values (an `enum` in v3.2.0).");
    match obj.get("logicalType").and_then(Value::as_str) {
        Some("vector") => {
            obj.insert("logicalType".into(), json!("array"));
            let dims = obj
                .remove("logicalTypeOptions")
                .and_then(|o| o.get("dimensions").cloned());
            obj.insert("items".into(), json!({ "logicalType": "number" }));
            if let Some(d) = dims {
                obj.insert(
                    "logicalTypeOptions".into(),
                    json!({ "minItems": d, "maxItems": d }),
                );
            }
            lost.push(format!(
                "{here}: the vector's element type and metric (written as an array of numbers)"
            ));
        }
        Some("map") => {
            obj.insert("logicalType".into(), json!("object"));
            obj.remove("map");
            obj.remove("logicalTypeOptions");
            lost.push(format!(
                "{here}: the map's key and value types (written as an object)"
            ));
        }
        _ => {}
    }
    if let Some(items) = obj.get_mut("items") {
        downgrade_property(items, &here, lost);
    }
    if let Some(Value::Array(props)) = obj.get_mut("properties") {
        for c in props {
            downgrade_property(c, &here, lost);
        }
    }
}

/// Below v3.2.0 there is no `enum`; an `invalidValues` rule with `validValues` says the same. Moves
/// a property's `enum` into such a rule described as `description`, replacing one an earlier
/// rewrite left (so that doing it again adds nothing).
pub(crate) fn enum_as_rule(obj: &mut Map<String, Value>, description: &str) {
    let Some(Value::Array(values)) = obj.remove("enum") else {
        return;
    };
    let valid: Vec<Value> = values
        .iter()
        .filter_map(|v| v.get("value").cloned())
        .collect();
    let rule = json!({
        "type": "library",
        "metric": "invalidValues",
        "arguments": { "validValues": valid },
        "mustBe": 0,
        "description": description,
    });
    match obj.entry("quality").or_insert_with(|| json!([])) {
        Value::Array(rules) => {
            rules.retain(|r| r.get("description").and_then(Value::as_str) != Some(description));
            rules.push(rule);
        }
        other => *other = json!([rule]),
    }
}
