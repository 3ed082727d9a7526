//! `mesh import --from KIND SOURCE`: an ODCS contract written from what exists — a table of
//! PostgreSQL, MySQL/MariaDB or SQLite (columns, types, nullability, keys, unique constraints,
//! comments) or data files (their schema), with a server entry that tests it where it is; or a
//! schema file a team already has: SQL DDL, JSON Schema, Avro, Protobuf, a dbt manifest
//! (`mesh-interop`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use mesh_engine::import::{Origin, contract};

use crate::Outcome;
use crate::output::{self, LOCATION, OK, paint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum From {
    Postgres,
    Postgresql,
    Mysql,
    Mariadb,
    Sqlite,
    Parquet,
    Csv,
    Json,
    Delta,
    /// SQL DDL (`CREATE TABLE ...`) in the `--dialect` given.
    Sql,
    /// A JSON Schema (draft 4 to 2020-12) of an object.
    Jsonschema,
    /// An Avro schema (`.avsc`) of a record.
    Avro,
    /// A Protobuf file (`.proto`) and its imports: each top-level message.
    Protobuf,
    /// A dbt `target/manifest.json` (every model, or those `--model` names).
    Dbt,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What SOURCE is.
    #[arg(long, value_enum)]
    from: From,
    /// A database URL without a password (`postgres://user@host:5432/shop`; the password from
    /// DATACONTRACT_POSTGRES_PASSWORD / DATACONTRACT_MYSQL_PASSWORD), a SQLite file, or a data
    /// path or glob (local or s3://).
    source: String,
    /// The table (`schema.table` on PostgreSQL; default schema `public`).
    #[arg(long)]
    table: Option<String>,
    /// The contract's id (default: the table's or file's name).
    #[arg(long)]
    id: Option<String>,
    /// Write the contract here instead of standard output (never over an existing file).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// `--from sql`: the dialect of the DDL (postgres, mysql, sqlite, snowflake, bigquery,
    /// duckdb, mssql, databricks, redshift, clickhouse, generic).
    #[arg(long, value_parser = parse_dialect)]
    dialect: Option<mesh_interop::Dialect>,
    /// `--from protobuf`: another folder where imports are found (besides the file's own).
    #[arg(long = "proto-path")]
    proto_paths: Vec<PathBuf>,
    /// `--from dbt`: import only this model (repeat for several).
    #[arg(long = "model")]
    models: Vec<String>,
    /// Update this existing contract instead of writing a new one: the columns, their types,
    /// keys, descriptions and allowed values come from SOURCE; its rules, SLAs, servers and
    /// team stay (the dbt bridge).
    #[arg(long, conflicts_with = "output")]
    into: Option<PathBuf>,
}

pub(crate) fn parse_dialect(text: &str) -> Result<mesh_interop::Dialect, String> {
    mesh_interop::Dialect::parse(text).ok_or_else(|| {
        let all: Vec<&str> = mesh_interop::Dialect::ALL
            .iter()
            .map(|d| d.as_str())
            .collect();
        format!("`{text}` is not a dialect mesh knows ({})", all.join(", "))
    })
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let schema_file = match args.from {
        From::Sql => Some(mesh_interop::ImportFormat::Sql),
        From::Jsonschema => Some(mesh_interop::ImportFormat::JsonSchema),
        From::Avro => Some(mesh_interop::ImportFormat::Avro),
        From::Protobuf => Some(mesh_interop::ImportFormat::Protobuf),
        From::Dbt => Some(mesh_interop::ImportFormat::Dbt),
        _ => None,
    };
    if let Some(format) = schema_file {
        return from_schema_file(args, format);
    }
    if args.into.is_some() || !args.models.is_empty() || args.dialect.is_some() {
        bail!(
            "--into, --model and --dialect are for schema files (--from sql, jsonschema, avro, dbt)"
        );
    }
    let database = matches!(
        args.from,
        From::Postgres | From::Postgresql | From::Mysql | From::Mariadb | From::Sqlite
    );
    let origin = if database {
        let Some(table) = args.table.clone() else {
            bail!("--table is needed to import from a database (schema.table on PostgreSQL)");
        };
        let url = match args.from {
            From::Sqlite if !args.source.starts_with("sqlite://") => {
                // Absolute: the contract may live anywhere.
                let file = std::fs::canonicalize(&args.source)
                    .ok()
                    .filter(|p| p.is_file())
                    .with_context(|| format!("{}: no such SQLite database file", args.source))?;
                format!("sqlite://{}", file.display())
            }
            _ => args.source.clone(),
        };
        let target = mesh_engine::db::Target::from_url(&url, "origin")
            .map_err(|e| anyhow::anyhow!("{}: {}", e.place, e.reason))?;
        Origin::Table { target, table }
    } else {
        if args.table.is_some() {
            bail!("--table is for databases; files are one table");
        }
        let format = match args.from {
            From::Parquet => "parquet",
            From::Csv => "csv",
            From::Json => "json",
            _ => "delta",
        };
        Origin::Files {
            location: mesh_engine::Location::from_path(&args.source, Some(format))?,
        }
    };
    if let Some(path) = &args.output
        && path.exists()
    {
        bail!("{} exists; give another --output", path.display());
    }
    let runtime = crate::runtime()?;
    let yaml = runtime
        .block_on(contract(&origin, args.id.as_deref()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match &args.output {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(path, &yaml)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let shown = path.display().to_string();
            let _ = writeln!(
                output::stdout(),
                "{} {}; next: mesh lint {shown} && mesh test {shown}",
                paint(OK, "✓ wrote"),
                paint(LOCATION, &shown)
            );
        }
        None => std::io::stdout().lock().write_all(yaml.as_bytes())?,
    }
    Ok(Outcome::Ok)
}

/// `--from sql|jsonschema|avro|dbt`: a schema file to a contract, or into an existing one.
fn from_schema_file(args: &Args, format: mesh_interop::ImportFormat) -> anyhow::Result<Outcome> {
    if args.table.is_some() {
        bail!("--table is for databases");
    }
    if !args.models.is_empty() && format != mesh_interop::ImportFormat::Dbt {
        bail!("--model is for --from dbt");
    }
    let path = std::path::Path::new(&args.source);
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", args.source))?
        .len();
    if size > 512 << 20 {
        bail!(
            "{}: {} MiB is not a schema file (mesh reads up to 512 MiB)",
            args.source,
            size >> 20
        );
    }
    let text = crate::files::read_text(path)?;
    let options = mesh_interop::ImportOptions {
        id: args.id.clone(),
        dialect: args.dialect,
        models: args.models.clone(),
        proto_paths: args.proto_paths.clone(),
    };
    let imported = match mesh_interop::import(format, &args.source, &text, &options) {
        Ok(imported) => imported,
        Err(p) => {
            let mut message = p.message.clone();
            if let Some(hint) = &p.hint {
                message.push_str(&format!("\n  = hint: {hint}"));
            }
            output::error_at(&format!("{}:{}:{}", p.file, p.line, p.col), &message);
            return Ok(Outcome::Error);
        }
    };
    for note in &imported.notes {
        let place = match note.at {
            Some((line, col)) => format!("{}:{line}:{col}", args.source),
            None => args.source.clone(),
        };
        output::warning_at(&place, &note.message);
    }
    if let Some(into) = &args.into {
        return merge_into(into, &imported);
    }
    let yaml = imported.contract_yaml();
    // What we write must lint clean: anything else is a bug here, not the user's problem.
    let check = mesh_model::parse_contract(&yaml);
    if check.has_errors() {
        let problems: Vec<String> = check
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render("<imported>"))
            .collect();
        bail!(
            "the imported contract does not lint (a bug in mesh import, please report it):\n{}",
            problems.join("\n")
        );
    }
    write_contract(args.output.as_deref(), &yaml)
}

fn write_contract(path: Option<&std::path::Path>, yaml: &str) -> anyhow::Result<Outcome> {
    match path {
        Some(path) => {
            if path.exists() {
                bail!(
                    "{} exists; give another --output (or --into to update it)",
                    path.display()
                );
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(path, yaml)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let shown = path.display().to_string();
            let _ = writeln!(
                output::stdout(),
                "{} {}; next: mesh lint {shown} && mesh test {shown}",
                paint(OK, "✓ wrote"),
                paint(LOCATION, &shown)
            );
        }
        None => std::io::stdout().lock().write_all(yaml.as_bytes())?,
    }
    Ok(Outcome::Ok)
}

/// The dbt bridge: the contract at `into` takes the source's columns and keeps its own rules.
fn merge_into(
    into: &std::path::Path,
    imported: &mesh_interop::Imported,
) -> anyhow::Result<Outcome> {
    let display = into.display().to_string();
    let text = crate::files::read_text(into)?;
    let parsed = mesh_model::parse_contract(&text);
    if parsed.has_errors() {
        for d in parsed.diagnostics.iter().filter(|d| d.is_error()) {
            output::error(&d.render(&display));
        }
        return Ok(Outcome::Error);
    }
    let Some(root) = parsed.root else {
        bail!("{display}: empty");
    };
    let (merged, changes) = mesh_interop::merge(&root.to_json(), imported)
        .map_err(|e| anyhow::anyhow!("{display}: {e}"))?;
    let yaml = mesh_interop::to_yaml(&merged);
    let check = mesh_model::parse_contract(&yaml);
    if check.has_errors() {
        let problems: Vec<String> = check
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(&display))
            .collect();
        bail!(
            "the updated contract would not lint; {display} is unchanged:\n{}",
            problems.join("\n")
        );
    }
    let mut out = output::stdout();
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "{} {display} is in step with {}",
            paint(OK, "✓"),
            imported.origin
        );
        return Ok(Outcome::Ok);
    }
    let tmp = into.with_extension("yaml.mesh-tmp");
    std::fs::write(&tmp, &yaml).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, into).with_context(|| format!("cannot replace {display}"))?;
    let _ = writeln!(
        out,
        "{} updated {} from {}:",
        paint(OK, "✓"),
        paint(LOCATION, &display),
        imported.origin
    );
    for change in &changes {
        let _ = writeln!(out, "  {change}");
    }
    let _ = writeln!(
        out,
        "next: mesh lint {display}; compare with the published version: mesh changelog OLD {display}"
    );
    Ok(Outcome::Ok)
}
