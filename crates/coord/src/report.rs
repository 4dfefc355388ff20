//! One-line messages for the user on the launcher's stderr.

use std::error::Error;
use std::io::Write;

/// Writes `mpicr: <message>` to stderr. A failing stderr is ignored: there is nowhere left to
/// report it, and the job must go on.
pub(crate) fn say(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "mpicr: {message}");
}

/// An error and its sources as one sentence, `outer: inner: innermost`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
