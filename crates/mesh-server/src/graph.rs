//! Lineage as SVG, laid out by the server so the portal needs no script to show it.
//!
//! A layered drawing: each node's layer is its longest distance from a node nothing feeds,
//! layers run left to right, and within a layer nodes are ordered by the mean position of what
//! feeds them (one barycentre pass), which keeps the edges of a mesh's usual shapes — chains,
//! fans in, fans out — from crossing. Datasets are boxes, jobs (pipelines) are rounded; the
//! product in focus is outlined. Every node and edge carries `data-` attributes and a `<title>`,
//! for screen readers and for tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use mesh_catalog::lineage::Graph;

const WIDTH: f64 = 260.0;
const HEIGHT: f64 = 40.0;
const GAP_X: f64 = 70.0;
const GAP_Y: f64 = 22.0;
const MARGIN: f64 = 16.0;

/// `text` escaped for SVG (XML) text and attributes.
pub(crate) fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What a node is called on the drawing: the product, port or file, not the namespace; for a
/// column, its dataset's and its own name. Long names keep their end, the specific part.
fn label(id: &str) -> String {
    if let Some((dataset, column)) = id
        .strip_prefix("datasetField:")
        .and_then(|f| f.rsplit_once(':'))
    {
        let name = label(&format!("dataset:{dataset}"));
        // A port (`domain.product.port`) by its port name; a file by its file name.
        let name = match dataset.starts_with("mesh:") {
            true => name.rsplit('.').next().unwrap_or(&name).to_owned(),
            false => name,
        };
        return shorten(&format!("{name}.{column}"));
    }
    let rest = id
        .strip_prefix("job:mesh:")
        .or_else(|| id.strip_prefix("dataset:mesh:"))
        .or_else(|| id.strip_prefix("datasetField:mesh:"));
    let text = match rest {
        Some(r) => r.to_owned(),
        None => {
            // Another namespace: its last path segment (a file, a table).
            let tail = id.rsplit(['/', ':']).next().unwrap_or(id);
            tail.to_owned()
        }
    };
    shorten(&text)
}

/// At most 34 characters, keeping the end.
fn shorten(text: &str) -> String {
    let n = text.chars().count();
    if n > 34 {
        let kept: String = text.chars().skip(n - 33).collect();
        format!("…{kept}")
    } else {
        text.to_owned()
    }
}

/// `graph` drawn as an SVG document, `focus` (a product id) outlined.
pub(crate) fn svg(graph: &Graph, focus: &str) -> String {
    let ids: Vec<&str> = graph.graph.iter().map(|n| n.id.as_str()).collect();
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for n in &graph.graph {
        for e in &n.out_edges {
            if let (Some(&a), Some(&b)) = (
                index.get(e.origin.as_str()),
                index.get(e.destination.as_str()),
            ) && !edges.contains(&(a, b))
            {
                edges.push((a, b));
            }
        }
    }

    // Longest-path layers, in topological order (Kahn); a cycle's nodes keep layer 0.
    let n = ids.len();
    let mut incoming = vec![0usize; n];
    for &(_, b) in &edges {
        incoming[b] += 1;
    }
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| incoming[i] == 0).collect();
    ready.sort_by_key(|&i| ids[i]);
    while let Some(a) = ready.pop() {
        for &(from, to) in &edges {
            if from == a {
                layer[to] = layer[to].max(layer[a] + 1);
                incoming[to] -= 1;
                if incoming[to] == 0 {
                    ready.push(to);
                }
            }
        }
    }
    let mut layers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, depth) in layer.iter().enumerate() {
        layers.entry(*depth).or_default().push(i);
    }
    // Order each layer by its feeders' mean position (the first layer by name).
    let mut row = vec![0.0f64; n];
    for (depth, members) in layers.iter_mut() {
        if *depth == 0 {
            members.sort_by_key(|&i| label(ids[i]));
        } else {
            let mean = |i: usize| {
                let feeders: Vec<f64> = edges
                    .iter()
                    .filter(|(_, to)| *to == i)
                    .map(|(from, _)| row[*from])
                    .collect();
                if feeders.is_empty() {
                    f64::MAX
                } else {
                    feeders.iter().sum::<f64>() / feeders.len() as f64
                }
            };
            members.sort_by(|&a, &b| {
                mean(a)
                    .total_cmp(&mean(b))
                    .then_with(|| label(ids[a]).cmp(&label(ids[b])))
            });
        }
        for (r, &i) in members.iter().enumerate() {
            row[i] = r as f64;
        }
    }
    let x = |i: usize| MARGIN + layer[i] as f64 * (WIDTH + GAP_X);
    let y = |i: usize| MARGIN + row[i] * (HEIGHT + GAP_Y);
    let columns = layers.len().max(1) as f64;
    let rows = layers.values().map(Vec::len).max().unwrap_or(1).max(1) as f64;
    let width = 2.0 * MARGIN + columns * WIDTH + (columns - 1.0) * GAP_X;
    let height = 2.0 * MARGIN + rows * HEIGHT + (rows - 1.0) * GAP_Y;

    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lineage\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-labelledby=\"lineage-title lineage-desc\">\
         <title id=\"lineage-title\">Lineage of {}</title>\
         <desc id=\"lineage-desc\">{} nodes and {} edges</desc>\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" \
         fill=\"#5b6475\"/></marker></defs>",
        xml(focus),
        n,
        edges.len()
    );
    for &(a, b) in &edges {
        let (x1, y1) = (x(a) + WIDTH, y(a) + HEIGHT / 2.0);
        let (x2, y2) = (x(b), y(b) + HEIGHT / 2.0);
        let mid = (x1 + x2) / 2.0;
        let _ = write!(
            out,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}\" \
             fill=\"none\" stroke=\"#8a93a6\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>",
            xml(ids[a]),
            xml(ids[b])
        );
    }
    for (i, &id) in ids.iter().enumerate() {
        let job = id.starts_with("job:");
        let field = id.starts_with("datasetField:");
        let own = id == format!("job:mesh:{focus}")
            || id
                .strip_prefix("dataset:mesh:")
                .or_else(|| id.strip_prefix("datasetField:mesh:"))
                .is_some_and(|d| d.strip_prefix(focus).is_some_and(|r| r.starts_with('.')));
        let (fill, stroke, width) = match (job, own) {
            (_, true) => ("#e8efff", "#2f5bd3", 2.5),
            (true, false) => ("#f3f0ff", "#7a6bc4", 1.0),
            (false, false) => ("#ffffff", "#8a93a6", 1.0),
        };
        let radius = if job { 18.0 } else { 4.0 };
        // A product's job and ports link to its page.
        let page = id
            .strip_prefix("job:mesh:")
            .or_else(|| id.strip_prefix("dataset:mesh:"))
            .or_else(|| id.strip_prefix("datasetField:mesh:"))
            .and_then(|rest| {
                let mut parts = rest.split(['.', ':']);
                Some(format!("{}.{}", parts.next()?, parts.next()?))
            });
        if let Some(page) = &page {
            let _ = write!(out, "<a href=\"/products/{}\">", xml(page));
        }
        let _ = write!(
            out,
            "<g class=\"node\" data-id=\"{}\" data-kind=\"{}\"><title>{}</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"{radius}\" fill=\"{fill}\" \
             stroke=\"{stroke}\" stroke-width=\"{width}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" dominant-baseline=\"middle\" \
             fill=\"#1d2330\">{}</text></g>",
            xml(id),
            match (job, field) {
                (true, _) => "job",
                (_, true) => "field",
                _ => "dataset",
            },
            xml(id),
            x(i),
            y(i),
            x(i) + WIDTH / 2.0,
            y(i) + HEIGHT / 2.0,
            xml(&label(id))
        );
        if page.is_some() {
            out.push_str("</a>");
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_catalog::lineage::{GraphEdge, GraphNode};

    fn node(id: &str, out: &[&str]) -> GraphNode {
        GraphNode {
            id: id.into(),
            kind: String::new(),
            data: serde_json::Value::Null,
            in_edges: Vec::new(),
            out_edges: out
                .iter()
                .map(|d| GraphEdge {
                    origin: id.into(),
                    destination: (*d).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_join_is_laid_out_in_layers() {
        let graph = Graph {
            graph: vec![
                node("dataset:mesh:e.orders.orders", &["job:mesh:a.clv"]),
                node("dataset:mesh:e.customers.customers", &["job:mesh:a.clv"]),
                node("job:mesh:a.clv", &["dataset:mesh:a.clv.clv"]),
                node("dataset:mesh:a.clv.clv", &[]),
            ],
        };
        let svg = svg(&graph, "a.clv");
        assert_eq!(svg.matches("class=\"node\"").count(), 4);
        assert_eq!(svg.matches("class=\"edge\"").count(), 3);
        // The inputs share the first column, the job the second, the output the third.
        assert!(svg.contains("<rect x=\"16\" y=\"16\""));
        assert!(svg.contains("<rect x=\"346\" y=\"16\""));
        assert!(svg.contains("<rect x=\"676\" y=\"16\""));
        assert!(svg.contains("stroke=\"#2f5bd3\""), "the focus is outlined");
        assert!(svg.contains("<title id=\"lineage-title\">Lineage of a.clv</title>"));
        assert!(
            svg.contains("<a href=\"/products/e.orders\">"),
            "nodes link to products"
        );
    }

    #[test]
    fn labels_are_short_and_escaped() {
        assert_eq!(label("dataset:file:/tmp/x/data/orders.csv"), "orders.csv");
        assert_eq!(label("job:mesh:ecommerce.orders"), "ecommerce.orders");
        assert_eq!(
            label("datasetField:mesh:ecommerce.orders.orders:amount"),
            "orders.amount"
        );
        assert_eq!(
            label("datasetField:file:/tmp/x/orders.csv:amount"),
            "orders.csv.amount"
        );
        let long = label("dataset:mesh:a_very_long_domain.a_very_long_product.port");
        assert!(
            long.starts_with('…') && long.ends_with("product.port"),
            "{long}"
        );
        let g = Graph {
            graph: vec![node("dataset:x:<b>&\"", &[])],
        };
        assert!(svg(&g, "p").contains("&lt;b&gt;&amp;&quot;"));
    }
}
