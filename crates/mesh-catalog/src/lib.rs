//! The mesh catalog: where domain teams publish data products and everyone else finds them.
//!
//! - [`store`]: the narrow storage trait ([`store::CatalogStore`], transactions of rows) and its
//!   SQLite and PostgreSQL implementations;
//! - [`Catalog`]: every business rule, above the trait — validation (strict lint), semantic
//!   versions, per-port contract history and compatibility, the lifecycle draft → active →
//!   deprecated → retired, authorization, and the event log. Writers use optimistic concurrency:
//!   every publish bumps the product's revision, a writer that lost the race re-reads and
//!   decides again, so no publish is lost and exactly one document wins per version;
//! - [`access`]: requests to read an output port, the owners' decisions, time-boxed grants;
//! - [`runs`]: the ledger of pipeline runs and the snapshot of each output port readers get;
//! - [`sla`]: service levels per output port, measured from runs, reads and probes; violations;
//! - [`governance`]: the policies publishes and audits are judged by, versioned per scope;
//! - [`auth`]: principals, roles and API tokens (stored hashed).

pub mod access;
pub mod auth;
mod catalog;
pub mod governance;
pub mod lineage;
pub mod runs;
pub mod search;
pub mod sla;
pub mod store;

pub use auth::{Action, Principal, Role};
pub use catalog::{
    AuditReport, Bundle, Catalog, CatalogError, Clock, Compliance, ConsumerRef, Deprecation,
    FixedClock, ImpactReport, ProductView, PublishOutcome, PublishReport, Recommendation, Source,
    SystemClock, VersionView,
};
