//! Writing storemu's reports without panicking when standard output is
//! closed (`| head -1`, EPIPE) or full (`> /dev/full`, ENOSPC).
//!
//! The first failed write ends the report on standard output: one line on
//! standard error says so, and the command exits with [`EXIT_OUTPUT_ERROR`]
//! (74, `EX_IOERR` of `sysexits.h`) once it has finished what it must do (a
//! `serve` still stops the adapter and runs the leak checks). Lines written
//! after the failure go to standard error when the report asks for that
//! ([`Report::diverting`]), and are dropped otherwise. Standard error itself
//! is written on a best-effort basis: when it is closed too, nothing is
//! reported and nothing panics.

use std::io::{self, Write};

/// Exit status when standard output could not be written.
pub const EXIT_OUTPUT_ERROR: u8 = 74;

/// Writes one line to standard error, ignoring a failure (there is nowhere
/// left to report it).
pub fn warn(line: &str) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// A report written to standard output line by line, which remembers the
/// first failure instead of panicking.
#[derive(Debug)]
pub struct Report {
    failed: Option<io::Error>,
    divert: bool,
    next: &'static str,
}

impl Report {
    /// A report whose lines are dropped once standard output fails; `next`
    /// says what happens then, for the one line on standard error.
    #[must_use]
    pub const fn new(next: &'static str) -> Self {
        Self {
            failed: None,
            divert: false,
            next,
        }
    }

    /// A report whose later lines go to standard error once standard output
    /// fails (`serve`'s findings).
    #[must_use]
    pub const fn diverting(next: &'static str) -> Self {
        Self {
            failed: None,
            divert: true,
            next,
        }
    }

    /// Writes `text` (one or more whole lines) and flushes it.
    pub fn write(&mut self, text: &str) {
        if self.failed.is_some() {
            if self.divert {
                let mut stderr = io::stderr().lock();
                let _ = stderr.write_all(text.as_bytes());
            }
            return;
        }
        let mut stdout = io::stdout().lock();
        let written = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
        drop(stdout);
        if let Err(error) = written {
            warn(&format!(
                "storemu: standard output cannot be written ({error}): it is closed or full; {}, and the exit status is {EXIT_OUTPUT_ERROR}.",
                self.next
            ));
            self.failed = Some(error);
            if self.divert {
                self.write(text);
            }
        }
    }

    /// Writes one line.
    pub fn line(&mut self, line: &str) {
        self.write(&format!("{line}\n"));
    }

    /// Whether a write has failed.
    #[must_use]
    pub const fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// `status`, or [`EXIT_OUTPUT_ERROR`] when a write failed.
    #[must_use]
    pub const fn status(&self, status: u8) -> u8 {
        if self.failed() {
            EXIT_OUTPUT_ERROR
        } else {
            status
        }
    }
}
