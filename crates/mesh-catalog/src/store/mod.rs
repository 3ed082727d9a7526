//! The storage trait under the catalog: rows in, rows out, inside transactions. Rows are the
//! store's, never API bodies (the areas' view types are). No business rule lives here — validation, compatibility, lifecycle, audit and events are in [`crate::Catalog`],
//! so no backend can skip them. Two implementations: SQLite (the embedded default) and PostgreSQL,
//! both generated from one body of SQL (see [`sql`]), both run by one conformance suite.

mod sql;

use async_trait::async_trait;

pub use sql::{PostgresStore, SqliteStore, open};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the row first (revision mismatch) or inserted the same key: the
    /// caller re-reads and decides again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or failed.
    #[error("catalog database: {}", describe(.0))]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date; the cause is the error's source (printed
    /// once, by whoever prints the chain).
    #[error("catalog migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that cannot be read back (e.g. edited by hand).
    #[error("corrupt catalog row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A database error as an operator reads it: SQLite's "disk full" and I/O errors (the files
/// could not be written or created: the disk is full, or read-only) say so.
fn describe(e: &sqlx::Error) -> String {
    let disk = match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, 10 | 13)),
        _ => false,
    };
    if disk {
        format!(
            "the disk it is on is full or cannot be written; free space there (the catalog resumes by itself) — {}",
            db_message(e)
        )
    } else {
        e.to_string()
    }
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A catalog database.
#[async_trait]
pub trait CatalogStore: Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;
    /// A transaction for reading.
    async fn read(&self) -> StoreResult<Box<dyn Tx>>;
    /// A transaction for writing; on SQLite it takes the write lock at once, so two writers
    /// never deadlock on a lock upgrade.
    async fn write(&self) -> StoreResult<Box<dyn Tx>>;
}

/// One transaction. Dropping it without [`Tx::commit`] rolls it back.
#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> StoreResult<()>;

    async fn domain(&mut self, name: &str) -> StoreResult<Option<DomainRow>>;
    async fn domains(&mut self) -> StoreResult<Vec<DomainRow>>;
    /// Inserts the domain; `Conflict` when it exists.
    async fn insert_domain(&mut self, row: &DomainRow) -> StoreResult<()>;
    async fn set_domain_description(
        &mut self,
        name: &str,
        description: Option<&str>,
    ) -> StoreResult<()>;

    async fn team(&mut self, name: &str) -> StoreResult<Option<TeamRow>>;
    async fn teams(&mut self) -> StoreResult<Vec<TeamRow>>;
    async fn insert_team(&mut self, row: &TeamRow) -> StoreResult<()>;

    async fn product(&mut self, id: &str) -> StoreResult<Option<ProductRow>>;
    /// Products ordered by id, after `after`, at most `limit`, optionally of one domain.
    async fn products(&mut self, query: &ProductQuery) -> StoreResult<Vec<ProductRow>>;
    /// Inserts a new product; `Conflict` when it exists.
    async fn insert_product(&mut self, row: &ProductRow) -> StoreResult<()>;
    /// Replaces the product if its stored revision is still `expected`; `Conflict` otherwise.
    async fn update_product(&mut self, row: &ProductRow, expected: i64) -> StoreResult<()>;

    async fn version(&mut self, product: &str, version: &str) -> StoreResult<Option<VersionRow>>;
    /// Every version of a product, in no particular order.
    async fn versions(&mut self, product: &str) -> StoreResult<Vec<VersionRow>>;
    /// `Conflict` when the version exists.
    async fn insert_version(&mut self, row: &VersionRow) -> StoreResult<()>;
    async fn update_version(&mut self, row: &VersionRow, expected: i64) -> StoreResult<()>;

    /// The output-port contracts of one product version.
    async fn ports(&mut self, product: &str, version: &str) -> StoreResult<Vec<PortRow>>;
    /// Every stored contract of one port, all versions, in no particular order.
    async fn port_history(&mut self, product: &str, port: &str) -> StoreResult<Vec<PortRow>>;
    async fn insert_port(&mut self, row: &PortRow) -> StoreResult<()>;

    /// Records that a product version reads a contract through an input port.
    async fn insert_dependency(&mut self, row: &DependencyRow) -> StoreResult<()>;
    /// The product versions that read any of these contracts.
    async fn dependents(&mut self, contract_ids: &[String]) -> StoreResult<Vec<DependencyRow>>;

    /// Appends an event and returns its sequence number.
    async fn append_event(&mut self, event: &NewEvent) -> StoreResult<i64>;
    /// Events after `after` (a sequence number), oldest first; of one subject when given.
    async fn events(
        &mut self,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> StoreResult<Vec<EventRow>>;

    /// The highest event sequence number (0 when there are none).
    async fn max_event_seq(&mut self) -> StoreResult<i64>;
    /// Products (after `after`, in id order, at most `limit`) with their latest version.
    async fn latest_versions(
        &mut self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(ProductRow, VersionRow)>>;
    /// The port contracts of the latest versions of products with ids in `(after, upto]`.
    async fn latest_ports(&mut self, after: Option<&str>, upto: &str) -> StoreResult<Vec<PortRow>>;

    /// Replaces every edge of `origin`.
    async fn replace_lineage(
        &mut self,
        origin: &str,
        edges: &[(String, String)],
    ) -> StoreResult<()>;
    /// Adds edges to `origin` (existing ones stay).
    async fn add_lineage(&mut self, origin: &str, edges: &[(String, String)]) -> StoreResult<()>;
    /// The edges `origin` states.
    async fn lineage_of(&mut self, origin: &str) -> StoreResult<Vec<(String, String)>>;
    /// Every edge as (origin, source, target), in key order after `after`, a page at a time.
    async fn lineage_page(
        &mut self,
        after: Option<&(String, String, String)>,
        limit: i64,
    ) -> StoreResult<Vec<(String, String, String)>>;
    /// Stores what a node shows (its Marquez `data`).
    async fn put_lineage_node(
        &mut self,
        id: &str,
        data: &serde_json::Value,
        at: &str,
    ) -> StoreResult<()>;
    async fn lineage_node(&mut self, id: &str) -> StoreResult<Option<serde_json::Value>>;

    async fn token_by_hash(&mut self, hash: &str) -> StoreResult<Option<TokenRow>>;
    async fn insert_token(&mut self, row: &TokenRow) -> StoreResult<()>;
    /// Marks a token revoked; false when there is no such live token.
    async fn revoke_token(&mut self, id: &str, at: &str) -> StoreResult<bool>;
    /// Marks every live token of a principal revoked; how many.
    async fn revoke_tokens_of(&mut self, principal: &str, at: &str) -> StoreResult<u64>;
    /// Credentials (tokens minted for a grant), newest first: of a grant and/or a principal.
    async fn credentials(
        &mut self,
        grant: Option<&str>,
        principal: Option<&str>,
    ) -> StoreResult<Vec<TokenRow>>;
    /// A credential by its id.
    async fn credential(&mut self, id: &str) -> StoreResult<Option<TokenRow>>;
    /// Marks every live credential of a grant revoked; how many.
    async fn revoke_credentials_of(&mut self, grant: &str, at: &str) -> StoreResult<u64>;

    /// External locations, of one domain or all, by name.
    async fn locations(&mut self, domain: Option<&str>) -> StoreResult<Vec<LocationRow>>;
    /// [`StoreError::Conflict`] when the name is taken.
    async fn insert_location(&mut self, row: &LocationRow) -> StoreResult<()>;
    /// Removes a location; the removed row.
    async fn delete_location(&mut self, name: &str) -> StoreResult<Option<LocationRow>>;

    /// The deployment's masking key, when one was made.
    async fn masking_key(&mut self) -> StoreResult<Option<MaskingKeyRow>>;
    /// Stores the masking key: only when there is none (`replace` false; false when one was
    /// there), or in place of the one there is.
    async fn put_masking_key(&mut self, row: &MaskingKeyRow, replace: bool) -> StoreResult<bool>;

    async fn bindings(&mut self, principal: &str) -> StoreResult<Vec<RoleBinding>>;
    /// Removes every role binding of a principal; how many.
    async fn delete_bindings(&mut self, principal: &str) -> StoreResult<u64>;
    /// When a principal was last revoked (RFC 3339), if ever.
    async fn principal_revoked_at(&mut self, principal: &str) -> StoreResult<Option<String>>;
    /// Records a principal's revocation at `at` (the latest wins).
    async fn put_principal_revocation(&mut self, principal: &str, at: &str) -> StoreResult<()>;
    /// Adds a role binding; adding one that exists is not an error.
    async fn insert_binding(&mut self, row: &RoleBinding) -> StoreResult<()>;
    /// Every role binding, by principal, role and domain.
    async fn all_bindings(&mut self) -> StoreResult<Vec<RoleBinding>>;
    /// Removes one role binding; how many (0 or 1).
    async fn delete_binding(&mut self, row: &RoleBinding) -> StoreResult<u64>;

    /// One version of a scope's policy bundle, or its latest when `version` is `None`.
    async fn policy_bundle(
        &mut self,
        scope: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<PolicyBundleRow>>;
    /// Every version of a scope's policy bundle, oldest first.
    async fn policy_bundles(&mut self, scope: &str) -> StoreResult<Vec<PolicyBundleRow>>;
    /// The latest bundle of every scope, by scope.
    async fn current_policy_bundles(&mut self) -> StoreResult<Vec<PolicyBundleRow>>;
    /// [`StoreError::Conflict`] when that version of the scope exists.
    async fn insert_policy_bundle(&mut self, row: &PolicyBundleRow) -> StoreResult<()>;

    async fn insert_run(&mut self, row: &RunRow) -> StoreResult<()>;
    async fn run(&mut self, id: &str) -> StoreResult<Option<RunRow>>;
    /// A product's runs (of one port, when given), newest first.
    async fn runs(
        &mut self,
        product: &str,
        port: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RunRow>>;
    /// The runs of a port not finished yet (`running` or `committing`).
    async fn open_runs(&mut self, product: &str, port: &str) -> StoreResult<Vec<RunRow>>;
    /// Replaces a run's row; [`StoreError::Conflict`] when its state is no longer `expected`.
    async fn update_run(&mut self, row: &RunRow, expected: &str) -> StoreResult<()>;
    async fn snapshot(
        &mut self,
        product: &str,
        port: &str,
        major: i64,
    ) -> StoreResult<Option<SnapshotRow>>;
    async fn snapshots(&mut self, product: &str) -> StoreResult<Vec<SnapshotRow>>;
    async fn put_snapshot(&mut self, row: &SnapshotRow) -> StoreResult<()>;

    async fn insert_request(&mut self, row: &RequestRow) -> StoreResult<()>;
    async fn request(&mut self, id: &str) -> StoreResult<Option<RequestRow>>;
    /// Requests, newest first: of a product (when given), by a requester (when given), in a state
    /// (when given).
    async fn requests(
        &mut self,
        product: Option<&str>,
        requester: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RequestRow>>;
    /// Replaces a request; [`StoreError::Conflict`] when its revision is no longer `expected`.
    async fn update_request(&mut self, row: &RequestRow, expected: i64) -> StoreResult<()>;
    async fn insert_grant(&mut self, row: &GrantRow) -> StoreResult<()>;
    async fn grant(&mut self, id: &str) -> StoreResult<Option<GrantRow>>;
    /// Grants, newest first: of a product (when given), to a grantee (when given).
    async fn grants(
        &mut self,
        product: Option<&str>,
        grantee: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<GrantRow>>;
    /// Revokes a grant not revoked yet; false when it already was.
    async fn revoke_grant(
        &mut self,
        id: &str,
        at: &str,
        by: &str,
        reason: &str,
    ) -> StoreResult<bool>;

    /// Counts one read of a port by `reader` (`rows` rows, at `at`).
    async fn record_usage(&mut self, read: &UsageRow) -> StoreResult<()>;

    /// The token bucket `key` (tokens, when last filled, in ms since the epoch), created as
    /// `new` when there is none, and locked for the rest of the transaction where the database
    /// locks rows (so concurrent takers, on any server, queue for it).
    async fn rate_bucket(&mut self, key: &str, new: (f64, i64)) -> StoreResult<(f64, i64)>;

    /// Stores token bucket `key`.
    async fn put_rate_bucket(&mut self, key: &str, tokens: f64, at_ms: i64) -> StoreResult<()>;

    /// Claims a schedule slot; false when any server claimed it before (the slot's key decides,
    /// whatever the isolation level).
    async fn claim_slot(&mut self, row: &SlotRow) -> StoreResult<bool>;
    /// Records how a claimed slot ended; false when it is not claimed by `by`.
    async fn finish_slot(&mut self, row: &SlotRow) -> StoreResult<bool>;
    /// A product's slots, the latest first.
    async fn slots(&mut self, product: &str, limit: i64) -> StoreResult<Vec<SlotRow>>;
    async fn insert_subscription(&mut self, row: &SubscriptionRow) -> StoreResult<()>;
    /// Deletes a subscription; false when there is none with this id.
    async fn delete_subscription(&mut self, id: &str) -> StoreResult<bool>;
    async fn subscription(&mut self, id: &str) -> StoreResult<Option<SubscriptionRow>>;
    /// The subscriptions to any of `subjects` (`(scope, subject)` pairs), or every one when
    /// `subjects` is `None`.
    async fn subscriptions(
        &mut self,
        subjects: Option<&[(String, String)]>,
    ) -> StoreResult<Vec<SubscriptionRow>>;
    /// The fingerprint of the latest slot of `product` that succeeded or was skipped.
    async fn last_fingerprint(&mut self, product: &str) -> StoreResult<Option<String>>;
    /// Every product whose latest version declares a schedule, in id order.
    async fn scheduled(&mut self) -> StoreResult<Vec<ScheduledRow>>;
    /// Who read what: for a product, a reader, or both; most recent first.
    async fn usage(
        &mut self,
        product: Option<&str>,
        reader: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<UsageRow>>;

    async fn insert_observations(&mut self, rows: &[ObservationRow]) -> StoreResult<()>;
    /// What the observations of each port of the products with ids in `[from, upto]` (bounds required, so the range uses the index) at or after
    /// `since` add up to: counts, and nearest-rank percentiles of successful reads' latency.
    async fn observation_stats_between(
        &mut self,
        from: &str,
        upto: &str,
        since: &str,
    ) -> StoreResult<Vec<ObservationStats>>;
    /// Deletes observations older than `before`; how many.
    async fn prune_observations(&mut self, before: &str) -> StoreResult<u64>;
    /// Every snapshot readers get.
    async fn all_snapshots(&mut self) -> StoreResult<Vec<SnapshotRow>>;
    /// The snapshots of the products in `[from, upto]`.
    async fn snapshots_between(&mut self, from: &str, upto: &str) -> StoreResult<Vec<SnapshotRow>>;
    /// The runs of the products in `[from, upto]` started at or after `since` (the last
    /// `RECENT_RUNS` of each port), and the runs their snapshots name however old; by product,
    /// port and start.
    async fn runs_between(
        &mut self,
        from: &str,
        upto: &str,
        since: &str,
    ) -> StoreResult<Vec<RunRow>>;
    /// How many runs ended in each state.
    async fn run_counts(&mut self) -> StoreResult<Vec<(String, i64)>>;
    /// Opens a violation; false (and nothing written) while the same objective has one open.
    async fn insert_violation(&mut self, row: &ViolationRow) -> StoreResult<bool>;
    /// Closes an open violation; false when it was already closed.
    async fn end_violation(&mut self, id: &str, at: &str) -> StoreResult<bool>;
    /// Open violations of the products in `[from, upto]`.
    async fn open_violations_between(
        &mut self,
        from: &str,
        upto: &str,
    ) -> StoreResult<Vec<ViolationRow>>;
    /// Violations (open and closed) of a product or of all, the most recently started first.
    async fn violations(
        &mut self,
        product: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ViolationRow>>;
    async fn insert_delivery(&mut self, row: &DeliveryRow) -> StoreResult<()>;
    async fn update_delivery(&mut self, row: &DeliveryRow) -> StoreResult<()>;
    /// Webhook deliveries, the most recent first.
    async fn deliveries(&mut self, limit: i64) -> StoreResult<Vec<DeliveryRow>>;
}

/// One observation of an output port: a governed read or a monitor probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    pub product: String,
    pub port: String,
    pub major: i64,
    pub at: String,
    /// `read` or `probe`.
    pub kind: String,
    pub latency_ms: f64,
    pub rows_read: Option<i64>,
    /// Why it failed; absent when it succeeded.
    pub error: Option<String>,
}

/// How many of a port's most recent runs [`Tx::runs_between`] returns.
pub const RECENT_RUNS: i64 = 6;

/// The observations of one output port over a window, added up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservationStats {
    pub product: String,
    pub port: String,
    pub major: i64,
    pub reads: i64,
    pub read_errors: i64,
    pub probes: i64,
    pub probe_errors: i64,
    /// Nearest-rank percentiles of the successful reads' latency, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A breach of one service-level objective of one output port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViolationRow {
    pub id: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    /// The SLA property (`latency`, `availability`, ...), `completeness` or `volume`.
    pub property: String,
    /// What the contract promises, e.g. `<= 1 d`.
    pub objective: String,
    /// What was measured when the breach was detected.
    pub observed: String,
    /// When the objective stopped being met (as far as the monitor can tell).
    pub started_at: String,
    pub detected_at: String,
    /// When it was met again; absent while the violation lasts.
    pub ended_at: Option<String>,
}

/// One webhook delivery and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub url: String,
    /// The event sent, e.g. `sla.violated`.
    pub event: String,
    /// The product (or request) it is about.
    pub subject: String,
    /// The JSON body sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One scheduled slot of a product, as claimed by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRow {
    pub product: String,
    pub slot_at: String,
    pub claimed_by: String,
    pub claimed_at: String,
    /// `claimed`, `succeeded`, `skipped` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub run_id: Option<String>,
    pub finished_at: Option<String>,
    /// `cron` or `upstream`.
    pub cause: Option<String>,
    /// What the slot's run read and ran, hashed (set when it ends).
    pub fingerprint: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A subscription to a domain's, a team's or a product's notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: String,
    /// `domain`, `team` or `product`.
    pub scope: String,
    pub subject: String,
    /// `webhook`, `slack` or `email`.
    pub channel: String,
    pub target: String,
    /// Comma-separated kinds, or `*`.
    pub events: String,
    pub created_by: String,
    pub created_at: String,
}

/// A product whose latest version declares a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRow {
    pub product: String,
    pub domain: String,
    /// The product's status (`retired` products are not run).
    pub status: String,
    pub version: String,
    pub digest: String,
    pub published_at: String,
    /// The schedule, JSON.
    pub schedule: String,
    /// The products whose ports the latest version's input ports read.
    pub upstream: Vec<String>,
}

/// How much one reader has read of one output port (per major version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub reader: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    /// Reads counted (one for a new read when recording).
    pub reads: i64,
    pub rows_read: i64,
    pub first_at: String,
    pub last_at: String,
}

/// A request to read an output port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    pub requester: String,
    /// The consuming product, when a product's service identity asks.
    pub consumer: Option<String>,
    pub purpose: String,
    /// JSON array of column names; empty: all.
    pub columns: String,
    pub days: i64,
    /// `pending`, `approved`, `denied`.
    pub state: String,
    /// JSON array of `{by, at, columns, days}`.
    pub approvals: String,
    /// How many distinct approvers it needs.
    pub needed: i64,
    /// JSON: what governance said about it.
    pub policy: String,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    pub revision: i64,
}

/// A time-boxed right to read an output port (per major version), for some columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub request: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    pub grantee: String,
    /// JSON array of column names; empty: all.
    pub columns: String,
    pub granted_by: String,
    pub granted_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    pub reason: Option<String>,
}

/// One run of a product's pipeline for one output port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub product: String,
    pub version: String,
    pub port: String,
    pub major: i64,
    /// The output port's Delta table.
    pub location: String,
    /// `running`, `committing`, `succeeded` or `failed`.
    pub state: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub finished_at: Option<String>,
    /// `host:pid` of the process running it.
    pub owner: String,
    /// The Delta version committed (or, while `committing`, being committed).
    pub delta_version: Option<i64>,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    pub bytes_out: Option<i64>,
    /// JSON: what each input port read.
    pub inputs: String,
    /// JSON: the contract checks' results.
    pub checks: Option<String>,
    pub error: Option<String>,
    pub actor: String,
    /// How it ended, when no one saw it end (settled by a later run).
    pub note: Option<String>,
}

/// The snapshot of an output port (per major version) that readers get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub product: String,
    pub port: String,
    pub major: i64,
    pub version: String,
    pub run: String,
    pub location: String,
    pub delta_version: i64,
    pub updated_at: String,
}

/// One version of the policies of a scope: `global`, or `domain:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyBundleRow {
    pub scope: String,
    pub version: i64,
    /// JSON `[{"path", "text"}]`.
    pub files: String,
    /// JSON `{"policy-id": "block" | "warn" | "audit"}`.
    pub overrides: String,
    pub digest: String,
    pub published_by: String,
    pub published_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRow {
    pub name: String,
    pub domain: String,
    pub created_at: String,
}

/// A data product: identity, ownership, and the version a reader gets by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRow {
    /// `domain.product`.
    pub id: String,
    pub domain: String,
    pub team: Option<String>,
    pub name: Option<String>,
    /// The highest published version.
    pub latest: Option<String>,
    /// The status of the latest version.
    pub status: String,
    /// Bumped on every update; the optimistic-concurrency token.
    pub revision: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    pub domain: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

/// One published version of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub product: String,
    pub version: String,
    pub major: i64,
    pub status: String,
    /// SHA-256 of the canonical JSON of the descriptor and its contracts.
    pub digest: String,
    /// The ODPS descriptor, JSON.
    pub descriptor: String,
    pub published_by: String,
    pub published_at: String,
    pub sunset: Option<String>,
    pub migration_guide: Option<String>,
    pub deprecated_at: Option<String>,
    pub revision: i64,
    /// The pipeline's `transform.sql`, when the bundle carried one.
    pub transform: Option<String>,
    /// The `schedule` custom property's value, JSON, when the descriptor has one.
    pub schedule: Option<String>,
}

/// The contract of one output port in one product version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    pub product: String,
    pub version: String,
    pub port: String,
    pub major: i64,
    pub contract_id: String,
    /// The port's compatibility mode when this version was published.
    pub compatibility: String,
    pub digest: String,
    /// The ODCS contract, JSON.
    pub contract: String,
}

/// An input port of a product version, reading the output port whose contract is `contract_id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DependencyRow {
    pub product: String,
    pub version: String,
    pub input_port: String,
    pub contract_id: String,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub payload: serde_json::Value,
}

/// An API token; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub hash: String,
    pub principal: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The roles it was issued with, JSON `[["role", "domain"], ...]`; `None` for tokens issued
    /// before scopes (every role of the principal).
    pub scope: Option<String>,
    /// A credential's grant: the token reads through that grant only.
    pub grant: Option<String>,
    /// What a credential is for (the service holding it), as its minter named it.
    pub label: Option<String>,
}

/// An external location a domain's sources may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRow {
    pub name: String,
    pub url: String,
    pub domain: String,
    pub created_at: String,
    pub created_by: String,
}

/// The deployment's masking key (64 hex digits) and when and by whom it was made.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskingKeyRow {
    pub key: String,
    pub created_at: String,
    pub created_by: String,
}

impl std::fmt::Debug for MaskingKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskingKeyRow")
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// A principal holds a role, globally (`domain` = `*`) or in one domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleBinding {
    pub principal: String,
    pub role: String,
    pub domain: String,
}
