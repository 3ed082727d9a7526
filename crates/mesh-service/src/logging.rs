//! The server's log: stderr, one line per event.

/// One line to the log (stderr), as `mesh serve: MESSAGE`. A closed or full stderr loses the
/// line, never the request or the pass that logs it (`eprintln!` would panic).
pub fn log(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "mesh serve: {message}");
}

/// What a caught panic says (its message, when it has one).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}
