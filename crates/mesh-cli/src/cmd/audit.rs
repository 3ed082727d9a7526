//! `mesh audit`: the catalog's event log, which nothing rewrites — access requests and
//! decisions, grants and revocations, every read and every refused read, policy decisions,
//! publishes and runs — oldest first, locally or through a server.

use std::io::Write;

use crate::cmd::show::finish;
use crate::output;
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only events about this product (e.g. `ecommerce.orders`).
    product: Option<String>,
    /// Only events whose kind starts with this (e.g. `access.` or `access.read`).
    #[arg(long)]
    kind: Option<String>,
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// At most this many events.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format: a table, or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let mut events = Vec::new();
        let mut after = args.after;
        let result = loop {
            match client.events(after, 1000, args.product.as_deref()).await {
                Ok(page) => {
                    let Some(last) = page.last().map(|e| e.seq) else {
                        break Ok(());
                    };
                    after = last;
                    events
                        .extend(page.into_iter().filter(|e| {
                            args.kind.as_deref().is_none_or(|k| e.kind.starts_with(k))
                        }));
                    if events.len() >= args.limit {
                        events.truncate(args.limit);
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        finish(result.map(|()| events), args.output, |events| {
            let mut out = output::stdout();
            for e in events {
                writeln!(
                    out,
                    "{:>6}  {}  {:<22} {:<28} {:<16} {}",
                    e.seq, e.at, e.kind, e.subject, e.actor, e.payload
                )?;
            }
            writeln!(out, "({} events)", events.len())?;
            out.flush()?;
            Ok(())
        })
    })
}
