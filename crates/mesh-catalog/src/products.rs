//! Reading the catalog: products, their versions (by version, major or `latest`), port
//! contracts and their changelogs, domains and teams. Views here are what the API returns; the
//! store's rows stay behind them.

use mesh_model::changelog::{self, Changelog};
use mesh_model::names::{VersionSelector, VersionStatus, by_semver};
use mesh_model::source::Node;
use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, parse_json};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::store::{
    DomainRow, PortRow, ProductQuery, ProductRow, StoreError, TeamRow, Tx, VersionRow,
};

/// Why a read of the catalog was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("`{selector}` is not a version, a major version or `latest`")]
    BadSelector { selector: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for ProductError {
    fn code(&self) -> ErrorCode {
        match self {
            ProductError::Denied(_) => ErrorCode::Forbidden,
            ProductError::NotFound(_) => ErrorCode::NotFound,
            ProductError::BadSelector { .. } => ErrorCode::BadRequest,
            ProductError::Store(e) => e.code(),
        }
    }
}

/// A product in a listing: identity, ownership, and the version a reader gets by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductSummary {
    /// `domain.product`.
    pub id: String,
    pub domain: String,
    pub team: Option<String>,
    pub name: Option<String>,
    /// The highest published version.
    pub latest: Option<String>,
    /// The status of the latest version.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ProductRow> for ProductSummary {
    fn from(r: ProductRow) -> ProductSummary {
        ProductSummary {
            id: r.id,
            domain: r.domain,
            team: r.team,
            name: r.name,
            latest: r.latest,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Domain {
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
}

impl From<DomainRow> for Domain {
    fn from(r: DomainRow) -> Domain {
        Domain {
            name: r.name,
            description: r.description,
            created_at: r.created_at,
        }
    }
}

/// A team, in the domain it first published in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    pub name: String,
    pub domain: String,
    pub created_at: String,
}

impl From<TeamRow> for Team {
    fn from(r: TeamRow) -> Team {
        Team {
            name: r.name,
            domain: r.domain,
            created_at: r.created_at,
        }
    }
}

/// A product and its versions, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductView {
    pub id: String,
    pub domain: String,
    pub team: Option<String>,
    pub name: Option<String>,
    pub latest: Option<String>,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub versions: Vec<VersionView>,
}

/// One version, with its lifecycle, its descriptor and (when asked for) its port contracts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionView {
    pub product: String,
    pub version: String,
    pub status: String,
    pub digest: String,
    pub published_by: String,
    pub published_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_guide: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortView>,
    /// The pipeline's SQL (`transform.sql`) published with this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortView {
    pub port: String,
    pub contract_id: String,
    pub compatibility: String,
    pub digest: String,
    pub contract: serde_json::Value,
}

pub(crate) fn version_view(
    row: VersionRow,
    ports: Vec<PortRow>,
    full: bool,
) -> Result<VersionView, StoreError> {
    let descriptor = if full {
        Some(parse_json(&row.descriptor, "descriptor")?)
    } else {
        None
    };
    let ports = ports
        .into_iter()
        .map(|p| {
            Ok(PortView {
                contract: parse_json(&p.contract, "contract")?,
                port: p.port,
                contract_id: p.contract_id,
                compatibility: p.compatibility,
                digest: p.digest,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(VersionView {
        product: row.product,
        version: row.version,
        status: row.status,
        digest: row.digest,
        published_by: row.published_by,
        published_at: row.published_at,
        sunset: row.sunset,
        migration_guide: row.migration_guide,
        deprecated_at: row.deprecated_at,
        descriptor,
        ports,
        transform: if full { row.transform } else { None },
    })
}

impl Catalog {
    /// A product with all its versions (newest first, without documents).
    pub async fn product(&self, who: &Principal, id: &str) -> Result<ProductView, ProductError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let row = tx.product(id).await?.ok_or_else(|| Missing::Product {
            product: id.to_owned(),
        })?;
        let mut versions = tx.versions(id).await?;
        versions.sort_by(|a, b| by_semver(&b.version, &a.version));
        let versions = versions
            .into_iter()
            .map(|v| version_view(v, Vec::new(), false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProductView {
            id: row.id,
            domain: row.domain,
            team: row.team,
            name: row.name,
            latest: row.latest,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            versions,
        })
    }

    /// Products in id order, a page at a time.
    pub async fn products(
        &self,
        who: &Principal,
        query: &ProductQuery,
    ) -> Result<Vec<ProductSummary>, ProductError> {
        Self::allow(who, Action::Read)?;
        let mut query = query.clone();
        query.limit = query.limit.clamp(1, 1000);
        let rows = self.store.read().await?.products(&query).await?;
        Ok(rows.into_iter().map(ProductSummary::from).collect())
    }

    /// Every version of a product, newest first.
    pub async fn versions(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Vec<VersionView>, ProductError> {
        Ok(self.product(who, id).await?.versions)
    }

    /// One version with its descriptor and contracts. `selector` is a version (`1.2.0`), a major
    /// version (`1` or `v1`: its newest non-retired version) or `latest`.
    pub async fn version(
        &self,
        who: &Principal,
        id: &str,
        selector: &str,
    ) -> Result<VersionView, ProductError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let version = resolve(tx.as_mut(), id, selector).await?;
        let row = tx
            .version(id, &version)
            .await?
            .ok_or_else(|| Missing::Version {
                product: id.to_owned(),
                version: version.clone(),
            })?;
        let ports = tx.ports(id, &version).await?;
        Ok(version_view(row, ports, true)?)
    }

    /// What changed in one output port between two versions of a product.
    pub async fn changelog(
        &self,
        who: &Principal,
        id: &str,
        port: &str,
        from: &str,
        to: &str,
    ) -> Result<Changelog, ProductError> {
        Self::allow(who, Action::Read)?;
        let mut tx = self.store.read().await?;
        let mut contract = async |selector: &str| -> Result<Node, ProductError> {
            let version = resolve(tx.as_mut(), id, selector).await?;
            let ports = tx.ports(id, &version).await?;
            let row = ports
                .into_iter()
                .find(|p| p.port == port)
                .ok_or_else(|| Missing::Port {
                    product: id.to_owned(),
                    version: version.clone(),
                    port: port.to_owned(),
                })?;
            Ok(Node::from_json(&parse_json(&row.contract, "contract")?))
        };
        let old = contract(from).await?;
        let new = contract(to).await?;
        Ok(changelog::diff(&old, &new))
    }

    pub async fn domains(&self, who: &Principal) -> Result<Vec<Domain>, ProductError> {
        Self::allow(who, Action::Read)?;
        let rows = self.store.read().await?.domains().await?;
        Ok(rows.into_iter().map(Domain::from).collect())
    }

    pub async fn teams(&self, who: &Principal) -> Result<Vec<Team>, ProductError> {
        Self::allow(who, Action::Read)?;
        let rows = self.store.read().await?.teams().await?;
        Ok(rows.into_iter().map(Team::from).collect())
    }
}

/// The version a selector picks: itself (`1.2.0`), the newest served version of a major (`1`,
/// `v1`), or the product's latest (`latest`).
pub(crate) async fn resolve(
    tx: &mut dyn Tx,
    id: &str,
    selector: &str,
) -> Result<String, ProductError> {
    let selector = VersionSelector::parse(selector).map_err(|_| ProductError::BadSelector {
        selector: selector.to_owned(),
    })?;
    if let VersionSelector::Exact(v) = selector {
        return Ok(v.to_string());
    }
    let product = tx.product(id).await?.ok_or_else(|| Missing::Product {
        product: id.to_owned(),
    })?;
    let VersionSelector::Major(major) = selector else {
        return Ok(product.latest.ok_or_else(|| Missing::NoVersion {
            product: id.to_owned(),
        })?);
    };
    let mut versions = tx.versions(id).await?;
    versions.retain(|v| {
        VersionStatus::parse(&v.status).is_ok_and(VersionStatus::is_served)
            && semver::Version::parse(&v.version).is_ok_and(|s| s.major == major)
    });
    Ok(versions
        .into_iter()
        .map(|v| v.version)
        .max_by(|a, b| by_semver(a, b))
        .ok_or_else(|| Missing::Major {
            product: id.to_owned(),
            major,
        })?)
}
