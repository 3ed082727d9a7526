//! The schedule ledger: which server runs which slot of a product's schedule.
//!
//! Every server of a catalog computes the same due slots from the published schedules; each
//! tries to claim each slot, and the slot's key in the catalog lets exactly one succeed
//! (PostgreSQL for several servers, SQLite for one). The claimer runs it and records how it
//! ended: `succeeded`, `skipped` (nothing changed since the last success) or `failed` after its
//! retries. The ledger is also what `mesh schedule` shows as the last runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use mesh_model::names::SlotState;

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, stamp};
use crate::products::ProductError;
use crate::store::{ScheduledRow, SlotRow, StoreError};

/// One slot of a product's schedule as the ledger has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Slot {
    pub product: String,
    /// The slot's instant, RFC 3339 in UTC.
    pub slot_at: String,
    pub claimed_by: String,
    pub claimed_at: String,
    /// `claimed` (running), `succeeded`, `skipped` (nothing it reads or runs changed) or
    /// `failed` (after its retries).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: SlotState,
    pub attempts: u32,
    pub run_id: Option<String>,
    pub finished_at: Option<String>,
    /// Why it ran: `cron` or `upstream`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Why it failed (its last attempt's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a claimed slot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotEnd<'a> {
    pub state: SlotState,
    /// Tries, retries included.
    pub attempts: u32,
    /// The catalog's run of the last attempt, when one started.
    pub run_id: Option<&'a str>,
    /// What the run read and ran, hashed.
    pub fingerprint: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// A product whose latest version declares a schedule, as the orchestrator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    pub product: String,
    pub domain: String,
    /// The product's status; a retired product is not run.
    pub status: String,
    pub version: String,
    /// The version's digest: a new publish (a new schedule) changes it.
    pub digest: String,
    /// When it was published: no cron slot before it runs.
    pub published_at: DateTime<Utc>,
    /// The `schedule` property's value.
    pub schedule: serde_json::Value,
    /// The products whose ports its input ports read.
    pub upstream: Vec<String>,
}

impl Scheduled {
    fn from_row(row: ScheduledRow) -> Scheduled {
        Scheduled {
            schedule: serde_json::from_str(&row.schedule).unwrap_or_default(),
            product: row.product,
            domain: row.domain,
            status: row.status,
            version: row.version,
            published_at: DateTime::parse_from_rfc3339(&row.published_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            digest: row.digest,
            upstream: row.upstream,
        }
    }
}

impl Slot {
    fn from_row(row: SlotRow) -> Slot {
        Slot {
            state: SlotState::parse(&row.state).unwrap_or(SlotState::Claimed),
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            product: row.product,
            slot_at: row.slot_at,
            claimed_by: row.claimed_by,
            claimed_at: row.claimed_at,
            run_id: row.run_id,
            finished_at: row.finished_at,
            cause: row.cause,
            error: row.error,
        }
    }
}

impl Catalog {
    /// Claims `product`'s slot at `slot_at` for `server`: true for exactly one claimer of a slot,
    /// on any server of this catalog. `cause` says why it runs (`cron`, `upstream`).
    pub async fn claim_slot(
        &self,
        product: &str,
        slot_at: DateTime<Utc>,
        server: &str,
        cause: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let claimed = tx
            .claim_slot(&SlotRow {
                product: product.to_owned(),
                slot_at: stamp(slot_at),
                claimed_by: server.to_owned(),
                claimed_at: self.now(),
                state: SlotState::Claimed.as_str().to_owned(),
                attempts: 0,
                run_id: None,
                finished_at: None,
                cause: Some(cause.to_owned()),
                fingerprint: None,
                error: None,
            })
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records how `server`'s slot ended; false when the slot is not `server`'s. A failed slot
    /// (after its retries) is a `schedule.failed` event, and the first success after one a
    /// `schedule.recovered` event (what the owners' subscriptions hear of as `run.failed` and
    /// `run.recovered`).
    pub async fn finish_slot(
        &self,
        product: &str,
        slot_at: DateTime<Utc>,
        server: &str,
        end: &SlotEnd<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let at = stamp(slot_at);
        // How the slot before this one ended.
        let previous = tx
            .slots(product, 2)
            .await?
            .into_iter()
            .find(|s| s.slot_at < at)
            .map(|s| s.state);
        let done = tx
            .finish_slot(&SlotRow {
                product: product.to_owned(),
                slot_at: stamp(slot_at),
                claimed_by: server.to_owned(),
                claimed_at: String::new(),
                state: end.state.as_str().to_owned(),
                attempts: i64::from(end.attempts),
                run_id: end.run_id.map(str::to_owned),
                finished_at: Some(self.now()),
                cause: None,
                fingerprint: end.fingerprint.map(str::to_owned),
                // A reason is for people: the first few kilobytes of it.
                error: end.error.map(|e| truncate(e, 4096)),
            })
            .await?;
        let failed = SlotState::Failed.as_str();
        let kind = match end.state {
            SlotState::Failed => Some("schedule.failed"),
            SlotState::Succeeded | SlotState::Skipped if previous.as_deref() == Some(failed) => {
                Some("schedule.recovered")
            }
            _ => None,
        };
        if let (true, Some(kind)) = (done, kind) {
            tx.append_event(&crate::store::NewEvent {
                at: self.now(),
                kind: kind.into(),
                subject: product.to_owned(),
                actor: server.to_owned(),
                payload: serde_json::json!({
                    "slot": at, "state": end.state.as_str(), "attempts": end.attempts,
                    "run": end.run_id, "error": end.error.map(|e| truncate(e, 4096)),
                }),
            })
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// `product`'s last `limit` slots, the latest first.
    pub async fn slots(&self, product: &str, limit: u32) -> Result<Vec<Slot>, StoreError> {
        let mut tx = self.store.read().await?;
        let rows = tx.slots(product, i64::from(limit.clamp(1, 1000))).await?;
        Ok(rows.into_iter().map(Slot::from_row).collect())
    }
}

impl Catalog {
    /// Every product whose latest version declares a schedule (what the orchestrator of each
    /// server considers on each tick), in id order.
    pub async fn scheduled(&self) -> Result<Vec<Scheduled>, StoreError> {
        let mut tx = self.store.read().await?;
        Ok(tx
            .scheduled()
            .await?
            .into_iter()
            .map(Scheduled::from_row)
            .collect())
    }

    /// The fingerprint of `product`'s latest slot that succeeded or was skipped.
    pub async fn last_fingerprint(&self, product: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.store.read().await?;
        tx.last_fingerprint(product).await
    }
}

/// `text`, cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A product's published schedule, its next slots and its last runs: what `mesh schedule
/// PRODUCT` and the portal show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    pub product: String,
    /// The latest version, whose schedule this is.
    pub version: String,
    /// Absent: the product is not scheduled.
    pub schedule: Option<ScheduleSpec>,
    /// The next cron slots after now, RFC 3339 in UTC.
    pub next: Vec<String>,
    /// The latest slots, newest first.
    pub last: Vec<Slot>,
}

/// A schedule as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleSpec {
    pub cron: Option<String>,
    /// An IANA zone, in which the cron's wall-clock times are read.
    pub timezone: String,
    /// It also runs when an input port's snapshot moves.
    pub upstream: bool,
    /// Attempts after a failure.
    pub retries: u32,
}

impl Catalog {
    /// `product`'s schedule (from its latest version), its `next` cron slots and its `last` slots.
    pub async fn schedule_view(
        &self,
        who: &Principal,
        product: &str,
        next: u16,
        last: u32,
    ) -> Result<ScheduleView, ProductError> {
        Self::allow(who, Action::Read)?;
        let version = self.version(who, product, "latest").await?;
        let schedule = version
            .descriptor
            .as_ref()
            .and_then(mesh_model::schedule::property_json)
            .and_then(|v| mesh_model::schedule::Schedule::from_json(v).ok());
        let mut upcoming = Vec::new();
        if let Some(s) = &schedule {
            let mut from = self.instant();
            for _ in 0..next.min(1000) {
                let Some(slot) = s.next_after(from) else {
                    break;
                };
                upcoming.push(stamp(slot));
                from = slot;
            }
        }
        let last = if last == 0 {
            Vec::new()
        } else {
            self.slots(product, last).await?
        };
        Ok(ScheduleView {
            product: version.product,
            version: version.version,
            schedule: schedule.map(|s| ScheduleSpec {
                cron: s.cron.as_ref().map(|c| c.as_str().to_owned()),
                timezone: s.timezone.name().to_owned(),
                upstream: s.upstream,
                retries: s.retries,
            }),
            next: upcoming,
            last,
        })
    }
}
