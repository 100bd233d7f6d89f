//! Output: human text or `--json`, progress bars on terminals only, and exit codes.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Exit codes (DESIGN.md "Exit codes"); meanings per command are in README.md.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed (push: stored nowhere; verify: could not check; restore: no healthy copy).
    pub const FAILED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Partly done (push: stored, but a destination failed or placement is not met; status
    /// and plan: a rule does not hold).
    pub const PARTIAL: u8 = 3;
    /// A copy is missing or corrupt (verify, status, drill).
    pub const DAMAGED: u8 = 4;
    /// Refused by a safety rail; nothing was deleted (prune).
    pub const REFUSED: u8 = 5;

    /// The exit status of a command that checks copies: a damaged copy (4) outranks one that
    /// could not be checked (1).
    pub fn of_checks(damaged: bool, unchecked: bool) -> u8 {
        if damaged {
            DAMAGED
        } else if unchecked {
            FAILED
        } else {
            OK
        }
    }

    /// The exit status an error ends the program with.
    pub fn of(e: &anyhow::Error) -> u8 {
        if e.downcast_ref::<super::StdoutClosed>().is_some() {
            OK
        } else if e.downcast_ref::<crate::error::UsageError>().is_some() {
            USAGE
        } else {
            FAILED
        }
    }
}

pub use crate::error::{store_error, usage, UsageError};

/// Standard output was closed by its reader (`offsite ls | head -1`): the program ends
/// quietly with success, as ripgrep does, instead of panicking in `println!`.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The error of a write to standard output: [`StdoutClosed`] for a closed pipe.
pub fn stdout_failed(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Whether `-q` / `--quiet` was given: a command's text report is left out, errors and
/// warnings are not.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets `-q` / `--quiet` for the run.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-q` / `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// `println!` of a command's text report, left out under `--quiet`; returns an error (see
/// [`stdout_failed`]) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        if $crate::report::quiet() {
            Ok(())
        } else {
            $crate::report::dataln!($($arg)*)
        }
    }};
}
pub(crate) use outln;

/// `println!` of what was asked for (a new key's recipient, a JSON document), printed under
/// `--quiet` too.
macro_rules! dataln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::report::stdout_failed)
    }};
}
pub(crate) use dataln;

/// How to talk to the user.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print one JSON document on stdout instead of text.
    pub json: bool,
}

impl Output {
    /// A byte progress bar on stderr, only when stderr is a terminal and output is not JSON.
    pub fn progress(&self, len: Option<u64>, what: &str) -> Option<ProgressBar> {
        if self.json || quiet() || !std::io::stderr().is_terminal() {
            return None;
        }
        let pb = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        let style = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template");
        pb.set_style(style);
        pb.set_message(what.to_string());
        Some(pb)
    }

    /// Prints a command's report as one JSON document: the policy's name (when there is one),
    /// the report's own fields and the exit status.
    pub fn print_report<T: serde::Serialize>(
        &self,
        policy: Option<&str>,
        report: &T,
        exit: u8,
    ) -> anyhow::Result<()> {
        #[derive(serde::Serialize)]
        struct Document<'a, T> {
            #[serde(skip_serializing_if = "Option::is_none")]
            policy: Option<&'a str>,
            #[serde(flatten)]
            report: &'a T,
            exit: u8,
        }
        let doc = Document {
            policy,
            report,
            exit,
        };
        self.print_json(&serde_json::to_value(doc)?)
    }

    /// Prints a JSON value on stdout.
    pub fn print_json(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        dataln!("{}", serde_json::to_string_pretty(value)?)
    }

    /// Prints `value` as one line of JSON Lines (the shape of `ls` and `replicate`).
    pub fn print_json_line(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        dataln!("{}", serde_json::to_string(value)?)
    }
}

pub use crate::units::{human_bytes, time};

impl crate::engine::progress::Observer for ProgressBar {
    fn set_length(&self, len: u64) {
        ProgressBar::set_length(self, len)
    }
    fn set_position(&self, pos: u64) {
        ProgressBar::set_position(self, pos)
    }
    fn inc(&self, n: u64) {
        ProgressBar::inc(self, n)
    }
}

/// The engine's view of a progress bar.
pub fn observer(pb: &Option<ProgressBar>) -> crate::engine::progress::Progress {
    pb.clone()
        .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::engine::progress::Observer>)
}
