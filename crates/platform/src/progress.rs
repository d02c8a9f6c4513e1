//! Progress of a long phase (a demo's households, an import's rows) as a
//! person sees it: at a terminal a bar with the total, the percent done and
//! the time left; piped to a file or a log, a plain line every few seconds,
//! so a build log shows it is moving and how far it has to go.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a piped progress writes a line.
pub const EVERY: Duration = Duration::from_secs(5);

/// One phase's progress towards a known total.
#[derive(Debug)]
pub struct Progress {
    what: String,
    total: u64,
    shown: Shown,
}

#[derive(Debug)]
enum Shown {
    Bar(ProgressBar),
    Lines {
        started: Instant,
        done: Mutex<(u64, Instant)>,
    },
    Hidden,
}

impl Progress {
    /// `what` counts (`households`, `rows`) towards `total`; shown on
    /// standard error, a bar at a terminal and lines otherwise, or not at
    /// all when `visible` is false.
    pub fn new(what: &str, total: u64, visible: bool) -> Progress {
        let shown = if !visible {
            Shown::Hidden
        } else if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {what} ({{percent}} %)  {{per_sec}}  eta {{eta}}  {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            Shown::Bar(ProgressBar::new(total).with_style(style))
        } else {
            let now = Instant::now();
            Shown::Lines {
                started: now,
                done: Mutex::new((0, now)),
            }
        };
        Progress {
            what: what.to_owned(),
            total,
            shown,
        }
    }

    /// `n` more done.
    pub fn inc(&self, n: u64) {
        match &self.shown {
            Shown::Bar(bar) => bar.inc(n),
            Shown::Lines { started, done } => {
                let Ok(mut done) = done.lock() else { return };
                done.0 += n;
                if done.1.elapsed() >= EVERY {
                    done.1 = Instant::now();
                    eprintln!(
                        "{}",
                        line(&self.what, done.0, self.total, started.elapsed())
                    );
                }
            }
            Shown::Hidden => {}
        }
    }

    /// A note beside the bar (not shown when piped).
    pub fn set_message(&self, message: String) {
        if let Shown::Bar(bar) = &self.shown {
            bar.set_message(message);
        }
    }

    /// The phase ended: the bar goes; a piped progress says it is done.
    pub fn finish(&self) {
        match &self.shown {
            Shown::Bar(bar) => bar.finish_and_clear(),
            Shown::Lines { started, done } => {
                let n = done.lock().map_or(self.total, |d| d.0);
                eprintln!("{}", line(&self.what, n, self.total, started.elapsed()));
            }
            Shown::Hidden => {}
        }
    }
}

/// "households: 12000/192750 (6 %), about 3 min left".
pub fn line(what: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let left = if done == 0 || done >= total {
        String::new()
    } else {
        let secs = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
        if secs >= 90.0 {
            format!(", about {} min left", (secs / 60.0).round() as u64)
        } else {
            format!(", about {} s left", secs.round() as u64)
        }
    };
    format!("{what}: {done}/{total} ({percent} %){left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piped_line_says_how_far_and_how_long() {
        assert_eq!(
            line("households", 12_000, 192_000, Duration::from_secs(10)),
            "households: 12000/192000 (6 %), about 3 min left"
        );
        assert_eq!(
            line("rows", 50, 100, Duration::from_secs(120)),
            "rows: 50/100 (50 %), about 2 min left"
        );
        assert_eq!(
            line("rows", 100, 100, Duration::from_secs(1)),
            "rows: 100/100 (100 %)"
        );
        assert_eq!(line("rows", 0, 0, Duration::ZERO), "rows: 0/0 (100 %)");
    }
}
