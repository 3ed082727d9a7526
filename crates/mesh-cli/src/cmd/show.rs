//! `mesh show PRODUCT[@VERSION]` and `mesh versions PRODUCT`: what the catalog holds.

use std::io::Write;

use mesh_catalog::{ProductView, VersionView};

use crate::client::Failure;

use crate::output::{self, HINT, LOCATION, OK, WARNING, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// A product (`domain.product`), optionally at a version: `@1.2.0`, a major version `@1`,
    /// or `@latest`.
    product: String,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VersionsArgs {
    /// A product (`domain.product`).
    product: String,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn show(args: &ShowArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        match args.product.split_once('@') {
            Some((id, selector)) => {
                let result = client.version(id, selector).await;
                finish(result, args.output, print_version)
            }
            None => {
                let result = client.product(&args.product).await;
                finish(result, args.output, print_product)
            }
        }
    })
}

pub(crate) fn versions(args: &VersionsArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.versions(&args.product).await;
        finish(result, args.output, |versions| {
            let mut out = output::stdout();
            print_version_table(&mut out, versions)?;
            out.flush()?;
            Ok(())
        })
    })
}

/// Prints a result (text or JSON), or the error; not found is exit 1, other errors exit 2.
pub(crate) fn finish<T: serde::Serialize>(
    result: Result<T, Failure>,
    format: OutputFormat,
    text: impl FnOnce(&T) -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    match result {
        Ok(value) => {
            match format {
                OutputFormat::Text => text(&value)?,
                OutputFormat::Json => {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer_pretty(&mut out, &value)?;
                    writeln!(out)?;
                }
            }
            Ok(Outcome::Ok)
        }
        Err(e) => {
            output::error(&e.to_string());
            Ok(if e.is_refusal() {
                Outcome::Findings
            } else {
                Outcome::Error
            })
        }
    }
}

fn status(status: &str) -> String {
    match status {
        "active" => paint(OK, status),
        "deprecated" => paint(WARNING, status),
        "retired" | "draft" => paint(HINT, status),
        _ => status.to_owned(),
    }
}

fn print_product(p: &ProductView) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let title = p
        .name
        .as_deref()
        .map(|n| format!(" — {n}"))
        .unwrap_or_default();
    writeln!(out, "{}{title}", paint(LOCATION, &p.id))?;
    writeln!(out, "  domain  {}", p.domain)?;
    if let Some(team) = &p.team {
        writeln!(out, "  team    {team}")?;
    }
    writeln!(
        out,
        "  latest  {} ({})",
        p.latest.as_deref().unwrap_or("-"),
        status(&p.status)
    )?;
    writeln!(out, "  versions")?;
    print_version_table(&mut out, &p.versions)?;
    out.flush()?;
    Ok(())
}

fn print_version_table(out: &mut impl Write, versions: &[VersionView]) -> anyhow::Result<()> {
    let width = versions.iter().map(|v| v.version.len()).max().unwrap_or(0);
    for v in versions {
        let pad = 10usize.saturating_sub(v.status.len());
        let mut line = format!(
            "    {:<width$}  {}{:pad$}  published {} by {}",
            v.version,
            status(&v.status),
            "",
            v.published_at,
            v.published_by
        );
        if let Some(sunset) = &v.sunset {
            line.push_str(&format!(", sunset {sunset}"));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn print_version(v: &VersionView) -> anyhow::Result<()> {
    let mut out = output::stdout();
    writeln!(
        out,
        "{}  {}",
        paint(LOCATION, &format!("{}@{}", v.product, v.version)),
        status(&v.status)
    )?;
    writeln!(out, "  published {} by {}", v.published_at, v.published_by)?;
    writeln!(out, "  digest    {}", &v.digest[..v.digest.len().min(16)])?;
    if let Some(sunset) = &v.sunset {
        writeln!(out, "  sunset    {sunset}")?;
    }
    if let Some(guide) = &v.migration_guide {
        writeln!(out, "  migration {guide}")?;
    }
    if let Some(purpose) = v
        .descriptor
        .as_ref()
        .and_then(|d| d["description"]["purpose"].as_str())
    {
        writeln!(out, "  purpose   {purpose}")?;
    }
    for port in &v.ports {
        writeln!(
            out,
            "  output port {}  contract {}  compatibility {}",
            paint(LOCATION, &port.port),
            port.contract_id,
            port.compatibility
        )?;
        for object in port.contract["schema"].as_array().into_iter().flatten() {
            let columns: Vec<String> = object["properties"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let mut text = format!(
                        "{} {}",
                        p["name"].as_str().unwrap_or("?"),
                        p["logicalType"].as_str().unwrap_or("-")
                    );
                    if p["required"] == true {
                        text.push('!');
                    }
                    text
                })
                .collect();
            writeln!(
                out,
                "    {}: {}",
                object["name"].as_str().unwrap_or("?"),
                columns.join(", ")
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
