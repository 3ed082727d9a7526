//! `mesh import --from KIND SOURCE`: an ODCS contract written from what exists — a table of
//! PostgreSQL, MySQL/MariaDB or SQLite (columns, types, nullability, keys, unique constraints,
//! comments) or data files (their schema) — with a server entry that tests it where it is.

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
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
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
