//! `mesh lineage PRODUCT [--upstream|--downstream] [--depth N] [--column C]`: who a product reads
//! from and who reads it, at product or column level — as text, JSON (Marquez's graph shape),
//! Graphviz DOT or Mermaid.

use std::collections::HashSet;
use std::io::Write;

use mesh_catalog::lineage::{Direction, Graph};

use crate::cmd::show::finish;
use crate::output::{self, HINT, LOCATION, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    #[default]
    Text,
    /// Marquez's graph shape: {"graph": [{id, type, data, inEdges, outEdges}]}.
    Json,
    /// Graphviz.
    Dot,
    /// A Mermaid flowchart (renders in GitHub markdown).
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A product (`domain.product`).
    product: String,

    /// Only what the product reads from.
    #[arg(long, conflicts_with = "downstream")]
    upstream: bool,
    /// Only what reads the product.
    #[arg(long)]
    downstream: bool,
    /// How many products away (for --column: how many edges).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=50))]
    depth: u16,
    /// Start from this column of the product's output ports.
    #[arg(long)]
    column: Option<String>,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let direction = if args.upstream {
        Direction::Upstream
    } else if args.downstream {
        Direction::Downstream
    } else {
        Direction::Both
    };
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client
            .lineage(
                &args.product,
                usize::from(args.depth),
                direction,
                args.column.as_deref(),
            )
            .await;
        let format = if args.output == Format::Json {
            OutputFormat::Json
        } else {
            OutputFormat::Text
        };
        finish(result, format, |graph| {
            let mut out = output::stdout();
            let text = match args.output {
                Format::Dot => dot(graph),
                Format::Mermaid => mermaid(graph),
                _ => text(graph),
            };
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        })
    })
}

/// Edges between the nodes of the answer, each once.
fn edges(graph: &Graph) -> Vec<(String, String)> {
    let inside: HashSet<&str> = graph.graph.iter().map(|n| n.id.as_str()).collect();
    let mut out: Vec<(String, String)> = graph
        .graph
        .iter()
        .flat_map(|n| n.out_edges.iter())
        .filter(|e| inside.contains(e.destination.as_str()))
        .map(|e| (e.origin.clone(), e.destination.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn short(id: &str) -> (&str, &str) {
    let (kind, rest) = id.split_once(':').unwrap_or(("", id));
    let kind = match kind {
        "job" => "job",
        "dataset" => "dataset",
        "datasetField" => "column",
        other => other,
    };
    (kind, rest)
}

fn text(graph: &Graph) -> String {
    let mut out = String::new();
    for node in &graph.graph {
        let (kind, name) = short(&node.id);
        out.push_str(&format!(
            "{} {}\n",
            paint(HINT, &format!("{kind:<7}")),
            paint(LOCATION, name)
        ));
    }
    let edges = edges(graph);
    if !edges.is_empty() {
        out.push('\n');
        for (a, b) in edges {
            out.push_str(&format!("  {} → {}\n", short(&a).1, short(&b).1));
        }
    }
    out
}

fn dot(graph: &Graph) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n");
    for node in &graph.graph {
        let (kind, name) = short(&node.id);
        let shape = match kind {
            "job" => "box",
            "column" => "note",
            _ => "cylinder",
        };
        out.push_str(&format!(
            "  {} [label={}, shape={shape}];\n",
            quote(&node.id),
            quote(name)
        ));
    }
    for (a, b) in edges(graph) {
        out.push_str(&format!("  {} -> {};\n", quote(&a), quote(&b)));
    }
    out.push_str("}\n");
    out
}

fn mermaid(graph: &Graph) -> String {
    let index = |id: &str| graph.graph.iter().position(|n| n.id == id).unwrap_or(0);
    let label = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n");
    for (i, node) in graph.graph.iter().enumerate() {
        let (kind, name) = short(&node.id);
        let text = label(name);
        let shape = match kind {
            "job" => format!("[\"{text}\"]"),
            "column" => format!(">\"{text}\"]"),
            _ => format!("[(\"{text}\")]"),
        };
        out.push_str(&format!("  n{i}{shape}\n"));
    }
    for (a, b) in edges(graph) {
        out.push_str(&format!("  n{} --> n{}\n", index(&a), index(&b)));
    }
    out
}
