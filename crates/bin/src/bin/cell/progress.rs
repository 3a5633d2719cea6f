//! Progress of the requests that take a while: building and importing an
//! image.
//!
//! celld does that work inside one request and says nothing until it is
//! done, so the client knows the step it asked for and the time that has
//! passed, never a fraction done. That is what it shows: on a terminal a
//! spinner with the step and the elapsed time, cleared at the end; anywhere
//! else (a pipe, a log file) one plain line when the step starts and one when
//! it ends, without control characters. The end line is the same in both.
//! Everything goes to stderr, which is where cell's status lines belong.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often the spinner moves and its clock advances.
const TICK: Duration = Duration::from_millis(100);

/// A step in progress; dropping it (the request failed) clears the spinner,
/// so the error that follows is the only line left.
pub struct Progress {
    spinner: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// Starts showing `step`, e.g. `importing image web from /srv/web.tar`.
    pub fn start(step: String) -> Self {
        let started = Instant::now();
        if !std::io::stderr().is_terminal() {
            eprintln!("{step}...");
            return Self {
                spinner: None,
                started,
            };
        }
        let spinner = ProgressBar::new_spinner();
        // Tenths of seconds, as the end line has them (indicatif's own
        // `{elapsed}` rounds to whole seconds).
        let style = ProgressStyle::with_template("{spinner} {msg} ({seconds})")
            .expect("a valid progress template")
            .with_key(
                "seconds",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.1}s", state.elapsed().as_secs_f64());
                },
            );
        spinner.set_style(style);
        spinner.set_message(step);
        // Drawn now, not at the first tick: a quick step is shown too.
        spinner.tick();
        spinner.enable_steady_tick(TICK);
        Self {
            spinner: Some(spinner),
            started,
        }
    }

    /// Ends the step with `done` and the time it took, on one line.
    pub fn finish(self, done: &str) {
        let elapsed = self.started.elapsed();
        drop(self);
        eprintln!("{done} in {:.1}s", elapsed.as_secs_f64());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}
