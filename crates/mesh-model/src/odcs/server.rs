//! ODCS `servers`: where the data lives, with the connection keys each server type defines.
//!
//! The standard gives every server type its own set of keys (a `postgres` server has `host`, `port`,
//! `database`, `schema`; an `s3` server has `location`, `format`, ...). [`Server`] holds the union of
//! them and [`check_server`] applies the per-type table: required keys present, keys of other types
//! refused (`port` on a `redshift` server is an error, as in the official schema).

use mesh_model_derive::Model;

use crate::de::{Cx, Edition, Extra, FromNode};
use crate::diag::{Code, suggest};
use crate::source::{Node, Value};
use crate::string_enum;

use super::{CustomProperty, Role, StableId};

string_enum! {
    /// Every server type ODCS v3.2.0 knows (those [`ServerType::is_v3_2`] names are new in it).
    pub enum ServerType ("server type") {
        Api = "api",
        Athena = "athena",
        Azure = "azure",
        BigQuery = "bigquery",
        Btrieve = "btrieve",
        ClickHouse = "clickhouse",
        Databricks = "databricks",
        Denodo = "denodo",
        Dremio = "dremio",
        DuckDb = "duckdb",
        Exasol = "exasol",
        FastObjects = "fastobjects",
        Glue = "glue",
        Hana = "hana",
        CloudSql = "cloudsql",
        Db2 = "db2",
        Hive = "hive",
        Iceberg = "iceberg",
        Impala = "impala",
        Informix = "informix",
        Ingres = "ingres",
        Kafka = "kafka",
        Kinesis = "kinesis",
        Local = "local",
        MySql = "mysql",
        Oracle = "oracle",
        Poet = "poet",
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
        Teradata = "teradata",
        Trino = "trino",
        Vectorwise = "vectorwise",
        Versant = "versant",
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
    /// Server types new in ODCS v3.2.0.
    pub fn is_v3_2(self) -> bool {
        matches!(
            self,
            ServerType::Btrieve
                | ServerType::Exasol
                | ServerType::FastObjects
                | ServerType::Hana
                | ServerType::Iceberg
                | ServerType::Ingres
                | ServerType::Poet
                | ServerType::Teradata
                | ServerType::Vectorwise
                | ServerType::Versant
        )
    }

    /// The type-specific keys of this server type (the `ServerSource` of `edition`'s schema).
    pub fn keys(self, edition: Edition) -> ServerKeys {
        const HOST_PORT_DB: &[&str] = &["host", "port", "database"];
        const HOST_PORT_DB_SCHEMA: &[&str] = &["host", "port", "database", "schema"];
        let v3_2 = edition >= Edition::V3_2;
        // v3.2.0 adds `encoding` to the file and stream servers.
        let with_encoding = |old: &'static [&'static str], new: &'static [&'static str]| {
            if v3_2 { new } else { old }
        };
        let (allowed, required): (&[&str], &[&str]) = match self {
            ServerType::Api => (&["location"], &["location"]),
            ServerType::Athena if v3_2 => (
                &["stagingDir", "schema", "catalog", "regionName", "workgroup"],
                &["schema"],
            ),
            ServerType::Athena => (
                &["stagingDir", "schema", "catalog", "regionName"],
                &["stagingDir", "schema"],
            ),
            ServerType::Azure => (
                with_encoding(
                    &["location", "format", "delimiter"],
                    &["location", "format", "encoding", "delimiter"],
                ),
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
                with_encoding(
                    &["account", "database", "location", "format"],
                    &["account", "database", "location", "format", "encoding"],
                ),
                &["account", "database"],
            ),
            ServerType::CloudSql
            | ServerType::PostgreSql
            | ServerType::Postgres
            | ServerType::Vertica => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB_SCHEMA),
            ServerType::Db2 => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB),
            ServerType::Hive
            | ServerType::Impala
            | ServerType::Informix
            | ServerType::Zen
            | ServerType::Btrieve => (HOST_PORT_DB, &["host", "database"]),
            ServerType::Exasol => (&["host", "port", "schema"], &["host"]),
            ServerType::FastObjects | ServerType::Poet | ServerType::Versant => {
                (HOST_PORT_DB, &["database"])
            }
            ServerType::Hana => (HOST_PORT_DB_SCHEMA, &["host"]),
            ServerType::Iceberg => (
                &["catalog", "catalogUrl", "namespace", "warehouse"],
                &["catalog", "catalogUrl"],
            ),
            ServerType::Ingres | ServerType::Vectorwise => (HOST_PORT_DB, &["database", "host"]),
            ServerType::Teradata => (HOST_PORT_DB, &["host"]),
            ServerType::Kafka => (
                with_encoding(&["host", "format"], &["host", "format", "encoding"]),
                &["host"],
            ),
            ServerType::Kinesis => (
                with_encoding(&["region", "format"], &["region", "format", "encoding"]),
                &[],
            ),
            ServerType::Local => (
                with_encoding(&["path", "format"], &["path", "format", "encoding"]),
                &["path", "format"],
            ),
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
                with_encoding(
                    &["location", "endpointUrl", "format", "delimiter"],
                    &["location", "endpointUrl", "format", "encoding", "delimiter"],
                ),
                &["location"],
            ),
            ServerType::Sftp => (
                with_encoding(
                    &["location", "format", "delimiter"],
                    &["location", "format", "encoding", "delimiter"],
                ),
                &["location"],
            ),
            ServerType::Snowflake => (
                &["host", "port", "account", "database", "schema", "warehouse"],
                &["account", "database", "schema"],
            ),
            ServerType::SqlServer => (HOST_PORT_DB_SCHEMA, &["host", "database", "schema"]),
            ServerType::Trino => (
                &["host", "port", "catalog", "schema"],
                &["host", "port", "catalog", "schema"],
            ),
            ServerType::Custom => (with_encoding(CUSTOM_KEYS_3_1, CUSTOM_KEYS_3_2), &[]),
        };
        ServerKeys { allowed, required }
    }
}

/// The keys of a `custom` server in v3.1.0: every type-specific key of that version.
const CUSTOM_KEYS_3_1: &[&str] = &[
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

/// The keys of a `custom` server in v3.2.0 (which adds only `encoding` of its new keys).
const CUSTOM_KEYS_3_2: &[&str] = &[
    "account",
    "catalog",
    "database",
    "dataset",
    "delimiter",
    "endpointUrl",
    "format",
    "encoding",
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

/// Every type-specific key of any server type of any version.
const CONNECTION_KEYS: &[&str] = &[
    "account",
    "catalog",
    "catalogUrl",
    "database",
    "dataset",
    "delimiter",
    "encoding",
    "endpointUrl",
    "format",
    "host",
    "location",
    "namespace",
    "path",
    "port",
    "project",
    "region",
    "regionName",
    "schema",
    "serviceName",
    "stagingDir",
    "warehouse",
    "workgroup",
    "stream",
];

/// A network port: an integer, or (v3.2.0) a string such as `${DB_PORT}` resolved at run time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Port {
    Number(i64),
    Text(String),
}

impl Port {
    /// The port number: an integer as is; a string as a number, or `${VAR}` read from `env`.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<i64, String> {
        match self {
            Port::Number(n) => Ok(*n),
            Port::Text(text) => {
                let value = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                    Some(var) => env(var).ok_or_else(|| {
                        format!(
                            "the port is `{text}` but the environment variable {var} is not set"
                        )
                    })?,
                    None => text.clone(),
                };
                value
                    .trim()
                    .parse()
                    .map_err(|_| format!("the port `{value}` is not a number"))
            }
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Text(t) => f.write_str(t),
        }
    }
}

impl FromNode for Port {
    const EXPECTED: &'static str = "an integer";

    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::String(text) if cx.edition() >= Edition::V3_2 => Some(Port::Text(text.clone())),
            Value::String(text) => {
                cx.type_error(node, "an integer");
                // `"5432"` keeps the usual hint (remove the quotes); `${DB_PORT}` gets this one.
                if let Some(d) = cx
                    .last_mut()
                    .filter(|_| text.trim().parse::<i64>().is_err())
                {
                    d.hint = Some(
                        "a port may be a string (e.g. `${DB_PORT}`) only in v3.2.0 contracts"
                            .to_owned(),
                    );
                }
                None
            }
            _ if cx.edition() >= Edition::V3_2 => match i64::from_node(node, &mut Cx::new()) {
                Some(n) => Some(Port::Number(n)),
                None => {
                    cx.type_error(node, "an integer or a string");
                    None
                }
            },
            _ => i64::from_node(node, cx).map(Port::Number),
        }
    }
}

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
    pub port: Option<Port>,
    pub project: Option<String>,
    pub region: Option<String>,
    pub region_name: Option<String>,
    pub schema: Option<String>,
    pub service_name: Option<String>,
    pub staging_dir: Option<String>,
    pub warehouse: Option<String>,
    pub stream: Option<String>,
    pub encoding: Option<String>,
    pub workgroup: Option<String>,
    pub catalog_url: Option<String>,
    pub namespace: Option<String>,
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
    if ty.is_v3_2()
        && let Some(t) = node.get("type")
        && !cx.at("type", |cx| {
            cx.since_3_2(t.span, &format!("the server type `{ty}`"))
        })
    {
        return;
    }
    let keys = ty.keys(cx.edition());
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
