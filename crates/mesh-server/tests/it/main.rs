//! Integration tests of the HTTP API (one binary, see STYLE.md §3): requests go through the real
//! router in process; the catalog is a SQLite file (the backends have their own conformance suite).

mod api;
mod fuzz;
mod harness;
mod idp;
mod orchestrator;
mod portal;
mod security;
