//! The trace: every event of a run, stamped with its virtual time and who did it, so a failing
//! seed can be read from start to violation; and `secs`, how a virtual time is written in it.

use std::fmt;
use std::time::Duration;

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Virtual time since the run began.
    pub at: Duration,
    /// Who: a replica (`r1`, `r1.2` for its third life), `store`, `provider`, `nemesis`, `sim`.
    pub who: String,
    /// What happened.
    pub what: String,
    /// How many more times the same thing happened, right after (a poll, say).
    pub repeats: u32,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.at.as_millis();
        write!(
            f,
            "{:>6}.{:03}s  {:<8} {}",
            ms / 1000,
            ms % 1000,
            self.who,
            self.what
        )?;
        if self.repeats > 0 {
            write!(f, " (and {} times more)", self.repeats)?;
        }
        Ok(())
    }
}

/// Every event of one run, in the order it happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    lines: Vec<Line>,
}

impl Trace {
    /// Adds a line; one that repeats the last line (same who, same what) is counted on it.
    pub(crate) fn push(&mut self, at: Duration, who: String, what: String) {
        if let Some(last) = self.lines.last_mut()
            && last.who == who
            && last.what == what
        {
            last.repeats += 1;
            return;
        }
        self.lines.push(Line {
            at,
            who,
            what,
            repeats: 0,
        });
    }

    /// The lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> &[Line] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// `d` as seconds with milliseconds, as the trace and the violations write a virtual time.
pub(crate) fn secs(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}
