//! Progress and summaries of the long owner commands (`db check`, `db export`,
//! `webhooks replay`, `db backup`, `db restore`).
//!
//! Progress is one stderr line rewritten in place (`\r`) at most every
//! [`REDRAW`], and only when stderr is a terminal: a log file or a CI capture would
//! otherwise fill with thousands of lines. `C2C_PROGRESS=always` forces it (tests, or a
//! terminal that `IsTerminal` does not recognise), `C2C_PROGRESS=never` turns it off.
//! The summary at the end always goes to stderr, so stdout stays the command's data
//! (a report, JSON, JSON lines).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Least time between two redraws of the progress line.
pub const REDRAW: Duration = Duration::from_millis(200);

/// One command's progress line.
pub struct Progress {
    /// "checked", "exported", ...: the line reads `<verb> 12,345 <noun>…`.
    verb: &'static str,
    noun: &'static str,
    enabled: bool,
    /// A terminal gets its line erased at the end; a forced non-terminal a newline.
    tty: bool,
    started: Instant,
    last_draw: Option<Instant>,
    last_len: usize,
}

impl Progress {
    pub fn new(verb: &'static str, noun: &'static str) -> Self {
        let tty = std::io::stderr().is_terminal();
        let enabled = match std::env::var("C2C_PROGRESS").as_deref() {
            Ok("always") => true,
            Ok("never") => false,
            _ => tty,
        };
        Self {
            verb,
            noun,
            enabled,
            tty,
            started: Instant::now(),
            last_draw: None,
            last_len: 0,
        }
    }

    /// Reports `done` items so far (`of` when the total is known). Cheap to call per
    /// item: it draws at most every [`REDRAW`] (the first call draws at once).
    pub fn update(&mut self, done: u64, of: Option<u64>) {
        if !self.enabled || self.last_draw.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.draw(done, of);
    }

    fn draw(&mut self, done: u64, of: Option<u64>) {
        self.last_draw = Some(Instant::now());
        let line = match of {
            Some(total) => format!(
                "{} {} of {} {}…",
                self.verb,
                thousands(done),
                thousands(total),
                self.noun
            ),
            None => format!("{} {} {}…", self.verb, thousands(done), self.noun),
        };
        // Pad over a longer previous line (a terminal does not clear on `\r`).
        let pad = self.last_len.saturating_sub(line.chars().count());
        self.last_len = line.chars().count();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}{:pad$}", "");
        let _ = err.flush();
    }

    /// Draws the final count (so even a run shorter than one redraw shows where it
    /// ended) and ends the line; the caller prints its summary next.
    pub fn finish(&mut self, done: u64, of: Option<u64>) {
        if !self.enabled {
            return;
        }
        self.draw(done, of);
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            // Erase the progress line: the summary replaces it.
            write!(err, "\r{:w$}\r", "", w = self.last_len)
        } else {
            writeln!(err)
        };
        let _ = err.flush();
    }

    /// Time since the command started, for the summary.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration for a summary: `0.4 s`, `12.3 s`, `2 min 5 s`.
pub fn took(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Prints the summary line of a command to stderr.
pub fn summary(line: impl std::fmt::Display) {
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(took(Duration::from_millis(400)), "0.4 s");
        assert_eq!(took(Duration::from_secs(125)), "2 min 5 s");
    }
}
