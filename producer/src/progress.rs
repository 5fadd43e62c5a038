//! Progress display: a bar when stderr is a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::cell::Cell<u64>,
    what: &'static str,
}

impl Progress {
    pub fn new(total: u64, what: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{msg:12} [{bar:40}] {pos}/{len} (eta {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_message(what);
            b
        });
        Progress { bar, total, done: 0.into(), what }
    }

    /// One more item finished.
    pub fn inc(&self, item: &str) {
        self.done.set(self.done.get() + 1);
        match &self.bar {
            Some(b) => b.inc(1),
            None => {
                let d = self.done.get();
                // Plain output: every item for small runs, every 10% for large ones.
                if self.total <= 50 || d.is_multiple_of((self.total / 10).max(1)) || d == self.total {
                    eprintln!("{} {d}/{} {item}", self.what, self.total);
                }
            }
        }
    }

    /// Sets the absolute position (for following a backfill).
    pub fn set(&self, pos: u64, line: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
            }
            None => {
                if pos != self.done.get() {
                    eprintln!("{line}");
                }
            }
        }
        self.done.set(pos);
    }

    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
