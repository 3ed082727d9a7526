//! The cache of compiled policy sets, keyed by the bundle versions each was built from (so every
//! catalog instance on one database judges by the same policies, and a new bundle version is a
//! new key, never a stale entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mesh_policy::PolicySet;
use serde::{Deserialize, Serialize};

/// The bundle versions a decision was made with (none: no bundle was published yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BundleVersions {
    pub global: Option<i64>,
    pub domain: Option<i64>,
}

/// Compiled policy sets by what they were built from: (the domain with a bundle of its own, or
/// `""` for every domain without one; the versions).
pub(crate) type SetCache = Mutex<HashMap<(String, BundleVersions), Arc<PolicySet>>>;

/// At most this many compiled sets are kept (one per domain and version pair in use).
pub(crate) const CACHED_SETS: usize = 512;
