//! What a product's pipeline reads: each input port of its latest published version resolved to
//! the upstream port's snapshot (at the major the port pins, else the newest), read only through
//! the same decision as every query ([`mesh_catalog::Catalog::readable_ports`], with the
//! product's service identity as the reader): its own domain's ports whole, another domain's only
//! through an active grant made out to the product, showing the grant's columns and masking the
//! rest as the contract says. A run started from the CLI, over HTTP or by a scheduler is judged
//! by this one function; a refusal is recorded in the audit log like a refused query.

use mesh_catalog::access::{AccessError, ReadablePort, Reader};
use mesh_catalog::audit::{DeniedRead, ReadBy};
use mesh_catalog::locations::LocationError;
use mesh_catalog::products::ProductError;
use mesh_catalog::runs::RunsError;
use mesh_catalog::store::StoreError;
use mesh_catalog::{Action, Denied, ErrorCode, Principal, Problem, ToProblem};
use mesh_model::names::{PortRef, ProductId, TableName, major_of};
use serde::{Deserialize, Serialize};

use mesh_engine::query::{Mask, MaskKey, MaskKeys};

use crate::Service;

/// Why a pipeline's inputs could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("`{product}` is not a product id: {reason}")]
    BadProduct { product: String, reason: String },
    /// An input port of the published descriptor that names no port.
    #[error("input port `{input}`: {reason}")]
    BadInput { input: String, reason: String },
    #[error("input port `{input}`: no published snapshot of {contract}{}: run {upstream} first", .major.map(|m| format!(" (major {m})")).unwrap_or_default())]
    NoSnapshot {
        input: String,
        contract: String,
        upstream: String,
        major: Option<u64>,
    },
    /// Another domain's port, and no active grant to the product's service identity.
    #[error(
        "input port `{input}`: {consumer} has no active grant to read {contract} (major {major}) of domain `{domain}`; ask for one: mesh access request {contract}@{major} --for {consumer} --purpose \"...\" (an owner of `{domain}` approves it)"
    )]
    NoGrant {
        input: String,
        consumer: String,
        contract: String,
        major: i64,
        domain: String,
    },
    #[error(transparent)]
    Product(#[from] ProductError),
    #[error(transparent)]
    Runs(Box<RunsError>),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("recording the refusal: {0}")]
    Audit(#[from] StoreError),
    /// A source that is no file of the product's folder and under no location of its domain.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// A source without a name or a path, or a relative path that climbs out of the folder.
    #[error("source `{source_name}` of {product}: {reason}")]
    BadSource {
        source_name: String,
        product: String,
        reason: String,
    },
}

impl From<RunsError> for InputError {
    fn from(e: RunsError) -> InputError {
        InputError::Runs(Box::new(e))
    }
}

impl ToProblem for InputError {
    fn code(&self) -> ErrorCode {
        match self {
            InputError::BadProduct { .. } | InputError::BadInput { .. } => ErrorCode::BadRequest,
            InputError::NoSnapshot { .. } => ErrorCode::NotFound,
            InputError::NoGrant { .. } => ErrorCode::Forbidden,
            InputError::Product(e) => e.code(),
            InputError::Runs(e) => e.code(),
            InputError::Access(e) => e.code(),
            InputError::Location(e) => e.code(),
            InputError::BadSource { .. } => ErrorCode::Forbidden,
            InputError::Audit(_) => ErrorCode::Internal,
        }
    }

    fn extend(&self, problem: &mut Problem) {
        match self {
            InputError::Access(e) => e.extend(problem),
            InputError::Location(e) => e.extend(problem),
            _ => {}
        }
    }
}

/// An input port resolved: the upstream snapshot the transform reads as table `name`, and what
/// of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolvedInput {
    /// The input port: the table `transform.sql` reads.
    pub name: String,
    /// The upstream product, `domain.product`.
    pub product: String,
    /// The upstream port's contract id (`domain.product.port`).
    pub contract: String,
    /// The upstream port's Delta table and the version readers get.
    pub location: String,
    pub delta_version: i64,
    pub major: i64,
    /// The columns shown; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// How the masked columns are hidden (per column, `*` for the rest).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub masks: std::collections::BTreeMap<String, String>,
    /// Why it may read it: `owner` (its own domain) or the grant id.
    pub through: String,
    /// The key `hash` masks take (the deployment's), sent only when a column is so masked: the
    /// run masks in its own process, which reads the upstream table's files anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<SecretHex>,
    /// The key `hash_product` masks take (the upstream product's own), likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_hash_key: Option<SecretHex>,
}

/// A key as hex digits, which `Debug` does not print.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SecretHex(pub String);

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHex(..)")
    }
}

impl ResolvedInput {
    /// The masking keys it carries, as the engine takes them; an unreadable key is none (and a
    /// column it masks is then not read).
    pub fn mask_keys(&self) -> MaskKeys {
        let key = |k: &Option<SecretHex>| k.as_ref().and_then(|k| MaskKey::from_hex(&k.0));
        MaskKeys {
            deployment: key(&self.hash_key),
            product: key(&self.product_hash_key),
        }
    }
}

/// A source of a product resolved: what the run reads as table `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolvedSource {
    pub name: String,
    /// As the published descriptor declares it: relative to the product folder, or an absolute
    /// path or URL under `location`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The registered location it is under; absent for a file of the product's own folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// That location's URL (normalized), so a runner can check again where a path leads once
    /// links are resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_url: Option<String>,
    /// A database source's table (`schema.table` on PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A database source's read-only query, in the database's dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A database source's watermark column: each run reads only rows above the last run's
    /// greatest value of it, and appends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
}

impl Service {
    /// The sources of `product`'s latest published version, each allowed: a relative path that
    /// stays in the product's folder (its repository's own files), or an absolute path or URL
    /// under a location registered for the product's domain (never managed storage). A source
    /// outside them is refused, and the refusal recorded like a refused read; so a product
    /// reads another domain's data only through an input port and a grant.
    pub async fn pipeline_sources(
        &self,
        who: &Principal,
        product: &str,
    ) -> Result<Vec<ResolvedSource>, InputError> {
        let id = self.runnable(who, product)?;
        let latest = self.catalog.version(who, product, "latest").await?;
        let descriptor = latest.descriptor.unwrap_or_default();
        let mut out = Vec::new();
        for cp in descriptor["customProperties"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if cp["property"] != mesh_model::names::props::SOURCES {
                continue;
            }
            for source in cp["value"].as_array().into_iter().flatten() {
                let field = |k: &str| source[k].as_str().map(str::to_owned);
                let name = field("name").unwrap_or_default();
                let bad = |reason: &str| InputError::BadSource {
                    source_name: name.clone(),
                    product: id.to_string(),
                    reason: reason.to_owned(),
                };
                let Some(path) = field("path") else {
                    return Err(bad("no `path`"));
                };
                let external = path.contains("://") || path.starts_with('/');
                let (location, location_url) = if external {
                    match self
                        .catalog
                        .source_location(id.as_str(), id.domain(), &name, &path)
                        .await
                    {
                        Ok(l) => (Some(l.name), Some(l.url)),
                        Err(e) => {
                            let denied = DeniedRead {
                                table: path.clone(),
                                by: ReadBy::Pipeline {
                                    input: name.clone(),
                                },
                            };
                            self.catalog
                                .record_denied_reads(id.as_str(), &[denied])
                                .await?;
                            return Err(e.into());
                        }
                    }
                } else {
                    if path
                        .split(['/', '\\'])
                        .any(|part| part == ".." || part.contains(':'))
                    {
                        return Err(bad(
                            "a relative path stays in the product's folder (no `..`); data elsewhere is read from a registered location: mesh location add NAME URL --domain DOMAIN",
                        ));
                    }
                    (None, None)
                };
                out.push(ResolvedSource {
                    name,
                    path,
                    format: field("format"),
                    location,
                    location_url,
                    table: field("table"),
                    query: field("query"),
                    incremental: field("incremental"),
                });
            }
        }
        Ok(out)
    }

    /// `product` as a product id, when `who` may run its pipeline (people of its domain).
    fn runnable(&self, who: &Principal, product: &str) -> Result<ProductId, InputError> {
        let id = ProductId::parse(product).map_err(|e| InputError::BadProduct {
            product: product.to_owned(),
            reason: e.to_string(),
        })?;
        if !who.may(Action::Publish {
            domain: id.domain(),
        }) {
            return Err(AccessError::Denied(Denied {
                principal: who.name.clone(),
                action: format!("run {id}: it is domain `{}`'s", id.domain()),
            })
            .into());
        }
        Ok(id)
    }

    /// The input ports of `product`'s latest published version, resolved for a run by `who`
    /// (someone of the product's domain).
    pub async fn pipeline_inputs(
        &self,
        who: &Principal,
        product: &str,
    ) -> Result<Vec<ResolvedInput>, InputError> {
        // Only the people of a product's domain run its pipeline.
        let id = self.runnable(who, product)?;
        let latest = self.catalog.version(who, product, "latest").await?;
        let descriptor = latest.descriptor.unwrap_or_default();
        let inputs = descriptor["inputPorts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let readable = self
            .catalog
            .readable_ports(Reader::Product {
                id: &id,
                run_by: who,
            })
            .await?;
        let key = crate::read::mask_key(&self.catalog).await?;
        let mut out = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let name = input["name"].as_str().unwrap_or_default().to_owned();
            let bad = |reason: String| InputError::BadInput {
                input: name.clone(),
                reason,
            };
            let contract = input["contractId"]
                .as_str()
                .ok_or_else(|| bad("it has no `contractId`".into()))?;
            let port = PortRef::parse(contract).map_err(|e| bad(e.to_string()))?;
            let upstream = port.product.as_str();
            let pinned = input["version"].as_str().map(major_of);
            let snapshot = self
                .catalog
                .snapshots(who, upstream)
                .await?
                .into_iter()
                .filter(|s| {
                    s.port == port.port
                        && pinned.is_none_or(|m| u64::try_from(s.major).is_ok_and(|s| s == m))
                })
                .max_by_key(|s| s.major)
                .ok_or_else(|| InputError::NoSnapshot {
                    input: name.clone(),
                    contract: contract.to_owned(),
                    upstream: upstream.to_owned(),
                    major: pinned,
                })?;
            let found = readable.iter().find(|r| {
                r.product == upstream && r.port == port.port && r.major == snapshot.major
            });
            let Some(found) = found else {
                // The same refusal a query gets, in the same audit log.
                let table = TableName::of(
                    &port.product,
                    &port.port,
                    u64::try_from(snapshot.major).unwrap_or_default(),
                    true,
                );
                let denied = DeniedRead {
                    table: table.to_string(),
                    by: ReadBy::Pipeline {
                        input: name.clone(),
                    },
                };
                self.catalog
                    .record_denied_reads(id.as_str(), &[denied])
                    .await?;
                return Err(InputError::NoGrant {
                    input: name,
                    consumer: id.to_string(),
                    contract: contract.to_owned(),
                    major: snapshot.major,
                    domain: port.product.domain().to_owned(),
                });
            };
            out.push(resolved(name, contract, found, key));
        }
        Ok(out)
    }
}

fn resolved(name: String, contract: &str, p: &ReadablePort, key: MaskKey) -> ResolvedInput {
    let uses =
        |mask: Mask| p.columns.is_some() && p.masks.values().any(|m| Mask::parse(m) == Some(mask));
    let keys = MaskKeys::of(key, &p.product);
    let hex = |k: Option<MaskKey>| k.map(|k| SecretHex(k.to_hex()));
    ResolvedInput {
        hash_key: uses(Mask::Hash).then(|| hex(keys.deployment)).flatten(),
        product_hash_key: uses(Mask::ProductHash).then(|| hex(keys.product)).flatten(),
        name,
        product: p.product.clone(),
        contract: contract.to_owned(),
        location: p.location.clone(),
        delta_version: p.delta_version,
        major: p.major,
        columns: p.columns.clone(),
        masks: p.masks.clone(),
        through: p.through.clone(),
    }
}
