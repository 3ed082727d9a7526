//! Integration tests of mesh-catalog (one binary, see STYLE.md §3): the conformance suite runs
//! every test on SQLite and, when `MESH_TEST_POSTGRES_URL` is set, on PostgreSQL (required under
//! `CI=true`).

#![allow(clippy::print_stderr)]

mod backends;
mod conformance;
mod fixtures;
mod fuzz;
mod lineage;
mod search;
// The conformance vectors in ../shared (skip, or fail under CI=true), as every crate reads them.
use mesh_testkit::vectors;
