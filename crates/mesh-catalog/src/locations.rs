//! External locations: where a domain's source products may read. A platform admin registers
//! each one for one domain (`mesh location add NAME URL --domain D`); the policies `on:
//! location` judge it (the standard pack: object stores and absolute folders only); the
//! platform's managed storage is never one, nor a folder around it. A source of a product reads
//! its own product folder's files, or data under a location of its domain — nothing else, so
//! another domain's data is read only through an input port and a grant. Every change is in
//! the audit log.

use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, stamp};
use crate::error::{Denied, ErrorCode, Missing, Problem, ToProblem, wraps};
use crate::governance::{GovernanceError, PolicyRefusal};
use crate::store::{LocationRow, NewEvent, StoreError};

/// Why a location operation was refused, or a source may not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("location name `{name}`: letters, digits, `_` and `-` only (at most 64)")]
    BadName { name: String },
    #[error("location `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    /// Managed storage (or a folder holding it) as a location.
    #[error(
        "location `{url}` is the platform's managed storage ({storage}) or holds it: output ports' tables are read through input ports and grants, never as a source"
    )]
    Managed { url: String, storage: String },
    #[error("a location named `{name}` exists")]
    Exists { name: String },
    /// A source outside every location of its domain.
    #[error(
        "source `{source_name}` of {product} reads `{url}`, which is under no location registered for domain `{domain}`; a platform admin registers one with: mesh location add NAME URL --domain {domain}"
    )]
    Unregistered {
        source_name: String,
        product: String,
        url: String,
        domain: String,
    },
    #[error(transparent)]
    PolicyViolation(PolicyRefusal),
    #[error(transparent)]
    Policies(#[from] GovernanceError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for LocationError {
    fn from(e: StoreError) -> LocationError {
        match e {
            StoreError::Conflict(name) => LocationError::Exists { name },
            other => LocationError::Store(other),
        }
    }
}

wraps!(LocationError: mesh_policy::PolicyError => Policies);

impl ToProblem for LocationError {
    fn code(&self) -> ErrorCode {
        match self {
            LocationError::Denied(_) | LocationError::Unregistered { .. } => ErrorCode::Forbidden,
            LocationError::NotFound(_) => ErrorCode::NotFound,
            LocationError::BadName { .. }
            | LocationError::BadUrl { .. }
            | LocationError::Managed { .. } => ErrorCode::BadRequest,
            LocationError::Exists { .. } => ErrorCode::Lifecycle,
            LocationError::PolicyViolation(_) => ErrorCode::Policy,
            LocationError::Policies(e) => e.code(),
            LocationError::Store(e) => e.code(),
        }
    }

    fn extend(&self, problem: &mut Problem) {
        match self {
            LocationError::PolicyViolation(refusal) => refusal.extend(problem),
            LocationError::Policies(e) => e.extend(problem),
            _ => {}
        }
    }
}

/// A registered location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LocationView {
    pub name: String,
    /// Normalized: `scheme://...` without a trailing `/` (a folder is `file:///abs/path`).
    pub url: String,
    pub domain: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<LocationRow> for LocationView {
    fn from(r: LocationRow) -> LocationView {
        LocationView {
            name: r.name,
            url: r.url,
            domain: r.domain,
            created_at: r.created_at,
            created_by: r.created_by,
        }
    }
}

/// What an admin registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewLocation {
    pub name: String,
    pub url: String,
    pub domain: String,
    /// Replace the location of this name, if there is one, in the same transaction: sources under
    /// the old URL are never without a location in between, and a refused new URL leaves the
    /// old one as it was.
    #[serde(default)]
    pub replace: bool,
}

/// `text` as a location URL: `scheme://rest` without a trailing `/`, an absolute path as
/// `file://path`; `(scheme, url)`. No relative paths and no `.` or `..` segments, so that "under"
/// means under.
pub fn normalize(text: &str) -> Result<(String, String), String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest.to_owned()),
        None if text.starts_with('/') => ("file".to_owned(), text.to_owned()),
        None => {
            return Err(
                "a relative path is not a location (give an absolute path or a URL)".into(),
            );
        }
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+')
    {
        return Err(format!("`{scheme}` is not a URL scheme"));
    }
    // One name per store: Hadoop's `s3a://` and `s3n://` are the same buckets as `s3://`.
    let scheme = match scheme.as_str() {
        "s3a" | "s3n" => "s3".to_owned(),
        _ => scheme,
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err("no bucket or folder".into());
    }
    if rest.split('/').any(|part| part == ".." || part == ".") {
        return Err("`.` and `..` are not allowed in a location".into());
    }
    // URL parsing decodes `%2e%2e` into `..` after this check would have passed it.
    if rest.contains('%') {
        return Err("percent-encoding is not allowed in a location".into());
    }
    if rest.contains(['?', '#', '\\']) || rest.chars().any(char::is_control) {
        return Err("a location has no query, fragment, backslash or control character".into());
    }
    // Bucket and host names are case-insensitive: compared in lower case.
    let rest = match rest.split_once('/') {
        Some((authority, path)) if scheme != "file" => {
            format!("{}/{path}", authority.to_ascii_lowercase())
        }
        None if scheme != "file" => rest.to_ascii_lowercase(),
        _ => rest.to_owned(),
    };
    Ok((scheme.clone(), format!("{scheme}://{rest}")))
}

/// `text` (managed storage, as the platform configures it) normalized, its `.` segments
/// dropped and `..` resolved: the platform's own setting, compared with what others give.
pub fn normalize_storage(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (head, path) = match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => ("file://", rest),
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            return normalize(&format!("{scheme}://{authority}/{}", clean(path)?))
                .map(|(_, url)| url);
        }
        None => ("file://", text),
    };
    if !path.starts_with('/') {
        return Err(format!(
            "managed storage `{text}` is not an absolute path or a URL"
        ));
    }
    normalize(&format!("{head}/{}", clean(path)?)).map(|(_, url)| url)
}

/// A path's segments without `.` and empty ones, `..` resolved.
fn clean(path: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts
                    .pop()
                    .ok_or_else(|| format!("`{path}` climbs above its root"))?;
            }
            _ => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}
/// Whether normalized `url` is `prefix` or inside it.
pub fn under(url: &str, prefix: &str) -> bool {
    url == prefix
        || url
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether one of two normalized URLs is inside the other (managed storage may be neither a
/// location nor inside one).
fn overlaps(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

fn good_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Catalog {
    /// Registers a location for a domain's sources. Admins only; judged by the domain's
    /// (and global) policies `on: location`; never managed storage; audited.
    pub async fn add_location(
        &self,
        who: &Principal,
        new: &NewLocation,
    ) -> Result<LocationView, LocationError> {
        Self::allow(who, Action::Administer)?;
        if !good_name(&new.name) {
            return Err(LocationError::BadName {
                name: new.name.clone(),
            });
        }
        let domain = new.domain.trim().to_ascii_lowercase();
        let (scheme, url) = normalize(&new.url).map_err(|reason| LocationError::BadUrl {
            url: new.url.clone(),
            reason,
        })?;
        if new.url.contains(['*', '?', '[', ']', '{', '}']) {
            return Err(LocationError::BadUrl {
                url: new.url.clone(),
                reason: "a location has no glob characters (`*`, `?`, `[`, `{`)".into(),
            });
        }
        let storage = self.managed_storage()?;
        if let Some(storage) = &storage
            && overlaps(&url, storage)
        {
            return Err(LocationError::Managed {
                url,
                storage: storage.clone(),
            });
        }
        let mut tx = self.store.write().await?;
        if let Some((policies, bundles)) = self.policy_set(tx.as_mut(), &domain).await? {
            let input = mesh_policy::location_input(
                serde_json::json!({
                    "name": new.name, "url": url, "scheme": scheme, "domain": domain,
                }),
                serde_json::json!({ "storage": storage }),
            );
            let decision = policies.evaluate_location(&input)?;
            if decision.blocked() {
                return Err(LocationError::PolicyViolation(PolicyRefusal {
                    subject: "location".into(),
                    version: new.name.clone(),
                    violations: decision.violations,
                    bundles,
                }));
            }
        }
        let row = LocationRow {
            name: new.name.clone(),
            url,
            domain,
            created_at: stamp(self.clock.now()),
            created_by: who.name.clone(),
        };
        let previous = if new.replace {
            tx.delete_location(&row.name).await?
        } else {
            None
        };
        tx.insert_location(&row).await?;
        let (kind, payload) = match previous {
            Some(old) => (
                "location.changed",
                serde_json::json!({
                    "url": row.url, "domain": row.domain,
                    "previous": { "url": old.url, "domain": old.domain },
                }),
            ),
            None => (
                "location.added",
                serde_json::json!({ "url": row.url, "domain": row.domain }),
            ),
        };
        tx.append_event(&NewEvent {
            at: row.created_at.clone(),
            kind: kind.into(),
            subject: row.name.clone(),
            actor: who.name.clone(),
            payload,
        })
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// The locations `who` may see: every one for admins, their domains' for the others.
    pub async fn locations(&self, who: &Principal) -> Result<Vec<LocationView>, LocationError> {
        let mut tx = self.store.read().await?;
        let rows = tx.locations(None).await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                who.may(Action::Administer)
                    || who.may(Action::Publish {
                        domain: r.domain.as_str(),
                    })
            })
            .map(LocationView::from)
            .collect())
    }

    /// Removes a location (admins only; audited). Sources under it are no longer read.
    pub async fn remove_location(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<LocationView, LocationError> {
        Self::allow(who, Action::Administer)?;
        let mut tx = self.store.write().await?;
        let row = tx
            .delete_location(name)
            .await?
            .ok_or_else(|| Missing::Location {
                location: name.to_owned(),
            })?;
        tx.append_event(&NewEvent {
            at: stamp(self.clock.now()),
            kind: "location.removed".into(),
            subject: row.name.clone(),
            actor: who.name.clone(),
            payload: serde_json::json!({ "url": row.url, "domain": row.domain }),
        })
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// The location of `domain` that source `source` of `product` (an absolute path or a URL)
    /// is under; refused when there is none, or when it is managed storage.
    pub async fn source_location(
        &self,
        product: &str,
        domain: &str,
        source: &str,
        url: &str,
    ) -> Result<LocationView, LocationError> {
        let unregistered = || LocationError::Unregistered {
            source_name: source.to_owned(),
            product: product.to_owned(),
            url: url.to_owned(),
            domain: domain.to_owned(),
        };
        // Brace alternatives of a glob could spell a way out; nobody needs them in a source.
        if url.contains(['{', '}']) {
            return Err(unregistered());
        }
        let (_, normalized) = normalize(url).map_err(|_| unregistered())?;
        if let Some(storage) = self.managed_storage()?
            && overlaps(&normalized, &storage)
        {
            return Err(unregistered());
        }
        let mut tx = self.store.read().await?;
        let rows = tx.locations(Some(domain)).await?;
        rows.into_iter()
            .find(|r| under(&normalized, &r.url))
            .map(LocationView::from)
            .ok_or_else(unregistered)
    }

    /// Managed storage, normalized; an error when it is set but cannot be compared (so the
    /// check fails closed).
    fn managed_storage(&self) -> Result<Option<String>, LocationError> {
        self.storage
            .as_deref()
            .map(|s| {
                normalize_storage(s).map_err(|reason| LocationError::BadUrl {
                    url: s.to_owned(),
                    reason: format!("managed storage cannot be compared with locations: {reason}"),
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_normalized_and_under_means_under() {
        assert_eq!(
            normalize("/srv/landing/").unwrap(),
            ("file".into(), "file:///srv/landing".into())
        );
        assert_eq!(
            normalize("S3://bucket/in").unwrap(),
            ("s3".into(), "s3://bucket/in".into())
        );
        for bad in [
            "landing",
            "/srv/../data",
            "s3://b/./x",
            "://x",
            "s3://",
            "/a?b",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        assert!(under("file:///srv/landing/x.csv", "file:///srv/landing"));
        assert!(under("file:///srv/landing", "file:///srv/landing"));
        assert!(!under("file:///srv/landing2/x", "file:///srv/landing"));
    }
}
