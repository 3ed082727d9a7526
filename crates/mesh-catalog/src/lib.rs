//! The mesh catalog: where domain teams publish data products and everyone else finds them.
//!
//! - [`store`]: the narrow storage trait ([`store::CatalogStore`], transactions of rows) and its
//!   SQLite and PostgreSQL implementations;
//! - [`Catalog`]: every business rule, above the trait, one module per area, each with its own
//!   error enum whose variants carry ids ([`error`] maps every one to a problem code):
//!   - [`publish`]: strict lint, semantic versions, per-port compatibility, the policies, and
//!     the version stored — writers use optimistic concurrency, so no publish is lost and
//!     exactly one document wins per version;
//!   - [`products`]: products, versions, contracts, changelogs, domains and teams, read back;
//!   - [`lifecycle`]: draft → active → deprecated → retired;
//!   - [`search`], [`lineage`]: derived from the event log, never out of step with it;
//!   - [`access`]: requests to read an output port, the owners' decisions, time-boxed grants,
//!     and the one decision on which ports a reader may read, and which columns;
//!   - [`runs`]: the ledger of pipeline runs and the snapshot of each output port readers get;
//!   - [`sla`]: service levels per output port, measured from runs, reads and probes;
//!   - [`governance`]: the policies publishes and audits are judged by, versioned per scope;
//!   - [`tokens`]: API tokens; [`credentials`]: secrets minted for one grant; [`auth`]:
//!     principals, roles and what each may do;
//!   - [`audit`]: the event log, every read and refused read, the catalog-wide policy audit.

pub mod access;
pub mod audit;
pub mod auth;
mod catalog;
pub mod credentials;
pub mod error;
pub mod governance;
pub mod lifecycle;
pub mod lineage;
pub mod locations;
pub mod platform;
pub mod products;
pub mod publish;
pub mod runs;
pub mod schedule;
pub mod search;
pub mod sla;
pub mod store;
pub mod subscriptions;
pub mod tokens;

pub use auth::{Action, Principal, Role};
pub use catalog::{Catalog, Clock, FixedClock, SystemClock};
pub use error::{Denied, ErrorCode, Missing, Problem, ToProblem};
pub use products::{ProductView, VersionView};
pub use publish::{Bundle, PublishOutcome, PublishReport, Source};
