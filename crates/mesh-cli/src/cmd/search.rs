//! `mesh search TERMS [--domain --tag --type --classification --status]`: ranked, typo-tolerant
//! product search over the catalog, with facet counts.

use std::io::Write;

use mesh_catalog::search::{SearchQuery, SearchResults};

use crate::cmd::show::finish;
use crate::output::{self, HINT, LOCATION, WARNING, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Words to look for in names, tags, columns, owners and descriptions.
    terms: Vec<String>,

    /// Only products of this domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only products with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only products of this type (source, aggregate, consumer-aligned, derived).
    #[arg(long = "type", value_name = "TYPE")]
    product_type: Option<String>,
    /// Only products of this classification (public, internal, confidential, restricted).
    #[arg(long)]
    classification: Option<String>,
    /// Only products in this status (retired products only show when asked for).
    #[arg(long)]
    status: Option<String>,
    /// At most this many results (1 to 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    limit: u16,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let query = SearchQuery {
        q: args.terms.join(" "),
        domain: args.domain.clone(),
        tag: args.tag.clone(),
        product_type: args.product_type.clone(),
        classification: args.classification.clone(),
        status: args.status.clone(),
        limit: Some(usize::from(args.limit)),
    };
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.search(&query).await;
        finish(result, args.output, print)
    })
}

fn print(results: &SearchResults) -> anyhow::Result<()> {
    let mut out = output::stdout();
    if results.hits.is_empty() {
        writeln!(out, "no products found")?;
        out.flush()?;
        return Ok(());
    }
    for hit in &results.hits {
        let status = if hit.status == "active" {
            String::new()
        } else {
            format!(" {}", paint(WARNING, &hit.status))
        };
        writeln!(
            out,
            "{}{}{status}  {}",
            paint(LOCATION, &hit.id),
            hit.version
                .as_deref()
                .map(|v| format!("@{v}"))
                .unwrap_or_default(),
            hit.name.as_deref().unwrap_or("")
        )?;
        if let Some(purpose) = &hit.purpose {
            writeln!(out, "  {purpose}")?;
        }
    }
    let shown = results.hits.len();
    let mut facets = Vec::new();
    for (facet, values) in &results.facets {
        let mut values: Vec<(&String, &usize)> = values.iter().collect();
        values.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let listed: Vec<String> = values
            .iter()
            .take(5)
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        facets.push(format!("{facet}: {}", listed.join(", ")));
    }
    writeln!(
        out,
        "\n{} of {} matches  {}",
        shown,
        results.total,
        paint(HINT, &facets.join(" · "))
    )?;
    out.flush()?;
    Ok(())
}
