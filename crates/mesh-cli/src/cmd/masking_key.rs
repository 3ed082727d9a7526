//! `mesh masking-key`: the deployment's masking key, which `hash` masks are HMAC-SHA256 under
//! (made with the catalog by `mesh init`). `show` prints its fingerprint and age; `rotate`
//! replaces it, after which every hashed value readers see changes. Admins only; never prints
//! the key.

use std::io::Write;

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
    /// The key's fingerprint, when and by whom it was made.
    Show(CommonArgs),
    /// Replace the key with a new random one: hashes change, and no longer join with hashes
    /// taken before (recorded in the audit log as `masking_key.rotated`).
    Rotate(CommonArgs),
}

#[derive(Debug, clap::Args)]
struct CommonArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format: text, or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let (common, rotate) = match &args.command {
        Command::Show(c) => (c, false),
        Command::Rotate(c) => (c, true),
    };
    crate::runtime()?.block_on(async {
        let client = common.catalog.connect().await?;
        let result = if rotate {
            client.rotate_masking_key().await
        } else {
            client.masking_key().await
        };
        finish(result, common.output, |info| {
            let mut out = output::stdout();
            writeln!(
                out,
                "masking key {}{} (made {} by {})",
                info.fingerprint,
                if rotate { " (new)" } else { "" },
                info.created_at,
                info.created_by
            )?;
            out.flush()?;
            Ok(())
        })
    })
}
