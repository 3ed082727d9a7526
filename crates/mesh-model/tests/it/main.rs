//! Integration tests of mesh-model (one binary, see STYLE.md §3).

// Tests report what they skipped and how much they checked.
#![allow(clippy::print_stderr)]

mod changelog;
mod conformance;
mod differential;
mod fuzz;
mod odcs32;
mod roundtrip;
mod schedule;

use mesh_testkit::vectors;
