//! `mesh deprecate PRODUCT@VERSION --sunset DATE --guide TEXT` and `mesh retire PRODUCT@VERSION`:
//! the end of a version's life. Consumers of a deprecated version are notified through the
//! event log; retiring before the sunset date is refused.

use std::io::Write;

use anyhow::Context;

use crate::cmd::show::finish;
use crate::output::{self, LOCATION, WARNING, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct DeprecateArgs {
    /// The version to deprecate: `domain.product@1.2.0`.
    target: String,

    /// The last day the version is served (YYYY-MM-DD, after today).
    #[arg(long, value_name = "DATE")]
    sunset: String,

    /// What consumers should do instead (e.g. "move to @2: `amount` is now `total`").
    #[arg(long, value_name = "TEXT")]
    guide: String,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RetireArgs {
    /// The version to retire: `domain.product@1.2.0`.
    target: String,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

fn split(target: &str) -> anyhow::Result<(&str, &str)> {
    target
        .split_once('@')
        .filter(|(p, v)| !p.is_empty() && semver::Version::parse(v).is_ok())
        .with_context(|| format!("`{target}` is not PRODUCT@VERSION (e.g. sales.orders@1.2.0)"))
}

pub(crate) fn deprecate(args: &DeprecateArgs) -> anyhow::Result<Outcome> {
    let (id, version) = split(&args.target)?;
    let sunset = chrono::NaiveDate::parse_from_str(&args.sunset, "%Y-%m-%d")
        .with_context(|| format!("--sunset `{}` is not a date (YYYY-MM-DD)", args.sunset))?;
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.deprecate(id, version, sunset, &args.guide).await;
        finish(result, args.output, |done| {
            let mut out = output::stdout();
            writeln!(
                out,
                "{} {} until {}",
                paint(WARNING, "Deprecated"),
                paint(LOCATION, &format!("{id}@{version}")),
                sunset
            )?;
            if done.consumers.is_empty() {
                writeln!(out, "  no known consumers")?;
            } else {
                writeln!(out, "  consumers notified:")?;
                for c in &done.consumers {
                    writeln!(
                        out,
                        "    {}@{} (input port {})",
                        c.product, c.version, c.input_port
                    )?;
                }
            }
            out.flush()?;
            Ok(())
        })
    })
}

pub(crate) fn retire(args: &RetireArgs) -> anyhow::Result<Outcome> {
    let (id, version) = split(&args.target)?;
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.retire(id, version).await;
        finish(result, args.output, |_| {
            let mut out = output::stdout();
            writeln!(
                out,
                "Retired {}",
                paint(LOCATION, &format!("{id}@{version}"))
            )?;
            out.flush()?;
            Ok(())
        })
    })
}
