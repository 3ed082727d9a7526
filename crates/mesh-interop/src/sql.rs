//! SQL DDL in and out: `CREATE TABLE` statements of every dialect `sqlparser` speaks become schema
//! objects (types, `NOT NULL`, keys, `UNIQUE`, `CHECK`s, foreign keys, comments); a contract becomes
//! `CREATE TABLE` statements a database of the chosen dialect runs.

use mesh_model::odcs::{Bound, Contract, DataQuality, LogicalType, SchemaObject, SchemaProperty};
use serde_json::{Value, json};
use sqlparser::ast::{
    BinaryOperator, CheckConstraint, ColumnDef, ColumnOption, CommentObject, CreateTable, DataType,
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, ObjectNamePart, Spanned,
    SqlOption, Statement, TableConstraint, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect;
use sqlparser::parser::{Parser, ParserError};

use crate::table::{Column, Imported, Table};
use crate::{Exported, Problem, place};

/// The SQL dialects of `--dialect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    #[default]
    Postgres,
    Mysql,
    Sqlite,
    Snowflake,
    Bigquery,
    Duckdb,
    Mssql,
    Databricks,
    Redshift,
    Clickhouse,
    Generic,
}

impl Dialect {
    pub const ALL: [Dialect; 11] = [
        Dialect::Postgres,
        Dialect::Mysql,
        Dialect::Sqlite,
        Dialect::Snowflake,
        Dialect::Bigquery,
        Dialect::Duckdb,
        Dialect::Mssql,
        Dialect::Databricks,
        Dialect::Redshift,
        Dialect::Clickhouse,
        Dialect::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
            Dialect::Snowflake => "snowflake",
            Dialect::Bigquery => "bigquery",
            Dialect::Duckdb => "duckdb",
            Dialect::Mssql => "mssql",
            Dialect::Databricks => "databricks",
            Dialect::Redshift => "redshift",
            Dialect::Clickhouse => "clickhouse",
            Dialect::Generic => "generic",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.to_ascii_lowercase();
        Some(match text.as_str() {
            "postgresql" | "pg" => Dialect::Postgres,
            "mariadb" => Dialect::Mysql,
            "sqlserver" => Dialect::Mssql,
            _ => *Dialect::ALL.iter().find(|d| d.as_str() == text)?,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Mysql => "MySQL",
            Dialect::Sqlite => "SQLite",
            Dialect::Snowflake => "Snowflake",
            Dialect::Bigquery => "BigQuery",
            Dialect::Duckdb => "DuckDB",
            Dialect::Mssql => "SQL Server",
            Dialect::Databricks => "Databricks",
            Dialect::Redshift => "Redshift",
            Dialect::Clickhouse => "ClickHouse",
            Dialect::Generic => "SQL",
        }
    }

    fn parser(self) -> Box<dyn dialect::Dialect> {
        match self {
            Dialect::Postgres => Box::new(dialect::PostgreSqlDialect {}),
            Dialect::Mysql => Box::new(dialect::MySqlDialect {}),
            Dialect::Sqlite => Box::new(dialect::SQLiteDialect {}),
            Dialect::Snowflake => Box::new(dialect::SnowflakeDialect {}),
            Dialect::Bigquery => Box::new(dialect::BigQueryDialect {}),
            Dialect::Duckdb => Box::new(dialect::DuckDbDialect {}),
            Dialect::Mssql => Box::new(dialect::MsSqlDialect {}),
            Dialect::Databricks => Box::new(dialect::DatabricksDialect {}),
            Dialect::Redshift => Box::new(dialect::RedshiftSqlDialect {}),
            Dialect::Clickhouse => Box::new(dialect::ClickHouseDialect {}),
            Dialect::Generic => Box::new(dialect::GenericDialect {}),
        }
    }
}

/// DDL files larger than this are refused: a schema is not data.
const MAX_DDL_BYTES: usize = 16 << 20;

// ---------------------------------------------------------------------------------------------
// Import

pub(crate) fn import(file: &str, text: &str, dialect: Dialect) -> Result<Imported, Problem> {
    if text.len() > MAX_DDL_BYTES {
        return Err(Problem::new(
            file,
            None,
            format!(
                "the DDL is {} MiB; mesh reads DDL files up to 16 MiB",
                text.len() >> 20
            ),
        ));
    }
    let parse = |d: Dialect| {
        Parser::new(&*d.parser())
            .with_recursion_limit(64)
            .try_with_sql(text)
            .and_then(|mut p| p.parse_statements())
    };
    let statements = match parse(dialect) {
        Ok(s) => s,
        // DuckDB has `COMMENT ON` (since 0.10), which sqlparser's DuckDB dialect does not parse;
        // its DDL is PostgreSQL's otherwise.
        Err(e) if dialect == Dialect::Duckdb => {
            parse(Dialect::Postgres).map_err(|_| parse_problem(file, dialect, &e))?
        }
        Err(e) => return Err(parse_problem(file, dialect, &e)),
    };
    let mut out = Imported::new(
        file,
        format!("{} DDL in {}", dialect.name(), file_name(file)),
    );
    let mut last_line = 1;
    for statement in &statements {
        // Some statements (triggers, for one) carry no position: find their first words.
        let spanned = at(statement.span().start);
        let at = locate(text, spanned.map_or(last_line, |(line, _)| line), statement).or(spanned);
        if let Some((line, _)) = at {
            last_line = line;
        }
        match statement {
            Statement::CreateTable(create) => {
                let table = create_table(create, dialect, &mut out);
                if out.tables.iter().any(|t| t.name == table.name) {
                    out.note(
                        at,
                        format!(
                            "table `{}` is created twice; the first definition is kept",
                            table.name
                        ),
                    );
                } else {
                    out.tables.push(table);
                }
            }
            Statement::Comment {
                object_type,
                object_name,
                comment,
                ..
            } => comment_on(*object_type, object_name, comment.as_deref(), at, &mut out),
            other => {
                let what = statement_kind(other);
                out.note(
                    at,
                    format!("{what} is not part of a table's contract: skipped (only CREATE TABLE and COMMENT ON are imported)"),
                );
            }
        }
    }
    if out.tables.is_empty() {
        return Err(
            Problem::new(file, None, "no CREATE TABLE statement in the DDL").hint(
                "mesh imports the tables of a DDL file; views, triggers and inserts are skipped",
            ),
        );
    }
    if out.tables.len() == 1 {
        out.name = out.tables[0].name.clone();
    }
    Ok(out)
}

use crate::file_name;

/// Applies a CHECK expression written as text (a dbt `check` constraint) to `c`; what it cannot
/// express as options or allowed values comes back as the remaining condition.
pub(crate) fn check_text_into(expr: &str, dialect: Dialect, c: &mut Column) -> Option<String> {
    let parser = dialect.parser();
    let Ok(parsed) = Parser::new(&*parser)
        .with_recursion_limit(64)
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
    else {
        return Some(expr.to_owned());
    };
    let mut parts = Vec::new();
    conjuncts(&parsed, &mut parts);
    let rest: Vec<String> = parts
        .into_iter()
        .filter(|p| !apply(p, c))
        .map(ToString::to_string)
        .collect();
    (!rest.is_empty()).then(|| rest.join(" AND "))
}

/// A column of the type written as `type_name` (a dbt `data_type`, say), if it parses as one.
pub(crate) fn column_of_type(
    name: &str,
    type_name: &str,
    dialect: Dialect,
    out: &mut Imported,
) -> Option<Column> {
    let parser = dialect.parser();
    let data_type = Parser::new(&*parser)
        .try_with_sql(type_name)
        .and_then(|mut p| p.parse_data_type())
        .ok()?;
    let mut c = typed(name, &data_type, dialect, out, None);
    c.physical = Some(type_name.to_owned());
    Some(c)
}

/// `K, V` at the comma outside any parentheses or brackets.
fn split_top_level(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, ch) in text.char_indices() {
        match ch {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => return Some((text[..i].trim(), text[i + 1..].trim())),
            _ => {}
        }
    }
    None
}

/// Where `statement` starts: the first line from `from` holding its first two words.
fn locate(text: &str, from: u32, statement: &Statement) -> Option<(u32, u32)> {
    let shown = statement.to_string();
    let words: Vec<String> = shown
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    if words.is_empty() {
        return None;
    }
    for (i, line) in text
        .lines()
        .enumerate()
        .skip(from.saturating_sub(1) as usize)
    {
        let upper = line.to_ascii_uppercase();
        let tokens: Vec<&str> = upper.split_whitespace().collect();
        if let Some(k) = tokens
            .windows(words.len())
            .position(|w| w.iter().zip(&words).all(|(a, b)| a == b))
        {
            let col = upper.find(tokens[k]).unwrap_or(0);
            return Some((u32::try_from(i + 1).ok()?, u32::try_from(col + 1).ok()?));
        }
    }
    None
}

fn at(location: sqlparser::tokenizer::Location) -> Option<(u32, u32)> {
    (location.line > 0).then(|| {
        (
            u32::try_from(location.line).unwrap_or(u32::MAX),
            u32::try_from(location.column).unwrap_or(u32::MAX),
        )
    })
}

/// sqlparser's messages end in `at Line: 3, Column: 14`: that becomes the position.
fn parse_problem(file: &str, dialect: Dialect, e: &ParserError) -> Problem {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return Problem::new(
                file,
                None,
                "the DDL nests expressions too deeply (more than 64 levels)",
            );
        }
    };
    let mut position = None;
    let mut text = message.as_str();
    if let Some(i) = message.rfind(" at Line: ") {
        let tail = &message[i + " at Line: ".len()..];
        if let Some((line, col)) = tail.split_once(", Column: ") {
            let col = col.trim_end_matches(|c: char| !c.is_ascii_digit());
            if let (Ok(line), Ok(col)) = (line.trim().parse(), col.trim().parse()) {
                position = Some((line, col));
                text = &message[..i];
            }
        }
    }
    Problem::new(file, position, format!("{} DDL: {text}", dialect.name())).hint(format!(
        "is this {} DDL? choose the dialect with --dialect",
        dialect.name()
    ))
}

fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    let mut kind = words
        .iter()
        .take_while(|w| {
            w.chars().all(|c| c.is_ascii_alphabetic()) && w.chars().any(char::is_uppercase)
        })
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if kind.is_empty() {
        kind = "a statement".into();
    }
    match statement {
        Statement::CreateTrigger(_) => "a trigger (CREATE TRIGGER)".into(),
        Statement::CreateView(_) => "a view (CREATE VIEW)".into(),
        Statement::CreateIndex(_) => "an index (CREATE INDEX)".into(),
        Statement::Insert(_) => "data (INSERT)".into(),
        _ => format!("`{kind}`"),
    }
}

fn last(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => ident.value.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn create_table(create: &CreateTable, dialect: Dialect, out: &mut Imported) -> Table {
    let name = last(&create.name);
    let mut table = Table::new(name.clone());
    table.physical_type = Some("table".into());
    if create.name.0.len() > 1 {
        table.physical_name = Some(create.name.to_string());
    }
    if let Some(comment) = &create.comment {
        table.description = Some(comment_text(comment));
    }
    for option in table_options(create) {
        if let SqlOption::Comment(comment) = option {
            table.description = Some(comment_text(comment));
        }
    }
    for def in &create.columns {
        let column = column(def, &name, &mut table, dialect, out);
        table.columns.push(column);
    }
    for constraint in &create.constraints {
        constraint_on(constraint, &mut table, out);
    }
    if let Some(query) = &create.query {
        out.note(
            at(query.span().start),
            format!("`{name}` is created from a query (CREATE TABLE ... AS): only its declared columns are imported"),
        );
    }
    table
}

fn table_options(create: &CreateTable) -> &[SqlOption] {
    use sqlparser::ast::CreateTableOptions as O;
    match &create.table_options {
        O::None => &[],
        O::With(o) | O::Options(o) | O::Plain(o) | O::TableProperties(o) => o,
    }
}

fn comment_text(comment: &sqlparser::ast::CommentDef) -> String {
    match comment {
        sqlparser::ast::CommentDef::WithEq(s) | sqlparser::ast::CommentDef::WithoutEq(s) => {
            s.clone()
        }
    }
}

fn column(
    def: &ColumnDef,
    table_name: &str,
    table: &mut Table,
    dialect: Dialect,
    out: &mut Imported,
) -> Column {
    let mut c = typed(
        &def.name.value,
        &def.data_type,
        dialect,
        out,
        at(def.name.span.start),
    );
    for option in &def.options {
        let position = at(option.option.span().start).or_else(|| at(def.name.span.start));
        match &option.option {
            ColumnOption::NotNull => c.required = true,
            ColumnOption::Null => c.required = false,
            ColumnOption::PrimaryKey(_) => {
                c.primary_key = Some(1);
                c.required = true;
            }
            ColumnOption::Unique(_) => c.unique = true,
            ColumnOption::Comment(text) => c.description = Some(text.clone()),
            ColumnOption::Options(options) => {
                for o in options {
                    if let SqlOption::KeyValue { key, value } = o
                        && key.value.eq_ignore_ascii_case("description")
                        && let Some(text) = string_of(value)
                    {
                        c.description = Some(text);
                    }
                }
            }
            ColumnOption::ForeignKey(fk) => {
                let to_table = last(&fk.foreign_table);
                let to_col = fk
                    .referred_columns
                    .first()
                    .map_or_else(|| c.name.clone(), |i| i.value.clone());
                c.references = Some(format!("{to_table}.{to_col}"));
            }
            ColumnOption::Check(check) => {
                check_on(
                    check,
                    table_name,
                    Some(&mut c),
                    &mut table.quality,
                    out,
                    position,
                );
            }
            ColumnOption::Default(expr) => {
                out.note(
                    position,
                    format!(
                        "{}: DEFAULT {expr} has no ODCS field: not imported",
                        place(table_name, &c.name)
                    ),
                );
            }
            ColumnOption::Generated { .. } | ColumnOption::Identity(_) => {
                c.custom.push(("generated".into(), json!(true)));
            }
            ColumnOption::CharacterSet(_) | ColumnOption::Collation(_) => {}
            other => out.note(
                position,
                format!("{}: `{other}` is not imported", place(table_name, &c.name)),
            ),
        }
    }
    c
}

fn string_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A SQL type as an ODCS column: logical type, the type as written, and the length, precision
/// or element type it carries.
fn typed(
    name: &str,
    data_type: &DataType,
    dialect: Dialect,
    out: &mut Imported,
    position: Option<(u32, u32)>,
) -> Column {
    let physical = data_type.to_string();
    let lower = physical.to_ascii_lowercase();
    let base: String = lower
        .split(['(', '<', '['])
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let params: Vec<u64> = lower
        .split_once('(')
        .map(|(_, rest)| {
            rest.split(')')
                .next()
                .unwrap_or_default()
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut c = Column::new(name, LogicalType::String);
    c.physical = Some(physical.clone());
    match data_type {
        DataType::Array(elem) => {
            use sqlparser::ast::ArrayElemTypeDef as A;
            c.logical = LogicalType::Array;
            let inner = match elem {
                A::AngleBracket(t) | A::SquareBracket(t, _) | A::Parenthesis(t) => Some(t),
                A::None => None,
            };
            c.items = Some(Box::new(match inner {
                Some(t) => typed("", t, dialect, out, position),
                None => Column::new("", LogicalType::String),
            }));
            return c;
        }
        DataType::Struct(fields, _) => {
            c.logical = LogicalType::Object;
            for (i, f) in fields.iter().enumerate() {
                let field_name = f
                    .field_name
                    .as_ref()
                    .map_or_else(|| format!("f{}", i + 1), |n| n.value.clone());
                c.properties
                    .push(typed(&field_name, &f.field_type, dialect, out, position));
            }
            return c;
        }
        DataType::Map(k, v) => {
            c.logical = LogicalType::Map;
            c.map = Some((
                Box::new(typed("", k, dialect, out, position)),
                Box::new(typed("", v, dialect, out, position)),
            ));
            return c;
        }
        _ => {}
    }
    // MAP(K, V) where the dialect's parser keeps it as a custom type (DuckDB).
    if base == "map"
        && let Some((_, inner)) = physical.split_once('(')
        && let Some((k, v)) = split_top_level(inner.trim_end_matches(')'))
        && let (Some(k), Some(v)) = (
            column_of_type("", k, dialect, out),
            column_of_type("", v, dialect, out),
        )
    {
        c.logical = LogicalType::Map;
        c.map = Some((Box::new(k), Box::new(v)));
        return c;
    }
    c.logical = match base.as_str() {
        "char" | "character" | "varchar" | "character varying" | "nvarchar" | "nchar"
        | "varchar2" | "nvarchar2" | "text" | "string" | "clob" | "tinytext" | "mediumtext"
        | "longtext" | "citext" | "uuid" | "enum" | "set" | "name" => {
            if let Some(n) = params.first().filter(|_| base != "enum" && base != "set") {
                c.options.insert("maxLength".into(), json!(n));
            }
            if base == "enum"
                && let Some((_, inner)) = physical.split_once('(')
            {
                c.enum_values = inner
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| json!(v.trim().trim_matches('\'').replace("''", "'")))
                    .collect();
            }
            if base == "uuid" {
                c.options.insert("format".into(), json!("uuid"));
            }
            LogicalType::String
        }
        "int" | "integer" | "smallint" | "bigint" | "tinyint" | "mediumint" | "int2" | "int4"
        | "int8" | "int16" | "int32" | "int64" | "int128" | "serial" | "bigserial"
        | "smallserial" | "byteint" | "uint8" | "uint16" | "uint32" | "uint64" | "hugeint"
        | "integer unsigned" | "int unsigned" | "bigint unsigned" => {
            if matches!(
                base.as_str(),
                "int" | "integer" | "int4" | "int32" | "serial"
            ) {
                c.options.insert("format".into(), json!("i32"));
            }
            LogicalType::Integer
        }
        "decimal" | "numeric" | "number" | "dec" | "bignumeric" | "bigdecimal" => {
            if params.len() == 2 && params[1] == 0 || base == "number" && params.len() == 1 {
                LogicalType::Integer
            } else {
                LogicalType::Number
            }
        }
        "real" | "float" | "double" | "double precision" | "float4" | "float8" | "float32"
        | "float64" | "money" | "smallmoney" => LogicalType::Number,
        "bool" | "boolean" | "bit" => LogicalType::Boolean,
        "date" | "date32" => LogicalType::Date,
        "timestamp" | "timestamptz" | "datetime" | "datetime2" | "datetimeoffset"
        | "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" | "smalldatetime" | "datetime64" => {
            // Wall-clock times without a zone (BigQuery's TIMESTAMP is an instant).
            let zoneless = matches!(
                base.as_str(),
                "timestamp_ntz" | "datetime" | "datetime2" | "smalldatetime"
            ) || lower.contains("without time zone")
                || (base == "timestamp"
                    && !lower.contains("with time zone")
                    && dialect != Dialect::Bigquery);
            if zoneless {
                c.options.insert("timezone".into(), json!(false));
            }
            LogicalType::Timestamp
        }
        "time" | "timetz" => LogicalType::Time,
        "json" | "jsonb" | "variant" | "object" | "super" => LogicalType::Object,
        _ if lower.starts_with("timestamp") => LogicalType::Timestamp,
        _ if lower.starts_with("time") => LogicalType::Time,
        _ => {
            out.note(
                position,
                format!("`{name}`: the SQL type {physical} has no ODCS logical type; imported as a string, with physicalType {physical}"),
            );
            LogicalType::String
        }
    };
    c
}

fn constraint_on(constraint: &TableConstraint, table: &mut Table, out: &mut Imported) {
    let position = at(constraint.span().start);
    let names = |cols: &[sqlparser::ast::IndexColumn]| -> Vec<String> {
        cols.iter()
            .map(|c| {
                c.column
                    .expr
                    .to_string()
                    .trim_matches(['"', '`', '[', ']'])
                    .to_owned()
            })
            .collect()
    };
    match constraint {
        TableConstraint::PrimaryKey(pk) => {
            for (i, name) in names(&pk.columns).iter().enumerate() {
                match table.column_mut(name) {
                    Some(c) => {
                        c.primary_key = Some(u32::try_from(i + 1).unwrap_or(u32::MAX));
                        c.required = true;
                    }
                    None => out.note(
                        position,
                        format!(
                            "{}: the primary key names a column that is not in the table",
                            place(&table.name, name)
                        ),
                    ),
                }
            }
        }
        TableConstraint::Unique(u) => {
            let cols = names(&u.columns);
            if let [one] = cols.as_slice() {
                if let Some(c) = table.column_mut(one) {
                    c.unique = true;
                }
            } else {
                table.quality.push(json!({
                    "type": "library",
                    "metric": "duplicateValues",
                    "description": format!("UNIQUE ({}) from the DDL", cols.join(", ")),
                    "arguments": { "properties": cols },
                    "mustBe": 0,
                }));
            }
        }
        TableConstraint::ForeignKey(fk) => {
            let from: Vec<String> = fk.columns.iter().map(|i| i.value.clone()).collect();
            let to_table = last(&fk.foreign_table);
            let to: Vec<String> = if fk.referred_columns.is_empty() {
                from.clone()
            } else {
                fk.referred_columns
                    .iter()
                    .map(|i| i.value.clone())
                    .collect()
            };
            if let ([f], [t]) = (from.as_slice(), to.as_slice()) {
                if let Some(c) = table.column_mut(f) {
                    c.references = Some(format!("{to_table}.{t}"));
                }
            } else {
                table.foreign_keys.push((from, to_table, to));
            }
        }
        TableConstraint::Check(check) => {
            let name = table.name.clone();
            let mut quality = std::mem::take(&mut table.quality);
            check_table(check, &name, table, &mut quality, out, position);
            table.quality = quality;
        }
        other => out.note(
            position,
            format!(
                "{}: `{other}` is not imported (an index, not a rule about the data)",
                table.name
            ),
        ),
    }
}

/// A table-level CHECK: about one column when it names one, else a SQL quality rule.
fn check_table(
    check: &CheckConstraint,
    table_name: &str,
    table: &mut Table,
    quality: &mut Vec<Value>,
    out: &mut Imported,
    position: Option<(u32, u32)>,
) {
    let column = single_column(&check.expr);
    let target = column.and_then(|name| table.column_mut(&name));
    check_on(check, table_name, target, quality, out, position);
}

fn single_column(expr: &Expr) -> Option<String> {
    let mut names = Vec::new();
    collect_columns(expr, &mut names);
    names.sort();
    names.dedup();
    match names.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn collect_columns(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::Identifier(i) => out.push(i.value.clone()),
        Expr::CompoundIdentifier(parts) => {
            if let Some(i) = parts.last() {
                out.push(i.value.clone());
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            collect_columns(left, out);
            collect_columns(right, out);
        }
        Expr::Nested(e) | Expr::UnaryOp { expr: e, .. } => collect_columns(e, out),
        Expr::InList { expr, .. } => collect_columns(expr, out),
        Expr::Between { expr, .. } => collect_columns(expr, out),
        Expr::Function(f) => {
            if let FunctionArguments::List(list) = &f.args {
                for arg in &list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                        collect_columns(e, out);
                    }
                }
            }
        }
        Expr::Value(_) => {}
        Expr::Cast { expr, .. } => collect_columns(expr, out),
        Expr::IsNull(e) | Expr::IsNotNull(e) => collect_columns(e, out),
        _ => out.push(String::from("\u{0}")), // something that is not a plain column
    }
}

/// Applies a CHECK to `column` as options and allowed values where it can; the rest becomes a
/// SQL quality rule counting the rows that break it.
fn check_on(
    check: &CheckConstraint,
    table_name: &str,
    column: Option<&mut Column>,
    quality: &mut Vec<Value>,
    out: &mut Imported,
    position: Option<(u32, u32)>,
) {
    let expr = &*check.expr;
    if let Some(c) = column {
        let mut parts = Vec::new();
        conjuncts(expr, &mut parts);
        let mut rest = Vec::new();
        for part in parts {
            if !apply(part, c) {
                rest.push(part.to_string());
            }
        }
        if rest.is_empty() {
            return;
        }
        let condition = rest.join(" AND ");
        c.quality.push(sql_rule(
            table_name,
            &condition,
            format!("CHECK ({condition}) from the DDL"),
        ));
        out.note(
            position,
            format!(
                "{}: CHECK ({condition}) imported as a SQL quality rule",
                place(table_name, &c.name)
            ),
        );
        return;
    }
    quality.push(sql_rule(
        table_name,
        &expr.to_string(),
        format!("CHECK ({expr}) from the DDL"),
    ));
    out.note(
        position,
        format!("{table_name}: CHECK ({expr}) imported as a SQL quality rule"),
    );
}

/// A `type: sql` quality rule counting the rows of `table` where `condition` does not hold.
pub(crate) fn sql_rule(table: &str, condition: &str, description: String) -> Value {
    json!({
        "type": "sql",
        "description": description,
        "query": format!("SELECT COUNT(*) FROM {table} WHERE NOT ({condition})"),
        "mustBe": 0,
    })
}

fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(e) => conjuncts(e, out),
        other => out.push(other),
    }
}

fn literal(expr: &Expr) -> Option<Value> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse::<i64>().map(Value::from).ok().or_else(|| {
                n.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            }),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(json!(s)),
            SqlValue::Boolean(b) => Some(json!(b)),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Value::Number(n) => n
                .as_i64()
                .map(|i| json!(-i))
                .or_else(|| n.as_f64().map(|f| json!(-f))),
            _ => None,
        },
        Expr::Nested(e) => literal(e),
        Expr::Cast { expr, .. } => literal(expr),
        _ => None,
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    match expr {
        Expr::Identifier(i) => i.value.eq_ignore_ascii_case(name),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .is_some_and(|i| i.value.eq_ignore_ascii_case(name)),
        Expr::Nested(e) => is_column(e, name),
        _ => false,
    }
}

fn length_of(expr: &Expr, name: &str) -> bool {
    if let Expr::Function(f) = expr
        && matches!(
            last(&f.name).to_ascii_lowercase().as_str(),
            "length" | "char_length" | "character_length" | "len"
        )
        && let FunctionArguments::List(list) = &f.args
        && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] = list.args.as_slice()
    {
        return is_column(e, name);
    }
    false
}

/// One conjunct of a CHECK as a column rule; `false` when it is not one we can express.
fn apply(expr: &Expr, c: &mut Column) -> bool {
    let name = c.name.clone();
    match expr {
        Expr::InList {
            expr,
            list,
            negated: false,
        } if is_column(expr, &name) => {
            let values: Option<Vec<Value>> = list.iter().map(literal).collect();
            match values {
                Some(values) => {
                    c.enum_values = values;
                    true
                }
                None => false,
            }
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if is_column(expr, &name) => match (literal(low), literal(high)) {
            (Some(lo), Some(hi)) if bound_fits(c.logical, &lo) && bound_fits(c.logical, &hi) => {
                c.options.insert("minimum".into(), lo);
                c.options.insert("maximum".into(), hi);
                true
            }
            _ => false,
        },
        Expr::IsNotNull(e) if is_column(e, &name) => {
            c.required = true;
            true
        }
        Expr::BinaryOp { left, op, right } => {
            // `col op literal`, or `literal op col` turned around.
            let (op, value, length) = if let Some(v) = literal(right) {
                if is_column(left, &name) {
                    (op.clone(), v, false)
                } else if length_of(left, &name) {
                    (op.clone(), v, true)
                } else {
                    return false;
                }
            } else if let Some(v) = literal(left) {
                let flipped = match op {
                    BinaryOperator::Gt => BinaryOperator::Lt,
                    BinaryOperator::GtEq => BinaryOperator::LtEq,
                    BinaryOperator::Lt => BinaryOperator::Gt,
                    BinaryOperator::LtEq => BinaryOperator::GtEq,
                    other => other.clone(),
                };
                if is_column(right, &name) {
                    (flipped, v, false)
                } else if length_of(right, &name) {
                    (flipped, v, true)
                } else {
                    return false;
                }
            } else {
                return false;
            };
            if length {
                let Some(n) = value.as_u64() else {
                    return false;
                };
                if op == BinaryOperator::Eq {
                    c.options.insert("minLength".into(), json!(n));
                    c.options.insert("maxLength".into(), json!(n));
                    return true;
                }
                let (key, n) = match op {
                    BinaryOperator::LtEq => ("maxLength", n),
                    BinaryOperator::Lt if n > 0 => ("maxLength", n - 1),
                    BinaryOperator::GtEq => ("minLength", n),
                    BinaryOperator::Gt => ("minLength", n + 1),
                    _ => return false,
                };
                c.options.insert(key.into(), json!(n));
                return true;
            }
            if !bound_fits(c.logical, &value) {
                return false;
            }
            let key = match op {
                BinaryOperator::GtEq => "minimum",
                BinaryOperator::Gt => "exclusiveMinimum",
                BinaryOperator::LtEq => "maximum",
                BinaryOperator::Lt => "exclusiveMaximum",
                BinaryOperator::Eq => {
                    c.enum_values = vec![value];
                    return true;
                }
                _ => return false,
            };
            c.options.insert(key.into(), value);
            true
        }
        _ => false,
    }
}

/// Numbers bound numeric columns; text bounds dates and times.
fn bound_fits(lt: LogicalType, value: &Value) -> bool {
    match lt {
        LogicalType::Integer | LogicalType::Number => value.is_number(),
        LogicalType::Date | LogicalType::Timestamp | LogicalType::Time => value.is_string(),
        _ => false,
    }
}

fn comment_on(
    object: CommentObject,
    name: &ObjectName,
    comment: Option<&str>,
    position: Option<(u32, u32)>,
    out: &mut Imported,
) {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect();
    let comment = comment.map(str::to_owned);
    match object {
        CommentObject::Table => {
            let table = parts.last().cloned().unwrap_or_default();
            match out
                .tables
                .iter_mut()
                .find(|t| t.name.eq_ignore_ascii_case(&table))
            {
                Some(t) => t.description = comment,
                None => out.note(
                    position,
                    format!("COMMENT ON TABLE {table}: no such table in the DDL"),
                ),
            }
        }
        CommentObject::Column if parts.len() >= 2 => {
            let column = &parts[parts.len() - 1];
            let table = &parts[parts.len() - 2];
            let found = out
                .tables
                .iter_mut()
                .find(|t| t.name.eq_ignore_ascii_case(table))
                .and_then(|t| t.column_mut(column));
            match found {
                Some(c) => c.description = comment,
                None => out.note(
                    position,
                    format!("COMMENT ON COLUMN {table}.{column}: no such column in the DDL"),
                ),
            }
        }
        _ => out.note(
            position,
            format!("a comment on {name} is not about a table or column: skipped"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Export

pub(crate) fn export(contract: &Contract, dialect: Dialect) -> Exported {
    let mut lost = Vec::new();
    let mut sql = format!(
        "-- Written by `mesh export --to sql --dialect {}` from contract {} {}.\n",
        dialect.as_str(),
        contract.id.as_deref().unwrap_or_default(),
        contract.version.as_deref().unwrap_or_default()
    );
    let tables: Vec<&str> = contract.schema.iter().map(|o| o.name.as_str()).collect();
    // Referenced tables first, so that each foreign key names a table that exists.
    for object in dependency_order(contract) {
        sql.push('\n');
        sql.push_str(&create(object, &tables, dialect, &mut lost));
    }
    lost_common(contract, &mut lost);
    Exported { text: sql, lost }
}

/// The schema objects with every table another references before it (a cycle keeps the
/// contract's order for what is left).
fn dependency_order(contract: &Contract) -> Vec<&SchemaObject> {
    let refs = |o: &SchemaObject| -> Vec<String> {
        o.properties
            .iter()
            .flat_map(|p| &p.relationships)
            .filter_map(|r| r.to.as_ref()?.as_slice().first().cloned())
            .filter_map(|to| match to.target() {
                mesh_model::odcs::RefTarget::Shorthand { object, .. } => Some(object.to_owned()),
                _ => None,
            })
            .filter(|t| *t != o.name)
            .collect()
    };
    let mut left: Vec<&SchemaObject> = contract.schema.iter().collect();
    let mut out: Vec<&SchemaObject> = Vec::new();
    while !left.is_empty() {
        let ready = left.iter().position(|o| {
            refs(o)
                .iter()
                .all(|t| out.iter().any(|d| d.name == *t) || !left.iter().any(|l| l.name == *t))
        });
        let i = ready.unwrap_or(0);
        out.push(left.remove(i));
    }
    out
}

/// What no DDL carries: service levels, and the contract's quality rules beyond what `CHECK`s say.
pub(crate) fn lost_common(contract: &Contract, lost: &mut Vec<String>) {
    for sla in &contract.sla_properties {
        lost.push(format!(
            "slaProperties.{}: service levels are not part of the format",
            sla.property
        ));
    }
}

fn quote(name: &str, dialect: Dialect) -> String {
    let simple = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()))
        && !name.is_empty();
    let reserved = sqlparser::keywords::ALL_KEYWORDS
        .binary_search(&name.to_ascii_uppercase().as_str())
        .is_ok();
    if simple && !reserved {
        return name.to_owned();
    }
    match dialect {
        Dialect::Mysql | Dialect::Bigquery | Dialect::Databricks | Dialect::Clickhouse => {
            format!("`{}`", name.replace('`', "``"))
        }
        Dialect::Mssql => format!("[{}]", name.replace(']', "]]")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// BigQuery escapes with backslashes, not by doubling quotes.
fn bigquery_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

pub(crate) fn literal_sql(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(string_literal(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "TRUE".into() } else { "FALSE".into() }),
        _ => None,
    }
}

fn bound_sql(bound: &Bound) -> String {
    match bound {
        Bound::Number(n) => n.to_string(),
        Bound::Text(t) => string_literal(t),
    }
}

/// The column type in `dialect` for a property.
pub(crate) fn sql_type(p: &SchemaProperty, dialect: Dialect, key: bool) -> String {
    use Dialect as D;
    let options = p.logical_type_options.as_ref();
    let max_length = options.and_then(|o| o.max_length);
    let format = options.and_then(|o| o.format.as_deref());
    let physical = p
        .physical_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let Some(lt) = p.logical_type else {
        return match dialect {
            D::Bigquery | D::Databricks => "STRING".into(),
            _ => "TEXT".into(),
        };
    };
    match lt {
        LogicalType::String => match (max_length, dialect) {
            (Some(n), D::Bigquery) => format!("STRING({n})"),
            (Some(n), D::Mssql) => format!("NVARCHAR({n})"),
            (Some(n), D::Databricks) => format!("VARCHAR({n})"),
            (Some(n), _) => format!("VARCHAR({n})"),
            (None, D::Postgres | D::Duckdb) if format == Some("uuid") => "UUID".into(),
            (None, D::Postgres | D::Sqlite) => "TEXT".into(),
            (None, D::Mysql) if key => "VARCHAR(255)".into(),
            (None, D::Mysql) => "TEXT".into(),
            (None, D::Mssql) if key => "NVARCHAR(450)".into(),
            (None, D::Mssql) => "NVARCHAR(MAX)".into(),
            (None, D::Bigquery | D::Databricks | D::Clickhouse) => "STRING".into(),
            (None, D::Redshift) => "VARCHAR(65535)".into(),
            (None, _) => "VARCHAR".into(),
        },
        LogicalType::Integer => {
            let small = matches!(format, Some("i8" | "i16" | "i32" | "u8" | "u16"));
            match dialect {
                D::Bigquery => "INT64".into(),
                D::Sqlite => "INTEGER".into(),
                D::Clickhouse if small => "Int32".into(),
                D::Clickhouse => "Int64".into(),
                _ if small => "INTEGER".into(),
                _ => "BIGINT".into(),
            }
        }
        LogicalType::Number => {
            let decimal = physical.starts_with("decimal") || physical.starts_with("numeric");
            let precision = physical
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(p, _)| p.replace(' ', ""));
            match (decimal, precision, dialect) {
                (true, Some(p), D::Bigquery) => format!("NUMERIC({p})"),
                (true, Some(p), _) => format!("DECIMAL({p})"),
                (_, _, D::Postgres | D::Redshift) => "DOUBLE PRECISION".into(),
                (_, _, D::Sqlite) => "REAL".into(),
                (_, _, D::Snowflake | D::Mssql) => "FLOAT".into(),
                (_, _, D::Bigquery) => "FLOAT64".into(),
                (_, _, D::Clickhouse) => "Float64".into(),
                _ => "DOUBLE".into(),
            }
        }
        LogicalType::Boolean => match dialect {
            D::Mssql => "BIT".into(),
            D::Bigquery => "BOOL".into(),
            D::Clickhouse => "Bool".into(),
            _ => "BOOLEAN".into(),
        },
        LogicalType::Date => "DATE".into(),
        LogicalType::Timestamp => {
            let zoned = options.and_then(|o| o.timezone) != Some(false);
            match dialect {
                D::Postgres | D::Duckdb if zoned => "TIMESTAMPTZ".into(),
                D::Mysql => "DATETIME(6)".into(),
                D::Snowflake if zoned => "TIMESTAMP_TZ".into(),
                D::Snowflake => "TIMESTAMP_NTZ".into(),
                D::Mssql => "DATETIMEOFFSET".into(),
                D::Clickhouse => "DateTime64(6)".into(),
                _ => "TIMESTAMP".into(),
            }
        }
        LogicalType::Time => "TIME".into(),
        LogicalType::Object => match dialect {
            D::Postgres => "JSONB".into(),
            D::Mysql | D::Bigquery | D::Duckdb | D::Clickhouse => "JSON".into(),
            D::Snowflake => "OBJECT".into(),
            D::Redshift => "SUPER".into(),
            D::Mssql => "NVARCHAR(MAX)".into(),
            D::Databricks => "STRING".into(),
            _ => "TEXT".into(),
        },
        LogicalType::Array | LogicalType::Vector => {
            let item = p
                .items
                .as_deref()
                .filter(|i| {
                    !matches!(
                        i.logical_type,
                        Some(LogicalType::Object | LogicalType::Array | LogicalType::Map) | None
                    )
                })
                .map(|i| sql_type(i, dialect, false));
            let item = item.or_else(|| {
                (lt == LogicalType::Vector).then(|| match dialect {
                    D::Bigquery => "FLOAT64".into(),
                    D::Sqlite => "REAL".into(),
                    _ => "REAL".into(),
                })
            });
            match (item, dialect) {
                (Some(t), D::Postgres | D::Duckdb) => format!("{t}[]"),
                (Some(t), D::Bigquery | D::Databricks) => format!("ARRAY<{t}>"),
                (Some(t), D::Clickhouse) => format!("Array({t})"),
                (_, D::Postgres) => "JSONB".into(),
                (_, D::Snowflake) => "ARRAY".into(),
                (_, D::Mysql | D::Bigquery | D::Duckdb) => "JSON".into(),
                (_, D::Redshift) => "SUPER".into(),
                (_, D::Mssql) => "NVARCHAR(MAX)".into(),
                (_, D::Databricks) => "STRING".into(),
                _ => "TEXT".into(),
            }
        }
        LogicalType::Map => {
            let kv = p.map.as_ref().map(|m| {
                (
                    sql_type(&m.key, dialect, false),
                    sql_type(&m.value, dialect, false),
                )
            });
            match (kv, dialect) {
                (Some((k, v)), D::Duckdb) => format!("MAP({k}, {v})"),
                (Some((k, v)), D::Databricks) => format!("MAP<{k}, {v}>"),
                (Some((k, v)), D::Clickhouse) => format!("Map({k}, {v})"),
                (_, D::Postgres) => "JSONB".into(),
                (_, D::Snowflake) => "OBJECT".into(),
                (_, D::Mysql | D::Bigquery | D::Duckdb) => "JSON".into(),
                (_, D::Redshift) => "SUPER".into(),
                (_, D::Mssql) => "NVARCHAR(MAX)".into(),
                _ => "TEXT".into(),
            }
        }
    }
}

fn create(
    object: &SchemaObject,
    tables: &[&str],
    dialect: Dialect,
    lost: &mut Vec<String>,
) -> String {
    let table = object
        .physical_name
        .clone()
        .unwrap_or_else(|| object.name.clone());
    let mut lines: Vec<String> = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut keys: Vec<(i64, &str)> = Vec::new();
    let checks_supported = !matches!(
        dialect,
        Dialect::Bigquery | Dialect::Databricks | Dialect::Clickhouse
    );
    let mut checks: Vec<String> = Vec::new();
    let mut foreign: Vec<String> = Vec::new();
    let keyed = object
        .properties
        .iter()
        .filter(|p| p.is_primary_key())
        .count();
    for p in &object.properties {
        let name = p.name();
        let q = quote(name, dialect);
        let here = place(&object.name, name);
        let key = p.is_primary_key() || p.is_unique();
        let ty = sql_type(p, dialect, key);
        let document = [
            "JSON",
            "JSONB",
            "TEXT",
            "STRING",
            "SUPER",
            "OBJECT",
            "NVARCHAR(MAX)",
        ]
        .contains(&ty.as_str());
        match p.logical_type {
            Some(LogicalType::Object) if !p.properties.is_empty() && document => {
                lost.push(format!(
                    "{here}: the nested properties (written as one {ty} column)"
                ));
            }
            Some(LogicalType::Map) if document => {
                lost.push(format!(
                    "{here}: the map's key and value types (written as {ty})"
                ));
            }
            Some(LogicalType::Array) if document => {
                lost.push(format!("{here}: the item type (written as {ty})"));
            }
            _ => {}
        }
        let mut line = format!("{q} {ty}");
        if p.is_required() || p.is_primary_key() {
            line.push_str(" NOT NULL");
        }
        if p.is_unique() && !(p.is_primary_key() && keyed == 1) {
            if matches!(dialect, Dialect::Bigquery | Dialect::Clickhouse) {
                lost.push(format!(
                    "{here}: unique is not a {} constraint",
                    dialect.name()
                ));
            } else {
                line.push_str(" UNIQUE");
            }
        }
        if p.is_primary_key() {
            keys.push((p.primary_key_position.unwrap_or(i64::MAX), name));
        }
        if let Some(d) = p.description.as_deref() {
            match dialect {
                Dialect::Mysql | Dialect::Databricks => {
                    line.push_str(&format!(" COMMENT {}", string_literal(d)))
                }
                Dialect::Bigquery => {
                    line.push_str(&format!(" OPTIONS(description={})", bigquery_string(d)))
                }
                Dialect::Postgres | Dialect::Snowflake | Dialect::Duckdb | Dialect::Redshift => {
                    comments.push(format!(
                        "COMMENT ON COLUMN {}.{q} IS {};",
                        quote(&table, dialect),
                        string_literal(d)
                    ))
                }
                _ => {
                    lines.push(format!("-- {}: {}", name, d.replace('\n', " ")));
                    lost.push(format!(
                        "{here}: the description is only an SQL comment in {}",
                        dialect.name()
                    ));
                }
            }
        }
        // Allowed values and bounds as CHECKs.
        let mut conditions = Vec::new();
        let values: Option<Vec<String>> = (!p.enum_values.is_empty())
            .then(|| {
                p.allowed_values()
                    .map(literal_sql)
                    .collect::<Option<Vec<_>>>()
            })
            .flatten();
        if let Some(values) = values {
            conditions.push(format!("{q} IN ({})", values.join(", ")));
        }
        if let Some(o) = &p.logical_type_options {
            for (bound, op) in [
                (&o.minimum, ">="),
                (&o.exclusive_minimum, ">"),
                (&o.maximum, "<="),
                (&o.exclusive_maximum, "<"),
            ] {
                if let Some(b) = bound {
                    conditions.push(format!("{q} {op} {}", bound_sql(b)));
                }
            }
            if let Some(n) = o.min_length {
                let f = if dialect == Dialect::Mssql {
                    "LEN"
                } else {
                    "LENGTH"
                };
                conditions.push(format!("{f}({q}) >= {n}"));
            }
            if let Some(pattern) = &o.pattern {
                match dialect {
                    Dialect::Postgres => {
                        conditions.push(format!("{q} ~ {}", string_literal(pattern)))
                    }
                    Dialect::Duckdb => {
                        conditions.push(format!("regexp_matches({q}, {})", string_literal(pattern)))
                    }
                    _ => lost.push(format!(
                        "{here}: pattern {pattern} has no CHECK in {}",
                        dialect.name()
                    )),
                }
            }
            if o.format.is_some()
                && p.logical_type == Some(LogicalType::String)
                && o.format.as_deref() != Some("uuid")
            {
                lost.push(format!(
                    "{here}: format {} is not a SQL constraint",
                    o.format.as_deref().unwrap_or_default()
                ));
            }
        }
        if !conditions.is_empty() {
            if checks_supported {
                checks.push(format!("CHECK ({})", conditions.join(" AND ")));
            } else {
                lost.push(format!(
                    "{here}: {} has no CHECK constraints ({})",
                    dialect.name(),
                    conditions.join(" AND ")
                ));
            }
        }
        for rel in &p.relationships {
            if let Some(to) = rel.to.as_ref().and_then(|t| t.as_slice().first())
                && let mesh_model::odcs::RefTarget::Shorthand {
                    object: other,
                    property,
                } = to.target()
            {
                if tables.contains(&other)
                    && dialect != Dialect::Bigquery
                    && dialect != Dialect::Clickhouse
                {
                    foreign.push(format!(
                        "FOREIGN KEY ({q}) REFERENCES {} ({})",
                        quote(other, dialect),
                        quote(property, dialect)
                    ));
                } else {
                    lost.push(format!("{here}: the foreign key to {other}.{property} (not a table of this contract, or not enforced in {})", dialect.name()));
                }
            }
        }
        for rule in &p.quality {
            lost.push(format!(
                "{here}: quality rule {} is not a SQL constraint",
                describe_rule(rule)
            ));
        }
        if p.classification.is_some() {
            lost.push(format!("{here}: classification is not part of the format"));
        }
        lines.push(line);
    }
    keys.sort();
    if !keys.is_empty() {
        let cols: Vec<String> = keys.iter().map(|(_, n)| quote(n, dialect)).collect();
        let enforced = if matches!(dialect, Dialect::Bigquery) {
            " NOT ENFORCED"
        } else {
            ""
        };
        if dialect == Dialect::Clickhouse {
            lost.push(format!(
                "{}: the primary key is only an ordering key in ClickHouse",
                object.name
            ));
        } else {
            lines.push(format!("PRIMARY KEY ({}){enforced}", cols.join(", ")));
        }
    }
    lines.extend(checks);
    lines.extend(foreign);
    for rule in &object.quality {
        lost.push(format!(
            "{}: quality rule {} is not a SQL constraint",
            object.name,
            describe_rule(rule)
        ));
    }
    // Comment lines must not take the comma that separates definitions.
    let mut body = String::new();
    let defs: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].starts_with("--"))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        body.push_str("  ");
        body.push_str(line);
        if !line.starts_with("--") && defs.last() != Some(&i) {
            body.push(',');
        }
        body.push('\n');
    }
    let mut out = format!("CREATE TABLE {} (\n{body})", quote(&table, dialect));
    match (dialect, object.description.as_deref()) {
        (Dialect::Mysql, Some(d)) => out.push_str(&format!(" COMMENT={}", string_literal(d))),
        (Dialect::Bigquery, Some(d)) => {
            out.push_str(&format!(" OPTIONS(description={})", bigquery_string(d)))
        }
        (Dialect::Databricks, Some(d)) => out.push_str(&format!(" COMMENT {}", string_literal(d))),
        (Dialect::Clickhouse, _) => {
            let order: Vec<String> = keys.iter().map(|(_, n)| quote(n, dialect)).collect();
            out.push_str(&format!(
                " ENGINE = MergeTree ORDER BY ({})",
                order.join(", ")
            ));
        }
        (Dialect::Postgres | Dialect::Snowflake | Dialect::Duckdb | Dialect::Redshift, Some(d)) => {
            comments.insert(
                0,
                format!(
                    "COMMENT ON TABLE {} IS {};",
                    quote(&table, dialect),
                    string_literal(d)
                ),
            );
        }
        (_, Some(_)) => lost.push(format!(
            "{}: the table description (no table comments in {})",
            object.name,
            dialect.name()
        )),
        _ => {}
    }
    out.push_str(";\n");
    for c in comments {
        out.push_str(&c);
        out.push('\n');
    }
    out
}

/// A rule as people name it: its name, metric or type.
pub(crate) fn describe_rule(rule: &DataQuality) -> String {
    rule.name
        .clone()
        .or_else(|| rule.metric.map(|m| m.as_str().to_owned()))
        .or_else(|| rule.rule.clone())
        .unwrap_or_else(|| {
            rule.quality_type
                .map_or("library", |t| t.as_str())
                .to_owned()
        })
}
