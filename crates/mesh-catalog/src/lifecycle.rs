//! The lifecycle of a published version: draft → active → deprecated (served until its sunset
//! date; every consumer and reader is told) → retired.

use chrono::NaiveDate;
use mesh_model::names::VersionStatus;
use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, Step, retry_on_conflict};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::products::{VersionView, version_view};
use crate::store::{NewEvent, ProductRow, StoreError, Tx, VersionRow};

/// Why a lifecycle change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("a deprecation needs a migration guide for the consumers")]
    NoGuide,
    #[error("the sunset date {sunset} must be after today ({today})")]
    SunsetNotAfterToday { sunset: NaiveDate, today: NaiveDate },
    #[error("{product}@{version} is {status}; only a draft or active version can be deprecated")]
    NotDeprecatable {
        product: String,
        version: String,
        status: String,
    },
    #[error("{product}@{version} is {status}; deprecate it with a sunset date first")]
    NotDeprecated {
        product: String,
        version: String,
        status: String,
    },
    #[error(
        "{product}@{version} cannot be retired before its sunset date {sunset} (today is {today})"
    )]
    BeforeSunset {
        product: String,
        version: String,
        sunset: NaiveDate,
        today: NaiveDate,
    },
    #[error("the catalog is busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

retry_on_conflict!(LifecycleError);

impl ToProblem for LifecycleError {
    fn code(&self) -> ErrorCode {
        match self {
            LifecycleError::Denied(_) => ErrorCode::Forbidden,
            LifecycleError::NotFound(_) => ErrorCode::NotFound,
            LifecycleError::NoGuide | LifecycleError::SunsetNotAfterToday { .. } => {
                ErrorCode::BadRequest
            }
            LifecycleError::NotDeprecatable { .. }
            | LifecycleError::NotDeprecated { .. }
            | LifecycleError::BeforeSunset { .. } => ErrorCode::Lifecycle,
            LifecycleError::Busy(_) => ErrorCode::Busy,
            LifecycleError::Store(e) => e.code(),
        }
    }
}

/// A product version that reads a deprecated one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumerRef {
    pub product: String,
    pub version: String,
    pub input_port: String,
    pub contract_id: String,
}

/// The result of deprecating a version: who must move.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deprecation {
    pub version: VersionView,
    pub consumers: Vec<ConsumerRef>,
    /// The people and services who have queried the version's major through the query port,
    /// each notified too.
    #[serde(default)]
    pub readers: Vec<String>,
}

impl Catalog {
    /// Deprecates a version: it stays readable until `sunset`, when it may be retired; every
    /// product reading it is told through the event log.
    pub async fn deprecate(
        &self,
        who: &Principal,
        id: &str,
        version: &str,
        sunset: NaiveDate,
        guide: &str,
    ) -> Result<Deprecation, LifecycleError> {
        if guide.trim().is_empty() {
            return Err(LifecycleError::NoGuide);
        }
        let today = self.clock.now().date_naive();
        if sunset <= today {
            return Err(LifecycleError::SunsetNotAfterToday { sunset, today });
        }
        self.retrying(|mut tx| async move {
            let result = self
                .deprecate_in(tx.as_mut(), who, id, version, sunset, guide)
                .await;
            (tx, result)
        })
        .await
    }

    /// Retires a deprecated version once its sunset date has come.
    pub async fn retire(
        &self,
        who: &Principal,
        id: &str,
        version: &str,
    ) -> Result<VersionView, LifecycleError> {
        self.retrying(|mut tx| async move {
            let result = self.retire_in(tx.as_mut(), who, id, version).await;
            (tx, result)
        })
        .await
    }

    /// One attempt at a deprecation, in `tx`.
    async fn deprecate_in(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        id: &str,
        version: &str,
        sunset: NaiveDate,
        guide: &str,
    ) -> Result<Step<Deprecation>, LifecycleError> {
        let (product, mut row) = self.lifecycle_target(tx, who, id, version).await?;
        let status = VersionStatus::parse(&row.status).ok();
        if !matches!(status, Some(VersionStatus::Active | VersionStatus::Draft)) {
            return Err(LifecycleError::NotDeprecatable {
                product: id.to_owned(),
                version: version.to_owned(),
                status: row.status,
            });
        }
        let now = self.now();
        let expected = row.revision;
        row.status = VersionStatus::Deprecated.as_str().into();
        row.sunset = Some(sunset.to_string());
        row.migration_guide = Some(guide.to_owned());
        row.deprecated_at = Some(now.clone());
        row.revision += 1;
        tx.update_version(&row, expected).await?;
        touch_product(tx, &product, &row, &now).await?;
        let ports = tx.ports(id, version).await?;
        let contract_ids: Vec<String> = ports.iter().map(|p| p.contract_id.clone()).collect();
        let consumers: Vec<ConsumerRef> = tx
            .dependents(&contract_ids)
            .await?
            .into_iter()
            .filter(|d| d.product != id)
            .map(|d| ConsumerRef {
                product: d.product,
                version: d.version,
                input_port: d.input_port,
                contract_id: d.contract_id,
            })
            .collect();
        // Whoever reads this major through the query port hears of it too.
        let mut readers: Vec<String> = tx
            .usage(Some(id), None, 1000)
            .await?
            .into_iter()
            .filter(|u| u.major == row.major)
            .map(|u| u.reader)
            .collect();
        readers.sort();
        readers.dedup();
        let payload = serde_json::json!({
            "version": version, "sunset": row.sunset, "migration_guide": guide,
            "consumers": consumers, "readers": readers,
        });
        tx.append_event(&NewEvent {
            at: now.clone(),
            kind: "version.deprecated".into(),
            subject: id.to_owned(),
            actor: who.name.clone(),
            payload: payload.clone(),
        })
        .await?;
        for consumer in &consumers {
            tx.append_event(&NewEvent {
                at: now.clone(),
                kind: "consumer.notified".into(),
                subject: consumer.product.clone(),
                actor: who.name.clone(),
                payload: serde_json::json!({
                    "deprecated": format!("{id}@{version}"),
                    "input_port": consumer.input_port,
                    "sunset": row.sunset, "migration_guide": guide,
                }),
            })
            .await?;
        }
        for reader in &readers {
            tx.append_event(&NewEvent {
                at: now.clone(),
                kind: "reader.notified".into(),
                subject: id.to_owned(),
                actor: who.name.clone(),
                payload: serde_json::json!({
                    "reader": reader, "deprecated": format!("{id}@{version}"),
                    "sunset": row.sunset, "migration_guide": guide,
                }),
            })
            .await?;
        }
        let view = version_view(row, Vec::new(), false)?;
        Ok(Step::Commit(Deprecation {
            version: view,
            consumers,
            readers,
        }))
    }

    /// One attempt at a retirement, in `tx`.
    async fn retire_in(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        id: &str,
        version: &str,
    ) -> Result<Step<VersionView>, LifecycleError> {
        let (product, mut row) = self.lifecycle_target(tx, who, id, version).await?;
        if row.status != VersionStatus::Deprecated.as_str() {
            return Err(LifecycleError::NotDeprecated {
                product: id.to_owned(),
                version: version.to_owned(),
                status: row.status,
            });
        }
        let today = self.clock.now().date_naive();
        let sunset = row
            .sunset
            .as_deref()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        if let Some(sunset) = sunset
            && today < sunset
        {
            return Err(LifecycleError::BeforeSunset {
                product: id.to_owned(),
                version: version.to_owned(),
                sunset,
                today,
            });
        }
        let now = self.now();
        let expected = row.revision;
        row.status = VersionStatus::Retired.as_str().into();
        row.revision += 1;
        tx.update_version(&row, expected).await?;
        touch_product(tx, &product, &row, &now).await?;
        tx.append_event(&NewEvent {
            at: now,
            kind: "version.retired".into(),
            subject: id.to_owned(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "version": version }),
        })
        .await?;
        Ok(Step::Commit(version_view(row, Vec::new(), false)?))
    }

    async fn lifecycle_target(
        &self,
        tx: &mut dyn Tx,
        who: &Principal,
        id: &str,
        version: &str,
    ) -> Result<(ProductRow, VersionRow), LifecycleError> {
        Self::allow(who, Action::Read)?;
        let product = tx.product(id).await?.ok_or_else(|| Missing::Product {
            product: id.to_owned(),
        })?;
        Self::allow(
            who,
            Action::Lifecycle {
                domain: &product.domain,
            },
        )?;
        let row = tx
            .version(id, version)
            .await?
            .ok_or_else(|| Missing::Version {
                product: id.to_owned(),
                version: version.to_owned(),
            })?;
        Ok((product, row))
    }
}

/// Bumps the product's revision (so concurrent publishers re-read) and mirrors the status of
/// its latest version.
pub(crate) async fn touch_product(
    tx: &mut dyn Tx,
    product: &ProductRow,
    changed: &VersionRow,
    now: &str,
) -> Result<(), StoreError> {
    let mut row = product.clone();
    if product.latest.as_deref() == Some(changed.version.as_str()) {
        row.status = changed.status.clone();
    }
    row.revision += 1;
    row.updated_at = now.to_owned();
    tx.update_product(&row, product.revision).await?;
    Ok(())
}
