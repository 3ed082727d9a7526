//! The server's log: stderr, one line per event.

/// One line to the log (stderr), as `mesh serve: MESSAGE`. A closed or full stderr loses the
/// line, never the request or the pass that logs it (`eprintln!` would panic).
pub fn log(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "mesh serve: {message}");
}
