//! ODCS `servers`: where the data lives, with the connection keys each server type defines.
//!
//! The standard gives every server type its own set of keys (a `postgres` server has `host`, `port`,
//! `database`, `schema`; an `s3` server has `location`, `format`, ...). [`Server`] holds the union of
//! them and [`check_server`] applies the per-type table: required keys present, keys of other types
//! refused (`port` on a `redshift` server is an error, as in the official schema).

use mesh_model_derive::Model;

use crate::de::{Cx, Extra};
use crate::diag::{Code, suggest};
use crate::source::Node;
use crate::string_enum;

use super::{CustomProperty, Role, StableId};

string_enum! {
    /// Every server type ODCS v3.1.0 knows.
    pub enum ServerType ("server type") {
        Api = "api",
        Athena = "athena",
        Azure = "azure",
        BigQuery = "bigquery",
        ClickHouse = "clickhouse",
        Databricks = "databricks",
        Denodo = "denodo",
        Dremio = "dremio",
        DuckDb = "duckdb",
        Glue = "glue",
        CloudSql = "cloudsql",
        Db2 = "db2",
        Hive = "hive",
        Impala = "impala",
        Informix = "informix",
        Kafka = "kafka",
        Kinesis = "kinesis",
        Local = "local",
        MySql = "mysql",
        Oracle = "oracle",
        PostgreSql = "postgresql",
        Postgres = "postgres",
        Presto = "presto",
        PubSub = "pubsub",
        Redshift = "redshift",
        S3 = "s3",
        Sftp = "sftp",
        Snowflake = "snowflake",
        SqlServer = "sqlserver",
        Synapse = "synapse",
        Trino = "trino",
        Vertica = "vertica",
        Zen = "zen",
        Custom = "custom",
    }
}

/// The keys a server type allows, and which of them it requires.
#[derive(Debug, Clone, Copy)]
pub struct ServerKeys {
    pub allowed: &'static [&'static str],
    pub required: &'static [&'static str],
}

impl ServerType {
    /// The type-specific keys of this server type (ODCS v3.1.0 `ServerSource`).
    pub fn keys(self) -> ServerKeys {
        const HOST_PORT_DB: &[&str] = &["host", "port", "database"];
        const HOST_PORT_DB_SCHEMA: &[&str] = &["host", "port", "database", "schema"];
        let (allowed, required): (&[&str], &[&str]) = match self {
            ServerType::Api => (&["location"], &["location"]),
            ServerType::Athena => (
                &["stagingDir", "schema", "catalog", "regionName"],
                &["stagingDir", "schema"],
            ),
            ServerType::Azure => (
                &["location", "format", "delimiter"],
                &["location", "format"],
            ),
            ServerType::BigQuery => (&["project", "dataset"], &["project", "dataset"]),
            ServerType::ClickHouse | ServerType::MySql | ServerType::Synapse => {
                (HOST_PORT_DB, HOST_PORT_DB)
            }
            ServerType::Databricks => (&["host", "catalog", "schema"], &["catalog", "schema"]),
            ServerType::Denodo => (HOST_PORT_DB, &["host", "port"]),
            ServerType::Dremio => (&["host", "port", "schema"], &["host", "port"]),
            ServerType::DuckDb => (&["database", "schema"], &["database"]),
            ServerType::Glue => (
                &["account", "database", "location", "format"],
                &["account", "database"],
            ),
            ServerType::CloudSql
            | ServerType::PostgreSql
            | ServerType::Postgres
            | ServerType::Vertica => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB_SCHEMA),
            ServerType::Db2 => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB),
            ServerType::Hive | ServerType::Impala | ServerType::Informix | ServerType::Zen => {
                (HOST_PORT_DB, &["host", "database"])
            }
            ServerType::Kafka => (&["host", "format"], &["host"]),
            ServerType::Kinesis => (&["region", "format"], &[]),
            ServerType::Local => (&["path", "format"], &["path", "format"]),
            ServerType::Oracle => (
                &["host", "port", "serviceName"],
                &["host", "port", "serviceName"],
            ),
            ServerType::Presto => (&["host", "catalog", "schema"], &["host"]),
            ServerType::PubSub => (&["project"], &["project"]),
            ServerType::Redshift => (
                &["host", "database", "schema", "region", "account"],
                &["database", "schema"],
            ),
            ServerType::S3 => (
                &["location", "endpointUrl", "format", "delimiter"],
                &["location"],
            ),
            ServerType::Sftp => (&["location", "format", "delimiter"], &["location"]),
            ServerType::Snowflake => (
                &["host", "port", "account", "database", "schema", "warehouse"],
                &["account", "database", "schema"],
            ),
            ServerType::SqlServer => (HOST_PORT_DB_SCHEMA, &["host", "database", "schema"]),
            ServerType::Trino => (
                &["host", "port", "catalog", "schema"],
                &["host", "port", "catalog", "schema"],
            ),
            ServerType::Custom => (CONNECTION_KEYS, &[]),
        };
        ServerKeys { allowed, required }
    }
}

/// Every type-specific key of any server type (the `custom` type allows them all).
const CONNECTION_KEYS: &[&str] = &[
    "account",
    "catalog",
    "database",
    "dataset",
    "delimiter",
    "endpointUrl",
    "format",
    "host",
    "location",
    "path",
    "port",
    "project",
    "region",
    "regionName",
    "schema",
    "serviceName",
    "stagingDir",
    "warehouse",
    "stream",
];

/// One server (environment) where the contract's data is served.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(what = "server", check = check_server)]
pub struct Server {
    pub id: Option<StableId>,
    pub server: String,
    #[model(rename = "type")]
    pub server_type: ServerType,
    pub description: Option<String>,
    pub environment: Option<String>,
    pub roles: Vec<Role>,
    pub custom_properties: Vec<CustomProperty>,
    pub account: Option<String>,
    pub catalog: Option<String>,
    pub database: Option<String>,
    pub dataset: Option<String>,
    pub delimiter: Option<String>,
    pub endpoint_url: Option<String>,
    pub format: Option<String>,
    pub host: Option<String>,
    pub location: Option<String>,
    pub path: Option<String>,
    pub port: Option<i64>,
    pub project: Option<String>,
    pub region: Option<String>,
    pub region_name: Option<String>,
    pub schema: Option<String>,
    pub service_name: Option<String>,
    pub staging_dir: Option<String>,
    pub warehouse: Option<String>,
    pub stream: Option<String>,
    #[model(extra)]
    pub extra: Extra,
}

fn check_server(node: &Node, cx: &mut Cx) {
    // A missing or invalid type is reported by the typed read; no type-specific rule applies then.
    let Some(ty) = node
        .get("type")
        .and_then(Node::as_str)
        .and_then(ServerType::parse)
    else {
        return;
    };
    let name = node
        .get("server")
        .and_then(Node::as_str)
        .unwrap_or_default();
    let keys = ty.keys();
    for key in CONNECTION_KEYS {
        let Some(entry) = node.entry(key) else {
            continue;
        };
        if !keys.allowed.contains(key) {
            let hint = suggest(key, keys.allowed)
                .filter(|h| h.starts_with("did"))
                .unwrap_or_else(|| {
                    let list: Vec<String> = keys.allowed.iter().map(|k| format!("`{k}`")).collect();
                    if list.is_empty() {
                        format!(
                            "{ty} servers take no connection keys; use `type: custom` for others"
                        )
                    } else {
                        format!(
                            "{ty} servers take {}; use `type: custom` for others",
                            list.join(", ")
                        )
                    }
                });
            cx.at(key, |cx| {
                cx.error(
                    Code::NotAllowed,
                    entry.key.span,
                    format!("`{key}` is not a key of {ty} servers"),
                )
                .hint = Some(hint);
            });
        }
    }
    for key in keys.required {
        if node.entry(key).is_none() {
            cx.error(
                Code::Required,
                node.span,
                format!("server `{name}` of type {ty} is missing required key `{key}`"),
            );
        }
    }
    if ty == ServerType::Sftp
        && let Some(value) = node.get("location")
        && value.as_str().is_some_and(|l| !l.starts_with("sftp://"))
    {
        cx.at("location", |cx| {
            cx.error(
                Code::Pattern,
                value.span,
                "an sftp server's location must start with `sftp://`",
            );
        });
    }
}
