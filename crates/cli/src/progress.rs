//! The progress of long operations (`mpicr checkpoint`, `restart`, `gc`, `migrate`, `drain`) on stderr: an
//! indicatif spinner or bar when stderr is a terminal, plain `mpicr: ` lines otherwise (logs,
//! pipes, scripts and tests), one per change.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::say;

/// How often a spinner turns.
const TICK: Duration = Duration::from_millis(120);

/// One operation's progress. Clones show on the same bar (a watcher thread holds one).
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// `None`: plain lines.
    bar: Option<ProgressBar>,
    /// Whether the spinner turns yet (from the first step on, so that it never shows empty).
    ticking: Arc<AtomicBool>,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub(crate) fn new() -> Self {
        Self::with_terminal(std::io::stderr().is_terminal())
    }

    pub(crate) fn with_terminal(terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(spinner_style());
            bar
        });
        Self {
            bar,
            ticking: Arc::default(),
        }
    }

    fn tick(&self, bar: &ProgressBar) {
        if !self.ticking.swap(true, Ordering::Relaxed) {
            bar.enable_steady_tick(TICK);
        }
    }

    /// A step without a count: the spinner's text, or a line.
    pub(crate) fn phase(&self, text: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(text.to_owned());
                bar.set_style(spinner_style());
                bar.set_length(0);
                bar.set_position(0);
                self.tick(bar);
            }
            None => say(text),
        }
    }

    /// `done` of `total` things of a step: the bar, or a line `TEXT: DONE of TOTAL`.
    pub(crate) fn count(&self, text: &str, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(text.to_owned());
                bar.set_length(total);
                bar.set_position(done);
                bar.set_style(bar_style());
                self.tick(bar);
            }
            None => say(&format!("{text}: {done} of {total}")),
        }
    }

    /// The end of the operation: the bar goes away and `text` stays as a line.
    pub(crate) fn finish(&self, text: &str) {
        self.clear();
        say(text);
    }

    /// The bar goes away (before an error is said, or output that is not ours).
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("mpicr: {spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("mpicr: {spinner} {msg} [{bar:24}] {pos}/{len} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
