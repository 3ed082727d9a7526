//! `mesh export --to FORMAT CONTRACT`: the contract for the tools a team already has — SQL DDL per
//! dialect, JSON Schema, Avro, Protobuf, dbt models YAML, a Great Expectations suite, SodaCL checks, a
//! Markdown or HTML data sheet, or ODCS itself in any supported version. What the format cannot
//! express is listed, one warning per lost rule, never dropped silently.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use mesh_interop::{ExportFormat, ExportOptions};

use crate::Outcome;
use crate::output::{self, LOCATION, OK, paint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum To {
    Sql,
    Jsonschema,
    Avro,
    Protobuf,
    Dbt,
    GreatExpectations,
    Sodacl,
    Markdown,
    Html,
    Odcs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The format to write.
    #[arg(long, value_enum)]
    to: To,
    /// The contract (*.odcs.yaml).
    contract: PathBuf,
    /// Write here instead of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// `sql`, `dbt`: the dialect of the types (default postgres).
    #[arg(long, value_parser = crate::cmd::import::parse_dialect)]
    dialect: Option<mesh_interop::Dialect>,
    /// `odcs`: the apiVersion to write (v3.2.0, v3.1.0, v3.0.2, ...; default: the contract's).
    #[arg(long)]
    odcs_version: Option<String>,
    /// Fail (exit 1) when the format cannot carry everything in the contract.
    #[arg(long)]
    strict: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let display = args.contract.display().to_string();
    let text = crate::files::read_text(&args.contract)?;
    let parsed = mesh_model::parse_contract(&text);
    if parsed.has_errors() {
        for d in parsed.diagnostics.iter().filter(|d| d.is_error()) {
            output::error(&d.render(&display));
        }
        output::error(&format!(
            "{display} does not lint; fix it before exporting (mesh lint {display})"
        ));
        return Ok(Outcome::Findings);
    }
    let Some(contract) = parsed.model else {
        bail!("{display}: not a data contract");
    };
    if args.odcs_version.is_some() && args.to != To::Odcs {
        bail!("--odcs-version is for --to odcs");
    }
    if args.dialect.is_some() && !matches!(args.to, To::Sql | To::Dbt) {
        bail!("--dialect is for --to sql and --to dbt");
    }
    let format = match args.to {
        To::Sql => ExportFormat::Sql,
        To::Jsonschema => ExportFormat::JsonSchema,
        To::Avro => ExportFormat::Avro,
        To::Protobuf => ExportFormat::Protobuf,
        To::Dbt => ExportFormat::Dbt,
        To::GreatExpectations => ExportFormat::GreatExpectations,
        To::Sodacl => ExportFormat::SodaCl,
        To::Markdown => ExportFormat::Markdown,
        To::Html => ExportFormat::Html,
        To::Odcs => ExportFormat::Odcs,
    };
    let options = ExportOptions {
        dialect: args.dialect,
        odcs_version: args.odcs_version.clone(),
    };
    let exported = match mesh_interop::export(format, &contract, &options) {
        Ok(e) => e,
        Err(e) => {
            output::error(&format!("{display}: {e}"));
            return Ok(Outcome::Error);
        }
    };
    for lost in &exported.lost {
        output::warning(&format!(
            "{display}: not carried to {}: {lost}",
            format.as_str()
        ));
    }
    match &args.output {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(path, &exported.text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let _ = writeln!(
                output::stdout(),
                "{} {} ({}{})",
                paint(OK, "✓ wrote"),
                paint(LOCATION, &path.display().to_string()),
                format.as_str(),
                if exported.lost.is_empty() {
                    String::new()
                } else {
                    format!(", {} rule(s) not carried", exported.lost.len())
                }
            );
        }
        None => std::io::stdout()
            .lock()
            .write_all(exported.text.as_bytes())?,
    }
    Ok(if args.strict && !exported.lost.is_empty() {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}
