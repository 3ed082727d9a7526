//! `mesh serve`: the catalog's HTTP API (and, later, the portal) on one port. Many instances can
//! serve one PostgreSQL catalog; each is stateless.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;

use crate::Outcome;
use crate::workspace::{CatalogArgs, redact};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,

    #[command(flatten)]
    catalog: CatalogArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let catalog = args.catalog.open().await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let mut err = anstream::stderr();
        writeln!(
            err,
            "mesh serve: listening on http://{address} (catalog {}); API document at http://{address}/openapi.json",
            redact(&args.catalog.url()?)
        )?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        mesh_server::serve(listener, catalog, shutdown)
            .await
            .context("the server stopped")?;
        Ok(Outcome::Ok)
    })
}
