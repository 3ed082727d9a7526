//! The data-product model of `mesh`: ODPS data products and ODCS data contracts as typed Rust,
//! parsed from YAML or JSON with the position of every node, and `mesh lint` over them.
//!
//! Pure by design — no async, no I/O, no database or query engine — so it builds and tests in
//! seconds and every other crate (policy, engine, catalog, server, CLI) can depend on it.
//!
//! - [`source`] / [`yaml`]: text → located [`source::Node`] tree;
//! - [`de`]: located tree → typed model, collecting every problem ([`diag::Diagnostic`]);
//! - [`odcs`], [`odps`]: the standards' types;
//! - [`document`]: parse entry points; [`lint`]: structural, semantic and readiness checks;
//! - [`names`]: the names users type (`domain.product`, ports, versions, tables), parsed once.

// Lets `#[derive(Model)]` name this crate as `::mesh_model` from inside it too.
extern crate self as mesh_model;

pub mod changelog;
pub mod de;
pub mod diag;
pub mod document;
pub mod formats;
pub mod lint;
pub mod names;
pub mod odcs;
pub mod odps;
pub mod platform;
pub mod schedule;
pub mod source;
pub mod yaml;

pub use diag::{Code, Diagnostic, Severity};
pub use document::{DocKind, Document, Parsed, parse_contract, parse_document, parse_product};
