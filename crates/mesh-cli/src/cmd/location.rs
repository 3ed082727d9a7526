//! `mesh location`: external locations, where a domain's source products may read (object
//! store prefixes, folders). Platform admins register each one for one domain; a source under
//! none of its domain's locations is refused at `mesh run`, and the platform's managed storage is
//! never a location — another domain's data is read through an input port and a grant.

use std::io::Write;

use mesh_catalog::locations::{LocationView, NewLocation};

use crate::cmd::show::finish;
use crate::output;
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Register a location for a domain's sources (admins; judged by policies `on: location`).
    Add(AddArgs),
    /// The locations you may see: all for admins, your domains' for the others.
    List(CommonArgs),
    /// Remove a location (admins): sources under it are no longer read.
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
struct CommonArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format: text, or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Its name: letters, digits, `_` and `-`.
    name: String,
    /// An absolute folder, or a URL (`s3://bucket/prefix`, `gs://`, `az://`, `abfss://`,
    /// `file:///path`).
    url: String,
    /// The domain whose sources may read under it.
    #[arg(long)]
    domain: String,
    /// Replace the location of this name in one step (a refused new URL leaves the old one).
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, clap::Args)]
struct RemoveArgs {
    name: String,
    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        match &args.command {
            Command::Add(add) => {
                let client = add.common.catalog.connect().await?;
                let new = NewLocation {
                    name: add.name.clone(),
                    url: add.url.clone(),
                    domain: add.domain.clone(),
                    replace: add.replace,
                };
                finish(client.add_location(&new).await, add.common.output, |l| {
                    line("added", l)
                })
            }
            Command::List(common) => {
                let client = common.catalog.connect().await?;
                finish(client.locations().await, common.output, |all| {
                    let mut out = output::stdout();
                    if all.is_empty() {
                        writeln!(out, "no locations; an admin adds one with: mesh location add NAME URL --domain DOMAIN")?;
                    }
                    for l in all {
                        writeln!(out, "{}\t{}\t{}\t(added {} by {})", l.name, l.url, l.domain, l.created_at, l.created_by)?;
                    }
                    out.flush()?;
                    Ok(())
                })
            }
            Command::Remove(remove) => {
                let client = remove.common.catalog.connect().await?;
                finish(
                    client.remove_location(&remove.name).await,
                    remove.common.output,
                    |l| line("removed", l),
                )
            }
        }
    })
}

fn line(what: &str, l: &LocationView) -> anyhow::Result<()> {
    let mut out = output::stdout();
    writeln!(
        out,
        "{what} location {} = {} for domain {}",
        l.name, l.url, l.domain
    )?;
    out.flush()?;
    Ok(())
}
