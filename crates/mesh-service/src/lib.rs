//! The operations of mesh that combine the catalog, the engine and the policies — one gate for
//! every way in. HTTP, Flight SQL, the CLI on a local catalog (and later a scheduler or a
//! PostgreSQL-wire port) ask these functions for each decision and add no rule of their own;
//! they only translate requests in and answers out. No HTTP and no CLI here.
//!
//! - [`read`]: the governed read — [`Service::authorize_read`] resolves the tables a query names
//!   to the ports the reader may read (and records the refused ones), the engine reads exactly
//!   those snapshots, masked as their grants say, and every read is recorded;
//! - [`inputs`]: what a product's pipeline reads — its input ports resolved to the upstream
//!   snapshots, read only through the same decision as queries (a grant to the product's service
//!   identity, outside its domain);
//! - [`monitor`]: the SLA monitor (probes, a pass over every port, violations to a webhook) and
//!   [`notify`], the webhook deliveries it and the access workflow send;
//! - [`orchestrator`]: the scheduler inside `mesh serve` (cron slots and upstream triggers,
//!   claimed once across servers, retried, skipped when nothing changed), running
//!   [`pipeline`]s as `mesh run` does;
//! - [`dispatch`]: notifications that reach people — the event log turned into webhook, Slack
//!   and e-mail deliveries to the subscriptions of products, domains and teams;
//! - [`limits`]: what one consumer may spend on reads (a rate and a time limit), the same at
//!   every way in;
//! - [`metrics`]: the read-latency histograms `/metrics` shows;
//! - [`routes`]: the HTTP API's paths, shared by the server that serves them and the CLI's
//!   client that calls them, so they cannot drift apart.

pub mod dispatch;
pub mod inputs;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod orchestrator;
pub mod pipeline;
pub mod read;
pub mod routes;

use mesh_catalog::Catalog;

pub use inputs::{InputError, ResolvedInput, ResolvedSource};
pub use logging::log;
pub use read::{GovernedRead, ReadError, ReadPlan, ReadRequest};

/// The operations every way in calls, over one catalog.
#[derive(Debug, Clone)]
pub struct Service {
    catalog: Catalog,
    /// What governed reads may hold in memory, together and each.
    memory: mesh_engine::query::Memory,
    /// Bytes (as Arrow data) one read's result may have.
    result_bytes: usize,
}

impl Service {
    /// The service over `catalog`; a catalog that cannot yet check what runs committed gets the
    /// engine's Delta log reader.
    pub fn new(catalog: Catalog) -> Service {
        let catalog = if catalog.reads_delta_logs() {
            catalog
        } else {
            catalog.with_delta_log(std::sync::Arc::new(EngineDeltaLog))
        };
        let defaults = limits::QueryLimits::default();
        Service {
            catalog,
            memory: mesh_engine::query::Memory::new(defaults.server_memory, defaults.query_memory),
            result_bytes: defaults.result_memory,
        }
    }

    /// This service with the memory and result limits of `limits`.
    pub fn with_limits(mut self, limits: &limits::QueryLimits) -> Service {
        self.memory = mesh_engine::query::Memory::new(limits.server_memory, limits.query_memory);
        self.result_bytes = limits.result_memory;
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// The catalog's view of Delta logs, through the engine: which run made a version of a table.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineDeltaLog;

#[async_trait::async_trait]
impl mesh_catalog::runs::DeltaLog for EngineDeltaLog {
    async fn committed_by(&self, location: &str, version: i64) -> Result<Option<String>, String> {
        mesh_engine::pipeline::committed_by(location, version)
            .await
            .map_err(|e| e.to_string())
    }

    async fn written(&self, location: &str, version: i64) -> Result<Option<(i64, i64)>, String> {
        mesh_engine::pipeline::written(location, version)
            .await
            .map_err(|e| e.to_string())
    }
}
