//! Integration tests of mesh-catalog (one binary, see STYLE.md §3): the conformance suite runs
//! every test on SQLite and, when `MESH_TEST_POSTGRES_URL` is set, on PostgreSQL (required under
//! `CI=true`).

#![allow(clippy::print_stderr)]

mod backends;
mod conformance;
mod fixtures;
mod lineage;
mod search;
// The same access rules to ../shared/vectors as mesh-model's tests (skip, or fail under CI=true).
#[allow(dead_code)]
#[path = "../../../mesh-model/tests/it/vectors.rs"]
mod vectors;
