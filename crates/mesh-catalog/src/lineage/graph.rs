//! Lineage: a graph of datasets, jobs and dataset fields, with OpenLineage's and Marquez's node ids
//! (`dataset:NS:NAME`, `job:NS:NAME`, `datasetField:NS:NAME:FIELD`).
//!
//! Edges come from two places. Every published product is a job in namespace `mesh`: it reads
//! the datasets of its input ports' contracts and writes one dataset per output-port contract,
//! and contract properties with `transformSourceObjects` add column edges. Every ingested
//! OpenLineage event adds its job's inputs, outputs and column lineage. Edges are grouped by
//! *origin* (`product:ID`, `openlineage:NS:JOB`), the unit in which they are replaced or added.
//!
//! The graph lives in memory in each process and follows the event log, like search: a traversal
//! costs what its answer holds, not what the catalog holds.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

/// The namespace of mesh's own products in lineage.
pub const MESH_NAMESPACE: &str = "mesh";

pub(crate) fn dataset(namespace: &str, name: &str) -> String {
    format!("dataset:{namespace}:{name}")
}

pub(crate) fn job(namespace: &str, name: &str) -> String {
    format!("job:{namespace}:{name}")
}

pub(crate) fn field(namespace: &str, dataset: &str, field: &str) -> String {
    format!("datasetField:{namespace}:{dataset}:{field}")
}

/// The origin of a product's edges.
pub(crate) fn product_origin(product: &str) -> String {
    format!("product:{product}")
}

/// What to store for one origin: its edges and the data of the nodes it describes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LineageUpdate {
    pub origin: String,
    pub edges: Vec<(String, String)>,
    pub nodes: Vec<(String, serde_json::Value)>,
}

/// The lineage of a product version: input-port datasets → the product's job → its output-port
/// datasets, and column edges from `transformSourceObjects`.
pub(crate) fn product_lineage(
    product: &str,
    descriptor: &serde_json::Value,
    contracts: &[(String, serde_json::Value)],
) -> LineageUpdate {
    let ns = MESH_NAMESPACE;
    let me = job(ns, product);
    let mut update = LineageUpdate {
        origin: product_origin(product),
        ..LineageUpdate::default()
    };
    update.nodes.push((
        me.clone(),
        serde_json::json!({
            "id": {"namespace": ns, "name": product},
            "type": "BATCH", "name": product, "namespace": ns,
            "description": descriptor["description"]["purpose"],
        }),
    ));
    // Input port names → the contract they read.
    let mut inputs: HashMap<String, String> = HashMap::new();
    for port in descriptor["inputPorts"].as_array().into_iter().flatten() {
        if let Some(contract) = port["contractId"].as_str() {
            update.edges.push((dataset(ns, contract), me.clone()));
            if let Some(name) = port["name"].as_str() {
                inputs.insert(name.to_owned(), contract.to_owned());
            }
            inputs.insert(contract.to_owned(), contract.to_owned());
        }
    }
    for (_, contract) in contracts {
        let Some(id) = contract["id"].as_str() else {
            continue;
        };
        let out = dataset(ns, id);
        update.edges.push((me.clone(), out.clone()));
        let mut fields = Vec::new();
        for object in contract["schema"].as_array().into_iter().flatten() {
            for prop in object["properties"].as_array().into_iter().flatten() {
                let Some(column) = prop["name"].as_str() else {
                    continue;
                };
                fields.push(serde_json::json!({
                    "name": column, "type": prop["logicalType"], "tags": prop["tags"].as_array().cloned().unwrap_or_default(),
                    "description": prop["description"],
                }));
                let target = field(ns, id, column);
                for source in prop["transformSourceObjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let Some(source) = source.as_str() else {
                        continue;
                    };
                    // `port.column` or `contract.id.column` names a column of an input;
                    // anything else names a whole dataset.
                    let from = source
                        .rsplit_once('.')
                        .and_then(|(table, col)| inputs.get(table).map(|c| field(ns, c, col)))
                        .unwrap_or_else(|| {
                            dataset(ns, inputs.get(source).map_or(source, String::as_str))
                        });
                    update.edges.push((from, target.clone()));
                }
            }
        }
        update.nodes.push((
            out,
            serde_json::json!({
                "id": {"namespace": ns, "name": id},
                "type": "DB_TABLE", "name": id, "physicalName": id, "namespace": ns,
                "sourceName": product, "fields": fields,
                "tags": contract["tags"].as_array().cloned().unwrap_or_default(),
                "description": contract["description"]["purpose"],
            }),
        ));
    }
    update.edges.sort();
    update.edges.dedup();
    update
}

/// Why an OpenLineage event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent(pub String);

fn text<'a>(value: &'a serde_json::Value, what: &str) -> Result<&'a str, InvalidEvent> {
    value.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
        InvalidEvent(format!(
            "`{what}` is required and must be a non-empty string"
        ))
    })
}

/// Reads an OpenLineage 2-0-2 RunEvent, DatasetEvent or JobEvent into edges and node data. The
/// schema's required fields are required (`producer` and `schemaURL` too, which Marquez lets
/// go: lineage is evidence, so it states where it came from); `eventTime` may lack an offset.
pub fn openlineage(event: &serde_json::Value) -> Result<LineageUpdate, InvalidEvent> {
    if !event.is_object() {
        return Err(InvalidEvent("an OpenLineage event is a JSON object".into()));
    }
    // OpenLineage 2-0-2's BaseEvent: every event names its producer and its schema.
    for key in ["producer", "schemaURL"] {
        let value = text(&event[key], key)?;
        if !value.contains(':') {
            return Err(InvalidEvent(format!("{key} `{value}` is not a URI")));
        }
    }
    let time = text(&event["eventTime"], "eventTime")?;
    if !valid_time(time) {
        return Err(InvalidEvent(format!(
            "eventTime `{time}` is not an ISO 8601 date-time"
        )));
    }
    // A DatasetEvent: one dataset's metadata, no edges.
    if event.get("dataset").is_some() && event.get("job").is_none() {
        let ds = &event["dataset"];
        let (ns, name) = (
            text(&ds["namespace"], "dataset.namespace")?,
            text(&ds["name"], "dataset.name")?,
        );
        return Ok(LineageUpdate {
            origin: format!("openlineage-dataset:{ns}:{name}"),
            edges: Vec::new(),
            nodes: vec![(dataset(ns, name), dataset_data(ns, name, ds))],
        });
    }
    let j = &event["job"];
    let (jns, jname) = (
        text(&j["namespace"], "job.namespace")?,
        text(&j["name"], "job.name")?,
    );
    if event.get("run").is_some() {
        let run_id = text(&event["run"]["runId"], "run.runId")?;
        if !is_uuid(run_id) {
            return Err(InvalidEvent(format!("run.runId `{run_id}` is not a UUID")));
        }
        if let Some(kind) = event.get("eventType").and_then(|v| v.as_str())
            && !["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"].contains(&kind)
        {
            return Err(InvalidEvent(format!(
                "eventType `{kind}` is not an OpenLineage event type"
            )));
        }
    }
    let me = job(jns, jname);
    let mut update = LineageUpdate {
        origin: format!("openlineage:{jns}:{jname}"),
        ..LineageUpdate::default()
    };
    update.nodes.push((
        me.clone(),
        serde_json::json!({
            "id": {"namespace": jns, "name": jname}, "type": "BATCH", "name": jname, "namespace": jns,
            "description": j["facets"]["documentation"]["description"],
        }),
    ));
    for (list, incoming) in [("inputs", true), ("outputs", false)] {
        let Some(items) = event.get(list) else {
            continue;
        };
        let items = items
            .as_array()
            .ok_or_else(|| InvalidEvent(format!("`{list}` must be a list")))?;
        for (i, ds) in items.iter().enumerate() {
            let ns = text(&ds["namespace"], &format!("{list}[{i}].namespace"))?;
            let name = text(&ds["name"], &format!("{list}[{i}].name"))?;
            let node = dataset(ns, name);
            update
                .nodes
                .push((node.clone(), dataset_data(ns, name, ds)));
            if incoming {
                update.edges.push((node, me.clone()));
            } else {
                update.edges.push((me.clone(), node));
                column_lineage(ns, name, ds, &mut update);
            }
        }
    }
    update.edges.sort();
    update.edges.dedup();
    Ok(update)
}

/// Column edges from an output's `columnLineage` facet, and a node per output field.
fn column_lineage(ns: &str, name: &str, ds: &serde_json::Value, update: &mut LineageUpdate) {
    let Some(fields) = ds["facets"]["columnLineage"]["fields"].as_object() else {
        return;
    };
    for (column, lineage) in fields {
        let target = field(ns, name, column);
        let mut inputs = Vec::new();
        for input in lineage["inputFields"].as_array().into_iter().flatten() {
            let (Some(ins), Some(inname), Some(infield)) = (
                input["namespace"].as_str(),
                input["name"].as_str(),
                input["field"].as_str(),
            ) else {
                continue;
            };
            update
                .edges
                .push((field(ins, inname, infield), target.clone()));
            inputs.push(serde_json::json!({"namespace": ins, "dataset": inname, "field": infield}));
        }
        let field_type = ds["facets"]["schema"]["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == column.as_str())
            .map(|f| f["type"].clone())
            .unwrap_or(serde_json::Value::Null);
        update.nodes.push((
            target,
            serde_json::json!({
                "namespace": ns, "dataset": name, "field": column, "fieldType": field_type,
                "transformationDescription": lineage["transformationDescription"],
                "transformationType": lineage["transformationType"],
                "inputFields": inputs,
            }),
        ));
    }
}

fn dataset_data(ns: &str, name: &str, ds: &serde_json::Value) -> serde_json::Value {
    let facets = &ds["facets"];
    let fields: Vec<serde_json::Value> = facets["schema"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            serde_json::json!({
                "name": f["name"], "type": f["type"], "tags": [], "description": f["description"],
            })
        })
        .collect();
    serde_json::json!({
        "id": {"namespace": ns, "name": name},
        "type": "DB_TABLE", "name": name, "physicalName": name, "namespace": ns,
        "sourceName": facets["dataSource"]["name"], "fields": fields, "tags": [],
        "description": facets["documentation"]["description"],
    })
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// ISO 8601 date-time, with or without an offset (Marquez accepts both).
fn valid_time(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

/// Which way to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

/// One node of an answer, in Marquez's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphNode {
    pub id: String,
    /// `DATASET`, `JOB` or `DATASET_FIELD`.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
    #[serde(rename = "inEdges")]
    pub in_edges: Vec<GraphEdge>,
    #[serde(rename = "outEdges")]
    pub out_edges: Vec<GraphEdge>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphEdge {
    pub origin: String,
    pub destination: String,
}

/// Marquez's answer: `{"graph": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Graph {
    pub graph: Vec<GraphNode>,
}

pub(crate) fn node_kind(id: &str) -> &'static str {
    if id.starts_with("datasetField:") {
        "DATASET_FIELD"
    } else if id.starts_with("job:") {
        "JOB"
    } else {
        "DATASET"
    }
}

type NodeId = u32;

/// The whole graph in memory: adjacency both ways, and which origin contributed which edges.
#[derive(Debug, Default)]
pub(crate) struct LineageGraph {
    ids: HashMap<String, NodeId>,
    names: Vec<String>,
    out: Vec<Vec<NodeId>>,
    inc: Vec<Vec<NodeId>>,
    /// How many origins state each edge.
    count: HashMap<(NodeId, NodeId), u32>,
    by_origin: HashMap<String, Vec<(NodeId, NodeId)>>,
}

impl LineageGraph {
    fn node(&mut self, name: &str) -> NodeId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as NodeId;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        self.out.push(Vec::new());
        self.inc.push(Vec::new());
        id
    }

    pub(crate) fn edge_count(&self) -> usize {
        self.count.len()
    }

    /// Replaces what `origin` says with `edges`.
    pub(crate) fn set_origin(&mut self, origin: &str, edges: &[(String, String)]) {
        for (a, b) in self.by_origin.remove(origin).unwrap_or_default() {
            if let Some(n) = self.count.get_mut(&(a, b)) {
                *n -= 1;
                if *n == 0 {
                    self.count.remove(&(a, b));
                    self.out[a as usize].retain(|&x| x != b);
                    self.inc[b as usize].retain(|&x| x != a);
                }
            }
        }
        let mut mine = Vec::with_capacity(edges.len());
        for (source, target) in edges {
            let (a, b) = (self.node(source), self.node(target));
            let n = self.count.entry((a, b)).or_default();
            if *n == 0 {
                self.out[a as usize].push(b);
                self.inc[b as usize].push(a);
            }
            *n += 1;
            mine.push((a, b));
        }
        if !mine.is_empty() {
            self.by_origin.insert(origin.to_owned(), mine);
        }
    }

    pub(crate) fn contains(&self, node: &str) -> bool {
        self.ids.contains_key(node)
    }

    /// Nodes within `depth` hops of `start`, with their distance, in visiting order.
    pub(crate) fn walk(
        &self,
        start: &str,
        depth: usize,
        direction: Direction,
    ) -> Vec<(String, usize)> {
        let Some(&s) = self.ids.get(start) else {
            return Vec::new();
        };
        let mut seen: HashSet<NodeId> = HashSet::from([s]);
        let mut queue = VecDeque::from([(s, 0usize)]);
        let mut out = Vec::new();
        while let Some((n, d)) = queue.pop_front() {
            out.push((self.names[n as usize].clone(), d));
            if d == depth {
                continue;
            }
            let down = matches!(direction, Direction::Downstream | Direction::Both);
            let up = matches!(direction, Direction::Upstream | Direction::Both);
            let next = down
                .then(|| self.out[n as usize].iter())
                .into_iter()
                .flatten()
                .chain(
                    up.then(|| self.inc[n as usize].iter())
                        .into_iter()
                        .flatten(),
                );
            for &m in next {
                if seen.insert(m) {
                    queue.push_back((m, d + 1));
                }
            }
        }
        out
    }

    /// Edges into and out of a node.
    pub(crate) fn edges_of(&self, node: &str) -> (Vec<GraphEdge>, Vec<GraphEdge>) {
        let Some(&n) = self.ids.get(node) else {
            return (Vec::new(), Vec::new());
        };
        let edge = |a: NodeId, b: NodeId| GraphEdge {
            origin: self.names[a as usize].clone(),
            destination: self.names[b as usize].clone(),
        };
        let mut ins: Vec<GraphEdge> = self.inc[n as usize].iter().map(|&a| edge(a, n)).collect();
        let mut outs: Vec<GraphEdge> = self.out[n as usize].iter().map(|&b| edge(n, b)).collect();
        ins.sort_by(|a, b| a.origin.cmp(&b.origin));
        outs.sort_by(|a, b| a.destination.cmp(&b.destination));
        (ins, outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_replace_their_own_edges_only() {
        let mut g = LineageGraph::default();
        let e = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        g.set_origin("p1", &[e("a", "j1"), e("j1", "b")]);
        g.set_origin("p2", &[e("b", "j2"), e("j1", "b")]);
        assert_eq!(g.edge_count(), 3);
        g.set_origin("p1", &[e("c", "j1")]);
        // j1 → b is still stated by p2.
        let down: Vec<String> = g
            .walk("j1", 5, Direction::Downstream)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(down, ["j1", "b", "j2"]);
        let up: Vec<(String, usize)> = g.walk("j2", 1, Direction::Upstream);
        assert_eq!(up, [("j2".to_owned(), 0), ("b".to_owned(), 1)]);
        assert!(g.walk("nope", 3, Direction::Both).is_empty());
    }

    #[test]
    fn openlineage_is_read_leniently_but_needs_a_run_id() {
        let ok = serde_json::json!({
            "producer": "https://example.com/p", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
            "eventType": "COMPLETE", "eventTime": "2020-12-28T19:52:00.001",
            "run": {"runId": "ea041791-68bc-4ae1-bd89-4c8106a157e4"},
            "job": {"namespace": "ns", "name": "j"},
            "inputs": [{"namespace": "ns", "name": "in"}],
            "outputs": [{"namespace": "ns", "name": "out", "facets": {"columnLineage": {"fields": {
                "a": {"inputFields": [{"namespace": "ns", "name": "in", "field": "b"}]}}}}}],
        });
        let update = openlineage(&ok).unwrap();
        assert!(
            update
                .edges
                .contains(&("dataset:ns:in".into(), "job:ns:j".into()))
        );
        assert!(update.edges.contains(&(
            "datasetField:ns:in:b".into(),
            "datasetField:ns:out:a".into()
        )));
        let mut bad = ok.clone();
        bad["run"] = serde_json::json!({});
        assert!(openlineage(&bad).is_err());
        bad["run"] = serde_json::json!({"runId": "not-a-uuid"});
        assert!(openlineage(&bad).is_err());
        assert!(openlineage(&serde_json::json!([1])).is_err());
    }
}
