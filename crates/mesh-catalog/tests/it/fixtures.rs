//! Data products to publish: a descriptor and one output-port contract, built from a few knobs.

use mesh_catalog::{Bundle, Source};

/// A product `domain.name` at `version` whose one output port's table has `columns`
/// (`name` optional, `name!` required). `inputs` are contract ids read through input ports.
#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub(crate) domain: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) columns: Vec<String>,
    pub(crate) inputs: Vec<String>,
    pub(crate) purpose: String,
    pub(crate) compatibility: Option<String>,
    /// The descriptor's `name` (default: the product part of the id).
    pub(crate) display_name: Option<String>,
}

pub(crate) fn product(id: &str, version: &str, columns: &[&str]) -> Product {
    let (domain, name) = id.split_once('.').expect("domain.name");
    Product {
        domain: domain.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        inputs: Vec::new(),
        purpose: "Test data for the catalog suite.".to_owned(),
        compatibility: None,
        display_name: None,
    }
}

impl Product {
    pub(crate) fn id(&self) -> String {
        format!("{}.{}", self.domain, self.name)
    }

    pub(crate) fn contract_id(&self) -> String {
        format!("{}.{}.{}", self.domain, self.name, self.name)
    }

    pub(crate) fn reading(mut self, contract_id: &str) -> Product {
        self.inputs.push(contract_id.to_owned());
        self
    }

    pub(crate) fn purpose(mut self, purpose: &str) -> Product {
        self.purpose = purpose.to_owned();
        self
    }

    pub(crate) fn compatibility(mut self, mode: &str) -> Product {
        self.compatibility = Some(mode.to_owned());
        self
    }

    pub(crate) fn bundle(&self) -> Bundle {
        let (domain, name, version) = (&self.domain, &self.name, &self.version);
        let id = self.id();
        let contract_id = self.contract_id();
        let mut inputs = String::new();
        if !self.inputs.is_empty() {
            inputs.push_str("inputPorts:\n");
            for (i, input) in self.inputs.iter().enumerate() {
                inputs.push_str(&format!(
                    "  - name: input_{i}\n    version: 1.0.0\n    contractId: {input}\n"
                ));
            }
        }
        let compat = self
            .compatibility
            .as_ref()
            .map(|m| {
                format!(
                    "    customProperties:\n      - property: compatibility\n        value: {m}\n"
                )
            })
            .unwrap_or_default();
        let descriptor = format!(
            "apiVersion: v1.0.0
kind: DataProduct
id: {id}
name: {display}
domain: {domain}
status: active
version: {version}
description:
  purpose: {purpose}
customProperties:
  - property: productType
    value: source
  - property: dataClassification
    value: internal
  - property: retentionDays
    value: 365
team:
  name: {domain}-team
  members:
    - username: owner@example.com
      role: owner
support:
  - channel: \"#{domain}\"
    url: https://chat.example.com/{domain}
{inputs}outputPorts:
  - name: {name}
    description: The table.
    type: tables
    version: {version}
    contractId: {contract_id}
{compat}",
            purpose = self.purpose,
            display = self.display_name.as_deref().unwrap_or(name),
        );
        let mut columns = String::new();
        for (i, column) in self.columns.iter().enumerate() {
            let (col, required) = match column.strip_suffix('!') {
                Some(c) => (c, true),
                None => (column.as_str(), false),
            };
            columns.push_str(&format!(
                "      - name: {col}\n        logicalType: string\n        required: {required}\n"
            ));
            if i == 0 {
                columns.push_str(
                    "        primaryKey: true\n        quality:\n          - metric: duplicateValues\n            mustBe: 0\n",
                );
            }
        }
        let contract = format!(
            "apiVersion: v3.1.0
kind: DataContract
id: {contract_id}
name: {name}
version: {version}
status: active
domain: {domain}
description:
  purpose: The {name} table.
schema:
  - name: {name}
    physicalType: table
    properties:
{columns}slaProperties:
  - property: latency
    value: 1
    unit: d
  - property: availability
    value: 99.5
    unit: percent
"
        );
        Bundle {
            descriptor: Source {
                path: format!("{domain}/{name}/product.odps.yaml"),
                text: descriptor,
            },
            contracts: vec![Source {
                path: format!("{domain}/{name}/contracts/{name}.odcs.yaml"),
                text: contract,
            }],
            transform: None,
        }
    }
}
