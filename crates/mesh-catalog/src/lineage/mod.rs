//! Lineage, kept in step with the catalog: the graph ([`graph`]) follows the event log like
//! search does — published products and ingested OpenLineage events — and answers walks,
//! product and column lineage, and impact analysis.

pub mod graph;

use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, next_subjects};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::products::ProductError;
use crate::store::{NewEvent, StoreError};

use graph::LineageGraph;
pub use graph::{
    Direction, Graph, GraphEdge, GraphNode, InvalidEvent, LineageUpdate, MESH_NAMESPACE,
    openlineage,
};

/// The products an OpenLineage event speaks for: its job, when the job is a mesh product
/// (namespace [`MESH_NAMESPACE`]), and the product of every mesh dataset it writes (or, for a
/// DatasetEvent, describes).
fn claimed_products(event: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut mesh_name = |node: &serde_json::Value, product_of_dataset: bool| {
        if node["namespace"] != MESH_NAMESPACE {
            return;
        }
        let Some(name) = node["name"].as_str() else {
            return;
        };
        let product = if product_of_dataset {
            // A port's dataset is named by its contract id, `domain.product.port`.
            name.rsplit_once('.').map_or(name, |(p, _)| p)
        } else {
            name
        };
        out.push(product.to_owned());
    };
    mesh_name(&event["job"], false);
    mesh_name(&event["dataset"], true);
    for ds in event["outputs"].as_array().into_iter().flatten() {
        mesh_name(ds, true);
    }
    out.sort();
    out.dedup();
    out
}

/// Why a lineage operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    /// An OpenLineage event that is well-formed JSON but not a valid event.
    #[error("invalid OpenLineage event: {reason}")]
    InvalidEvent { reason: String },
    #[error(transparent)]
    Product(#[from] ProductError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for LineageError {
    fn code(&self) -> ErrorCode {
        match self {
            LineageError::Denied(_) => ErrorCode::Forbidden,
            LineageError::NotFound(_) => ErrorCode::NotFound,
            LineageError::InvalidEvent { .. } => ErrorCode::Invalid,
            LineageError::Product(e) => e.code(),
            LineageError::Store(e) => e.code(),
        }
    }
}

/// Who a change to an output port (or some of its columns) reaches downstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImpactReport {
    /// Downstream data products (mesh jobs), nearest first.
    pub products: Vec<String>,
    /// Downstream columns (`datasetField:NS:DATASET:FIELD`) of the changed columns.
    pub columns: Vec<String>,
    /// Downstream jobs and datasets outside mesh (reported through OpenLineage).
    pub external: Vec<String>,
}

impl Catalog {
    /// Ingests one OpenLineage event (RunEvent, DatasetEvent or JobEvent): its job's inputs,
    /// outputs and column lineage join the graph; the datasets' schemas become node data.
    pub async fn ingest_lineage(
        &self,
        who: &Principal,
        event: &serde_json::Value,
    ) -> Result<LineageUpdate, LineageError> {
        Self::allow(who, Action::ReportLineage)?;
        let update =
            graph::openlineage(event).map_err(|e| LineageError::InvalidEvent { reason: e.0 })?;
        // What an event says about a product — its job, or its datasets as outputs — only the
        // product's domain (or its service identity) may say.
        for product in claimed_products(event) {
            let domain = mesh_model::names::domain_of(&product);
            if !who.name.eq_ignore_ascii_case(&product) && !who.may(Action::Publish { domain }) {
                return Err(Denied {
                    principal: who.name.clone(),
                    action: format!("report lineage for {product} of domain `{domain}`"),
                }
                .into());
            }
        }
        let mut tx = self.store.write().await?;
        let now = self.now();
        tx.add_lineage(&update.origin, &update.edges).await?;
        for (node, data) in &update.nodes {
            tx.put_lineage_node(node, data, &now).await?;
        }
        tx.append_event(&NewEvent {
            at: now,
            kind: "lineage.ingested".into(),
            subject: update.origin.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "edges": update.edges.len(), "eventType": event["eventType"] }),
        })
        .await?;
        tx.commit().await?;
        Ok(update)
    }

    /// How many distinct edges the lineage graph holds (after catching up).
    pub async fn lineage_edges(&self) -> Result<usize, StoreError> {
        self.sync_lineage().await?;
        Ok(self
            .lineage
            .graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .edge_count())
    }

    /// Brings the lineage graph up to date with the event log (a full load the first time).
    pub async fn sync_lineage(&self) -> Result<(), StoreError> {
        let mut applied = self.lineage.applied.lock().await;
        let mut tx = self.store.read().await?;
        let mut seq = match *applied {
            Some(seq) => seq,
            None => {
                let upto = tx.max_event_seq().await?;
                let mut graph = LineageGraph::default();
                let mut after: Option<(String, String, String)> = None;
                let mut origin: Option<String> = None;
                let mut edges: Vec<(String, String)> = Vec::new();
                loop {
                    let page = tx.lineage_page(after.as_ref(), 10_000).await?;
                    let Some(last) = page.last().cloned() else {
                        break;
                    };
                    for (o, s, t) in page {
                        if origin.as_deref() != Some(o.as_str()) {
                            if let Some(done) = origin.take() {
                                graph.set_origin(&done, &edges);
                            }
                            edges.clear();
                            origin = Some(o);
                        }
                        edges.push((s, t));
                    }
                    after = Some(last);
                }
                if let Some(done) = origin {
                    graph.set_origin(&done, &edges);
                }
                *self
                    .lineage
                    .graph
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = graph;
                upto
            }
        };
        while let Some((last, origins)) =
            next_subjects(tx.as_mut(), seq, |e| match e.kind.as_str() {
                "product.published" => Some(graph::product_origin(&e.subject)),
                "lineage.ingested" => Some(e.subject.clone()),
                _ => None,
            })
            .await?
        {
            let mut loaded = Vec::new();
            for origin in origins {
                let edges = tx.lineage_of(&origin).await?;
                loaded.push((origin, edges));
            }
            let mut graph = self
                .lineage
                .graph
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for (origin, edges) in loaded {
                graph.set_origin(&origin, &edges);
            }
            seq = last;
        }
        *applied = Some(seq);
        Ok(())
    }

    /// The lineage around a node (`dataset:NS:NAME`, `job:NS:NAME`, `datasetField:NS:NAME:FIELD`),
    /// `depth` edges away in `direction`, in Marquez's graph shape.
    pub async fn lineage(
        &self,
        who: &Principal,
        node: &str,
        depth: usize,
        direction: graph::Direction,
    ) -> Result<Graph, LineageError> {
        Self::allow(who, Action::Read)?;
        self.sync_lineage().await?;
        let walked = {
            let graph = self.lineage.graph.read().unwrap_or_else(|e| e.into_inner());
            if !graph.contains(node) {
                return Err(Missing::LineageNode {
                    node: node.to_owned(),
                }
                .into());
            }
            graph
                .walk(node, depth, direction)
                .into_iter()
                .map(|(id, _)| {
                    let (ins, outs) = graph.edges_of(&id);
                    (id, ins, outs)
                })
                .collect::<Vec<_>>()
        };
        let mut tx = self.store.read().await?;
        let mut nodes = Vec::with_capacity(walked.len());
        for (id, in_edges, out_edges) in walked {
            let data = tx
                .lineage_node(&id)
                .await?
                .unwrap_or(serde_json::Value::Null);
            nodes.push(GraphNode {
                kind: graph::node_kind(&id).to_owned(),
                id,
                data,
                in_edges,
                out_edges,
            });
        }
        Ok(Graph { graph: nodes })
    }

    /// The lineage of a product: its job node, `depth` products up or down (two edges per
    /// product: job → dataset → job), or of one of its columns when `column` is given.
    pub async fn product_lineage(
        &self,
        who: &Principal,
        product: &str,
        depth: usize,
        direction: graph::Direction,
        column: Option<&str>,
    ) -> Result<Graph, LineageError> {
        let view = self.version(who, product, "latest").await?;
        let ns = graph::MESH_NAMESPACE;
        let Some(column) = column else {
            let start = graph::job(ns, product);
            return self
                .lineage(who, &start, depth.saturating_mul(2), direction)
                .await;
        };
        let start = view
            .ports
            .iter()
            .find(|p| {
                p.contract["schema"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| {
                        o["properties"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["name"] == column)
                    })
            })
            .map(|p| graph::field(ns, &p.contract_id, column))
            .ok_or_else(|| Missing::Column {
                product: product.to_owned(),
                column: column.to_owned(),
            })?;
        self.sync_lineage().await?;
        let known = self
            .lineage
            .graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&start);
        if !known {
            return Ok(Graph {
                graph: vec![GraphNode {
                    kind: "DATASET_FIELD".into(),
                    id: start,
                    data: serde_json::Value::Null,
                    in_edges: Vec::new(),
                    out_edges: Vec::new(),
                }],
            });
        }
        self.lineage(who, &start, depth, direction).await
    }

    /// Impact analysis: which downstream products, columns and outside jobs a change to `port` of
    /// `product` (or to some of its `columns`) reaches, transitively.
    pub async fn impact(
        &self,
        who: &Principal,
        product: &str,
        port: &str,
        columns: &[String],
    ) -> Result<ImpactReport, LineageError> {
        let view = self.version(who, product, "latest").await?;
        let contract = view
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.contract_id.clone())
            .ok_or_else(|| Missing::Port {
                product: product.to_owned(),
                version: view.version.clone(),
                port: port.to_owned(),
            })?;
        Ok(self.impact_of(product, &contract, columns).await?)
    }

    pub(crate) async fn impact_of(
        &self,
        product: &str,
        contract: &str,
        columns: &[String],
    ) -> Result<ImpactReport, StoreError> {
        self.sync_lineage().await?;
        let graph = self.lineage.graph.read().unwrap_or_else(|e| e.into_inner());
        let ns = graph::MESH_NAMESPACE;
        let me = graph::job(ns, product);
        let mut report = ImpactReport::default();
        let mut starts = vec![graph::dataset(ns, contract)];
        starts.extend(columns.iter().map(|c| graph::field(ns, contract, c)));
        for (i, start) in starts.iter().enumerate() {
            for (node, distance) in graph.walk(start, 1000, graph::Direction::Downstream) {
                if distance == 0 || node == me {
                    continue;
                }
                let list = if let Some(name) = node.strip_prefix("job:mesh:") {
                    report.products.push(name.to_owned());
                    continue;
                } else if node.starts_with("datasetField:") {
                    if i == 0 {
                        continue;
                    }
                    &mut report.columns
                } else if node.starts_with("dataset:mesh:") {
                    continue;
                } else {
                    &mut report.external
                };
                list.push(node);
            }
        }
        for list in [
            &mut report.products,
            &mut report.columns,
            &mut report.external,
        ] {
            let mut seen = std::collections::HashSet::new();
            list.retain(|x| seen.insert(x.clone()));
        }
        Ok(report)
    }
}
