//! The workspace's shape, checked (see docs/architecture.md): which crate may depend on which,
//! no HTTP or CLI in the libraries, no I/O in the pure crates, and no import cycle between the
//! files of any crate. A change that breaks one of these fails here, with what to move.

mod architecture;
