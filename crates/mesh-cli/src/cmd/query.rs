//! `mesh query "SQL"`: a governed read over the output ports you may read — your domain's and
//! what your grants cover (through a server, as your token; locally, as the catalog's admin).
//! Tables are `domain.product`; columns outside a grant come back masked.

use std::io::Write;

use crate::cmd::show::finish;
use crate::output;
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The query (read-only DataFusion SQL).
    sql: String,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format: a table, or JSON (`{columns, rows}`).
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
    /// Write the result as `csv`, `arrow` (Arrow IPC stream) or `parquet` to standard output
    /// instead.
    #[arg(long, value_name = "FORMAT", conflicts_with = "output")]
    format: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        if let Some(format) = &args.format {
            let Some(format) = mesh_engine::query::ResultFormat::parse(format) else {
                output::error(&format!(
                    "format `{format}` is not json, csv, arrow or parquet"
                ));
                return Ok(Outcome::Findings);
            };
            let mut out = std::io::BufWriter::new(std::io::stdout());
            let result = client.query_to(&args.sql, format, &mut out).await;
            out.flush()?;
            return match result {
                Ok(()) => Ok(Outcome::Ok),
                Err(e) => {
                    output::error(&e.to_string());
                    Ok(if e.is_refusal() {
                        Outcome::Findings
                    } else {
                        Outcome::Error
                    })
                }
            };
        }
        let result = client.query(&args.sql).await;
        finish(result, args.output, |doc| {
            let mut out = output::stdout();
            let columns: Vec<&str> = doc["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect();
            writeln!(out, "{}", columns.join("\t"))?;
            let rows = doc["rows"].as_array().cloned().unwrap_or_default();
            for row in &rows {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| match &row[*c] {
                        serde_json::Value::Null => "NULL".to_owned(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                writeln!(out, "{}", cells.join("\t"))?;
            }
            writeln!(out, "({} rows)", rows.len())?;
            out.flush()?;
            Ok(())
        })
    })
}
