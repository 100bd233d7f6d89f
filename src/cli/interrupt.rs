//! SIGINT and SIGTERM during push and restore: the command's work is dropped (its writers
//! remove their temporary files as they go), every temporary file still registered is
//! removed, and the command says what it stopped and exits 130 or 143, as a shell reports a
//! process killed by that signal.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The signal that stopped a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stop {
    /// The exit status: 128 + the signal's number.
    pub(super) fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        }
    }

    /// The signal's name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// SIGINT and SIGTERM, caught from the moment this is made (before, they end the process as
/// by default).
pub(super) struct Signals {
    int: Signal,
    term: Signal,
}

/// How a command under [`Signals::run`] ended.
pub(super) enum Ran<T> {
    /// It ran to its end.
    Done(T),
    /// A signal stopped it: its work was dropped, and these temporary files were removed.
    Stopped(Stop, Vec<PathBuf>),
}

impl Signals {
    /// Catches SIGINT and SIGTERM from now on.
    pub(super) fn catch() -> Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// Runs `work` until it ends or a signal comes; then drops it and removes every
    /// temporary file a writer of this process still had.
    pub(super) async fn run<T>(mut self, work: impl Future<Output = T>) -> Ran<T> {
        let mut work = Box::pin(work);
        let stop = tokio::select! {
            done = &mut work => return Ran::Done(done),
            _ = self.int.recv() => Stop::Interrupt,
            _ = self.term.recv() => Stop::Terminate,
        };
        let writing = offsite_storage::scratch::registered();
        // Dropping the work drops its writers, which remove their files; what a blocking task
        // was creating meanwhile is removed next, and no new one is made after.
        drop(work);
        offsite_storage::scratch::remove_all();
        let removed = writing.into_iter().filter(|p| !p.exists()).collect();
        Ran::Stopped(stop, removed)
    }
}

/// The removed temporary files, in words.
pub(super) fn removed_words(removed: &[PathBuf]) -> String {
    match removed {
        [] => String::new(),
        [one] => format!("; removed its temporary file {}", one.display()),
        many => format!(
            "; removed its {} temporary files ({})",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
