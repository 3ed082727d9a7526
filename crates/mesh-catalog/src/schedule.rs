//! The schedule ledger: which server runs which slot of a product's schedule.
//!
//! Every server of a catalog computes the same due slots from the published schedules; each
//! tries to claim each slot, and the slot's key in the catalog lets exactly one succeed
//! (PostgreSQL for several servers, SQLite for one). The claimer runs it and records how it
//! ended: `succeeded`, `skipped` (nothing changed since the last success) or `failed` after its
//! retries. The ledger is also what `mesh schedule` shows as the last runs.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use mesh_model::names::SlotState;

use crate::catalog::{Catalog, stamp};
use crate::store::{SlotRow, StoreError};

/// One slot of a product's schedule as the ledger has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub product: String,
    /// The slot's instant, RFC 3339 in UTC.
    pub slot_at: String,
    pub claimed_by: String,
    pub claimed_at: String,
    pub state: SlotState,
    pub attempts: u32,
    pub run_id: Option<String>,
    pub finished_at: Option<String>,
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
        }
    }
}

impl Catalog {
    /// Claims `product`'s slot at `slot_at` for `server`: true for exactly one claimer of a slot,
    /// on any server of this catalog.
    pub async fn claim_slot(
        &self,
        product: &str,
        slot_at: DateTime<Utc>,
        server: &str,
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
            })
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records how `server`'s slot ended (its run, after `attempts` tries); false when the slot
    /// is not `server`'s.
    pub async fn finish_slot(
        &self,
        product: &str,
        slot_at: DateTime<Utc>,
        server: &str,
        state: SlotState,
        attempts: u32,
        run_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let done = tx
            .finish_slot(&SlotRow {
                product: product.to_owned(),
                slot_at: stamp(slot_at),
                claimed_by: server.to_owned(),
                claimed_at: String::new(),
                state: state.as_str().to_owned(),
                attempts: i64::from(attempts),
                run_id: run_id.map(str::to_owned),
                finished_at: Some(self.now()),
            })
            .await?;
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
