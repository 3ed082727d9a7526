//! Terminal output: styles and the stdout/stderr writers (colours only on a terminal, or when
//! asked for with `--color always`; `NO_COLOR` is honoured).

use std::io::Write;

use anstyle::{AnsiColor, Style};

pub(crate) const ERROR: Style = AnsiColor::Red.on_default().bold();
pub(crate) const WARNING: Style = AnsiColor::Yellow.on_default().bold();
pub(crate) const OK: Style = AnsiColor::Green.on_default().bold();
pub(crate) const HINT: Style = AnsiColor::Cyan.on_default();
pub(crate) const LOCATION: Style = Style::new().bold();

/// Standard output, colour-aware and locked for the duration of a command.
pub(crate) fn stdout() -> anstream::AutoStream<std::io::StdoutLock<'static>> {
    anstream::AutoStream::auto(std::io::stdout().lock())
}

/// Prints `mesh: error: ...` to standard error.
pub(crate) fn error(message: &str) {
    let mut err = anstream::stderr();
    // Nothing useful can be done if standard error itself is closed.
    let _ = writeln!(err, "mesh: {ERROR}error{ERROR:#}: {message}");
}

/// `text` in `style`.
pub(crate) fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Prints `mesh: warning: ...` to standard error.
pub(crate) fn warning(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "mesh: {WARNING}warning{WARNING:#}: {message}");
}

/// Prints `file:line:col: warning: ...` to standard error (a finding at a place in a file).
pub(crate) fn warning_at(place: &str, message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(
        err,
        "{LOCATION}{place}:{LOCATION:#} {WARNING}warning{WARNING:#}: {message}"
    );
}

/// Prints `file:line:col: error: ...` to standard error.
pub(crate) fn error_at(place: &str, message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(
        err,
        "{LOCATION}{place}:{LOCATION:#} {ERROR}error{ERROR:#}: {message}"
    );
}
