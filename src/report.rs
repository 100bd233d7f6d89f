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

    /// The exit status an error ends the program with.
    pub fn of(e: &anyhow::Error) -> u8 {
        if e.downcast_ref::<super::StdoutClosed>().is_some() {
            OK
        } else if e.downcast_ref::<super::UsageError>().is_some() {
            USAGE
        } else {
            FAILED
        }
    }
}

/// A usage or configuration error: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// A store's or snapshot provider's error as the command's: what the user wrote (a URL, an id,
/// a region, an option the store cannot honour: `InvalidConfig`, `Unsupported`) is a usage error
/// (exit 2); a store that cannot be reached or refuses the credentials is a failure (exit 1).
pub fn store_error(e: offsite_storage::Error) -> anyhow::Error {
    use offsite_storage::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidConfig | ErrorKind::Unsupported => usage(e.to_string()),
        _ => anyhow::anyhow!("{e}"),
    }
}

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

/// `println!` that returns an error (see [`stdout_failed`]) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::report::stdout_failed)
    }};
}
pub(crate) use outln;

/// `print!` that returns an error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err($crate::report::stdout_failed)
    }};
}
pub(crate) use out;

/// How to talk to the user.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print one JSON document on stdout instead of text.
    pub json: bool,
}

impl Output {
    /// A byte progress bar on stderr, only when stderr is a terminal and output is not JSON.
    pub fn progress(&self, len: Option<u64>, what: &str) -> Option<ProgressBar> {
        if self.json || !std::io::stderr().is_terminal() {
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

    /// Prints a JSON value on stdout.
    pub fn print_json(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        outln!("{}", serde_json::to_string_pretty(value)?)
    }
}

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A UTC time as `2026-11-26T02:00:00Z`.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
