//! The [`Catalog`] itself: a store, a clock, the state derived from the event log (search index,
//! lineage graph, compiled policy sets), and what every operation shares — the caller check
//! ([`Catalog::allow`]) and the one retry loop for optimistic writes ([`Catalog::retrying`]).
//!
//! The operations live in one module per area (`publish`, `products`, `lifecycle`, `search`,
//! `lineage`, `access`, `runs`, `sla`, `governance`, `tokens`, `audit`), each with its own error
//! enum. This module knows none of them.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::auth::{Action, Principal};
use crate::error::Denied;
use crate::governance::sets::SetCache;
use crate::lineage::graph::LineageGraph;
use crate::search::index::SearchIndex;
use crate::store::{CatalogStore, EventRow, ProductRow, StoreError, Tx};

/// The time, injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where it is set.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads Delta logs for the catalog: which run made a version of a table (so a run finishes
/// only with its own commit).
#[async_trait::async_trait]
pub trait DeltaLog: Send + Sync + std::fmt::Debug {
    /// The run id in the commit info of version `version` of the table at `location` (`None`
    /// when it has none); an error (why) when there is no such table or version.
    async fn committed_by(&self, location: &str, version: i64) -> Result<Option<String>, String>;

    /// The rows and bytes version `version` of the table wrote, as its commit records them
    /// (`None` when it does not say).
    async fn written(&self, _location: &str, _version: i64) -> Result<Option<(i64, i64)>, String> {
        Ok(None)
    }
}

/// The catalog: a store, a clock, and the rules.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) store: Arc<dyn CatalogStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) search: Arc<SearchState>,
    pub(crate) lineage: Arc<LineageState>,
    /// The global policies the catalog was built with (the binary's standard pack), to which the
    /// published global and domain bundles add; none and no bundle = no governance.
    pub(crate) base_policies: Option<Arc<Vec<mesh_policy::Source>>>,
    /// Compiled policy sets by the bundle versions they were built from.
    pub(crate) policy_sets: Arc<SetCache>,
    /// Where output ports' tables are: runs write under it, at a place the catalog names.
    pub(crate) storage: Option<Arc<str>>,
    /// What the catalog reads Delta logs with, to check what a run says it committed.
    pub(crate) delta_log: Option<Arc<dyn DeltaLog>>,
}

/// The lineage graph and the last event it reflects.
#[derive(Debug, Default)]
pub(crate) struct LineageState {
    pub(crate) graph: std::sync::RwLock<LineageGraph>,
    pub(crate) applied: tokio::sync::Mutex<Option<i64>>,
}

/// The search index and the last event it reflects.
#[derive(Debug, Default)]
pub(crate) struct SearchState {
    pub(crate) index: std::sync::RwLock<SearchIndex>,
    /// The sequence number of the last applied event; `None` before the first build. Held while
    /// syncing, so one task brings the index up to date and the others wait for it.
    pub(crate) applied: tokio::sync::Mutex<Option<i64>>,
}

/// How many times a write is retried after losing a race before giving up.
const MAX_ATTEMPTS: usize = 64;

/// What the body of a write decided: keep what it wrote, or leave nothing behind.
#[derive(Debug)]
pub(crate) enum Step<T> {
    Commit(T),
    Rollback(T),
}

/// An error a write can be retried on: the store's conflict, and how to say it gave up.
pub(crate) trait Retry: From<StoreError> {
    /// Why the write lost a race, when it did.
    fn conflict(&self) -> Option<&str>;
    /// The error after [`MAX_ATTEMPTS`] lost races.
    fn busy(why: String) -> Self;
}

/// Implements [`Retry`] for an area error with `Store(StoreError)` and `Busy(String)` variants.
macro_rules! retry_on_conflict {
    ($($error:ident),+ $(,)?) => {
        $(impl $crate::catalog::Retry for $error {
            fn conflict(&self) -> Option<&str> {
                match self {
                    $error::Store($crate::store::StoreError::Conflict(why)) => Some(why),
                    _ => None,
                }
            }

            fn busy(why: String) -> Self {
                $error::Busy(why)
            }
        })+
    };
}
pub(crate) use retry_on_conflict;

pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// JSON with object keys sorted: the same document in any key order has the same digest.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

/// SHA-256 of the canonical JSON of `value`.
pub(crate) fn digest(value: &serde_json::Value) -> String {
    crate::auth::hex(&Sha256::digest(canonical(value).to_string().as_bytes()))
}

/// A stored JSON document; one that does not parse is a corrupt row.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A product's latest version with its documents parsed.
pub(crate) struct LatestVersion {
    pub(crate) version: String,
    pub(crate) status: String,
    pub(crate) descriptor: serde_json::Value,
    /// (port, contract).
    pub(crate) contracts: Vec<(String, serde_json::Value)>,
}

/// The next page of products (after `after`, in id order) with their latest versions; `None`
/// when there are no more. Returns the page's last id, to continue from.
pub(crate) async fn latest_page(
    tx: &mut dyn Tx,
    after: Option<&str>,
    limit: i64,
) -> Result<Option<(String, Vec<(ProductRow, LatestVersion)>)>, StoreError> {
    let page = tx.latest_versions(after, limit).await?;
    let Some(upto) = page.last().map(|(p, _)| p.id.clone()) else {
        return Ok(None);
    };
    let mut ports = tx.latest_ports(after, &upto).await?.into_iter().peekable();
    let mut out = Vec::with_capacity(page.len());
    for (product, version) in page {
        let mut contracts = Vec::new();
        while let Some(port) = ports.next_if(|p| p.product == product.id) {
            contracts.push((port.port, parse_json(&port.contract, "contract")?));
        }
        let latest = LatestVersion {
            descriptor: parse_json(&version.descriptor, "descriptor")?,
            version: version.version,
            status: version.status,
            contracts,
        };
        out.push((product, latest));
    }
    Ok(Some((upto, out)))
}

/// The next page of events after `seq`: its last sequence number and the distinct keys `key`
/// picks from it (what derived state must re-read); `None` when there are no new events.
pub(crate) async fn next_subjects(
    tx: &mut dyn Tx,
    seq: i64,
    key: impl Fn(&EventRow) -> Option<String>,
) -> Result<Option<(i64, Vec<String>)>, StoreError> {
    let events = tx.events(seq, 1000, None).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(None);
    };
    let mut keys: Vec<String> = events.iter().filter_map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    Ok(Some((last, keys)))
}

impl Catalog {
    pub fn new(store: Arc<dyn CatalogStore>) -> Catalog {
        Catalog::with_clock(store, Arc::new(SystemClock))
    }

    pub fn with_clock(store: Arc<dyn CatalogStore>, clock: Arc<dyn Clock>) -> Catalog {
        Catalog {
            store,
            clock,
            search: Arc::default(),
            lineage: Arc::default(),
            base_policies: None,
            policy_sets: Arc::default(),
            storage: None,
            delta_log: None,
        }
    }

    /// Output ports' tables live under `root` (`file:///...`, `s3://bucket/prefix` or a
    /// folder): a run of port `p` of `domain.name` at major `m` writes
    /// `<root>/<domain>/<name>/<p>/v<m>`, and nowhere else.
    pub fn with_storage(mut self, root: &str) -> Catalog {
        self.storage = Some(Arc::from(root.trim_end_matches('/')));
        self
    }

    /// Checks what runs say they committed with `log` (without one, no run can finish with a
    /// version).
    pub fn with_delta_log(mut self, log: Arc<dyn DeltaLog>) -> Catalog {
        self.delta_log = Some(log);
        self
    }

    /// Whether runs' commits can be checked (a Delta log reader is set).
    pub fn reads_delta_logs(&self) -> bool {
        self.delta_log.is_some()
    }

    /// Judges every publish by these global policies (with the global and domain bundles
    /// published to the catalog): blocking violations refuse it, the others are recorded with it.
    /// Refused when they do not load.
    pub fn with_policies(
        mut self,
        global: Vec<mesh_policy::Source>,
    ) -> Result<Catalog, Vec<mesh_policy::PolicyError>> {
        mesh_policy::PolicySet::load(&global, None, &mesh_policy::Overrides::new())?;
        self.base_policies = Some(Arc::new(global));
        self.policy_sets = Arc::default();
        Ok(self)
    }

    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }

    /// The time by the catalog's clock, as the catalog writes it.
    pub fn now(&self) -> String {
        stamp(self.clock.now())
    }

    /// The catalog's clock's time, as an instant (what a scheduler compares slots with).
    pub fn instant(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether `who` may do `action`; the refusal names both.
    pub(crate) fn allow(who: &Principal, action: Action<'_>) -> Result<(), Denied> {
        if who.may(action) {
            return Ok(());
        }
        Err(Denied {
            principal: who.name.clone(),
            action: action.to_string(),
        })
    }

    /// Runs `body` in a write transaction, again from the start whenever it loses a race (the
    /// store's optimistic-concurrency conflict), until it commits, rolls back or fails. No lock
    /// is held while waiting between attempts.
    ///
    /// `body` owns the transaction while it runs and hands it back with its result (so its
    /// future is `Send` and borrows nothing for an unnamed lifetime):
    /// `self.retrying(|mut tx| async move { let r = work(tx.as_mut()).await; (tx, r) })`.
    pub(crate) async fn retrying<T, E, F>(
        &self,
        mut body: impl FnMut(Box<dyn Tx>) -> F,
    ) -> Result<T, E>
    where
        E: Retry,
        F: Future<Output = (Box<dyn Tx>, Result<Step<T>, E>)>,
    {
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let tx = self.store.write().await?;
            let (tx, result) = body(tx).await;
            // The transaction ends here, before any retry sleeps.
            let result = match result {
                Ok(Step::Commit(value)) => tx.commit().await.map(|()| value).map_err(E::from),
                Ok(Step::Rollback(value)) => {
                    drop(tx);
                    Ok(value)
                }
                Err(e) => {
                    drop(tx);
                    Err(e)
                }
            };
            match result {
                Err(e) if e.conflict().is_some() => {
                    let why = e.conflict().unwrap_or_default().to_owned();
                    if !retry_pause(attempt).await {
                        return Err(E::busy(why));
                    }
                }
                other => return other,
            }
        }
    }
}

/// After a write lost a race: waits a little (spreading the retries of writers that collided)
/// and says whether to try again.
async fn retry_pause(attempt: usize) -> bool {
    if attempt >= MAX_ATTEMPTS {
        return false;
    }
    let jitter = rand::random::<u64>() % (2 + attempt as u64 * 2);
    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
    true
}
