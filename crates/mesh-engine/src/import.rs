//! `mesh import`: an ODCS contract written from what exists — a database table (its columns,
//! types, nullability, primary key, unique constraints and comments) or data files (their
//! schema). The contract lints clean and `mesh test` passes on the data it came from.

use datafusion::arrow::datatypes::{DataType, Schema};

use crate::db::{Column, DbError, Kind, Target};
use crate::error::EngineError;
use crate::source::Location;

/// What a contract is imported from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A table of a database (`schema.table` on PostgreSQL).
    Table { target: Target, table: String },
    /// Files: a path or glob, local or on S3, in a format.
    Files { location: Location },
}

/// A property of the imported schema object.
#[derive(Debug, Clone)]
struct Property {
    name: String,
    logical: &'static str,
    physical: String,
    required: bool,
    /// Position in the primary key (1-based).
    key: Option<usize>,
    unique: bool,
    description: Option<String>,
}

/// The ODCS contract (YAML) of `origin`, with `id` (default: the table's or file's name).
pub async fn contract(origin: &Origin, id: Option<&str>) -> Result<String, EngineError> {
    match origin {
        Origin::Table { target, table } => Ok(from_table(target, table, id).await?),
        Origin::Files { location } => from_files(location, id).await,
    }
}

async fn from_table(target: &Target, table: &str, id: Option<&str>) -> Result<String, DbError> {
    let (scoped, name) = target.locate(table);
    let mut conn = scoped.connect().await?;
    let described = async {
        let columns = scoped
            .columns(&mut conn, &name)
            .await?
            .ok_or_else(|| scoped.error(format!("there is no table `{table}`"), true))?;
        let keys = scoped.keys(&mut conn, &name).await?;
        let (comment, comments) = scoped.comments(&mut conn, &name).await?;
        Ok::<_, DbError>((columns, keys, comment, comments))
    }
    .await;
    conn.close().await;
    let (columns, keys, comment, comments) = described?;
    let primary: Vec<String> = keys
        .iter()
        .find(|k| k.primary)
        .map(|k| k.columns.clone())
        .unwrap_or_default();
    let properties: Vec<Property> = columns
        .iter()
        .map(|c: &Column| Property {
            logical: logical(&c.arrow),
            physical: c.db_type.clone(),
            required: c.not_null,
            key: primary.iter().position(|k| *k == c.name).map(|p| p + 1),
            unique: keys
                .iter()
                .any(|k| !k.primary && k.columns.len() == 1 && k.columns[0] == c.name),
            description: comments
                .iter()
                .find(|(n, _)| *n == c.name)
                .map(|(_, d)| d.clone()),
            name: c.name.clone(),
        })
        .collect();
    let mut server = vec![format!("type: {}", target.kind.name())];
    match target.kind {
        Kind::Sqlite => {
            server = vec![
                "type: custom".to_owned(),
                "format: sqlite".to_owned(),
                format!(
                    "path: {}",
                    quote(scoped.path.as_deref().unwrap_or_default())
                ),
            ];
        }
        kind => {
            server.push(format!(
                "host: {}",
                quote(scoped.host.as_deref().unwrap_or("localhost"))
            ));
            server.push(format!(
                "port: {}",
                scoped.port.unwrap_or(kind.default_port())
            ));
            server.push(format!(
                "database: {}",
                quote(scoped.database.as_deref().unwrap_or_default())
            ));
            if kind == Kind::Postgres {
                server.push(format!(
                    "schema: {}",
                    quote(scoped.schema.as_deref().unwrap_or("public"))
                ));
            }
        }
    }
    // Composite keys and unique constraints over several columns: one duplicate rule each.
    let sets: Vec<Vec<String>> = keys
        .iter()
        .filter(|k| k.columns.len() > 1)
        .map(|k| k.columns.clone())
        .collect();
    Ok(render(
        id.unwrap_or(&snake(&name)),
        &name,
        &format!("{} table {table}", target.kind.name()),
        comment.as_deref(),
        &server,
        &properties,
        &sets,
    ))
}

async fn from_files(location: &Location, id: Option<&str>) -> Result<String, EngineError> {
    let ctx = crate::session();
    crate::source::register(&ctx, "imported", location, None).await?;
    let schema: Schema = ctx
        .table("imported")
        .await
        .map_err(EngineError::Query)?
        .schema()
        .as_arrow()
        .clone();
    let file_name = location
        .target
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("data")
        .split('.')
        .next()
        .unwrap_or("data")
        .to_owned();
    let name = snake(&file_name);
    let text_format = location.format.text_read().is_some();
    let properties: Vec<Property> = schema
        .fields()
        .iter()
        .map(|f| Property {
            name: f.name().clone(),
            logical: logical(f.data_type()),
            // Text formats carry no types to compare with: only the logical type is kept.
            physical: if text_format {
                String::new()
            } else {
                crate::exec::arrow_type_name(f.data_type())
            },
            required: !f.is_nullable() && !text_format,
            key: None,
            unique: false,
            description: None,
        })
        .collect();
    let mut server = vec![
        if location.target.contains("://") && !location.target.starts_with("file://") {
            "type: s3".to_owned()
        } else {
            "type: local".to_owned()
        },
        format!("format: {}", location.format.name()),
    ];
    if server[0] == "type: s3" {
        server.push(format!("location: {}", quote(&location.target)));
        if let Some(endpoint) = &location.endpoint {
            server.push(format!("endpointUrl: {}", quote(endpoint)));
        }
    } else {
        server.push(format!("path: {}", quote(&location.target)));
    }
    Ok(render(
        id.unwrap_or(&name),
        &name,
        &format!("{} files at {}", location.format.name(), location.target),
        None,
        &server,
        &properties,
        &[],
    ))
}

/// The contract's YAML.
fn render(
    id: &str,
    table: &str,
    origin: &str,
    comment: Option<&str>,
    server: &[String],
    properties: &[Property],
    sets: &[Vec<String>],
) -> String {
    let name = snake(table);
    let purpose = comment.map_or_else(
        || format!("Imported from the {origin}: say what it holds and who it is for."),
        str::to_owned,
    );
    let mut y = String::new();
    y.push_str(&format!(
        "# Written by `mesh import` from the {origin}. Review the descriptions and add the rules\n\
         # the data must follow, then `mesh lint` and `mesh test` it.\n"
    ));
    y.push_str("apiVersion: v3.1.0\nkind: DataContract\n");
    y.push_str(&format!("id: {}\nname: {}\n", quote(id), quote(&name)));
    y.push_str("version: 0.1.0\nstatus: draft\n");
    y.push_str(&format!("description:\n  purpose: {}\n", quote(&purpose)));
    y.push_str("servers:\n  - server: origin\n");
    for line in server {
        y.push_str(&format!("    {line}\n"));
    }
    y.push_str(&format!("schema:\n  - name: {}\n", quote(&name)));
    if name != table {
        y.push_str(&format!("    physicalName: {}\n", quote(table)));
    }
    y.push_str("    physicalType: table\n");
    if let Some(comment) = comment {
        y.push_str(&format!("    description: {}\n", quote(comment)));
    }
    y.push_str("    properties:\n");
    for p in properties {
        y.push_str(&format!("      - name: {}\n", quote(&p.name)));
        if let Some(d) = &p.description {
            y.push_str(&format!("        description: {}\n", quote(d)));
        }
        y.push_str(&format!("        logicalType: {}\n", p.logical));
        if !p.physical.is_empty() {
            y.push_str(&format!("        physicalType: {}\n", quote(&p.physical)));
        }
        if p.required || p.key.is_some() {
            y.push_str("        required: true\n");
        }
        if let Some(position) = p.key {
            y.push_str("        primaryKey: true\n");
            if properties.iter().filter(|q| q.key.is_some()).count() > 1 {
                y.push_str(&format!("        primaryKeyPosition: {position}\n"));
            }
        }
        if p.unique {
            y.push_str("        unique: true\n");
        }
        // A single-column key or unique constraint: the rule that checks it.
        let single_key =
            p.key.is_some() && properties.iter().filter(|q| q.key.is_some()).count() == 1;
        if single_key || p.unique {
            y.push_str(
                "        quality:\n          - metric: duplicateValues\n            mustBe: 0\n",
            );
        }
    }
    let mut quality: Vec<String> =
        vec!["      - metric: rowCount\n        mustBeGreaterThan: 0\n".to_owned()];
    for set in sets {
        let listed: Vec<String> = set.iter().map(|c| quote(c)).collect();
        quality.push(format!(
            "      - metric: duplicateValues\n        arguments:\n          properties: [{}]\n        mustBe: 0\n",
            listed.join(", ")
        ));
    }
    y.push_str("    quality:\n");
    for q in quality {
        y.push_str(&q);
    }
    y
}

/// ODCS's logical type of an Arrow type.
fn logical(dt: &DataType) -> &'static str {
    match dt {
        DataType::Boolean => "boolean",
        d if d.is_integer() => "integer",
        d if d.is_numeric() => "number",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(..) => "timestamp",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "array",
        DataType::Struct(_) | DataType::Map(..) => "object",
        _ => "string",
    }
}

/// `Orders Table` → `orders_table`: an ODCS name (the table keeps its own as `physicalName`).
fn snake(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.is_empty() {
        "data".to_owned()
    } else {
        out
    }
}

/// A YAML scalar: plain when that reads back as the same string, else double-quoted (a JSON
/// string is a YAML string).
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '(' | ')' | ',')
        })
        && !text.starts_with(['-', '.', '/'])
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && text.parse::<f64>().is_err();
    if plain {
        text.to_owned()
    } else {
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scalars() {
        assert_eq!(snake("Orders"), "orders");
        assert_eq!(snake("OrderLines 2024"), "order_lines_2024");
        assert_eq!(quote("varchar(12)"), "varchar(12)");
        assert_eq!(quote("character varying(12)"), "\"character varying(12)\"");
        assert_eq!(quote("yes"), "\"yes\"");
        assert_eq!(quote("12"), "\"12\"");
        assert_eq!(quote("a: b"), "\"a: b\"");
    }
}
