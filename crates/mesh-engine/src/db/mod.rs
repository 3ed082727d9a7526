//! Databases where data lives: PostgreSQL, MySQL/MariaDB and SQLite as contract servers.
//!
//! A contract's server entry says where (`type: postgres` or `postgresql` with `host`, `port`,
//! `database`, `schema`; `type: mysql` with `host`, `port`, `database`; `type: custom` with
//! `format: sqlite` and `path`). Credentials never come from the contract: they are read from the
//! environment the way datacontract-cli users already set them (`DATACONTRACT_POSTGRES_USERNAME`,
//! `DATACONTRACT_POSTGRES_PASSWORD`, `DATACONTRACT_MYSQL_USERNAME`, `DATACONTRACT_MYSQL_PASSWORD`),
//! PostgreSQL's own `PG*` variables included. Nothing here ever formats a password.
//!
//! Checks run in the database ([`checks`]): the data never leaves it, only aggregates do.

pub mod checks;
pub mod dialect;
mod duplicates;
pub mod source;
mod split;

use std::path::Path;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use mesh_model::odcs::{Server, ServerType};
use sqlx::{Connection as _, Row as _};

pub use dialect::Kind;

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A database server of a contract, with the credentials the environment gives it.
#[derive(Clone)]
pub struct Target {
    pub kind: Kind,
    /// The server entry's name (`server:`).
    pub server: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    /// PostgreSQL: the schema of the tables (default `public`).
    pub schema: Option<String>,
    /// SQLite: the database file.
    pub path: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// `sslmode` (PostgreSQL) or `sslMode` (MySQL) from the server's custom properties.
    ssl_mode: Option<String>,
    ssl_root_cert: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("server", &self.server)
            .field("where", &self.describe())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Why a database could not be used: the message names the server and what to fix, never a
/// password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("server `{server}` ({place}): {reason}")]
pub struct DbError {
    pub server: String,
    /// `postgres at db.example.com:5432/shop`, `sqlite at data/app.db`.
    pub place: String,
    pub reason: String,
    /// A connection problem (exit 2), not a failed check.
    pub connection: bool,
}

impl Target {
    /// The database a server entry describes, or `None` when it is not a database server.
    /// `base` anchors a relative SQLite path (the contract's folder).
    pub fn from_server(server: &Server, base: &Path) -> Result<Option<Target>, DbError> {
        let custom = |name: &str| {
            server
                .custom_properties
                .iter()
                .find(|p| p.property.eq_ignore_ascii_case(name))
                .and_then(|p| match &p.value {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                })
        };
        let kind = match server.server_type {
            ServerType::Postgres | ServerType::PostgreSql => Kind::Postgres,
            ServerType::MySql => Kind::MySql,
            ServerType::Custom
                if server
                    .format
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case("sqlite")) =>
            {
                Kind::Sqlite
            }
            _ => return Ok(None),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (username, password) = match kind {
            Kind::Postgres => (
                env("DATACONTRACT_POSTGRES_USERNAME").or_else(|| env("MESH_POSTGRES_USERNAME")),
                env("DATACONTRACT_POSTGRES_PASSWORD").or_else(|| env("MESH_POSTGRES_PASSWORD")),
            ),
            Kind::MySql => (
                env("DATACONTRACT_MYSQL_USERNAME").or_else(|| env("MESH_MYSQL_USERNAME")),
                env("DATACONTRACT_MYSQL_PASSWORD").or_else(|| env("MESH_MYSQL_PASSWORD")),
            ),
            Kind::Sqlite => (None, None),
        };
        let port = match &server.port {
            None => None,
            Some(p) => {
                let refused = |reason: String| DbError {
                    server: server.server.clone(),
                    place: kind.name().to_owned(),
                    reason,
                    connection: true,
                };
                let n = p.resolve(|var| std::env::var(var).ok()).map_err(refused)?;
                Some(
                    u16::try_from(n)
                        .map_err(|_| refused(format!("port {p} is not a TCP port (1-65535)")))?,
                )
            }
        };
        let path = match kind {
            Kind::Sqlite => {
                let path = server
                    .path
                    .as_deref()
                    .or(server.database.as_deref())
                    .ok_or_else(|| DbError {
                        server: server.server.clone(),
                        place: "sqlite".to_owned(),
                        reason: "a sqlite server needs `path`: the database file".to_owned(),
                        connection: true,
                    })?;
                let p = Path::new(path);
                Some(if p.is_absolute() || p.exists() {
                    path.to_owned()
                } else {
                    base.join(p).display().to_string()
                })
            }
            _ => None,
        };
        let target = Target {
            kind,
            server: server.server.clone(),
            host: server.host.clone(),
            port,
            database: server.database.clone(),
            schema: server.schema.clone(),
            path,
            username,
            password,
            ssl_mode: custom("sslmode").or_else(|| custom("sslMode")),
            ssl_root_cert: custom("sslrootcert").or_else(|| custom("sslRootCert")),
        };
        if kind != Kind::Sqlite && target.database.is_none() {
            return Err(target.error("the server entry has no `database`", true));
        }
        Ok(Some(target))
    }

    /// A database named by a URL (a pipeline source under a registered location):
    /// `postgres://host:port/database`, `mysql://host:port/database`, `sqlite:///path/file.db`.
    /// Credentials come from `MESH_SOURCE_<NAME>_USERNAME` / `_PASSWORD` (the source's name in
    /// upper case, `-` as `_`), else the server type's variables; a password in the URL is
    /// refused (it would be stored in the catalog).
    pub fn from_url(url: &str, source: &str) -> Result<Target, DbError> {
        let bad = |reason: String| DbError {
            server: source.to_owned(),
            place: url.split('@').next_back().unwrap_or(url).to_owned(),
            reason,
            connection: true,
        };
        let (scheme, _) = url
            .split_once("://")
            .ok_or_else(|| bad("not a database URL".to_owned()))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Kind::Postgres,
            "mysql" | "mariadb" => Kind::MySql,
            "sqlite" => Kind::Sqlite,
            other => return Err(bad(format!("`{other}` is not a database this reads"))),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let prefix = format!(
            "MESH_SOURCE_{}",
            source.to_ascii_uppercase().replace(['-', '.'], "_")
        );
        if kind == Kind::Sqlite {
            let path = url.split_once("://").map(|(_, p)| p).unwrap_or_default();
            return Ok(Target {
                kind,
                server: source.to_owned(),
                host: None,
                port: None,
                database: None,
                schema: None,
                path: Some(path.to_owned()),
                username: None,
                password: None,
                ssl_mode: None,
                ssl_root_cert: None,
            });
        }
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
        if parsed.password().is_some() {
            return Err(bad(format!(
                "a password does not belong in a source URL; set {prefix}_PASSWORD"
            )));
        }
        let database = parsed.path().trim_start_matches('/').to_owned();
        if database.is_empty() || database.contains('/') {
            return Err(bad("the URL names no database (…/DATABASE)".to_owned()));
        }
        let (user_var, password_var) = match kind {
            Kind::Postgres => (
                "DATACONTRACT_POSTGRES_USERNAME",
                "DATACONTRACT_POSTGRES_PASSWORD",
            ),
            _ => ("DATACONTRACT_MYSQL_USERNAME", "DATACONTRACT_MYSQL_PASSWORD"),
        };
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.into_owned())
        };
        Ok(Target {
            kind,
            server: source.to_owned(),
            host: parsed.host_str().map(str::to_owned),
            port: parsed.port(),
            database: Some(database),
            schema: None,
            path: None,
            username: env(&format!("{prefix}_USERNAME"))
                .or_else(|| (!parsed.username().is_empty()).then(|| parsed.username().to_owned()))
                .or_else(|| env(user_var)),
            password: env(&format!("{prefix}_PASSWORD")).or_else(|| env(password_var)),
            ssl_mode: query("sslmode").or_else(|| query("ssl-mode")),
            ssl_root_cert: query("sslrootcert"),
        })
    }

    /// A table name as a user writes it: `schema.table` on PostgreSQL (the same server, looked
    /// up in that schema), else the name itself.
    pub fn locate(&self, name: &str) -> (Target, String) {
        match (self.kind, name.split_once('.')) {
            (Kind::Postgres, Some((schema, table))) => (
                Target {
                    schema: Some(schema.to_owned()),
                    ..self.clone()
                },
                table.to_owned(),
            ),
            _ => (self.clone(), name.to_owned()),
        }
    }

    /// Where the server is, for messages: no user, no password.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Sqlite => format!("sqlite at {}", self.path.as_deref().unwrap_or("?")),
            kind => format!(
                "{} at {}:{}/{}",
                kind.name(),
                self.host.as_deref().unwrap_or("localhost"),
                self.port.unwrap_or(kind.default_port()),
                self.database.as_deref().unwrap_or("")
            ),
        }
    }

    pub(crate) fn error(&self, reason: impl Into<String>, connection: bool) -> DbError {
        DbError {
            server: self.server.clone(),
            place: self.describe(),
            reason: reason.into(),
            connection,
        }
    }

    /// The quoted name of a table of this server: `"public"."Orders"`, `` `shop`.`orders` ``.
    pub fn table(&self, physical_name: &str) -> String {
        let q = |s: &str| self.kind.quote(s);
        match (self.kind, &self.schema) {
            (Kind::Postgres, Some(schema)) => format!("{}.{}", q(schema), q(physical_name)),
            (Kind::Postgres, None) => format!("{}.{}", q("public"), q(physical_name)),
            _ => q(physical_name),
        }
    }

    /// The schema a table is looked up in (PostgreSQL: the entry's, else `public`; MySQL: the
    /// database).
    fn namespace(&self) -> String {
        match self.kind {
            Kind::Postgres => self.schema.clone().unwrap_or_else(|| "public".to_owned()),
            Kind::MySql => self.database.clone().unwrap_or_default(),
            Kind::Sqlite => "main".to_owned(),
        }
    }

    /// Opens one connection: UTC session time zone, read-only where the database has it.
    /// The same server with this login instead of the one the environment gave (for callers
    /// that hold credentials themselves).
    pub fn with_login(mut self, username: &str, password: Option<&str>) -> Target {
        self.username = Some(username.to_owned());
        self.password = password.map(str::to_owned);
        self
    }

    pub async fn connect(&self) -> Result<Conn, DbError> {
        self.connect_with(&[]).await
    }

    /// A connection with session settings of its own on PostgreSQL (`work_mem`...), for the
    /// few statements that need them; other databases ignore them.
    pub async fn connect_with(&self, settings: &[(&str, &str)]) -> Result<Conn, DbError> {
        let connecting = async {
            match self.kind {
                Kind::Postgres => {
                    use sqlx::postgres::{PgConnectOptions, PgSslMode};
                    let timeout = format!("{}s", statement_timeout());
                    // `PgConnectOptions::new` reads PGHOST, PGUSER, PGPASSWORD, PGSSLMODE...:
                    // the entry and the DATACONTRACT_* variables win over them.
                    let mut options = PgConnectOptions::new().application_name("mesh").options([
                        ("TimeZone", "UTC"),
                        ("DateStyle", "ISO"),
                        ("default_transaction_read_only", "on"),
                        // `'\''` is an escape only when this is off.
                        ("standard_conforming_strings", "on"),
                        ("statement_timeout", timeout.as_str()),
                    ]);
                    if !settings.is_empty() {
                        options = options.options(settings.iter().copied());
                    }
                    if let Some(host) = &self.host {
                        options = options.host(host);
                    }
                    if let Some(port) = self.port {
                        options = options.port(port);
                    }
                    if let Some(db) = &self.database {
                        options = options.database(db);
                    }
                    if let Some(user) = &self.username {
                        options = options.username(user);
                    }
                    if let Some(password) = &self.password {
                        options = options.password(password);
                    }
                    if let Some(mode) = &self.ssl_mode {
                        let mode = mode.parse::<PgSslMode>().map_err(|_| {
                            self.error(
                                format!(
                                    "sslmode `{mode}` is not one of disable, allow, prefer, \
                                     require, verify-ca, verify-full"
                                ),
                                true,
                            )
                        })?;
                        options = options.ssl_mode(mode);
                    }
                    if let Some(cert) = &self.ssl_root_cert {
                        options = options.ssl_root_cert(cert);
                    }
                    sqlx::PgConnection::connect_with(&options)
                        .await
                        .map(Conn::Postgres)
                        .map_err(|e| self.connect_error(&e))
                }
                Kind::MySql => {
                    use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
                    let mut options = MySqlConnectOptions::new().timezone(Some("+00:00".into()));
                    if let Some(host) = &self.host {
                        options = options.host(host);
                    }
                    if let Some(port) = self.port {
                        options = options.port(port);
                    }
                    if let Some(db) = &self.database {
                        options = options.database(db);
                    }
                    if let Some(user) = &self.username {
                        options = options.username(user);
                    }
                    if let Some(password) = &self.password {
                        options = options.password(password);
                    }
                    if let Some(mode) = &self.ssl_mode {
                        let mode = mode.parse::<MySqlSslMode>().map_err(|_| {
                            self.error(
                                format!(
                                    "sslMode `{mode}` is not one of DISABLED, PREFERRED, \
                                     REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                                ),
                                true,
                            )
                        })?;
                        options = options.ssl_mode(mode);
                    }
                    if let Some(cert) = &self.ssl_root_cert {
                        options = options.ssl_ca(cert);
                    }
                    let mut conn = sqlx::MySqlConnection::connect_with(&options)
                        .await
                        .map_err(|e| self.connect_error(&e))?;
                    // Every check reads; none may write, whatever a `sql` rule calls.
                    sqlx::query("SET SESSION TRANSACTION READ ONLY")
                        .execute(&mut conn)
                        .await
                        .map_err(|e| self.connect_error(&e))?;
                    // A statement may run this long: MariaDB's setting, else MySQL's.
                    let seconds = statement_timeout();
                    if sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SET SESSION max_statement_time = {seconds}"
                    )))
                    .execute(&mut conn)
                    .await
                    .is_err()
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SET SESSION max_execution_time = {}",
                            seconds * 1000
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                    Ok(Conn::MySql(conn))
                }
                Kind::Sqlite => {
                    use sqlx::sqlite::SqliteConnectOptions;
                    let path = self.path.clone().unwrap_or_default();
                    if !Path::new(&path).is_file() {
                        return Err(self.error(
                            "no such database file (a relative path is read from the \
                             contract's folder)",
                            true,
                        ));
                    }
                    let options = SqliteConnectOptions::new()
                        .filename(&path)
                        .read_only(true)
                        .create_if_missing(false)
                        .with_regexp();
                    sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .map(Conn::Sqlite)
                        .map_err(|e| self.connect_error(&e))
                }
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(result) => result,
            Err(_) => Err(self.error(
                format!(
                    "no answer within {} s: is the host reachable and the port open?",
                    CONNECT_TIMEOUT.as_secs()
                ),
                true,
            )),
        }
    }

    /// A connection failure in words a user acts on.
    fn connect_error(&self, e: &sqlx::Error) -> DbError {
        let code = error_code(e);
        let reason = match (self.kind, code.as_deref()) {
            (Kind::Postgres, Some("28P01" | "28000")) | (Kind::MySql, Some("1045")) => {
                let vars = match self.kind {
                    Kind::Postgres => "DATACONTRACT_POSTGRES_USERNAME / _PASSWORD",
                    _ => "DATACONTRACT_MYSQL_USERNAME / _PASSWORD",
                };
                format!(
                    "the database refused the login of user `{}`: check {vars}",
                    self.username.as_deref().unwrap_or("(default)")
                )
            }
            (Kind::Postgres, Some("3D000")) | (Kind::MySql, Some("1049")) => format!(
                "there is no database `{}` (or this user may not use it)",
                self.database.as_deref().unwrap_or("")
            ),
            _ => match e {
                sqlx::Error::Io(io) => format!(
                    "cannot reach the server ({io}): is the host right and the database running?"
                ),
                sqlx::Error::Tls(tls) => format!("the TLS handshake failed: {tls}"),
                sqlx::Error::Database(d) => d.message().to_owned(),
                other => other.to_string(),
            },
        };
        self.error(scrub(&reason, self.password.as_deref()), true)
    }

    /// The columns of a table, in order, with the database's own type names; `None` when the
    /// table does not exist.
    pub async fn columns(
        &self,
        conn: &mut Conn,
        table: &str,
    ) -> Result<Option<Vec<Column>>, DbError> {
        let namespace = self.namespace();
        let rows: Vec<(String, String, bool)> = match conn {
            Conn::Postgres(c) => sqlx::query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .bind(&namespace)
            .bind(table)
            .fetch_all(c)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect()
            }),
            Conn::MySql(c) => sqlx::query(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
                 CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            )
            .bind(&namespace)
            .bind(table)
            .fetch_all(c)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let nullable: String = r.try_get(2)?;
                        Ok((r.try_get(0)?, r.try_get(1)?, nullable == "NO"))
                    })
                    .collect()
            }),
            Conn::Sqlite(c) => sqlx::query(
                "SELECT name, type, \"notnull\" OR pk > 0 AND type = 'INTEGER' \
                 FROM pragma_table_info(?1) ORDER BY cid",
            )
            .bind(table)
            .fetch_all(c)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let not_null: i64 = r.try_get(2)?;
                        Ok((r.try_get(0)?, r.try_get(1)?, not_null != 0))
                    })
                    .collect()
            }),
        }
        .map_err(|e| self.query_error(&e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            rows.into_iter()
                .map(|(name, db_type, not_null)| Column {
                    arrow: arrow_type(self.kind, &db_type),
                    name,
                    db_type,
                    not_null,
                })
                .collect(),
        ))
    }

    /// The primary key and unique constraints of a table, each with its columns in order.
    pub async fn keys(&self, conn: &mut Conn, table: &str) -> Result<Vec<Key>, DbError> {
        let kind = self.kind;
        let (ns, t) = (kind.string(&self.namespace()), kind.string(table));
        let sql = match kind {
            Kind::Postgres => format!(
                "SELECT c.conname::text, c.contype::text, a.attname::text \
                 FROM pg_catalog.pg_constraint c \
                 JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
                 CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.attnum \
                 WHERE n.nspname = {ns} AND r.relname = {t} AND c.contype IN ('p', 'u') \
                 ORDER BY c.conname, k.ord"
            ),
            Kind::MySql => format!(
                "SELECT CAST(k.CONSTRAINT_NAME AS CHAR), \
                 CAST(CASE c.CONSTRAINT_TYPE WHEN 'PRIMARY KEY' THEN 'p' ELSE 'u' END AS CHAR), \
                 CAST(k.COLUMN_NAME AS CHAR) \
                 FROM information_schema.KEY_COLUMN_USAGE k \
                 JOIN information_schema.TABLE_CONSTRAINTS c \
                 ON c.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME \
                 AND c.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                 WHERE k.TABLE_SCHEMA = {ns} AND k.TABLE_NAME = {t} \
                 AND c.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE') \
                 ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
            ),
            Kind::Sqlite => format!(
                "SELECT 'primary', 'p', name FROM pragma_table_info({t}) WHERE pk > 0 \
                 UNION ALL \
                 SELECT il.name, 'u', ii.name FROM pragma_index_list({t}) il, \
                 pragma_index_info(il.name) ii WHERE il.\"unique\" = 1 AND il.origin = 'u'"
            ),
        };
        let rows = conn
            .texts(&sql, usize::MAX)
            .await
            .map_err(|e| self.query_error(&e))?;
        let mut keys: Vec<(String, Key)> = Vec::new();
        for row in rows {
            let [Some(name), Some(kind), Some(column)] =
                <[Option<String>; 3]>::try_from(row).unwrap_or([None, None, None])
            else {
                continue;
            };
            match keys.iter_mut().find(|(n, _)| *n == name) {
                Some((_, key)) => key.columns.push(column),
                None => keys.push((
                    name,
                    Key {
                        primary: kind == "p",
                        columns: vec![column],
                    },
                )),
            }
        }
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    }

    /// The table's comment and its columns' comments (none on SQLite).
    pub async fn comments(
        &self,
        conn: &mut Conn,
        table: &str,
    ) -> Result<(Option<String>, Vec<(String, String)>), DbError> {
        let kind = self.kind;
        let (ns, t) = (kind.string(&self.namespace()), kind.string(table));
        let (table_sql, columns_sql) = match kind {
            Kind::Postgres => (
                format!(
                    "SELECT obj_description(c.oid, 'pg_class') FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = {ns} AND c.relname = {t}"
                ),
                format!(
                    "SELECT a.attname::text, col_description(c.oid, a.attnum) \
                     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = {ns} AND c.relname = {t} AND a.attnum > 0 \
                     AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NOT NULL"
                ),
            ),
            Kind::MySql => (
                format!(
                    "SELECT CAST(TABLE_COMMENT AS CHAR) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = {ns} AND TABLE_NAME = {t}"
                ),
                format!(
                    "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_COMMENT AS CHAR) \
                     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {ns} \
                     AND TABLE_NAME = {t} AND COLUMN_COMMENT <> ''"
                ),
            ),
            Kind::Sqlite => return Ok((None, Vec::new())),
        };
        let error = |e: sqlx::Error| self.query_error(&e);
        let comment = conn
            .texts(&table_sql, 1)
            .await
            .map_err(error)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .filter(|c| !c.trim().is_empty());
        let columns = conn
            .texts(&columns_sql, usize::MAX)
            .await
            .map_err(error)?
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Some(name), Some(comment)] => Some((name.clone(), comment.clone())),
                _ => None,
            })
            .collect();
        Ok((comment, columns))
    }

    /// A failed query, in the database's words (with its SQLSTATE), never a password.
    pub(crate) fn query_error(&self, e: &sqlx::Error) -> DbError {
        let reason = match e {
            sqlx::Error::Database(d) => match error_code(e) {
                Some(code) if code == "42501" || code == "1142" || code == "1044" => format!(
                    "permission denied ({}): grant this user SELECT on the table",
                    d.message()
                ),
                Some(code) => format!(
                    "{} ({} {code})",
                    d.message(),
                    if self.kind == Kind::MySql {
                        "error"
                    } else {
                        "SQLSTATE"
                    }
                ),
                None => d.message().to_owned(),
            },
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
                return self.error(format!("the connection was lost: {e}"), true);
            }
            other => other.to_string(),
        };
        self.error(scrub(&reason, self.password.as_deref()), false)
    }
}

/// How long one statement may run in a database, in seconds: `MESH_DB_STATEMENT_TIMEOUT`, else
/// 30 minutes (a rule like `SELECT pg_sleep(1e9)` ends there).
fn statement_timeout() -> u64 {
    std::env::var("MESH_DB_STATEMENT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1800)
}

/// A database error's code: MySQL's error number (`1045`), else the SQLSTATE (`28P01`).
fn error_code(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(d) = e else {
        return None;
    };
    if let Some(my) = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(my.number().to_string());
    }
    d.code().map(|c| c.into_owned())
}

/// `text` with any occurrence of the password replaced.
fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if p.len() >= 3 => text.replace(p, "***"),
        _ => text.to_owned(),
    }
}

/// A primary key or a unique constraint.
#[derive(Debug, Clone)]
pub struct Key {
    pub primary: bool,
    pub columns: Vec<String>,
}

/// A column as the database declares it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// `character varying(10)`, `decimal(12,2)`, `TEXT`...
    pub db_type: String,
    pub not_null: bool,
    /// The Arrow type its values read as.
    pub arrow: DataType,
}

/// One open connection to a database server.
pub enum Conn {
    Postgres(sqlx::PgConnection),
    MySql(sqlx::MySqlConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Postgres(_) => "Conn::Postgres",
            Conn::MySql(_) => "Conn::MySql",
            Conn::Sqlite(_) => "Conn::Sqlite",
        })
    }
}

impl Conn {
    /// Runs `sql` and reads its first row as numbers (each column cast to a double by the SQL
    /// itself); an empty result is an error. Every statement run here is built by [`checks`]
    /// from quoted identifiers and escaped literals, or is a `sql` rule a parser has read as one
    /// query — hence `AssertSqlSafe`.
    pub async fn numbers(&mut self, sql: &str) -> Result<Vec<Option<f64>>, sqlx::Error> {
        fn read<'r, R: sqlx::Row>(row: &'r R) -> Result<Vec<Option<f64>>, sqlx::Error>
        where
            usize: sqlx::ColumnIndex<R>,
            Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            (0..row.len())
                .map(|i| match row.try_get::<Option<f64>, _>(i) {
                    Ok(v) => Ok(v),
                    // Whole numbers the database would not widen (SQLite's typeless NULL).
                    Err(_) => row
                        .try_get::<Option<i64>, _>(i)
                        .map(|v| v.map(|n| n as f64)),
                })
                .collect()
        }
        let missing = || sqlx::Error::RowNotFound;
        match self {
            // Each statement in a read-only transaction of its own, rolled back: a rule that
            // calls set_config() cannot leave the session read-write for the next one.
            Conn::Postgres(c) => {
                use sqlx::Connection as _;
                let mut tx = c.begin_with("BEGIN READ ONLY").await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_optional(&mut *tx)
                    .await;
                let _ = tx.rollback().await;
                read(&row?.ok_or_else(missing)?)
            }
            Conn::MySql(c) => {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_optional(c)
                    .await?
                    .ok_or_else(missing)?;
                read(&row)
            }
            Conn::Sqlite(c) => {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_optional(c)
                    .await?
                    .ok_or_else(missing)?;
                read(&row)
            }
        }
    }

    /// Runs `sql` (every column cast to text by the SQL itself) and reads up to `limit` rows.
    pub async fn texts(
        &mut self,
        sql: &str,
        limit: usize,
    ) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        use futures::TryStreamExt as _;
        fn read<'r, R: sqlx::Row>(row: &'r R) -> Result<Vec<Option<String>>, sqlx::Error>
        where
            usize: sqlx::ColumnIndex<R>,
            Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            (0..row.len()).map(|i| row.try_get(i)).collect()
        }
        let mut out = Vec::new();
        match self {
            Conn::Postgres(c) => {
                use sqlx::Connection as _;
                let mut tx = c.begin_with("BEGIN READ ONLY").await?;
                {
                    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await? {
                        out.push(read(&row)?);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                let _ = tx.rollback().await;
            }
            Conn::MySql(c) => {
                let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch(c);
                while let Some(row) = rows.try_next().await? {
                    out.push(read(&row)?);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Conn::Sqlite(c) => {
                let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch(c);
                while let Some(row) = rows.try_next().await? {
                    out.push(read(&row)?);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn close(self) {
        let _ = match self {
            Conn::Postgres(c) => c.close().await,
            Conn::MySql(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }
}

/// The Arrow type a database type's values read as (the type checks compare with it).
pub fn arrow_type(kind: Kind, db_type: &str) -> DataType {
    let t = db_type.trim().to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let unsigned = t.contains("unsigned");
    let digits: Vec<u8> = t
        .split_once('(')
        .map(|(_, rest)| {
            rest.trim_end_matches(|c: char| c != ')')
                .trim_end_matches(')')
                .split(',')
                .filter_map(|d| d.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let decimal = || match digits.as_slice() {
        [p, s] if *p > 0 && *p <= 38 => DataType::Decimal128(*p, *s as i8),
        [p] if *p > 0 && *p <= 38 => DataType::Decimal128(*p, 0),
        [_, _] | [_] => DataType::Decimal256(76, 10),
        _ => DataType::Decimal128(38, 10),
    };
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let naive = || DataType::Timestamp(TimeUnit::Microsecond, None);
    if kind == Kind::Postgres && t.ends_with("[]") {
        return DataType::new_list(arrow_type(kind, t.trim_end_matches("[]")), true);
    }
    match kind {
        Kind::Postgres => match base {
            "smallint" | "int2" | "smallserial" => DataType::Int16,
            "integer" | "int" | "int4" | "serial" => DataType::Int32,
            "bigint" | "int8" | "bigserial" => DataType::Int64,
            "real" | "float4" => DataType::Float32,
            "double" | "float8" => DataType::Float64,
            "numeric" | "decimal" => decimal(),
            "boolean" | "bool" => DataType::Boolean,
            "date" => DataType::Date32,
            "timestamp" if t.contains("with time zone") => utc(),
            "timestamp" => naive(),
            "timestamptz" => utc(),
            "time" if !t.contains("with time zone") => DataType::Time64(TimeUnit::Microsecond),
            "bytea" => DataType::Binary,
            "json" | "jsonb" | "uuid" | "text" | "character" | "char" | "varchar" | "name"
            | "citext" | "inet" | "cidr" | "interval" | "money" | "xml" => DataType::Utf8,
            _ => DataType::Utf8,
        },
        Kind::MySql => match base {
            "tinyint" if digits.as_slice() == [1] => DataType::Boolean,
            "bool" | "boolean" => DataType::Boolean,
            "tinyint" if unsigned => DataType::UInt8,
            "tinyint" => DataType::Int8,
            "smallint" if unsigned => DataType::UInt16,
            "smallint" | "year" => DataType::Int16,
            "mediumint" | "int" | "integer" if unsigned => DataType::UInt32,
            "mediumint" | "int" | "integer" => DataType::Int32,
            "bigint" if unsigned => DataType::UInt64,
            "bigint" => DataType::Int64,
            "float" => DataType::Float32,
            "double" | "real" => DataType::Float64,
            "decimal" | "numeric" | "dec" | "fixed" => decimal(),
            "date" => DataType::Date32,
            "datetime" => naive(),
            "timestamp" => utc(),
            "time" => DataType::Time64(TimeUnit::Microsecond),
            "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "bit" => {
                DataType::Binary
            }
            _ => DataType::Utf8,
        },
        // SQLite's type affinity rules (https://sqlite.org/datatype3.html §3.1).
        Kind::Sqlite => {
            if t.contains("int") {
                DataType::Int64
            } else if t.contains("char") || t.contains("clob") || t.contains("text") {
                DataType::Utf8
            } else if t.contains("blob") {
                DataType::Binary
            } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
                DataType::Float64
            } else if base == "boolean" || base == "bool" {
                DataType::Boolean
            } else if base == "date" {
                DataType::Date32
            } else if base == "datetime" || base == "timestamp" {
                naive()
            } else if base == "decimal" || base == "numeric" {
                decimal()
            } else {
                // Undeclared or unknown (JSON, UUID, TIME...): read as the text it is.
                DataType::Utf8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_types_read_as_arrow_types() {
        assert_eq!(
            arrow_type(Kind::Postgres, "character varying(10)"),
            DataType::Utf8
        );
        assert_eq!(
            arrow_type(Kind::Postgres, "numeric(12,2)"),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            arrow_type(Kind::Postgres, "timestamp with time zone"),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            arrow_type(Kind::Postgres, "timestamp(3) without time zone"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow_type(Kind::MySql, "tinyint(1)"), DataType::Boolean);
        assert_eq!(
            arrow_type(Kind::MySql, "int(10) unsigned"),
            DataType::UInt32
        );
        assert_eq!(arrow_type(Kind::Sqlite, "VARCHAR(20)"), DataType::Utf8);
        assert_eq!(arrow_type(Kind::Sqlite, "BIGINT"), DataType::Int64);
    }

    #[test]
    fn a_password_never_shows() {
        assert_eq!(
            scrub("auth failed for s3cret-pw", Some("s3cret-pw")),
            "auth failed for ***"
        );
    }
}
